"""The shape Home Assistant's MQTT discovery accepts, written down from Home Assistant's MQTT
integration documentation (home-assistant.io/integrations/mqtt, sensor.mqtt, binary_sensor.mqtt,
lock.mqtt, switch.mqtt, number.mqtt, button.mqtt, device_tracker.mqtt, and the sensor/binary
sensor device-class tables), independently of exporter/mqtt/discovery.py, so a config the exporter
gets wrong fails here instead of being compared with itself.

``validate_config(topic, config)`` returns a list of problems (empty = acceptable).
"""

from __future__ import annotations

import re
from typing import Any

TOPIC = re.compile(
    r"(?P<prefix>[^/]+)/(?P<component>[a-z_]+)/(?:[A-Za-z0-9_-]+/)?[A-Za-z0-9_-]+/config"
)

# component -> keys without which Home Assistant refuses the config
REQUIRED: dict[str, tuple[tuple[str, ...], ...]] = {
    "sensor": (("state_topic",),),
    "binary_sensor": (("state_topic",),),
    "lock": (("command_topic",),),
    "switch": (("command_topic",),),
    "number": (("command_topic",),),
    "button": (("command_topic",),),
    # state_topic is optional since the tracker can take its position from JSON attributes
    "device_tracker": (("state_topic", "json_attributes_topic"),),
}

# sensor device classes used by car integrations -> the units Home Assistant accepts for them
SENSOR_UNITS: dict[str, set[str] | None] = {
    "battery": {"%"},
    "distance": {"km", "m", "cm", "mm", "mi", "yd", "in", "ft"},
    "power": {"W", "kW", "MW", "GW", "mW", "TW", "BTU/h"},
    "temperature": {"°C", "°F", "K"},
    "pressure": {"Pa", "kPa", "hPa", "bar", "cbar", "mbar", "mmHg", "inHg", "psi"},
    "voltage": {"V", "mV", "µV", "kV", "MV"},
    "current": {"A", "mA"},
    "duration": {"d", "h", "min", "s", "ms"},
    "speed": {"km/h", "m/s", "mph", "kn", "ft/s", "in/d", "in/h", "mm/d", "mm/h", "mm/s"},
    "timestamp": None,  # no unit
    "enum": None,  # no unit, needs options
}
BINARY_CLASSES = {
    "battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door",
    "garage_door", "gas", "heat", "light", "lock", "moisture", "motion", "moving", "occupancy",
    "opening", "plug", "power", "presence", "problem", "running", "safety", "smoke", "sound",
    "tamper", "update", "vibration", "window",
}  # fmt: skip
STATE_CLASSES = {"measurement", "total", "total_increasing"}
CATEGORIES = {"config", "diagnostic"}


def validate_config(topic: str, cfg: dict[str, Any]) -> list[str]:
    errs: list[str] = []
    m = TOPIC.fullmatch(topic)
    if m is None:
        return [f"{topic}: not <prefix>/<component>/[<node_id>/]<object_id>/config"]
    comp = m["component"]
    if comp not in REQUIRED:
        return [f"{topic}: unexpected component {comp}"]
    for alternatives in REQUIRED[comp]:
        if not any(isinstance(cfg.get(k), str) and cfg[k] for k in alternatives):
            errs.append(f"{topic}: needs {' or '.join(alternatives)}")
    for key in ("state_topic", "command_topic", "json_attributes_topic"):
        if key in cfg and any(c in cfg[key] for c in "+#"):
            errs.append(f"{topic}: {key} has a wildcard")
    if not isinstance(cfg.get("unique_id"), str) or not cfg["unique_id"]:
        errs.append(f"{topic}: a device needs a unique_id")
    if not isinstance(cfg.get("name"), str):
        errs.append(f"{topic}: no name")
    dev = cfg.get("device")
    if not isinstance(dev, dict) or not (dev.get("identifiers") or dev.get("connections")):
        errs.append(f"{topic}: device needs identifiers or connections")
    elif "via_device" in dev and not isinstance(dev["via_device"], str):
        errs.append(f"{topic}: via_device must be an identifier string")
    for a in cfg.get("availability", []):
        if not isinstance(a, dict) or not isinstance(a.get("topic"), str):
            errs.append(f"{topic}: availability entries need a topic")
    if cfg.get("availability_mode", "latest") not in {"all", "any", "latest"}:
        errs.append(f"{topic}: availability_mode")
    if "availability" in cfg and "availability_topic" in cfg:
        errs.append(f"{topic}: availability and availability_topic together")
    if cfg.get("qos", 0) not in (0, 1, 2):
        errs.append(f"{topic}: qos")
    if "entity_category" in cfg:
        if cfg["entity_category"] not in CATEGORIES:
            errs.append(f"{topic}: entity_category {cfg['entity_category']}")
        if comp in {"sensor", "binary_sensor"} and cfg["entity_category"] == "config":
            errs.append(f"{topic}: a sensor cannot be a config entity")
    dc = cfg.get("device_class")
    if comp == "sensor":
        unit = cfg.get("unit_of_measurement")
        sc = cfg.get("state_class")
        if sc is not None and sc not in STATE_CLASSES:
            errs.append(f"{topic}: state_class {sc}")
        if dc is not None:
            if dc not in SENSOR_UNITS:
                errs.append(f"{topic}: sensor device_class {dc} unknown")
            elif SENSOR_UNITS[dc] is None:
                if unit is not None or sc is not None:
                    errs.append(f"{topic}: {dc} sensors take no unit and no state_class")
            elif unit not in (SENSOR_UNITS[dc] or ()):
                errs.append(f"{topic}: unit {unit!r} is not valid for device_class {dc}")
        if dc == "enum" and not cfg.get("options"):
            errs.append(f"{topic}: an enum sensor needs options")
        if sc == "total_increasing" and dc not in {None, "distance", "energy", "gas", "water"}:
            errs.append(f"{topic}: total_increasing for {dc}")
    if comp == "binary_sensor" and dc is not None and dc not in BINARY_CLASSES:
        errs.append(f"{topic}: binary_sensor device_class {dc}")
    if comp == "number":
        lo, hi, step = cfg.get("min", 1), cfg.get("max", 100), cfg.get("step", 1)
        if not (isinstance(lo, int | float) and isinstance(hi, int | float) and lo < hi):
            errs.append(f"{topic}: min must be below max")
        if not isinstance(step, int | float) or step < 0.001:
            errs.append(f"{topic}: step must be >= 0.001")
    if comp == "lock":
        for k in ("payload_lock", "payload_unlock", "state_locked", "state_unlocked"):
            if k in cfg and not isinstance(cfg[k], str):
                errs.append(f"{topic}: {k} must be a string")
    if comp == "device_tracker" and cfg.get("source_type", "gps") not in {
        "gps",
        "router",
        "bluetooth",
        "bluetooth_le",
    }:
        errs.append(f"{topic}: source_type")
    return errs
