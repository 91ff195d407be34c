"""Smartcar v3 signals -> carmetrics' canonical values (SI units, ``exporter/signals.py``).

Why it looks like this:

- Unit strings are not normalised by Smartcar (the spec says ``kilometers``, real traffic ``km``;
  ``amps`` vs ``ampere``; smartcar-v3.md §3.2), so each body's unit is looked up case-insensitively
  in one synonym table, and a unit we do not know drops that value rather than guessing.
- A per-signal ``ERROR`` or ``UNAVAILABLE`` is normal partial data (§3.2 "a failed signal does not
  fail the whole call"): that signal is absent and counted, the poll goes on.
- Timestamps arrive as epoch milliseconds (docs, webhooks) or ISO strings (2026 live REST), §3.2.
- Tyre pressures come labelled ``bar`` with kPa-looking values, and sensor faults such as 699.9
  (§3.3 ``wheel-tires`` [3P-LIVE]): values are range-checked after conversion.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from exporter.providers.smartcar.parse import parse_time
from exporter.signals import Value

# unit (lowercase) -> (dimension, factor to the SI unit); temperatures are handled apart.
UNITS: Final[Mapping[str, tuple[str, float]]] = {
    **dict.fromkeys(("km", "kms", "kilometer", "kilometers", "kilometres"), ("length", 1000.0)),
    **dict.fromkeys(("mi", "mile", "miles"), ("length", 1609.344)),
    **dict.fromkeys(("m", "meter", "meters", "metres"), ("length", 1.0)),
    **dict.fromkeys(
        ("km/h", "kph", "kmh", "kilometersperhour", "kilometers_per_hour", "kilometers-per-hour"),
        ("speed", 1 / 3.6),
    ),
    **dict.fromkeys(
        ("mph", "miles_per_hour", "milesperhour", "miles-per-hour"), ("speed", 0.44704)
    ),
    **dict.fromkeys(("m/s", "mps"), ("speed", 1.0)),
    **dict.fromkeys(("percent", "percentage", "%", "pct"), ("ratio", 0.01)),
    **dict.fromkeys(("w", "watt", "watts"), ("power", 1.0)),
    **dict.fromkeys(("kw", "kilowatt", "kilowatts"), ("power", 1000.0)),
    **dict.fromkeys(("v", "volt", "volts"), ("voltage", 1.0)),
    **dict.fromkeys(("a", "amp", "amps", "ampere", "amperes"), ("current", 1.0)),
    **dict.fromkeys(("pa", "pascal", "pascals"), ("pressure", 1.0)),
    **dict.fromkeys(("kpa", "kilopascal", "kilopascals"), ("pressure", 1000.0)),
    **dict.fromkeys(("bar", "bars"), ("pressure", 1e5)),
    **dict.fromkeys(("psi",), ("pressure", 6894.757)),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), ("time", 1.0)),
    **dict.fromkeys(("min", "mins", "minute", "minutes"), ("time", 60.0)),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), ("time", 3600.0)),
}
CELSIUS: Final = frozenset({"c", "°c", "celsius", "degrees-celsius", "degrees_celsius", "degc"})
FAHRENHEIT: Final = frozenset({"f", "°f", "fahrenheit", "degrees-fahrenheit", "degf"})

TYRE_PA: Final = (50_000.0, 600_000.0)  # plausible tyre pressures (0.5-6 bar)
_GRID: Final = {
    (0, 0): "front_left",
    (0, 1): "front_right",
    (1, 0): "rear_left",
    (1, 1): "rear_right",
}


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _unit(body: Mapping[str, Any], default: str) -> str:
    raw = body.get("unit")
    return (raw if isinstance(raw, str) and raw.strip() else default).strip().lower()


def convert(value: Any, unit: str, dimension: str) -> float | None:
    """``value`` in ``unit`` as SI, or None when the unit is unknown or of another dimension."""
    n = _num(value)
    if n is None:
        return None
    u = unit.strip().lower()
    if dimension == "temperature":
        if u in CELSIUS:
            return n
        if u in FAHRENHEIT:
            return (n - 32.0) * 5.0 / 9.0
        return None
    dim_factor = UNITS.get(u)
    if dim_factor is None or dim_factor[0] != dimension:
        return None
    return n * dim_factor[1]


def _scalar(body: Mapping[str, Any], default_unit: str, dimension: str) -> float | None:
    return convert(body.get("value"), _unit(body, default_unit), dimension)


def _grid(body: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    out = []
    values = body.get("values")
    for item in values if isinstance(values, list) else []:
        if isinstance(item, Mapping):
            side = _GRID.get((item.get("row"), item.get("column")))  # type: ignore[arg-type]
            if side:
                out.append((side, item))
    return out


def _tyre(value: Any, unit: str) -> float | None:
    pa = convert(value, unit, "pressure")
    lo, hi = TYRE_PA
    if pa is not None and lo <= pa <= hi:
        return pa
    # live quirk: labelled "bar", valued in kPa (258 "bar") [3P-LIVE §3.3]
    kpa = convert(value, "kpa", "pressure")
    if unit in ("bar", "bars") and kpa is not None and lo <= kpa <= hi:
        return kpa
    return None


def signal_values(code: str, body: Mapping[str, Any]) -> dict[str, Value]:
    """Canonical values of one successful signal body (helper keys start with ``_``)."""
    out: dict[str, Value] = {}
    if code == "tractionbattery-stateofcharge":  # 0-100 in v3 [DOC, §3.3]
        r = _scalar(body, "percent", "ratio")
        out["battery_soc"] = r if r is not None and 0.0 <= r <= 1.0 else None
    elif code == "tractionbattery-range":
        m = _scalar(body, "km", "length")
        out["electric_range"] = m if m is not None and m >= 0 else None
    elif code == "charge-ischarging":
        out["_charging"] = _bool(body.get("value"))
    elif code == "charge-isfastchargerpresent":
        out["_dc"] = _bool(body.get("value"))
    elif code == "charge-ischargingcableconnected":
        out["charger_connected"] = _bool(body.get("value"))
    elif code == "charge-detailedchargingstatus":
        out["_status"] = body.get("value") if isinstance(body.get("value"), str) else None
    elif code == "charge-chargelimits":  # activeLimit first, else the GLOBAL limit [DOC]
        limit = _num(body.get("activeLimit"))
        if limit is None:
            for item in body.get("values") or []:
                if isinstance(item, Mapping) and str(item.get("type", "")).upper() == "GLOBAL":
                    limit = _num(item.get("limit"))
        r = None if limit is None else convert(limit, _unit(body, "percent"), "ratio")
        out["charge_limit"] = r if r is not None and 0.0 < r <= 1.0 else None
    elif code == "charge-wattage":
        w = _scalar(body, "watts", "power")
        out["charging_power"] = w if w is not None and w >= 0 else None
    elif code == "charge-voltage":
        v = _scalar(body, "volts", "voltage")
        out["_voltage"] = v if v is not None and 0 <= v <= 1500 else None
    elif code == "charge-amperage":
        a = _scalar(body, "ampere", "current")
        out["_current"] = abs(a) if a is not None and abs(a) <= 1000 else None
    elif code == "charge-timetocomplete":  # minutes when no unit is given [DOC]
        t = _scalar(body, "minutes", "time")
        out["charging_time_to_full"] = t if t is not None and t >= 0 else None
    elif code == "odometer-traveleddistance":
        m = _scalar(body, "km", "length")
        out["odometer"] = m if m is not None and m >= 0 else None
    elif code == "motion-currentspeed":
        v = _scalar(body, "km/h", "speed")
        out["speed"] = v if v is not None and v >= 0 else None
    elif code == "location-preciselocation":
        lat, lon = _num(body.get("latitude")), _num(body.get("longitude"))
        if lat is not None and lon is not None and -90 <= lat <= 90 and -180 <= lon <= 180:
            out["latitude"], out["longitude"] = lat, lon
            heading = _num(body.get("heading"))
            if heading is not None and 0 <= heading <= 360:
                out["heading"] = heading
    elif code == "closure-islocked":
        out["locked"] = _bool(body.get("value"))
    elif code == "closure-doors":  # row 0 = front, column 0 = left [DOC]
        for side, item in _grid(body):
            out[f"door_open_{side}"] = _bool(item.get("isOpen"))
            out[f"door_locked_{side}"] = _bool(item.get("isLocked"))
    elif code == "closure-windows":
        for side, item in _grid(body):
            out[f"window_open_{side}"] = _bool(item.get("isOpen"))
    elif code == "closure-sunroof":
        out["sunroof_open"] = _bool(body.get("isOpen"))
    elif code == "closure-reartrunk":
        out["door_open_trunk"] = _bool(body.get("isOpen"))
        out["door_locked_trunk"] = _bool(body.get("isLocked"))
    elif code == "closure-fronttrunk":
        out["door_open_hood"] = _bool(body.get("isOpen"))
    elif code == "climate-internaltemperature":
        out["cabin_temperature"] = _temperature(body)
    elif code == "climate-externaltemperature":
        out["outside_temperature"] = _temperature(body)
    elif code == "hvac-iscabinhvacactive":
        out["climate_active"] = _bool(body.get("value"))
    elif code == "wheel-tires":
        unit = _unit(body, "kpa")
        for side, item in _grid(body):
            out[f"tyre_pressure_{side}"] = _tyre(item.get("tirePressure"), unit)
    elif code == "lowvoltagebattery-stateofcharge":
        r = _scalar(body, "percent", "ratio")
        out["aux_battery_soc"] = r if r is not None and 0.0 <= r <= 1.0 else None
    return {k: v for k, v in out.items() if v is not None}


def _temperature(body: Mapping[str, Any]) -> float | None:
    t = _scalar(body, "celsius", "temperature")
    return t if t is not None and -60.0 <= t <= 90.0 else None


def finish(values: dict[str, Value]) -> dict[str, Value]:
    """Resolve the values that need several signals: charging state and AC/DC electrics."""
    charging = values.pop("_charging", None)
    status = values.pop("_status", None)
    dc = values.pop("_dc", None) is True
    voltage, current = values.pop("_voltage", None), values.pop("_current", None)
    plugged = values.get("charger_connected")
    state: str | None = None
    if status == "CHARGING" or (status is None and charging is True):
        state = "dc_charging" if dc else "charging"
    elif status == "FULLY_CHARGED":
        state = "complete"
    elif (status == "NOT_CHARGING" or charging is False) and isinstance(plugged, bool):
        state = "plugged" if plugged else "disconnected"
    if state is not None:
        values["charging_state"] = state
    if state in ("charging", "dc_charging") and plugged is None:
        values["charger_connected"] = True
    kind = "dc" if dc else "ac"
    if voltage is not None:
        values[f"charging_voltage_{kind}"] = voltage
    if current is not None:
        values[f"charging_current_{kind}"] = current
    if state not in ("charging", "dc_charging"):
        values.pop("charging_time_to_full", None)
    return values


@dataclass
class Parsed:
    """One ``GET /signals`` reply (or one webhook's ``signals[]``), parsed."""

    values: dict[str, Value] = field(default_factory=dict)
    # code -> "ERROR:<type>:<code>" | "UNAVAILABLE" | "UNPARSED": the absent signals, counted
    absent: dict[str, str] = field(default_factory=dict)
    oem_updated_at: dict[str, float] = field(default_factory=dict)

    @property
    def newest(self) -> float | None:
        times = [t for t in self.oem_updated_at.values() if t > 0]
        return max(times) if times else None


def _flat(item: Mapping[str, Any]) -> tuple[str | None, Mapping[str, Any], Mapping[str, Any]]:
    """(code, attributes-like, meta) of a REST resource or a webhook signal item."""
    attrs = item.get("attributes")
    a: Mapping[str, Any] = attrs if isinstance(attrs, Mapping) else item
    code = a.get("code") if isinstance(a.get("code"), str) else item.get("id")
    meta = item.get("meta")
    return (
        (str(code) if isinstance(code, str) else None),
        a,
        (meta if isinstance(meta, Mapping) else {}),
    )


def status_of(attrs: Mapping[str, Any]) -> str:
    """SUCCESS | ERROR:<type>:<code> | UNAVAILABLE; a body without a status is a success (older
    webhook captures)."""
    status = attrs.get("status")
    value = status.get("value") if isinstance(status, Mapping) else None
    if value is None:
        return "SUCCESS" if isinstance(attrs.get("body"), Mapping) else "UNAVAILABLE"
    value = str(value).upper()
    if value == "ERROR":
        err = status.get("error") if isinstance(status, Mapping) else None
        e: Mapping[str, Any] = err if isinstance(err, Mapping) else {}
        return f"ERROR:{e.get('type') or 'UNKNOWN'}:{e.get('code') or ''}".rstrip(":")
    return value


def parse_signals(items: Iterable[Any]) -> Parsed:
    out = Parsed()
    for item in items:
        if not isinstance(item, Mapping):
            continue
        code, attrs, meta = _flat(item)
        if code is None:
            continue
        t = parse_time(meta.get("oemUpdatedAt"))
        if t is not None:
            out.oem_updated_at[code] = t
        status = status_of(attrs)
        body = attrs.get("body")
        if status != "SUCCESS" or not isinstance(body, Mapping):
            out.absent[code] = status if status != "SUCCESS" else "UNPARSED"
            continue
        got = signal_values(code, body)
        if not got and code in KNOWN:
            out.absent[code] = "UNPARSED"
        out.values.update(got)
    finish(out.values)
    newest = out.newest
    if newest is not None and out.values:
        out.values["last_update"] = newest
    return out


KNOWN: Final = frozenset(
    {
        "tractionbattery-stateofcharge",
        "tractionbattery-range",
        "charge-chargelimits",
        "charge-wattage",
        "charge-voltage",
        "charge-amperage",
        "charge-timetocomplete",
        "odometer-traveleddistance",
        "motion-currentspeed",
        "location-preciselocation",
        "closure-doors",
        "closure-windows",
        "climate-internaltemperature",
        "climate-externaltemperature",
        "wheel-tires",
        "lowvoltagebattery-stateofcharge",
    }
)
