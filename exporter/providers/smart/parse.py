"""The smart status replies -> canonical signal values in SI units.

The cloud sends almost every leaf as a string, uses sentinels for "unknown" (``2047`` minutes,
``101`` for a sunroof that is not fitted, ``""`` for a position without a fix) and occasionally
sends garbage. Every field is therefore read defensively and becomes ``None`` when it is missing or
meaningless; a bad field never costs the rest of the report. Only a reply without its core structure
(no ``vehicleStatus`` or no usable ``updateTime``) is rejected as a whole, so no partial row is
written.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from exporter.providers.base import BadReply
from exporter.signals import Value
from exporter.snapshot import Snapshot

NO_ESTIMATE: Final = 2047  # timeToFullyCharged / timeToTargetDisCharged: nothing to estimate
NOT_FITTED: Final = 101  # sunroof / curtain position: hardware not fitted
MAS_PER_DEGREE: Final = 3_600_000.0  # positions are integer milli-arc-seconds
THREE_PHASE_MIN_VOLTS: Final = 260.0  # AC readings above this are line-to-line (three phase)
QRVS_CURRENT_OFFSET: Final = (
    16380.0  # #5 DC charge info: A = (chargeI - offset) / 10, V = chargeU / 4
)

# Pack voltage of the #1/#3 66 kWh NMC battery against SoC, for the DC power estimate (the car sends
# the DC current but no DC voltage). Our own piecewise-linear fit of the open-circuit curve. The #5
# is an 800 V car: for it only the measured values of its DC charge info are used.
_PACK_VOLTS: Final = ((0, 370.0), (10, 407.0), (30, 416.0), (55, 418.0), (70, 435.0), (100, 465.0))

# chargerState codes (reference §3.3). Codes that say "a cable is in but nothing flows" become
# "plugged" and complete-type codes "complete"; 0/1 depend on the connection status.
_CHARGER_STATE: Final[Mapping[int, str]] = {
    2: "charging",
    30: "charging",  # wireless (hello_smart)
    15: "dc_charging",
    24: "dc_charging",  # super charging (hello_smart; Geely sibling: DC active)
    28: "dc_charging",  # boost charging
    3: "error",
    4: "complete",
    5: "complete",
    6: "complete",
    11: "complete",
    7: "plugged",  # finished, not full
    9: "plugged",
    10: "plugged",  # waiting for charging
    25: "plugged",  # plugged, not charging
    26: "plugged",  # DC stopped
}
# statusOfChargerConnection: 0 not connected, 1 DC connected, 2 plugged not charging, 3 charging.
_CONNECTED: Final[Mapping[int, bool]] = {0: False, 1: True, 2: True, 3: True}

_WHEELS: Final = (
    ("front_left", "Driver"),
    ("front_right", "Passenger"),
    ("rear_left", "DriverRear"),
    ("rear_right", "PassengerRear"),
)
# Per wheel, the signal names and the reply's keys, spelled out once instead of on every poll.
_WHEEL_KEYS: Final = tuple(
    (
        f"door_locked_{wheel}",
        f"doorLockStatus{suffix}",
        f"door_open_{wheel}",
        f"doorOpenStatus{suffix}",
        f"window_open_{wheel}",
        f"winStatus{suffix}",
        f"winPos{suffix}",
        f"tyre_pressure_{wheel}",
        f"tyreStatus{suffix}",
        f"tyre_temperature_{wheel}",
        f"tyreTemp{suffix}",
    )
    for wheel, suffix in _WHEELS
)
_OPEN_CODES: Final[Mapping[int, bool]] = {0: False, 1: True}  # 1 = open, 0 = closed
_SUNROOF_CODES: Final[Mapping[int, bool]] = {1: True, 0: False, 2: False}


# -- leaf readers: never raise --


def num(value: object) -> float | None:
    """A finite number from a string/number leaf; None for "", null, booleans and garbage."""
    kind = type(value)
    if kind is str:  # nearly every leaf: float() ignores surrounding whitespace like str.strip()
        try:
            out = float(value)  # type: ignore[arg-type]
        except ValueError:
            return None
    elif kind is float or kind is int:
        out = float(value)  # type: ignore[arg-type]
    else:
        return _num_other(value)
    return out if out - out == 0.0 else None  # finite: inf - inf and NaN - NaN are NaN


def _num_other(value: object) -> float | None:
    """num() for anything but an exact str, int or float (subclasses, containers, None...)."""
    if isinstance(value, bool) or value is None:
        return None
    if not isinstance(value, int | float | str):
        return None
    try:
        out = float(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError):  # garbage, or an integer beyond any float
        return None
    return out if math.isfinite(out) else None


def integer(value: object) -> int | None:
    if type(value) is str and len(value) < 16:
        # the usual "0"/"2047": int() reads it exactly as float() would (fewer than 16 characters
        # stay below 2**53); "1.0", "1e3" or garbage take the general path
        try:
            return int(value)
        except ValueError:
            pass
    got = num(value)
    return int(got) if got is not None and got.is_integer() else None


def flag(value: object) -> bool | None:
    """``true``/``false`` (JSON or string) and ``"1"``/``"0"``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        if low in {"true", "1"}:
            return True
        if low in {"false", "0"}:
            return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    return None


