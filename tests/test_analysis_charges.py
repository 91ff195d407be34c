"""Charging sessions from hand-made histories, scored against the scripted truth (``Car.charges``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import Settings, charges
from analysis.testing import Car

S = Settings(timezone="Europe/Berlin")


def car_at(text: str, **kw: object) -> Car:
    car = Car(now=pd.Timestamp(text, tz="UTC").timestamp(), **kw)  # type: ignore[arg-type]
    car.sample()
    return car


def test_ac_session_energy_power_and_times() -> None:
    car = car_at("2026-02-01T17:00", soc=0.35)
    car.park(1800).plug().charge(0.8, 11.0).park(1800).unplug().park(3600)
    (row,) = charges(car.frame(), S).itertuples()
    true = car.charges[0]
    assert row.kind == "ac" and not row.unseen and not row.ongoing
    assert row.energy_added_kwh == pytest.approx(true.energy_kwh, rel=0.01)
    assert row.energy_power_kwh == pytest.approx(true.energy_kwh, rel=0.02)
    assert row.start_ts == pytest.approx(true.start, abs=60)
    assert row.end_ts == pytest.approx(true.end, abs=60)
    assert row.avg_power_kw == pytest.approx(11.0, rel=0.03)
    assert row.peak_power_kw == pytest.approx(11.0)
    assert row.start_soc_pct == pytest.approx(35, abs=0.5)
    assert row.end_soc_pct == pytest.approx(80, abs=0.5)


def test_dc_session_with_taper_is_dc_with_its_peak() -> None:
    car = car_at("2026-02-01T12:00", soc=0.6)
    car.drive(120, 70).plug(False).charge(0.8, 150.0, dc=True, taper=True).unplug().park(3600)
    (row,) = charges(car.frame(), S).itertuples()
    assert row.kind == "dc"
    assert row.peak_power_kw == pytest.approx(150.0)
    assert row.energy_added_kwh == pytest.approx(car.charges[0].energy_kwh, rel=0.02)


def test_a_charge_interrupted_and_resumed_while_plugged_is_one_session() -> None:
    car = car_at("2026-02-02T18:00", soc=0.3)
    car.plug().charge(0.55, 7.4).park(3 * 3600)  # paused (reports say plugged, not charging)
    car.charge(0.8, 7.4).park(1800).unplug().park(3600)
    (row,) = charges(car.frame(), S).itertuples()
    assert row.start_ts == pytest.approx(car.charges[0].start, abs=60)
    assert row.end_ts == pytest.approx(car.charges[1].end, abs=60)
    assert row.energy_added_kwh == pytest.approx(
        car.charges[0].energy_kwh + car.charges[1].energy_kwh, rel=0.01
    )
    assert row.charging_min < row.duration_min - 170  # the 3 h pause is not charging time


def test_unplugging_between_two_charges_makes_two_sessions() -> None:
    car = car_at("2026-02-02T18:00", soc=0.3)
    car.plug().charge(0.55, 7.4).unplug().park(3 * 3600)
    car.plug().charge(0.8, 7.4).unplug().park(3600)
    got = charges(car.frame(), S)
    assert len(got) == 2
    assert np.allclose(got["energy_added_kwh"], [c.energy_kwh for c in car.charges], rtol=0.02)


def test_charging_nobody_saw_is_flagged_unseen_with_its_energy() -> None:
    car = car_at("2026-02-03T08:00", soc=0.4)
    car.park(3600)
    car.park(8 * 3600, every=None)  # exporter down overnight; the car charged meanwhile
    car.soc = 0.7
    car.sample()
    car.park(3600)
    (row,) = charges(car.frame(), S).itertuples()
    assert row.unseen
    assert row.energy_added_kwh == pytest.approx(0.3 * car.capacity_kwh, rel=0.01)
    assert row.kind == "unknown"  # 18.6 kWh in 8 h could be any charger


def test_an_unseen_rise_faster_than_any_ac_charger_is_dc() -> None:
    car = car_at("2026-02-03T08:00", soc=0.2)
    car.park(1800, every=None)
    car.soc = 0.7
    car.sample()
    (row,) = charges(car.frame(), S).itertuples()
    assert row.unseen and row.kind == "dc"


def test_an_unseen_charge_after_an_unseen_drive_counts_the_drive_too() -> None:
    car = car_at("2026-02-03T08:00", soc=0.6)
    car.park(3600, every=1800)
    car.drive(30, 30, every=None, report_at_park=False)  # used 30 km x 16 kWh/100 km
    car.park(4 * 3600, every=None)
    car.soc += 0.10  # ... and then charged 10 points
    car.sample()
    (row,) = charges(car.frame(), S).itertuples()
    assert row.unseen
    assert row.energy_added_kwh == pytest.approx(0.10 * car.capacity_kwh, rel=0.15)


def test_small_soc_wobble_and_regeneration_are_not_charges() -> None:
    car = car_at("2026-02-04T08:00", soc=0.6)
    car.park(6 * 3600, every=None)
    car.soc += 0.008  # recalibration after a cold night
    car.sample()
    car.drive(20, 30, report_at_park=False)
    car.soc += 0.01  # came down a mountain
    car.sample()
    car.park(3600)
    assert charges(car.frame(), S).empty


def test_cars_that_report_power_but_no_charging_state() -> None:
    car = car_at("2026-02-05T20:00", soc=0.5)
    car.plug().charge(0.8, 11.0).unplug().park(3600)
    df = car.frame().assign(charging_state=None, charger_connected=np.nan)
    (row,) = charges(df, S).itertuples()
    assert row.energy_added_kwh == pytest.approx(car.charges[0].energy_kwh, rel=0.02)


def test_a_session_still_running_is_ongoing() -> None:
    car = car_at("2026-02-05T20:00", soc=0.5)
    car.plug().charge(0.8, 11.0)
    df = car.frame().iloc[:-1]  # the last report is still "charging"
    (row,) = charges(df, S).itertuples()
    assert row.ongoing
