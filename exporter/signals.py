"""The one table of canonical vehicle signals.

Every provider parses its replies *into* these names, in these units; the Prometheus collector and the
SQLite history are generated *from* this table. Adding a signal is therefore one line here plus one line
in each provider's parser that can fill it: the metric, its HELP text, its storage column (added to an
existing database by a migration on start-up) and the Grafana-facing name all follow.

Units are SI base units as the Prometheus naming guidelines ask: ratios 0..1, metres, seconds, watts,
volts, amperes, pascals, degrees Celsius, degrees of arc, unix seconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class Kind(StrEnum):
    """How a signal's value is typed, exported and stored."""

    # (history: the ``samples`` view's column type; stored compactly, see exporter/history_layout.py)
    NUMBER = "number"  # float gauge, REAL column (stored as an integer count of ``step``)
    BOOL = "bool"  # 0/1 gauge, INTEGER column
    ENUM = "enum"  # state-set gauge (one series per known state), TEXT column (stored as an index)
    TIMESTAMP = "timestamp"  # unix seconds gauge, REAL column (stored as ms after the row's ts)


@dataclass(frozen=True, slots=True)
class Signal:
    """One canonical signal.

    ``name`` is the key in a Snapshot and the storage column. ``metric`` is the Prometheus name without
    the ``carmetrics_`` prefix. Several signals may share one metric and differ by ``labels`` (e.g. the
    four tyre pressures are one metric with a ``tyre`` label), which keeps label sets bounded and sums
    meaningful.
    """

    name: str
    kind: Kind
    metric: str
    help: str
    unit: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    states: tuple[str, ...] = ()  # ENUM only: every known state, pre-created at 0
    private: bool = False  # location: exported only when [metrics] export_location = true
    # NUMBER only: the step the history stores the value at, in ``unit`` (a whole number of units or
    # a whole fraction of one: 1e-4, 0.1, 10, 60); None takes the unit's default from RESOLUTIONS.
    # It must be at least as fine as what any cloud reports (see exporter/providers/*/parse.py).
    resolution: float | None = None

    def __post_init__(self) -> None:
        if self.kind is Kind.NUMBER:
            step = self.step
            n = 1 / step if step < 1 else step
            if step <= 0 or abs(n - round(n)) > 1e-9 * n:
                raise ValueError(f"{self.name}: resolution {step} is not n or 1/n of a unit")

    @property
    def full_metric(self) -> str:
        return f"carmetrics_{self.metric}"

    @property
    def step(self) -> float:
        """The stored resolution: explicit, else the unit's default (milliseconds for timestamps)."""
        if self.kind is Kind.TIMESTAMP:
            return TIMESTAMP_RESOLUTION
        if self.resolution is not None:
            return self.resolution
        if self.kind is Kind.NUMBER:
            if self.unit not in RESOLUTIONS:
                raise ValueError(f"{self.name}: no default resolution for unit {self.unit!r}")
            return RESOLUTIONS[self.unit]
        return 1.0

    @property
    def sql_type(self) -> str:
        return {
            Kind.NUMBER: "REAL",
            Kind.BOOL: "INTEGER",
            Kind.ENUM: "TEXT",
            Kind.TIMESTAMP: "REAL",
        }[self.kind]


# Default storage resolution per unit, each at or finer than what the clouds report (their parsers,
# the recorded replies in tests/fixtures/, the simulators): SoC whole % (smart) or a ratio with 4
# decimals (Smartcar); distances whole km (smart range) or km with 2 decimals (Smartcar), odometer km
# with 3 decimals (smart); temperatures "6.600" (0.1 degC, zero-padded to 3 decimals) and tyres
# "11.000" (whole degC); 12 V and AC charge current with 3 decimals; AC voltage with 1; positions in
# milli-arc-seconds (2.8e-7 deg) or 5-7 decimal degrees; speed 0.1 km/h (0.028 m/s); power in watts.
# The history stores integers of these steps (docs/ARCHITECTURE.md, "Storage").
RESOLUTIONS: Final = MappingProxyType(
    {
        "ratio": 1e-4,
        "m": 1.0,
        "m/s": 1e-3,
        "deg": 1e-7,
        "C": 0.1,
        "W": 1.0,
        "V": 1e-2,
        "A": 1e-3,
        "Pa": 10.0,  # smart sends kPa with 3 decimals ("241.648"); TPMS sensors resolve ~1 kPa
        "s": 1.0,
    }
)
TIMESTAMP_RESOLUTION: Final = 1e-3  # timestamps are stored in milliseconds

CHARGING_STATES: Final = (
    "disconnected",  # no cable
    "plugged",  # cable in, not charging (waiting, scheduled, paused)
    "charging",  # AC charging
    "dc_charging",  # DC fast charging
    "complete",  # target reached, cable still in
    "error",
)