def node(data: object, *path: str) -> dict[str, Any]:
    """The dict at ``path`` or an empty dict, so a missing branch reads as all-unknown."""
    cur = data
    for key in path:
        cur = cur.get(key) if isinstance(cur, dict) else None
    return cur if isinstance(cur, dict) else {}


def _scaled(value: object, factor: float, lo: float, hi: float) -> float | None:
    got = num(value)
    if got is None or not lo <= got <= hi:
        return None
    return got * factor


def _nonzero(value: object) -> bool | None:
    got = integer(value)
    return None if got is None else got != 0


def _open(value: object) -> bool | None:
    """1 = open, 0 = closed; other codes are unknown."""
    got = integer(value)
    return _OPEN_CODES.get(got) if got is not None else None


# -- derived values --


def pack_voltage(soc_percent: float) -> float:
    """Estimated DC pack voltage at ``soc_percent`` (piecewise linear over :data:`_PACK_VOLTS`)."""
    soc = min(100.0, max(0.0, soc_percent))
    for (s0, v0), (s1, v1) in itertools.pairwise(_PACK_VOLTS):
        if soc <= s1:
            return v0 + (v1 - v0) * (soc - s0) / (s1 - s0)
    return _PACK_VOLTS[-1][1]


def charging_state(state_code: int | None, connected: bool | None) -> str | None:
    """chargerState first; codes without a charging meaning (0, 1, 8, unknown) fall back to the
    connection status, the only reliable plug signal while nothing flows."""
    mapped = _CHARGER_STATE.get(state_code) if state_code is not None else None
    if mapped is not None:
        if mapped in {"complete", "plugged"} and connected is False:
            return "disconnected"
        return mapped
    if connected is None:
        return None
    return "plugged" if connected else "disconnected"


def _window_open(climate: dict[str, Any], status_key: str, pos_key: str) -> bool | None:
    status = integer(climate.get(status_key))
    if status == 1:
        return True
    if status in (0, 2):
        return False
    pos = integer(climate.get(pos_key))
    if pos is None or pos == NOT_FITTED or not 0 <= pos <= 100:
        return None
    return pos > 0


def _sunroof_open(climate: dict[str, Any]) -> bool | None:
    pos = integer(climate.get("sunroofPos"))
    if pos == NOT_FITTED:
        return None
    if pos is not None and 0 <= pos <= 100:
        return pos > 0
    status = integer(climate.get("sunroofOpenStatus"))
    return _SUNROOF_CODES.get(status) if status is not None else None


def _position(pos: dict[str, Any]) -> dict[str, Value]:
    out: dict[str, Value] = {"latitude": None, "longitude": None, "altitude": None}
    if flag(pos.get("posCanBeTrusted")) is False:
        return out  # a stale or no-fix position is worse than none
    lat = _scaled(
        pos.get("latitude"), 1 / MAS_PER_DEGREE, -90 * MAS_PER_DEGREE, 90 * MAS_PER_DEGREE
    )
    lon = _scaled(
        pos.get("longitude"), 1 / MAS_PER_DEGREE, -180 * MAS_PER_DEGREE, 180 * MAS_PER_DEGREE
    )
    if lat is None or lon is None or (lat == 0 and lon == 0):
        return out
    out["latitude"], out["longitude"] = lat, lon
    out["altitude"] = _scaled(pos.get("altitude"), 1.0, -500, 9000)
    return out


