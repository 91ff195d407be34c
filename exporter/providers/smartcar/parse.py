"""Smartcar replies -> canonical values (SI units), for v2 batch items and v3 webhook signals.

Unknown or malformed fields become "unknown" (absent), never 0 and never a crash: one odd field in
one item must not cost the rest of a report that was already paid for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from exporter.signals import Value

KM: Final = 1000.0
MILE: Final = 1609.344
PSI: Final = 6894.757
_SIDE: Final = {
    "frontLeft": "front_left",
    "frontRight": "front_right",
    "backLeft": "rear_left",
    "backRight": "rear_right",
    "rearLeft": "rear_left",
    "rearRight": "rear_right",
}
_GRID: Final = {
    (0, 0): "front_left",
    (0, 1): "front_right",
    (1, 0): "rear_left",
    (1, 1): "rear_right",
}


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        out = float(value)
    except (ValueError, OverflowError):  # garbage, or an integer beyond any float
        return None
    return out if math.isfinite(out) else None


def _ratio(value: Any) -> float | None:
    n = _num(value)
    return n if n is not None and 0.0 <= n <= 1.0 else None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def parse_time(value: Any) -> float | None:
    """ISO-8601 (``SC-Data-Age``) or epoch milliseconds (webhook meta) -> unix seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        n = _num(value)
        return None if n is None else n / 1000.0 if n > 1e11 else n
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except (ValueError, OverflowError, OSError):
            return None
    return None


def _distance(value: Any, units: str) -> float | None:
    n = _num(value)
    if n is None or n < 0:
        return None
    return n * (MILE if units == "imperial" else KM)


def _open(status: Any) -> bool | None:
    if status == "OPEN":
        return True
    if status in ("CLOSED", "LOCKED", "UNLOCKED"):
        return False
    return None


def _charging_state(state: Any, plugged: bool | None) -> str | None:
    if state == "CHARGING":
        return "charging"
    if state == "FULLY_CHARGED":
        return "complete"
    if state == "NOT_CHARGING":
        if plugged is None:
            return None
        return "plugged" if plugged else "disconnected"
    return None


def v2_values(path: str, body: Mapping[str, Any], units: str = "metric") -> dict[str, Value]:
    """Canonical values of one successful v2 path."""
    out: dict[str, Value] = {}
    if path == "/battery":
        out["battery_soc"] = _ratio(body.get("percentRemaining"))
        out["electric_range"] = _distance(body.get("range"), units)
    elif path == "/charge":
        plugged = _bool(body.get("isPluggedIn"))
        out["charger_connected"] = plugged
        out["charging_state"] = _charging_state(body.get("state"), plugged)
    elif path == "/charge/limit":
        out["charge_limit"] = _ratio(body.get("limit"))
    elif path == "/odometer":
        out["odometer"] = _distance(body.get("distance"), units)
    elif path == "/location":
        lat, lon = _num(body.get("latitude")), _num(body.get("longitude"))
        if lat is not None and lon is not None and -90 <= lat <= 90 and -180 <= lon <= 180:
            out["latitude"], out["longitude"] = lat, lon
    elif path == "/security":
        out["locked"] = _bool(body.get("isLocked"))
        for item in _items(body.get("doors")):
            side = _SIDE.get(str(item.get("type")))
            if side:
                out[f"door_open_{side}"] = _open(item.get("status"))
        for item in _items(body.get("windows")):
            side = _SIDE.get(str(item.get("type")))
            if side:
                out[f"window_open_{side}"] = _open(item.get("status"))
        for item in _items(body.get("sunroof")):
            out["sunroof_open"] = _open(item.get("status"))
        for item in _items(body.get("storage")):
            where = {"rear": "trunk", "front": "hood"}.get(str(item.get("type")))
            if where:
                out[f"door_open_{where}"] = _open(item.get("status"))
    elif path == "/tires/pressure":
        factor = PSI if units == "imperial" else KM
        for key, side in _SIDE.items():
            n = _num(body.get(key))
            if n is not None and n > 0:
                out[f"tyre_pressure_{side}"] = n * factor
    return {k: v for k, v in out.items() if v is not None}