POWER_STATES: Final = ("off", "accessory", "on", "driving")

_N, _B, _E, _T = Kind.NUMBER, Kind.BOOL, Kind.ENUM, Kind.TIMESTAMP
_W = ("front_left", "front_right", "rear_left", "rear_right")


def _per_wheel(
    prefix: str, metric: str, label: str, help_: str, unit: str, resolution: float | None = None
) -> list[Signal]:
    return [
        Signal(
            f"{prefix}_{w}", _N, metric, help_, unit, labels=((label, w),), resolution=resolution
        )
        for w in _W
    ]


def _per_door(
    prefix: str, kind: Kind, metric: str, help_: str, extra: tuple[str, ...] = ()
) -> list[Signal]:
    return [
        Signal(f"{prefix}_{d}", kind, metric, help_, labels=(("door", d),)) for d in (*_W, *extra)
    ]


SIGNALS: Final[tuple[Signal, ...]] = (
    # --- battery and range
    Signal(
        "battery_soc",
        _N,
        "battery_soc_ratio",
        "State of charge of the traction battery (0-1).",
        "ratio",
    ),
    Signal("electric_range", _N, "range_meters", "Estimated electric range.", "m", resolution=10.0),
    Signal(
        "electric_range_at_full",
        _N,
        "range_at_full_meters",
        "Estimated electric range at 100% state of charge.",
        "m",
        resolution=10.0,
    ),
    Signal(
        "charge_limit",
        _N,
        "charge_limit_ratio",
        "Target state of charge for charging (0-1).",
        "ratio",
    ),
    # --- charging
    Signal(
        "charging_state",
        _E,
        "charging_state",
        "Charging state; one series per state, the current one is 1.",
        states=CHARGING_STATES,
    ),
    Signal(
        "charger_connected",
        _B,
        "charger_connected",
        "1 when a charging cable is plugged in.",
        "bool",
    ),
    Signal(
        "charging_power",
        _N,
        "charging_power_watts",
        "Charging power into the car (0 when not charging).",
        "W",
    ),
    Signal(
        "charging_voltage_ac",
        _N,
        "charging_voltage_volts",
        "Charging voltage.",
        "V",
        labels=(("current", "ac"),),
    ),
    Signal(
        "charging_current_ac",
        _N,
        "charging_current_amperes",
        "Charging current (magnitude).",
        "A",
        labels=(("current", "ac"),),
    ),
    Signal(
        "charging_voltage_dc",
        _N,
        "charging_voltage_volts",
        "Charging voltage.",
        "V",
        labels=(("current", "dc"),),
    ),
    Signal(
        "charging_current_dc",
        _N,
        "charging_current_amperes",
        "Charging current (magnitude).",
        "A",
        labels=(("current", "dc"),),
    ),
    Signal(
        "charging_time_to_full",
        _N,
        "charging_time_to_full_seconds",
        "Estimated time until charging completes.",
        "s",
        resolution=60.0,  # smart: whole minutes (the only cloud that sends it)
    ),
    # --- motion and position
    Signal("odometer", _N, "odometer_meters", "Odometer reading.", "m"),
    Signal("speed", _N, "speed_meters_per_second", "Vehicle speed.", "m/s"),
    Signal(
        "power_state",
        _E,
        "power_state",
        "Power/usage mode of the vehicle; one series per state.",
        states=POWER_STATES,
    ),
    Signal("latitude", _N, "location_latitude_degrees", "Latitude (WGS84).", "deg", private=True),
    Signal(
        "longitude", _N, "location_longitude_degrees", "Longitude (WGS84).", "deg", private=True
    ),
    Signal(
        "altitude",
        _N,
        "location_altitude_meters",
        "Altitude above sea level.",
        "m",
        private=True,
        resolution=0.1,
    ),
    Signal(
        "heading",
        _N,
        "heading_degrees",
        "Direction of travel, degrees clockwise from north.",
        "deg",
        private=True,
        resolution=0.1,  # both clouds: whole degrees
    ),
    # --- climate
    Signal("cabin_temperature", _N, "cabin_temperature_celsius", "Cabin temperature.", "C"),
    Signal("outside_temperature", _N, "outside_temperature_celsius", "Outside temperature.", "C"),
    Signal(
        "climate_active",
        _B,
        "climate_active",
        "1 while climate control / pre-conditioning runs.",
        "bool",
    ),
    # --- security
    Signal("locked", _B, "locked", "1 when the central locking reports locked.", "bool"),
    *_per_door("door_locked", _B, "door_locked", "1 when the door lock is locked.", ("trunk",)),
    *_per_door(
        "door_open", _B, "door_open", "1 when the door, trunk or hood is open.", ("trunk", "hood")
    ),
    *[
        Signal(
            f"window_open_{w}",
            _B,
            "window_open",
            "1 when the window is open.",
            "bool",
            labels=(("window", w),),
        )
        for w in _W
    ],
    Signal(
        "sunroof_open",
        _B,
        "sunroof_open",
        "1 when the sunroof is open (absent when not fitted).",
        "bool",
    ),
    # --- tyres
    *_per_wheel("tyre_pressure", "tyre_pressure_pascals", "tyre", "Tyre pressure.", "Pa"),
    *_per_wheel(  # smart (the only cloud sending them): whole degrees, "11.000"
        "tyre_temperature", "tyre_temperature_celsius", "tyre", "Tyre temperature.", "C", 1.0
    ),
    # --- 12 V and service
    Signal(
        "aux_battery_voltage",
        _N,
        "aux_battery_voltage_volts",
        "Voltage of the 12 V auxiliary battery.",
        "V",
        resolution=1e-3,
    ),
    Signal(  # Smartcar v3 lowvoltagebattery-stateofcharge (percent)
        "aux_battery_soc",
        _N,
        "aux_battery_soc_ratio",
        "State of charge of the 12 V auxiliary battery (0-1).",
        "ratio",
        resolution=0.01,
    ),
    Signal(
        "service_distance",
        _N,
        "service_distance_meters",
        "Distance left until the next service.",
        "m",
        resolution=1000.0,  # smart (the only cloud sending it): whole km
    ),
    Signal(
        "service_time",
        _N,
        "service_time_seconds",
        "Time left until the next service.",
        "s",
        resolution=3600.0,  # smart: whole days
    ),
    # --- when the car last parked (smart ``parkTime``): a drive between two polls moves it
    Signal(
        "parked_since",
        _T,
        "parked_since_timestamp_seconds",
        "When the car was last parked (its own clock).",
        "s",
    ),
    # --- the car's own report time
    Signal(
        "last_update",
        _T,
        "last_update_timestamp_seconds",
        "Time of the car's own last report (cached; the exporter never wakes the car).",
        "s",
    ),
)

