"""What the Smartcar simulator needs from a car, and a small stand-alone car for test logins.

The Smartcar layer speaks only ``Car``: a reading in SI units plus a few commands. The shared
vehicle model (driving, charging physics) is adapted to it in ``fleet_adapter``; Smartcar's own
test logins (``<n>-vehicles@smartcar.com``, simulated-error VINs) get a ``StaticCar`` whose values
follow the documented test-mode ranges, so both kinds of car flow through the same API code.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Final, Protocol

WHEELS: Final = ("front_left", "front_right", "rear_left", "rear_right")
DOORS: Final = ("front_left", "front_right", "rear_left", "rear_right")


@dataclass(frozen=True, slots=True)
class CarReading:
    """The car's last report. SI units: ratios 0..1, metres, pascals, litres, kWh for capacity."""

    time: float  # the car's own report time, unix seconds
    soc: float | None = None
    range_m: float | None = None
    odometer_m: float = 0.0
    latitude: float | None = None
    longitude: float | None = None
    heading: float | None = None
    speed_mps: float = 0.0
    plugged: bool = False
    charging: bool = False
    charge_limit: float = 0.8
    charge_power_w: float = 0.0
    locked: bool = True
    doors_open: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(DOORS, False))
    windows_open: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(DOORS, False))
    sunroof_open: bool | None = None
    trunk_open: bool = False
    hood_open: bool = False
    tyre_pressure_pa: dict[str, float] = field(default_factory=dict)
    fuel_ratio: float | None = None
    fuel_litres: float | None = None
    fuel_range_m: float | None = None
    oil_life: float | None = None
    capacity_kwh: float | None = None
    asleep: bool = False
    # v3 signals only (None: the car does not report it)
    door_locked: dict[str, bool] | None = None
    cabin_temp_c: float | None = None
    outside_temp_c: float | None = None
    climate_on: bool | None = None
    climate_target_c: float | None = None
    battery_12v_pct: float | None = None
    charge_voltage_v: float | None = None
    charge_current_a: float | None = None
    time_to_full_min: float | None = None
    dc_charging: bool = False
    distance_unit: str = "km"  # what the owner chose in the OEM account: "km" or "miles"

    @property
    def charge_state(self) -> str:
        """Smartcar's three charge states (FULLY_CHARGED can happen below 100% with a limit)."""
        if self.charging:
            return "CHARGING"
        if self.plugged and self.soc is not None and self.soc >= self.charge_limit - 0.005:
            return "FULLY_CHARGED"
        return "NOT_CHARGING"


class CarRefused(Exception):
    """The car refused a command; ``code`` is the Smartcar VEHICLE_STATE code to answer with."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class Car(Protocol):
    """A car the Smartcar cloud can serve."""

    vin: str
    make: str  # UPPERCASE, as Smartcar reports it
    model: str
    year: int
    powertrain: str  # BEV | PHEV | ICE

    def read(self) -> CarReading: ...

    def command(self, name: str, value: float | None = None) -> None:
        """lock | unlock | charge_start | charge_stop | charge_limit (value 0.5..1).

        Raises CarRefused when the car's state does not allow it."""

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever the car's reading changes (drives webhooks)."""


class StaticCar:
    """A parked car whose values stay put unless a command changes them.

    Values are drawn once from the documented test-mode ranges with a seed taken from the VIN, so
    the same test login always shows the same car.
    """

    def __init__(
        self,
        vin: str,
        clock_now: Callable[[], float],
        *,
        make: str = "AUDI",
        model: str = "e-tron",
        year: int = 2021,
        powertrain: str = "BEV",
    ) -> None:
        self.vin = vin
        self.make = make
        self.model = model
        self.year = year
        self.powertrain = powertrain
        self._now = clock_now
        self._listeners: list[Callable[[], None]] = []
        rng = random.Random(vin)
        electric = powertrain in ("BEV", "PHEV")
        combustion = powertrain in ("ICE", "PHEV")
        soc = round(rng.uniform(0.2, 0.9), 2) if electric else None
        self._r = CarReading(
            time=clock_now() - rng.uniform(60, 600),
            soc=soc,
            range_m=round(rng.uniform(0, 483_000), -2) if electric else None,
            odometer_m=round(rng.uniform(10_000_000, 300_000_000), -2),
            latitude=round(rng.uniform(37.0, 41.0), 5),  # Colorado, as test mode does
            longitude=round(rng.uniform(-109.0, -102.05), 5),
            plugged=electric and rng.random() < 0.5,
            charge_limit=0.8 if electric else 1.0,
            capacity_kwh=round(rng.uniform(40, 100)) if electric else None,
            tyre_pressure_pa={w: round(rng.uniform(175_000, 237_000), -2) for w in WHEELS},
            fuel_ratio=round(rng.uniform(0.05, 1.0), 2) if combustion else None,
            fuel_litres=round(rng.uniform(5, 60), 1) if combustion else None,
            fuel_range_m=round(rng.uniform(50_000, 700_000), -2) if combustion else None,
            oil_life=round(rng.uniform(0.1, 1.0), 2) if combustion else None,
        )

    def read(self) -> CarReading:
        return self._r

    def on_change(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def set(self, **changes: object) -> None:
        """Change the reading (tests, fault scripts); the report time moves to now."""
        self._r = replace(self._r, time=self._now(), **changes)  # type: ignore[arg-type]
        for cb in list(self._listeners):
            cb()

    def command(self, name: str, value: float | None = None) -> None:
        if name == "lock":
            self.set(locked=True)
        elif name == "unlock":
            self.set(locked=False)
        elif name == "charge_start":
            self.set(charging=True, charge_power_w=7400.0)
        elif name == "charge_stop":
            self.set(charging=False, charge_power_w=0.0)
        elif name == "charge_limit" and value is not None:
            self.set(charge_limit=float(value))
        else:
            raise ValueError(f"unsupported command {name!r}")
