"""Trips from hand-made histories: each test scripts a car's day and checks the detector against what
the script says really happened (``Car.trips``), never against numbers copied from the detector."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import Settings, summary, trips
from analysis.charges import empty as no_charges
from analysis.testing import Car

BERLIN = Settings(timezone="Europe/Berlin")


def utc(text: str) -> float:
    return pd.Timestamp(text, tz="UTC").timestamp()


def parked_car(start: str, **kw: object) -> Car:
    car = Car(now=utc(start), **kw)  # type: ignore[arg-type]
    car.sample()
    return car


def test_a_commute_is_found_with_distance_energy_and_times() -> None:
    car = parked_car("2026-01-05T05:00")
    car.park(2 * 3600).drive(18, 25).park(9 * 3600).drive(18, 30, kwh_100km=20).park(3600)
    got = trips(car.frame(), BERLIN)
    assert len(got) == len(car.trips) == 2
    for row, true in zip(got.itertuples(), car.trips, strict=True):
        assert row.distance_km == pytest.approx(true.distance_m / 1000, abs=0.01)
        assert row.energy_kwh == pytest.approx(true.energy_kwh, abs=0.02)
        assert row.start_ts == pytest.approx(true.start, abs=60)
        assert row.end_ts == pytest.approx(true.end, abs=60)
        assert not row.inferred and not row.ongoing


def test_start_is_back_filled_when_the_first_report_comes_late() -> None:
    # The poller saw the car parked 3 h before and first saw it moving 9 minutes into the drive.
    car = parked_car("2026-01-05T05:00")
    car.park(3 * 3600, every=3 * 3600).drive(30, 30, first_report_after=9 * 60)
    car.park(3600)
    (row,) = trips(car.frame(), BERLIN).itertuples()
    true = car.trips[0]
    first_moving = car.rows[2]["ts"]
    assert first_moving - true.start == pytest.approx(540)
    assert abs(row.start_ts - true.start) < 30  # not the parked report 3 h earlier, not 9 min late
    assert row.distance_km == pytest.approx(30, abs=0.01)  # counted from the last parked sample


def test_midnight_trip_belongs_to_the_local_day_it_started() -> None:
    # 22:50 UTC = 23:50 in Berlin (CET): the trip runs into the next local day.
    car = parked_car("2026-01-05T20:00")
    car.park(utc("2026-01-05T22:50") - car.now).drive(25, 30).park(3600)
    t = trips(car.frame(), BERLIN)
    (row,) = t.itertuples()
    assert row.start_local.startswith("2026-01-05T23:50")
    assert row.end_local.startswith("2026-01-06T00:20")
    days = summary(t, no_charges(), BERLIN, period="day")
    assert list(days["period"]) == ["2026-01-05"]
    assert days["distance_km"].sum() == pytest.approx(25, abs=0.01)


@pytest.mark.parametrize(
    ("depart_utc", "start_local", "end_local"),
    [
        # spring forward: 02:00 CET does not exist; 01:50+01:00 -> 03:10+02:00 is 20 minutes
        ("2026-03-29T00:50", "2026-03-29T01:50:00+01:00", "2026-03-29T03:10:00+02:00"),
        # fall back: the wall clock goes 02:50+02:00 -> 02:10+01:00, still 20 minutes later
        ("2026-10-25T00:50", "2026-10-25T02:50:00+02:00", "2026-10-25T02:10:00+01:00"),
    ],
)
def test_dst_crossings_keep_true_durations_and_local_offsets(
    depart_utc: str, start_local: str, end_local: str
) -> None:
    car = parked_car(depart_utc)
    car.drive(15, 20).park(3600)
    # every sample is on the 60 s grid, so the back-filled start is the departure itself
    t = trips(car.frame(), BERLIN)
    (row,) = t.itertuples()
    assert row.start_local == start_local
    assert row.end_local == end_local
    assert row.duration_min == pytest.approx(20, abs=0.5)
    day = summary(t, no_charges(), BERLIN, period="day")
    assert list(day["period"]) == [start_local[:10]]


def test_trip_ending_at_a_charger_is_not_credited_with_the_charge() -> None:
    # Coarse polling: the first report after arrival already shows 5 minutes of 11 kW charging.
    car = parked_car("2026-02-02T06:00")
    car.park(3600, every=1800)
    car.drive(40, 40, every=300, report_at_park=False)
    car.charge(0.9, 11.0, every=300)
    car.park(3600)
    t = trips(car.frame(), BERLIN)
    (row,) = t.itertuples()
    true = car.trips[0]
    assert row.energy_kwh == pytest.approx(true.energy_kwh, rel=0.05)
    assert row.end_ts == pytest.approx(true.end, abs=90)


def test_a_day_of_silence_neither_invents_nor_stretches_trips() -> None:
    car = parked_car("2026-01-07T06:00")
    car.park(3600).drive(10, 15).park(1200)
    car.park(36 * 3600, every=None)  # the car (or the exporter) said nothing for a day and a half
    car.sample()
    car.drive(10, 15).park(1800)
    t = trips(car.frame(), BERLIN)
    assert len(t) == 2
    assert t["duration_min"].max() < 20
    assert t["distance_km"].sum() == pytest.approx(20, abs=0.01)


def test_a_trip_nobody_saw_is_inferred_from_the_odometer() -> None:
    car = parked_car("2026-01-07T06:00")
    car.park(3600, every=1800)
    car.drive(12, 20, every=None, report_at_park=False)  # no report while driving or at park
    car.park(2 * 3600, every=None)
    car.sample()
    (row,) = trips(car.frame(), BERLIN).itertuples()
    assert row.inferred
    assert row.distance_km == pytest.approx(12, abs=0.01)
    assert row.energy_kwh == pytest.approx(car.trips[0].energy_kwh, abs=0.02)
    assert car.rows[-2]["ts"] <= row.start_ts < row.end_ts <= car.rows[-1]["ts"]


def test_a_short_stop_with_the_ignition_on_does_not_split_a_trip() -> None:
    car = parked_car("2026-01-08T07:00")
    car.drive(5, 8, report_at_park=False)
    car.park(120, every=60)
    car.rows[-1]["power_state"] = car.rows[-2]["power_state"] = "on"  # at a level crossing
    car.drive(6, 9).park(3600)
    (row,) = trips(car.frame(), BERLIN).itertuples()
    assert row.distance_km == pytest.approx(11, abs=0.01)


def test_ignition_off_ends_a_trip_even_after_a_short_stop() -> None:
    car = parked_car("2026-01-08T07:00")
    car.drive(5, 8).park(180, every=60)  # reports say "off": a real stop at the bakery
    car.drive(6, 9).park(3600)
    assert len(trips(car.frame(), BERLIN)) == 2


def test_gps_jitter_and_odometer_creep_while_parked_are_not_trips() -> None:
    rng = np.random.default_rng(3)
    car = parked_car("2026-01-09T00:00")
    car.park(2 * 86400, every=600)
    df = car.frame()
    df["latitude"] += rng.normal(0, 0.0003, len(df))  # ~30 m of wander
    df["longitude"] += rng.normal(0, 0.0003, len(df))
    df.loc[len(df) // 2 :, "odometer"] += 60.0  # one 60 m parking manoeuvre
    assert trips(df, BERLIN).empty
    no_odo = df.assign(odometer=np.nan)
    assert trips(no_odo, BERLIN).empty


def test_cars_without_speed_or_power_state_get_trips_from_the_odometer() -> None:
    car = parked_car("2026-01-10T06:00")
    car.park(3600).drive(20, 25).park(4 * 3600).drive(20, 25).park(3600)
    df = car.frame().assign(speed=np.nan, power_state=None)
    t = trips(df, BERLIN)
    assert len(t) == 2
    assert list(t["distance_km"].round(2)) == [20.0, 20.0]


def test_bad_rows_change_nothing() -> None:
    car = parked_car("2026-01-12T06:00")
    for _ in range(3):
        car.park(6 * 3600).drive(15, 20).park(2 * 3600).plug().charge(0.8, 7.4).unplug()
    clean = car.frame()
    bad = clean.copy()
    mid = bad.index[len(bad) // 2]
    bad.loc[mid, "odometer"] = 0.0  # telematics-unit reset sentinel
    bad.loc[mid + 1, "odometer"] = 9e9  # a spike
    bad.loc[mid + 2, "battery_soc"] = 2.55  # 255 %
    bad.loc[mid + 3, ["latitude", "longitude"]] = 0.0  # null island
    bad.loc[mid + 4, "speed"] = -3.0
    bad.loc[mid + 5, "power_state"] = "warp"
    bad.loc[mid + 6, "charging_state"] = "??"
    bad.loc[mid + 7, ["odometer", "battery_soc"]] = np.nan  # NULLs
    bad = pd.concat([bad, bad.iloc[::7]], ignore_index=True)  # duplicate reports, out of order
    want, got = trips(clean, BERLIN), trips(bad, BERLIN)
    assert len(got) == len(want) == 3
    assert np.allclose(got["distance_km"], want["distance_km"])
    assert np.allclose(got["energy_kwh"], want["energy_kwh"], atol=0.05)


def test_trips_of_several_vehicles_do_not_mix() -> None:
    a = parked_car("2026-01-12T06:00", vin="A" * 17)
    a.park(3600).drive(10, 15).park(3600)
    b = parked_car("2026-01-12T06:00", vin="B" * 17, odometer=5_000_000.0)
    b.park(7200).drive(30, 30).park(3600)
    t = trips(pd.concat([a.frame(), b.frame()], ignore_index=True), BERLIN)
    assert list(t["vin"]) == ["A" * 17, "B" * 17]
    assert list(t["distance_km"].round(2)) == [10.0, 30.0]


def test_frames_without_vin_or_time_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="missing: ts"):
        trips(pd.DataFrame({"vin": ["A"], "odometer": [1.0]}))
    empty = Car().frame().iloc[0:0]
    assert trips(empty, BERLIN).empty
