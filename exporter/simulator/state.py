"""What one simulated car reports, in natural units (%, km, km/h, °C, kPa, V, minutes).

This is the provider-neutral record both cloud simulators render from: the smart simulator turns it
into string leaves and milli-arc-seconds, the Smartcar one into its own JSON. Per-wheel, per-door
and per-window values are 4-tuples in the order of ``WHEELS`` (front-left, front-right, rear-left,
rear-right; "driver" is front-left), so a report can be copied cheaply and never aliased.
"""

from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass, field
from typing import Any, Final

WHEELS: Final = ("front_left", "front_right", "rear_left", "rear_right")
SEATS: Final = ("front-left", "front-right", "rear-left", "rear-right", "steering_wheel")

Quad = tuple[float, float, float, float]
BoolQuad = tuple[bool, bool, bool, bool]

CLOSED: Final[BoolQuad] = (False, False, False, False)
ALL_TRUE: Final[BoolQuad] = (True, True, True, True)


@dataclass(slots=True)
class VehicleState:
    """One report of one car. ``report_time`` is the car's own upload time (unix seconds)."""

    report_time: float = 0.0
    # battery and range
    soc: float = 50.0  # %
    range_km: float = 0.0
    range_at_full_km: float = 0.0
    charge_limit: float = 80.0  # %
    # motion and position
    odometer_km: float = 0.0
    speed_kmh: float = 0.0
    lat: float = 0.0
    lon: float = 0.0
    altitude_m: float = 0.0
    heading_deg: float = 0.0
    gps_fix: bool = True
    driving: bool = False
    power_mode: str = "off"  # off | accessory | on | driving
    awake: bool = False
    park_since: float = 0.0
    trip_km: float = 0.0  # trip meter since the last departure
    avg_speed_kmh: float = 0.0
    # charging
    plugged: bool = False
    charging: bool = False
    dc: bool = False
    charge_power_kw: float = 0.0
    charge_voltage_v: float = 0.0
    charge_current_a: float = 0.0  # per phase on AC, into the battery on DC (positive)
    charge_phases: int = 0  # 1 or 3 on AC, 0 on DC or when not charging
    time_to_full_min: float | None = None  # to the charge limit; None when not charging
    pack_voltage_v: float = 0.0
    # climate
    cabin_temp_c: float = 20.0
    outside_temp_c: float = 10.0
    climate_on: bool = False
    climate_target_c: float = 21.0
    seat_heating: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)  # SEATS order, levels 0..3
    # body
    locked: bool = True
    door_open: BoolQuad = CLOSED
    door_locked: BoolQuad = ALL_TRUE
    trunk_open: bool = False
    trunk_locked: bool = True
    hood_open: bool = False
    window_open: Quad = (0.0, 0.0, 0.0, 0.0)  # % open
    sunroof_fitted: bool = False
    sunroof_open: bool = False
    lights_flashing: bool = False
    horn: bool = False
    # wheels and 12 V
    tyre_kpa: Quad = (250.0, 250.0, 260.0, 260.0)
    tyre_temp_c: Quad = (15.0, 15.0, 15.0, 15.0)
    battery_12v_v: float = 12.6
    battery_12v_pct: float = 95.0
    # service
    service_km: float = 30000.0
    service_days: float = 730.0
    extra: dict[str, Any] = field(default_factory=dict)

    def copy(self) -> VehicleState:
        """A detached copy (tuples are immutable, ``extra`` is copied). Hot path: ~1 µs."""
        new = VehicleState(*_GET_ALL(self))
        new.extra = dict(self.extra)
        return new

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (tuples become lists)."""
        out = dataclasses.asdict(self)
        for k, v in out.items():
            if isinstance(v, tuple):
                out[k] = list(v)
        return out

    @property
    def windows_closed(self) -> bool:
        return all(w <= 0.0 for w in self.window_open)

    @property
    def doors_closed(self) -> bool:
        return not any(self.door_open) and not self.trunk_open and not self.hood_open


_GET_ALL: Final = operator.attrgetter(*(f.name for f in dataclasses.fields(VehicleState)))
