"""Hand-made histories: a tiny scripted car that emits sample rows and remembers what happened.

Tests describe a day in a car's life (park, drive 12 km in 20 minutes, charge to 80 %) and get both
the rows a poller would have stored and the truth to score the detectors against; the speed
benchmark uses the same script to build a vehicle-year. Rows use the history's column names and SI
units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from exporter.dbtarget import DbTarget

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@dataclass
class TrueTrip:
    start: float
    end: float
    distance_m: float
    energy_kwh: float


@dataclass
class TrueCharge:
    start: float
    end: float
    energy_kwh: float
    dc: bool


@dataclass
class Car:
    """A scripted car. Each method advances ``now``; ``every`` is the report step (None: none)."""

    vin: str = "TESTVIN0000000001"
    now: float = T0
    soc: float = 0.8
    odometer: float = 10_000_000.0  # m
    lat: float = 52.52
    lon: float = 13.40
    temp: float = 10.0
    capacity_kwh: float = 62.0
    model: str = "#1"
    range_per_soc_m: float = 420_000.0
    plugged: bool = False
    drain_w: float = 0.0  # idle drain while parked, W
    park_time: bool = False  # report when the car last parked (smart parkTime)
    parked_at: float = T0 - 3600.0
    rows: list[dict[str, Any]] = field(default_factory=list)
    trips: list[TrueTrip] = field(default_factory=list)
    charges: list[TrueCharge] = field(default_factory=list)

    # --- emitting -------------------------------------------------------------------------------
    def sample(self, **overrides: Any) -> dict[str, Any]:
        """Record one report at ``now`` with the current state (overrides win)."""
        row: dict[str, Any] = {
            "vin": self.vin,
            "ts": self.now,
            "battery_soc": round(self.soc, 4),
            "electric_range": self.soc * self.range_per_soc_m,
            "odometer": self.odometer,
            "speed": 0.0,
            "power_state": "off",
            "latitude": self.lat,
            "longitude": self.lon,
            "charging_state": "plugged" if self.plugged else "disconnected",
            "charger_connected": 1 if self.plugged else 0,
            "charging_power": 0.0,
            "outside_temperature": self.temp,
        }
        if self.park_time:
            row["parked_since"] = self.parked_at
        row.update(overrides)
        self.rows.append(row)
        return row

    def park(
        self, seconds: float, every: float | None = 600.0, drain_w: float | None = None
    ) -> Car:
        """Stand still for ``seconds``, reporting every ``every`` seconds (None: no reports)."""
        end = self.now + seconds
        watts = self.drain_w if drain_w is None else drain_w
        per_s = watts / 3600.0 / 1000.0 / self.capacity_kwh
        while True:
            step = (end - self.now) if every is None else min(every, end - self.now)
            if step <= 0:
                break
            self.now += step
            self.soc -= per_s * step
            if every is not None:
                self.sample()
        return self

    def drive(
        self,
        km: float,
        minutes: float,
        every: float | None = 60.0,
        kwh_100km: float = 16.0,
        heading_deg: float = 45.0,
        first_report_after: float | None = None,
        report_at_park: bool = True,
    ) -> Car:
        """Drive ``km`` at constant speed; report every ``every`` s while moving and once parked.

        ``first_report_after`` delays the first moving report (a poller that catches the car late).
        """
        duration = minutes * 60.0
        v = km * 1000.0 / duration
        start = self.now
        soc_per_m = kwh_100km / 100_000.0 / self.capacity_kwh
        soc0, odo0 = self.soc, self.odometer
        t_next = start + (first_report_after if first_report_after is not None else (every or 0))
        while every is not None and t_next < start + duration:
            self._move_to(start, t_next, v, soc0, odo0, soc_per_m, heading_deg)
            self.sample(speed=v, power_state="driving")
            t_next += every
        self._move_to(start, start + duration, v, soc0, odo0, soc_per_m, heading_deg)
        self.trips.append(TrueTrip(start, self.now, km * 1000.0, km * kwh_100km / 100.0))
        self.parked_at = self.now
        if report_at_park:
            self.sample()
        return self

    def _move_to(
        self,
        start: float,
        t: float,
        v: float,
        soc0: float,
        odo0: float,
        soc_per_m: float,
        heading_deg: float,
    ) -> None:
        dist = v * (t - start)
        moved = dist - (self.odometer - odo0)
        self.now = t
        self.odometer = odo0 + dist
        self.soc = soc0 - dist * soc_per_m
        h = math.radians(heading_deg)
        self.lat += moved * math.cos(h) / 111_320.0
        self.lon += moved * math.sin(h) / (111_320.0 * math.cos(math.radians(self.lat)))

    def plug(self, every_report: bool = True) -> Car:
        self.plugged = True
        if every_report:
            self.sample()
        return self

    def unplug(self, every_report: bool = True) -> Car:
        self.plugged = False
        if every_report:
            self.sample()
        return self

    def charge(
        self,
        to_soc: float,
        kw: float,
        every: float | None = 60.0,
        dc: bool = False,
        taper: bool = False,
    ) -> Car:
        """Charge to ``to_soc`` at ``kw`` (plugs in first if needed), reporting every ``every`` s.

        ``taper`` lowers power above 50 % SoC the way fast chargers do (to ~25 % of ``kw`` at 100
        %).
        """
        self.plugged = True
        start, soc0 = self.now, self.soc
        state = "dc_charging" if dc else "charging"
        step = 5.0
        next_report = start + every if every is not None else float("inf")
        while self.soc < to_soc - 1e-12:
            p_kw = self._power(kw, taper)
            d_soc = p_kw * step / 3600.0 / self.capacity_kwh
            if self.soc + d_soc >= to_soc:
                self.now += (to_soc - self.soc) / d_soc * step
                self.soc = to_soc
                break
            self.now += step
            self.soc += d_soc
            if self.now >= next_report:
                self.sample(charging_state=state, charging_power=self._power(kw, taper) * 1000.0)
                next_report += every or 0.0
        self.charges.append(TrueCharge(start, self.now, (to_soc - soc0) * self.capacity_kwh, dc))
        self.sample(charging_state="complete")
        return self

    def _power(self, kw: float, taper: bool) -> float:
        if not taper or self.soc <= 0.5:
            return kw
        return kw * (1.0 - 1.5 * (self.soc - 0.5))

    # --- output ---------------------------------------------------------------------------------
    def frame(self) -> pd.DataFrame:
        df = pd.DataFrame(self.rows)
        df["model"] = self.model
        df["series"] = None
        return df


def write_history(db_path: DbTarget | str, frames: list[pd.DataFrame]) -> None:
    """Store rows through the exporter's own history writer (of either backend), as the live
    pipeline would."""
    from exporter.backend import backend
    from exporter.snapshot import Snapshot, VehicleInfo

    hist = backend(db_path).writer()
    hist.open()
    try:
        for df in frames:
            if df.empty:
                continue
            vin = str(df["vin"].iloc[0])
            model = str(df["model"].iloc[0]) if "model" in df.columns else ""
            hist.add_vehicle(VehicleInfo(vin=vin, provider="smart", model=model), seen=T0)
            signal_cols = [c for c in df.columns if c not in ("vin", "ts", "model", "series")]
            snaps = []
            for rec in df.to_dict("records"):
                values = {
                    k: (bool(v) if k == "charger_connected" else v)
                    for k, v in ((c, rec[c]) for c in signal_cols)
                    if v is not None and not (isinstance(v, float) and math.isnan(v))
                }
                snaps.append(
                    Snapshot.build(rec["vin"], "smart", float(rec["ts"]), float(rec["ts"]), values)
                )
            hist.write_now(snaps)
    finally:
        hist.close()


def commuter(
    days: int = 365,
    every: float = 60.0,
    seed: int = 0,
    vin: str = "TESTVIN0000000001",
    start: float = T0,
) -> Car:
    """A commuter's ``days``: two commutes on weekdays, a longer weekend trip with a DC stop now and
    then, home AC charging when low, seasonal temperatures. Reports every ``every`` s at all times
    (``every=60`` for a year gives the 525,600-row benchmark history)."""
    import random

    rnd = random.Random(seed)
    car = Car(vin=vin, now=start, drain_w=rnd.uniform(60.0, 200.0))
    car.sample()
    for day in range(days):
        day_start = start + day * 86400.0
        car.temp = 10.0 - 12.0 * math.cos(2 * math.pi * (day - 15) / 365.0) + rnd.uniform(-3, 3)
        weekday = (day + 3) % 7 < 5  # 2026-01-01 is a Thursday
        if weekday:
            car.park(day_start + 7.5 * 3600 + rnd.uniform(-1800, 1800) - car.now, every)
            car.drive(
                rnd.uniform(12, 25), rnd.uniform(20, 35), every, 14 + 0.25 * abs(car.temp - 20)
            )
            car.park(day_start + 17 * 3600 + rnd.uniform(-1800, 1800) - car.now, every)
            car.drive(
                rnd.uniform(12, 25), rnd.uniform(20, 40), every, 14 + 0.25 * abs(car.temp - 20)
            )
        elif rnd.random() < 0.6:
            car.park(day_start + 10 * 3600 + rnd.uniform(0, 3600) - car.now, every)
            cons = 16 + 0.25 * abs(car.temp - 20)
            reach = max(0.0, car.soc - 0.12) * car.capacity_kwh / cons * 100.0
            km = min(rnd.uniform(40, 180), reach)
            car.drive(km, km / rnd.uniform(60, 100) * 60, every, cons)
            if car.soc < 0.55:
                car.plug(False)
                car.charge(0.8, rnd.choice([100.0, 150.0]), min(every, 60.0), dc=True, taper=True)
                car.unplug()
            car.park(rnd.uniform(1800, 7200), every)
            km = min(km, max(0.0, car.soc - 0.08) * car.capacity_kwh / cons * 100.0)
            car.drive(km, km / rnd.uniform(60, 100) * 60, every, cons)
        if car.soc < 0.45:
            car.park(rnd.uniform(600, 3600), every)
            car.plug()
            car.charge(0.8, 11.0, every)
            car.park(rnd.uniform(1800, 7200), every)
            car.unplug()
        car.park(day_start + 86400.0 - car.now, every)
    return car