def _power_state(basic: dict[str, Any], state: dict[str, Any], speed: float | None) -> str | None:
    engine = basic.get("engineStatus")
    running = engine == "engine_running" if isinstance(engine, str) and engine else None
    if running and speed is not None and speed > 0:
        return "driving"
    mode = integer(state.get("powerMode"))
    if mode is not None and mode in (0, 1, 2, 3):
        return ("off", "accessory", "on", "on")[mode]
    if running is None:
        return None
    return "on" if running else "off"


def measured_dc(dc_info: object) -> tuple[float, float] | None:
    """(current A, voltage V) from the #5's DC charge info (``qrvs``), when it holds numbers."""
    if not isinstance(dc_info, dict):
        return None
    raw_i, raw_u = num(dc_info.get("chargeI")), num(dc_info.get("chargeU"))
    if raw_i is None or raw_u is None:
        return None
    amps, volts = abs((raw_i - QRVS_CURRENT_OFFSET) / 10), raw_u / 4
    if not (0 <= amps <= 1000 and 0 < volts <= 1500):
        return None
    return amps, volts


def _charging(ev: dict[str, Any], series: str, dc_info: object = None) -> dict[str, Value]:
    soc = _scaled(ev.get("chargeLevel"), 1.0, 0, 100)
    connected = (
        _CONNECTED.get(c)
        if (c := integer(ev.get("statusOfChargerConnection"))) is not None
        else None
    )
    code = integer(ev.get("chargerState"))
    state = charging_state(code, connected)
    if connected is None and state is not None:
        connected = state in {"plugged", "charging", "dc_charging", "complete"}
    if state in {"charging", "dc_charging"}:
        connected = True
    ac_v = _scaled(ev.get("chargeUAct"), 1.0, 0, 1000)
    ac_i = num(ev.get("chargeIAct"))
    ac_i = abs(ac_i) if ac_i is not None and abs(ac_i) <= 1000 else None
    is_5 = series.upper().startswith("HY")
    dc_i = num(ev.get("dcChargeIAct"))
    if dc_i is not None and is_5:
        dc_i /= 10  # the #5 (v2 API) reports deci-amperes
    dc_i = abs(dc_i) if dc_i is not None and abs(dc_i) <= 1000 else None
    estimable = state == "dc_charging" and soc is not None and not is_5
    dc_v = pack_voltage(soc) if estimable and soc is not None else None
    measured = measured_dc(dc_info) if state == "dc_charging" else None
    if measured is not None:  # the #5 tells us; better than the SoC-based estimate
        dc_i, dc_v = measured
    power: float | None
    if state == "dc_charging":
        power = dc_i * dc_v if dc_i is not None and dc_v is not None else None
    elif ac_v is not None and ac_i is not None:
        phases = math.sqrt(3) if ac_v >= THREE_PHASE_MIN_VOLTS else 1.0
        power = ac_v * ac_i * phases
    else:
        power = 0.0 if state in {"disconnected", "plugged", "complete"} else None
    minutes = integer(ev.get("timeToFullyCharged"))
    ttf = minutes * 60.0 if minutes is not None and 0 <= minutes < NO_ESTIMATE else None
    return {
        "battery_soc": soc / 100 if soc is not None else None,
        "electric_range": _scaled(ev.get("distanceToEmptyOnBatteryOnly"), 1000.0, 0, 2000),
        "electric_range_at_full": _scaled(
            ev.get("distanceToEmptyOnBattery100Soc"), 1000.0, 0, 2000
        ),
        "charging_state": state,
        "charger_connected": connected,
        "charging_power": power,
        "charging_voltage_ac": ac_v,
        "charging_current_ac": ac_i,
        "charging_voltage_dc": dc_v,
        "charging_current_dc": dc_i,
        "charging_time_to_full": ttf,
    }


# -- the reply as a whole --


@dataclass(frozen=True, slots=True)
class Parsed:
    car_time: float
    values: dict[str, Value]


