"""Habits and daily plans: when a simulated driver wants to go where.

A plan is a list of intents ("leave for work at 07:40"), drawn from a random generator seeded by
(seed, VIN, local day), so the same fleet lives the same life on every run. Intents are wishes, not
appointments: the vehicle model departs at the intent's time or, if it is still busy (driving, or
at a fast charger), as soon as it is free.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from exporter.simulator.environment import DAY, City
from exporter.simulator.routes import offset

HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class Traits:
    """Per-driver habits, fixed for the life of a vehicle."""

    home: tuple[float, float]
    work: tuple[float, float]
    commute_p: float
    underground_work: bool  # no GPS fix while parked at work
    charge_limit: float
    plug_below_soc: float
    scheduled_charging: bool  # AC charging starts at 22:00 local instead of on plug-in
    home_station_kw: float
    home_phases: int
    sleep_report_s: float
    forget_lock_p: float
    window_ajar_p: float
    speed_factor: float
    climate_target_c: float

    @staticmethod
    def draw(rng: random.Random, city: City) -> Traits:
        home = offset(city.lat, city.lon, rng.uniform(0, 360), rng.uniform(1500, 9000))
        work = offset(*home, rng.uniform(0, 360), rng.uniform(5000, 22000))
        station = rng.choice((11.0, 11.0, 11.0, 7.4, 22.0))
        return Traits(
            home=home,
            work=work,
            commute_p=rng.uniform(0.75, 0.95),
            underground_work=rng.random() < 0.3,
            charge_limit=rng.choice((80.0, 80.0, 90.0, 100.0)),
            plug_below_soc=rng.uniform(50.0, 80.0),
            scheduled_charging=rng.random() < 0.3,
            home_station_kw=station,
            home_phases=1 if station < 8 else 3,
            sleep_report_s=round(rng.uniform(3.0, 5.0) * HOUR / 10.0) * 10.0,
            forget_lock_p=0.03,
            window_ajar_p=0.06,
            speed_factor=rng.uniform(0.95, 1.08),
            climate_target_c=rng.choice((20.0, 20.5, 21.0, 21.5, 22.0)),
        )


@dataclass(slots=True)
class Intent:
    """Leave for ``dest`` ("home", "work" or a point) not before ``time`` (unix s).

    ``time`` None means "as soon as the current charging stop is done" (continuing a long trip).
    """

    time: float | None
    dest: str  # "home" | "work" | "point"
    kind: str  # "commute" | "errand" | "long" | "resume" | "hop"
    point: tuple[float, float] | None = None


def day_plan(
    rng: random.Random, traits: Traits, midnight: float, wd: int, away: bool
) -> list[Intent]:
    """The intents of the local day from ``midnight`` (weekday ``wd``; ``away``: not at home)."""
    out: list[Intent] = []
    if away:
        out.append(Intent(midnight + rng.uniform(9.5, 13.0) * HOUR, "home", "long"))
    if wd < 5:
        if not away and rng.random() < traits.commute_p:
            out.append(Intent(midnight + rng.uniform(6.75, 8.5) * HOUR, "work", "commute"))
            out.append(Intent(midnight + rng.uniform(16.0, 18.5) * HOUR, "home", "commute"))
        if rng.random() < 0.25:
            out += _errand(rng, traits, midnight + rng.uniform(19.0, 20.5) * HOUR, short=True)
        if not away and rng.random() < 0.02:
            out = [i for i in out if i.kind != "commute"]
            out += _long_trip(rng, traits, midnight)
    else:
        if not away and rng.random() < 0.14:
            out += _long_trip(rng, traits, midnight)
        else:
            start = midnight + rng.uniform(9.5, 12.0) * HOUR
            out += _errand(rng, traits, start, short=False)
            if rng.random() < 0.5:
                out += _errand(rng, traits, start + rng.uniform(3.0, 5.0) * HOUR, short=True)
    out.sort(key=lambda i: i.time if i.time is not None else 0.0)
    return out


def short_hop(
    rng: random.Random, traits: Traits, midnight: float, plan: list[Intent]
) -> list[Intent]:
    """Now and then a drive of a few hundred metres to two kilometres (the bakery, a neighbour)
    and back: the trips most easily lost between two polls or in the odometer's whole
    kilometres. Left out on days with a long trip or when another drive is due within 90 min."""
    if rng.random() >= 0.3 or any(i.kind == "long" for i in plan):
        return []
    at_work = any(i.kind == "commute" for i in plan)  # then only in the evening, from home
    hour = rng.uniform(19.5, 21.5) if at_work or rng.random() < 0.5 else rng.uniform(12.0, 15.0)
    t = midnight + hour * HOUR
    if any(i.time is None or abs(i.time - t) < 1.5 * HOUR for i in plan):
        return []
    point = offset(*traits.home, rng.uniform(0, 360), rng.uniform(300.0, 1500.0))
    dwell = rng.uniform(0.15, 0.6) * HOUR
    return [Intent(t, "point", "hop", point), Intent(t + dwell, "home", "hop")]


def _errand(rng: random.Random, traits: Traits, t: float, *, short: bool) -> list[Intent]:
    far = rng.uniform(1500, 9000) if short else rng.uniform(3000, 25000)
    point = offset(*traits.home, rng.uniform(0, 360), far)
    dwell = rng.uniform(0.3, 1.5) * HOUR
    return [Intent(t, "point", "errand", point), Intent(t + dwell, "home", "errand")]


def _long_trip(rng: random.Random, traits: Traits, midnight: float) -> list[Intent]:
    far = rng.uniform(100_000, 280_000)
    point = offset(*traits.home, rng.uniform(0, 360), far)
    out = [Intent(midnight + rng.uniform(7.5, 10.0) * HOUR, "point", "long", point)]
    if rng.random() < 0.7:  # else stay the night; the next day's plan starts with the way back
        out.append(Intent(midnight + rng.uniform(15.0, 18.0) * HOUR, "home", "long"))
    return out


__all__ = ["DAY", "HOUR", "Intent", "Traits", "day_plan", "short_hop"]
