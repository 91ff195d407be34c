"""Topic names and payloads: canonical signals in the units people read.

The hub speaks SI units (ratios, metres, watts, pascals); an MQTT consumer (Home Assistant, evcc, a
script) expects what the car's own app shows: percent, kilometres, kilowatts, bar. The conversion
lives in one table here, so the payloads, Home Assistant's ``unit_of_measurement`` and the README
cannot disagree. Values a report does not carry are not published at all: an unknown is never 0.

    <prefix>/status                  online | offline (the exporter; offline is its last will)
    <prefix>/<vin>/<signal>          one canonical signal, display units, retained
    <prefix>/<vin>/charging          true while charging_state is charging or dc_charging
    <prefix>/<vin>/state             every known signal of the latest report as one JSON object
    <prefix>/<vin>/location          {"latitude", "longitude"} (only with metrics.export_location)
    <prefix>/<vin>/availability      online | offline (data age, re-authentication)
    <prefix>/<vin>/command           commands in, the HTTP API's JSON body
    <prefix>/<vin>/command/result    each command's record as it progresses
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Final

from exporter.signals import BY_NAME, SIGNALS, Kind, Value
from exporter.snapshot import Snapshot


@dataclass(frozen=True, slots=True)
class Display:
    """How a NUMBER signal is shown: ``value * scale`` rounded to ``digits``, in ``unit``."""

    unit: str
    scale: float
    digits: int


_BY_UNIT: Final = MappingProxyType(
    {
        "ratio": Display("%", 100.0, 1),
        "m": Display("km", 1e-3, 1),
        "m/s": Display("km/h", 3.6, 1),
        "deg": Display("°", 1.0, 6),
        "C": Display("°C", 1.0, 1),
        "W": Display("kW", 1e-3, 2),
        "V": Display("V", 1.0, 1),
        "A": Display("A", 1.0, 1),
        "Pa": Display("bar", 1e-5, 2),
        "s": Display("min", 1 / 60, 0),
    }
)
_BY_NAME: Final = MappingProxyType(
    {
        "odometer": Display("km", 1e-3, 1),
        "altitude": Display("m", 1.0, 1),
        "heading": Display("°", 1.0, 0),
        "service_time": Display("d", 1 / 86400, 0),
        "aux_battery_voltage": Display("V", 1.0, 2),
    }
)

# derived topics: not signals of their own, but what automations ask for
CHARGING: Final = "charging"
CHARGING_STATES_ON: Final = frozenset({"charging", "dc_charging"})
STATE, LOCATION, AVAILABILITY, COMMAND, RESULT = (
    "state",
    "location",
    "availability",
    "command",
    "command/result",
)
# diagnostics, published by the status tick
DATA_AGE, BUDGET, REAUTH, POLL_ERROR = (
    "data_age",
    "api_budget_remaining",
    "reauth_required",
    "last_poll_error",
)
RESERVED: Final = frozenset(
    {CHARGING, STATE, LOCATION, AVAILABILITY, COMMAND, DATA_AGE, BUDGET, REAUTH, POLL_ERROR}
)
assert not RESERVED & set(BY_NAME), "a derived topic must not shadow a signal"


def display(name: str) -> Display | None:
    """The display unit of a NUMBER signal (None for booleans, states and timestamps)."""
    sig = BY_NAME[name]
    if sig.kind is not Kind.NUMBER:
        return None
    return _BY_NAME.get(name) or _BY_UNIT[sig.unit]


def number(value: float, digits: int) -> str:
    """Fixed-point, trailing zeros dropped: 81 not 81.0, never 1e-05; -0 is 0."""
    text = f"{round(value, digits):.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def shown(name: str, value: Value) -> float | bool | str | None:
    """A value in display units, for the JSON state (numbers stay numbers)."""
    if value is None:
        return None
    sig = BY_NAME[name]
    if sig.kind is Kind.TIMESTAMP:
        return iso(float(value))
    d = display(name)
    if d is None or isinstance(value, bool | str):
        return value
    return float(number(float(value) * d.scale, d.digits))


def render(name: str, value: Value) -> str | None:
    """One signal's payload: display units, booleans as true/false, timestamps as ISO 8601."""
    v = shown(name, value)
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        d = display(name)
        return number(v, d.digits if d else 6)
    return str(v)


PUBLIC: Final = tuple(s.name for s in SIGNALS if not s.private)
PRIVATE: Final = tuple(s.name for s in SIGNALS if s.private)


def payloads(snap: Snapshot, *, location: bool) -> dict[str, str]:
    """Topic suffix -> payload for everything one report says about its car (absent values are
    left out, not zeroed). Position only when the owner exported it."""
    out: dict[str, str] = {}
    names = PUBLIC + PRIVATE if location else PUBLIC
    for name in names:
        text = render(name, snap.values.get(name))
        if text is not None:
            out[name] = text
    state = snap.values.get("charging_state")
    if isinstance(state, str):
        out[CHARGING] = "true" if state in CHARGING_STATES_ON else "false"
    doc = {n: shown(n, snap.values.get(n)) for n in names if snap.values.get(n) is not None}
    if CHARGING in out:
        doc[CHARGING] = out[CHARGING] == "true"
    out[STATE] = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    if location:
        lat, lon = snap.values.get("latitude"), snap.values.get("longitude")
        if isinstance(lat, float) and isinstance(lon, float):
            out[LOCATION] = json.dumps(
                {"latitude": lat, "longitude": lon, "source_type": "gps"}, separators=(",", ":")
            )
    return out


@dataclass(frozen=True, slots=True)
class Topics:
    """Full topic names under the configured prefixes."""

    prefix: str
    discovery_prefix: str

    @property
    def status(self) -> str:
        return f"{self.prefix}/status"

    @property
    def ha_status(self) -> str:
        return f"{self.discovery_prefix}/status"

    @property
    def commands(self) -> str:
        """The subscription for every car's command topic."""
        return f"{self.prefix}/+/{COMMAND}"

    def car(self, vin: str, suffix: str) -> str:
        return f"{self.prefix}/{vin}/{suffix}"

    def vin_of_command(self, topic: str) -> str | None:
        head, sep, tail = topic.rpartition(f"/{COMMAND}")
        if not sep or tail or not head.startswith(self.prefix + "/"):
            return None
        vin = head[len(self.prefix) + 1 :]
        return vin if vin and "/" not in vin else None