def _items(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


# --- v3 signals (webhooks) ------------------------------------------------------------------------

_V3_DISTANCE_UNITS: Final = {"km": KM, "kilometers": KM, "miles": MILE, "mi": MILE, "m": 1.0}
_V3_SPEED_UNITS: Final = {
    "km/h": 1 / 3.6,
    "kph": 1 / 3.6,
    "kilometersPerHour": 1 / 3.6,
    "mph": MILE / 3600,
    "m/s": 1.0,
}


def _v3_distance(body: Mapping[str, Any]) -> float | None:
    n = _num(body.get("value"))
    factor = _V3_DISTANCE_UNITS.get(str(body.get("unit", "km")))
    return None if n is None or n < 0 or factor is None else n * factor


def v3_values(code: str, body: Mapping[str, Any]) -> dict[str, Value]:
    """Canonical values of one v3 signal body (webhook ``signals[]`` item)."""
    out: dict[str, Value] = {}
    if code == "tractionbattery-stateofcharge":
        n = _num(body.get("value"))  # percent in v3, not a ratio
        if n is not None and 0 <= n <= 100:
            out["battery_soc"] = n / 100.0
    elif code == "tractionbattery-range":
        out["electric_range"] = _v3_distance(body)
    elif code == "charge-ischarging":
        charging = _bool(body.get("value"))
        if charging:
            out["charging_state"] = "charging"
        out["_charging"] = charging
    elif code == "charge-ischargingcableconnected":
        out["charger_connected"] = _bool(body.get("value"))
    elif code == "charge-chargelimits":
        n = _num(body.get("activeLimit"))
        if n is None:
            for item in _items(body.get("values")):
                if item.get("type") == "GLOBAL":
                    n = _num(item.get("limit"))
        if n is not None and 0 < n <= 100:
            out["charge_limit"] = n / 100.0
    elif code == "charge-wattage":
        n = _num(body.get("value"))
        if n is not None and n >= 0:
            out["charging_power"] = n * (1000.0 if body.get("unit") in ("kW", "kilowatts") else 1.0)
    elif code == "closure-islocked":
        out["locked"] = _bool(body.get("value"))
    elif code in ("closure-doors", "closure-windows"):
        kind = "door_open" if code == "closure-doors" else "window_open"
        for item in _items(body.get("values")):
            side = _GRID.get((item.get("row"), item.get("column")))  # type: ignore[arg-type]
            if side:
                out[f"{kind}_{side}"] = _bool(item.get("isOpen"))
    elif code == "closure-sunroof":
        out["sunroof_open"] = _bool(body.get("isOpen"))
    elif code == "closure-reartrunk":
        out["door_open_trunk"] = _bool(body.get("isOpen"))
    elif code == "closure-fronttrunk":
        out["door_open_hood"] = _bool(body.get("isOpen"))
    elif code == "location-preciselocation":
        lat, lon = _num(body.get("latitude")), _num(body.get("longitude"))
        if lat is not None and lon is not None and -90 <= lat <= 90 and -180 <= lon <= 180:
            out["latitude"], out["longitude"] = lat, lon
            heading = _num(body.get("heading"))
            if heading is not None and 0 <= heading <= 360:
                out["heading"] = heading
    elif code == "odometer-traveleddistance":
        out["odometer"] = _v3_distance(body)
    elif code == "motion-currentspeed":
        n = _num(body.get("value"))
        factor = _V3_SPEED_UNITS.get(str(body.get("unit", "km/h")))
        if n is not None and n >= 0 and factor is not None:
            out["speed"] = n * factor
    return {k: v for k, v in out.items() if v is not None}


def finish_v3(values: dict[str, Value]) -> dict[str, Value]:
    """Resolve the charging state once both charge signals of a delivery are known."""
    charging = values.pop("_charging", None)
    if charging is False and "charging_state" not in values:
        plugged = values.get("charger_connected")
        if isinstance(plugged, bool):
            values["charging_state"] = "plugged" if plugged else "disconnected"
    if values.get("charging_state") == "charging" and values.get("charger_connected") is None:
        values["charger_connected"] = True
    return values
