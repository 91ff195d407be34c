"""Home Assistant MQTT discovery: one device per car, its entities, and the exporter as a bridge.

Per-entity discovery (``<discovery_prefix>/<component>/carmetrics_<vin>/<key>/config``) rather
than device-based discovery: every Home Assistant release that has MQTT understands it, and a single
entity can be added (a signal the car starts reporting) or removed (an empty retained config) on its
own. ``unique_id`` is ``carmetrics_<vin>_<key>``, built from nothing that changes across restarts.

Entities appear for what the car has actually reported (a #1 without a sunroof gets no sunroof
sensor) and command entities only for the commands its provider supports; every command entity
writes the HTTP API's JSON body to the car's command topic, so MQTT has no command language of its
own. Units come from ``topics.display``, the same table the payloads are rendered with.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from exporter import __version__
from exporter.mqtt import topics as t
from exporter.signals import BY_NAME, CHARGING_STATES
from exporter.snapshot import VehicleInfo

DIAGNOSTIC: Final = "diagnostic"
ORIGIN: Final = {"name": "carmetrics", "sw_version": __version__}


@dataclass(frozen=True, slots=True)
class Entity:
    component: str  # sensor | binary_sensor | device_tracker | lock | switch | number | button
    key: str  # object id, unique per car
    config: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Sensor:
    """A sensor or binary sensor read from one topic of the car."""

    key: str
    name: str
    signal: str  # the topic suffix it reads (a signal or a derived topic)
    device_class: str | None = None
    state_class: str | None = None
    category: str | None = None
    icon: str | None = None


_W: Final = (("front_left", "front left"), ("front_right", "front right"))
_R: Final = (("rear_left", "rear left"), ("rear_right", "rear right"))
_WHEELS: Final = _W + _R

SENSORS: Final[tuple[Sensor, ...]] = (
    Sensor("battery_soc", "Battery", "battery_soc", "battery", "measurement"),
    Sensor("electric_range", "Range", "electric_range", "distance", "measurement"),
    Sensor("electric_range_at_full", "Range at full", "electric_range_at_full", "distance"),
    Sensor("odometer", "Odometer", "odometer", "distance", "total_increasing"),
    Sensor("charging_power", "Charging power", "charging_power", "power", "measurement"),
    Sensor("charging_time_to_full", "Time to full", "charging_time_to_full", "duration"),
    Sensor("charging_state", "Charging state", "charging_state", "enum"),
    Sensor(
        "cabin_temperature", "Cabin temperature", "cabin_temperature", "temperature", "measurement"
    ),
    Sensor(
        "outside_temperature",
        "Outside temperature",
        "outside_temperature",
        "temperature",
        "measurement",
    ),
    *(
        Sensor(
            f"tyre_pressure_{w}",
            f"Tyre pressure {n}",
            f"tyre_pressure_{w}",
            "pressure",
            "measurement",
        )
        for w, n in _WHEELS
    ),
    Sensor("aux_battery_voltage", "12 V battery", "aux_battery_voltage", "voltage", "measurement"),
    Sensor("speed", "Speed", "speed", "speed", "measurement"),
    Sensor("last_update", "Last report", "last_update", "timestamp", category=DIAGNOSTIC),
    Sensor(t.DATA_AGE, "Data age", t.DATA_AGE, "duration", "measurement", DIAGNOSTIC),
    Sensor(
        t.POLL_ERROR,
        "Last poll error",
        t.POLL_ERROR,
        category=DIAGNOSTIC,
        icon="mdi:alert-circle-outline",
    ),
)
# ``charge_limit`` is a number entity when the car can be told a limit, else this sensor
CHARGE_LIMIT_SENSOR: Final = Sensor(
    "charge_limit", "Charge limit", "charge_limit", icon="mdi:battery-lock"
)
BUDGET_SENSOR: Final = Sensor(
    t.BUDGET, "API calls left this month", t.BUDGET, None, "measurement", DIAGNOSTIC, "mdi:counter"
)
BINARY: Final[tuple[Sensor, ...]] = (
    Sensor("charger_connected", "Plugged in", "charger_connected", "plug"),
    Sensor(t.CHARGING, "Charging", t.CHARGING, "battery_charging"),
    *(Sensor(f"door_open_{w}", f"Door {n}", f"door_open_{w}", "door") for w, n in _WHEELS),
    Sensor("door_open_trunk", "Trunk", "door_open_trunk", "opening"),
    Sensor("door_open_hood", "Hood", "door_open_hood", "opening"),
    *(Sensor(f"window_open_{w}", f"Window {n}", f"window_open_{w}", "window") for w, n in _WHEELS),
    Sensor("sunroof_open", "Sunroof", "sunroof_open", "window"),
    Sensor("climate_active", "Climate", "climate_active", "running"),
    Sensor(t.REAUTH, "Re-authentication needed", t.REAUTH, "problem", category=DIAGNOSTIC),
)
# ``locked`` is a lock entity when the car can be locked remotely, else this binary sensor
# (device class lock: "on" means unlocked)
LOCKED_SENSOR: Final = Sensor("locked", "Lock", "locked", "lock")
BUTTONS: Final = (
    ("horn", "Horn", "mdi:bullhorn"),
    ("flash", "Flash lights", "mdi:car-light-high"),
    ("find", "Find", "mdi:map-marker-radius"),
)


def _json(body: Mapping[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Car:
    """What discovery needs to know about one car."""

    info: VehicleInfo
    seen: Collection[str]  # topic suffixes the car's reports have filled
    supported: Collection[str]  # commands (names from the command table) it accepts
    limit_step: int = 1  # the charge-limit grid the provider accepts
    budget: bool = False  # its provider meters calls
    location: bool = False  # position is exported


class Discovery:
    def __init__(self, tp: t.Topics, *, bridge_id: str, qos: int) -> None:
        self.tp = tp
        self.bridge_id = bridge_id
        self.qos = qos

    # --- topics -----------------------------------------------------------------------------------
    def node(self, vin: str) -> str:
        return f"carmetrics_{vin}"

    def topic(self, component: str, node: str, key: str) -> str:
        return f"{self.tp.discovery_prefix}/{component}/{node}/{key}/config"

    # --- the exporter itself ----------------------------------------------------------------------
    def bridge(self) -> dict[str, str]:
        """Topic -> payload: the exporter as a device with a connectivity sensor on its LWT topic."""
        config = {
            "name": "Broker connection",
            "unique_id": f"{self.bridge_id}_status",
            "state_topic": self.tp.status,
            "payload_on": "online",
            "payload_off": "offline",
            "device_class": "connectivity",
            "entity_category": DIAGNOSTIC,
            "qos": self.qos,
            "device": {
                "identifiers": [self.bridge_id],
                "name": "carmetrics",
                "manufacturer": "carmetrics",
                "model": "exporter",
                "sw_version": __version__,
            },
            "origin": ORIGIN,
        }
        return {self.topic("binary_sensor", self.bridge_id, "status"): _json(config)}

    # --- a car --------------------------------------------------------------------------------------
    def device(self, info: VehicleInfo) -> dict[str, Any]:
        name = " ".join(p for p in (info.make, info.model) if p) or info.provider
        dev: dict[str, Any] = {
            "identifiers": [self.node(info.vin)],
            "name": f"{name} {info.vin[-4:]}",
            "manufacturer": info.make or info.provider,
            "model": info.model or "unknown",
            "serial_number": info.vin,
            "via_device": self.bridge_id,
        }
        if info.series:
            dev["model_id"] = info.series
        if info.year:
            dev["hw_version"] = f"model year {info.year}"
        if info.sw_version:
            dev["sw_version"] = info.sw_version
        return dev

    def car(self, car: Car) -> dict[str, str]:
        """Topic -> payload of every discovery config this car should have now."""
        vin = car.info.vin
        device = self.device(car.info)
        bridge = {"topic": self.tp.status}
        car_up = [bridge, {"topic": self.tp.car(vin, t.AVAILABILITY)}]
        out: dict[str, str] = {}
        for e in self.entities(car):
            # diagnostics stay visible while the car is unavailable: they say why it is
            diagnostic = e.config.get("entity_category") == DIAGNOSTIC
            config = {
                "name": e.config["name"],
                "unique_id": f"{self.node(vin)}_{e.key}",
                **{k: v for k, v in e.config.items() if k != "name"},
                "availability": [bridge] if diagnostic else car_up,
                "availability_mode": "all",
                "device": device,
                "origin": ORIGIN,
                "qos": self.qos,
            }
            out[self.topic(e.component, self.node(vin), e.key)] = _json(config)
        return out

    def entities(self, car: Car) -> list[Entity]:
        vin, seen, can = car.info.vin, set(car.seen), set(car.supported)
        state = {suffix: self.tp.car(vin, suffix) for suffix in seen}
        command = self.tp.car(vin, t.COMMAND)
        out: list[Entity] = []
        sensors = list(SENSORS)
        if "charge_limit" not in can:
            sensors.append(CHARGE_LIMIT_SENSOR)
        if car.budget:
            sensors.append(BUDGET_SENSOR)
        for s in sensors:
            if s.signal in state:
                out.append(Entity("sensor", s.key, self._sensor(s, state[s.signal])))
        binary = list(BINARY)
        if "lock" not in can or "unlock" not in can:
            binary.append(LOCKED_SENSOR)
        for s in binary:
            if s.signal in state:
                cfg = self._sensor(s, state[s.signal])
                on, off = ("false", "true") if s is LOCKED_SENSOR else ("true", "false")
                cfg.update(payload_on=on, payload_off=off)
                out.append(Entity("binary_sensor", s.key, cfg))
        if car.location and t.LOCATION in state:
            out.append(
                Entity(
                    "device_tracker",
                    "location",
                    {
                        "name": "Location",
                        "json_attributes_topic": state[t.LOCATION],
                        "source_type": "gps",
                        "icon": "mdi:car",
                    },
                )
            )
        if {"lock", "unlock"} <= can:
            out.append(
                Entity(
                    "lock",
                    "lock",
                    {
                        "name": "Lock",
                        "command_topic": command,
                        "payload_lock": _json({"command": "lock"}),
                        "payload_unlock": _json({"command": "unlock"}),
                        "state_topic": self.tp.car(vin, "locked"),
                        "state_locked": "true",
                        "state_unlocked": "false",
                        "optimistic": False,
                    },
                )
            )
        for key, name, start, stop, reads in (
            ("charging_switch", "Charging", "charge_start", "charge_stop", t.CHARGING),
            (
                "climate_switch",
                "Climate control",
                "climate_start",
                "climate_stop",
                "climate_active",
            ),
        ):
            if {start, stop} <= can:
                out.append(
                    Entity(
                        "switch",
                        key,
                        {
                            "name": name,
                            "command_topic": command,
                            "payload_on": _json({"command": start}),
                            "payload_off": _json({"command": stop}),
                            "state_topic": self.tp.car(vin, reads),
                            "state_on": "true",
                            "state_off": "false",
                            "optimistic": False,
                        },
                    )
                )
        if "charge_limit" in can:
            out.append(
                Entity(
                    "number",
                    "charge_limit",
                    {
                        "name": "Charge limit",
                        "command_topic": command,
                        "command_template": '{"command":"charge_limit","percent":{{ value | int }}}',
                        "state_topic": self.tp.car(vin, "charge_limit"),
                        "min": 50,
                        "max": 100,
                        "step": car.limit_step,
                        "mode": "slider",
                        "unit_of_measurement": "%",
                        "icon": "mdi:battery-lock",
                    },
                )
            )
        for name, label, icon in BUTTONS:
            if name in can:
                out.append(
                    Entity(
                        "button",
                        name,
                        {
                            "name": label,
                            "command_topic": command,
                            "payload_press": _json({"command": name}),
                            "icon": icon,
                        },
                    )
                )
        return out

    def _sensor(self, s: Sensor, topic: str) -> dict[str, Any]:
        cfg: dict[str, Any] = {"name": s.name, "state_topic": topic}
        if s.device_class:
            cfg["device_class"] = s.device_class
        if s.state_class:
            cfg["state_class"] = s.state_class
        if s.category:
            cfg["entity_category"] = s.category
        if s.icon:
            cfg["icon"] = s.icon
        unit = _unit(s.signal)
        if unit:
            cfg["unit_of_measurement"] = unit
        if s.device_class == "enum" and s.signal == "charging_state":
            cfg["options"] = list(CHARGING_STATES)
        return cfg


def _unit(suffix: str) -> str | None:
    if suffix == t.DATA_AGE:
        return "s"
    if suffix == t.BUDGET:
        return "calls"
    if suffix not in BY_NAME:
        return None
    d = t.display(suffix)
    return d.unit if d else None