def update_time(status: object) -> float:
    """The car's own report time in unix seconds; BadReply when the reply lacks it."""
    vs = status.get("vehicleStatus") if isinstance(status, dict) else None
    if not isinstance(vs, dict):
        raise BadReply("status reply has no vehicleStatus")
    ms = num(vs.get("updateTime"))
    if ms is None or ms <= 0:
        raise BadReply("status reply has no usable updateTime")
    return ms / 1000.0


def parse_status(
    status: object,
    soc: object = None,
    state: object = None,
    *,
    series: str = "",
    dc_info: object = None,
) -> Parsed:
    """``data`` of status (required), status/soc, status/state and the #5's DC charge info
    (optional) -> canonical values."""
    car_time = update_time(status)
    vs = node(status, "vehicleStatus")
    basic = node(vs, "basicVehicleStatus")
    avs = node(vs, "additionalVehicleStatus")
    ev = node(avs, "electricVehicleStatus")
    maint = node(avs, "maintenanceStatus")
    climate = node(avs, "climateStatus")
    safety = node(avs, "drivingSafetyStatus")
    state_d = state if isinstance(state, dict) else {}

    values: dict[str, Value] = _charging(ev, series, dc_info)
    limit = _scaled(soc.get("soc") if isinstance(soc, dict) else None, 1 / 1000, 0, 1000)
    values["charge_limit"] = limit

    speed_kmh = _scaled(basic.get("speed"), 1.0, 0, 400)
    values["speed"] = speed_kmh / 3.6 if speed_kmh is not None else None
    values["power_state"] = _power_state(basic, state_d, speed_kmh)
    values["odometer"] = _scaled(maint.get("odometer"), 1000.0, 0, 5_000_000)
    values.update(_position(node(basic, "position")))
    values["heading"] = _scaled(basic.get("direction"), 1.0, 0, 360)

    values["cabin_temperature"] = _scaled(climate.get("interiorTemp"), 1.0, -60, 90)
    values["outside_temperature"] = _scaled(climate.get("exteriorTemp"), 1.0, -60, 70)
    active = [flag(climate.get(k)) for k in ("preClimateActive", "cdsClimateActive")]
    known = [a for a in active if a is not None]
    values["climate_active"] = any(known) if known else None

    values["locked"] = _nonzero(safety.get("centralLockingStatus"))
    for (
        locked,
        lock_key,
        door,
        door_key,
        window,
        win_key,
        pos_key,
        tyre,
        tyre_key,
        temp,
        temp_key,
    ) in _WHEEL_KEYS:
        values[locked] = _nonzero(safety.get(lock_key))
        values[door] = _open(safety.get(door_key))
        values[window] = _window_open(climate, win_key, pos_key)
        values[tyre] = _scaled(maint.get(tyre_key), 1000.0, 0, 1000)
        values[temp] = _scaled(maint.get(temp_key), 1.0, -60, 150)
    values["door_locked_trunk"] = _nonzero(safety.get("trunkLockStatus"))
    values["door_open_trunk"] = _open(safety.get("trunkOpenStatus"))
    values["door_open_hood"] = _open(safety.get("engineHoodOpenStatus"))
    values["sunroof_open"] = _sunroof_open(climate)

    values["aux_battery_voltage"] = _scaled(
        node(maint, "mainBatteryStatus").get("voltage"), 1.0, 0, 30
    )
    values["service_distance"] = _scaled(maint.get("distanceToService"), 1000.0, -100_000, 100_000)
    values["service_time"] = _scaled(maint.get("daysToService"), 86400.0, -10_000, 10_000)
    values["parked_since"] = _parked_since(vs, car_time)
    return Parsed(car_time, values)


def _parked_since(vs: dict[str, Any], car_time: float) -> float | None:
    """``parkTime.status`` (ms; "1716485245951" beside updateTime "1716485767970" in
    pysmarthashtag tests/replys/vehicle_info_dc_charging.json): when the car last parked. It is
    what reveals a drive that fell entirely between two polls; a time after the report is garbage."""
    ms = num(node(vs, "parkTime").get("status"))
    if ms is None or ms <= 0 or ms / 1000.0 > car_time + 60.0:
        return None
    return ms / 1000.0


def to_snapshot(vin: str, parsed: Parsed, received_at: float) -> Snapshot:
    return Snapshot.build(vin, "smart", parsed.car_time, received_at, parsed.values)
