"""Trips and charging sessions stay right on reports as messy as real clouds send them: an odometer
that steps down for good (cluster replaced) or changes unit, a car that leaves a charger and drives
between two polls, a red light at poll time."""

from __future__ import annotations

import pandas as pd
import pytest

import analysis
from analysis.clean import clean
from analysis.settings import Settings
from analysis.testing import Car

S = Settings(timezone="UTC")


def commute_days(car: Car, days: int, every: float = 60.0) -> None:
    for _ in range(days):
        car.park(8 * 3600, every=600)
        car.drive(12, 20, every=every)
        car.park(9 * 3600, every=600)
        car.drive(12, 20, every=every)
        car.park(7 * 3600 - 2400, every=600)


def test_an_odometer_that_steps_down_for_good_keeps_every_later_trip() -> None:
    car = Car()
    car.sample()
    commute_days(car, 2)
    car.odometer = 3_000.0  # instrument cluster replaced: a new odometer at 3 km
    commute_days(car, 3)
    df = car.frame()
    cleaned = clean(df)
    steps = cleaned.attrs["odometer_steps"]
    assert len(steps) == 1 and steps[0]["to_m"] == pytest.approx(3_000.0)
    t = analysis.trips(df, S)
    assert len(t) == len(car.trips) == 10
    assert t["distance_km"].to_numpy() == pytest.approx([12.0] * 10, abs=0.05)


def test_an_odometer_that_switches_unit_keeps_trips_and_records_the_step() -> None:
    car = Car()
    car.sample()
    commute_days(car, 2)
    switch = car.now
    commute_days(car, 3)
    df = car.frame()
    later = df["ts"] > switch
    df.loc[later, "odometer"] = df.loc[later, "odometer"] * 1.609344  # miles read as km
    steps = clean(df).attrs["odometer_steps"]
    assert len(steps) == 1
    t = analysis.trips(df, S)
    assert len(t) == 10
    assert t["distance_km"].max() < 25  # no 6,000 km phantom trip across the switch


def test_a_glitch_is_still_dropped_not_taken_for_a_step() -> None:
    car = Car()
    car.sample()
    commute_days(car, 2)
    df = car.frame()
    df.loc[df.index[100:102], "odometer"] = 0.5  # two bad readings, then normal again
    cleaned = clean(df)
    assert cleaned.attrs["odometer_steps"] == []
    assert cleaned["odometer"].iloc[100:102].isna().all()
    assert len(analysis.trips(df, S)) == 4


def leave_charger_between_polls(every: float) -> tuple[Car, pd.DataFrame]:
    """A DC stop seen twice at its start; the next report comes only after the car charged to
    80 % and drove 20 km away (a coarse poller's view): the rows in between are dropped."""
    car = Car(soc=0.40)
    car.sample()
    car.park(3600, every=every)
    car.drive(60, 45, every=every)  # to a DC charger
    car.plug(every_report=False)
    car.charge(0.80, 100.0, every=60.0, dc=True)
    car.unplug(every_report=False)
    car.drive(20, 15, every=every)
    back_at = car.now
    car.park(3 * 3600, every=every)
    df = car.frame()
    charging = df.index[df["charging_state"] == "dc_charging"]
    seen_until = df.loc[charging[1], "ts"]
    gone = (df["ts"] > seen_until) & (df["ts"] < back_at)
    return car, df.loc[~gone].reset_index(drop=True)


@pytest.mark.parametrize("every", [300.0, 900.0])
def test_leaving_a_charger_between_polls_gives_no_negative_energy(every: float) -> None:
    car, df = leave_charger_between_polls(every)
    a = analysis.Analysis(df, S)
    assert (a.trips["energy_kwh"] >= 0).all(), a.trips[["start_soc_pct", "end_soc_pct"]]
    last = a.trips.iloc[-1]
    assert last["distance_km"] == pytest.approx(20, abs=0.1)
    assert last["energy_kwh"] == pytest.approx(20 * 0.16, rel=0.35)  # from typical consumption
    dc = a.charges.loc[a.charges["kind"] == "dc"]
    assert len(dc) == 1
    true_kwh = sum(c.energy_kwh for c in car.charges)
    assert dc["energy_added_kwh"].iloc[0] == pytest.approx(true_kwh, rel=0.10)


def test_a_red_light_at_poll_time_does_not_split_the_drive() -> None:
    car = Car()
    car.sample()
    car.park(1800, every=300)
    car.drive(6, 10, every=300)
    car.sample(speed=0.0, power_state="driving")  # stopped at a light, ignition on
    car.now += 45
    car.drive(6, 10, every=300)
    car.park(1800, every=300)
    t = analysis.trips(car.frame(), S)
    assert len(t) == 1
    assert t["distance_km"].iloc[0] == pytest.approx(12, abs=0.1)


def test_trip_rows_are_never_negative_on_a_simulated_month() -> None:
    from analysis.testing import commuter

    car = commuter(days=30, every=900.0, seed=3)
    a = analysis.Analysis(car.frame(), S)
    assert (a.trips["energy_kwh"].dropna() >= 0).all()
    assert (a.charges["energy_added_kwh"].dropna() >= 0).all()
