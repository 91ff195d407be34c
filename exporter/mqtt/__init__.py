"""MQTT: every car's signals on a broker, Home Assistant discovery, and commands from MQTT through
the one command service (see README, "MQTT and Home Assistant")."""