BY_NAME: Final = MappingProxyType({s.name: s for s in SIGNALS})


Value = float | int | bool | str | None


def check_value(name: str, value: Value) -> Value:
    """Validate one canonical value; providers call this so a parser bug fails loudly in tests."""
    sig = BY_NAME[name]
    if value is None:
        return None
    if sig.kind is Kind.ENUM:
        if value not in sig.states:
            raise ValueError(f"{name}: unknown state {value!r}; known: {', '.join(sig.states)}")
        return value
    if sig.kind is Kind.BOOL:
        if not isinstance(value, bool):
            raise ValueError(f"{name}: expected bool, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    if not math.isfinite(value):
        # parsers turn inf/NaN into None (unknown); one that does not would export NaN and store NULL
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    if sig.kind is Kind.NUMBER:
        # 12 significant digits, far finer than any signal's resolution, drop the binary noise
        # a unit conversion leaves: 47.6 % is 0.476 on /metrics, not 0.47600000000000003
        return float(f"{value:.12g}")
    return float(value)


# The kinds check_values() handles without the full check: a finite float for a number (rounded
# as check_value rounds it) or a timestamp, a bool for a flag - the values check_value returns.
_NUMBERS: Final = frozenset(s.name for s in SIGNALS if s.kind is Kind.NUMBER)
_TIMESTAMPS: Final = frozenset(s.name for s in SIGNALS if s.kind is Kind.TIMESTAMP)
_BOOL_OK: Final = frozenset(s.name for s in SIGNALS if s.kind is Kind.BOOL)


def check_values(values: Mapping[str, Value]) -> dict[str, Value]:
    """``{name: check_value(name, v)}`` for every known (not None) value, in order: what every
    snapshot does with its values, so the common cases skip the general check."""
    out: dict[str, Value] = {}
    for name, value in values.items():
        if value is None:
            continue
        if type(value) is float:
            if value - value == 0.0:  # finite: inf - inf is NaN
                if name in _NUMBERS:
                    # check_value's rounding of binary noise; a whole number below 1e12 has at
                    # most 12 digits, so rounding leaves it as it is (most values: Pa, m, s)
                    out[name] = (
                        value
                        if value.is_integer() and -1e12 < value < 1e12
                        else float(f"{value:.12g}")
                    )
                    continue
                if name in _TIMESTAMPS:
                    out[name] = value
                    continue
        elif type(value) is bool and name in _BOOL_OK:
            out[name] = value
            continue
        out[name] = check_value(name, value)
    return out
