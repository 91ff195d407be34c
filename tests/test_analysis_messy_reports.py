"""Trips and charging sessions stay right on reports as messy as real clouds send them: an odometer
that steps down for good (cluster replaced) or changes unit, a car that leaves a charger and drives
between two polls, a red light at poll time."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import analysis
from analysis.clean import clean
from analysis.settings import Settings
from analysis.testing import Car, write_history
from exporter.cli import cli

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


@pytest.mark.parametrize("every", [60.0, 300.0])
def test_a_red_light_at_poll_time_does_not_split_the_drive(every: float) -> None:
    car = Car()
    car.sample()
    car.park(1800, every=every)
    car.drive(6, 10, every=every, report_at_park=False)
    # stopped at a light, engine running: smart says powerMode 2 ("on"), speed 0
    car.sample(speed=0.0, power_state="on")
    car.now += 45
    car.drive(6, 10, every=every)
    car.park(1800, every=every)
    df = car.frame()
    df["odometer"] = (df["odometer"] // 1000) * 1000  # smart: whole kilometres
    t = analysis.trips(df, S)
    assert len(t) == 1
    assert t["distance_km"].iloc[0] == pytest.approx(12, abs=1.0)


def test_trip_rows_are_never_negative_on_a_simulated_month() -> None:
    from analysis.testing import commuter

    car = commuter(days=30, every=900.0, seed=3)
    a = analysis.Analysis(car.frame(), S)
    assert (a.trips["energy_kwh"].dropna() >= 0).all()
    assert (a.charges["energy_added_kwh"].dropna() >= 0).all()


# --- the window and the zone a user asks for ------------------------------------------------------


@pytest.fixture
def late_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A drive 23:40-00:20 UTC across midnight and a charge 23:00-02:00 UTC, then a quiet day."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("CARMETRICS_")]:
        monkeypatch.delenv(name)
    car = Car(
        vin="HESXR1C4WINDOW001", soc=0.5, now=datetime(2026, 3, 1, 20, tzinfo=UTC).timestamp()
    )
    car.sample()
    car.park(datetime(2026, 3, 1, 23, 40, tzinfo=UTC).timestamp() - car.now, every=300)
    car.drive(30, 40, every=60)
    car.park(datetime(2026, 3, 2, 23, 0, tzinfo=UTC).timestamp() - car.now, every=600)
    car.plug()
    car.charge(0.95, 7.4, every=300)
    car.unplug()
    car.park(86400, every=600)
    db = tmp_path / "h.db"
    write_history(db, [car.frame()])
    return db


def cli_json(*args: str) -> list[dict[str, object]]:
    res = CliRunner().invoke(cli, [*args, "--format", "json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    rows: list[dict[str, object]] = json.loads(res.output)
    return rows


def test_since_and_until_select_whole_trips_that_start_in_the_window(late_history: Path) -> None:
    db = str(late_history)
    trips = cli_json(
        "trips", "--db", db, "--tz", "UTC", "--since", "2026-03-01", "--until", "2026-03-01T23:59"
    )
    assert len(trips) == 1
    assert trips[0]["distance_km"] == pytest.approx(30, abs=0.1)  # not cut at midnight
    assert str(trips[0]["end_local"]).startswith("2026-03-02T00:20")
    none = cli_json(
        "trips",
        "--db",
        db,
        "--tz",
        "UTC",
        "--since",
        "2026-03-02T00:00",
        "--until",
        "2026-03-02T22:00",
    )
    assert none == []  # it started the day before
    charges = cli_json(
        "charges", "--db", db, "--tz", "UTC", "--since", "2026-03-02", "--until", "2026-03-02T23:30"
    )
    assert len(charges) == 1 and float(charges[0]["end_soc_pct"]) == pytest.approx(95, abs=0.5)


def test_tz_shows_local_times_in_the_zone_asked_for(late_history: Path) -> None:
    db = str(late_history)
    tokyo = cli_json("trips", "--db", db, "--tz", "Asia/Tokyo")
    assert str(tokyo[0]["start_local"]).startswith("2026-03-02T08:40") and str(
        tokyo[0]["start_local"]
    ).endswith("+09:00")
    res = CliRunner().invoke(cli, ["trips", "--db", db, "--tz", "Mars/Olympus"])
    assert res.exit_code == 2 and "Mars/Olympus" in res.output and "--tz" in res.output
    for command in (
        "trips",
        "charges",
        "drain",
        "efficiency",
        "battery",
        "summary",
        "places",
        "costs",
        "report",
    ):
        help_text = CliRunner().invoke(cli, [command, "--help"]).output
        assert "--tz" in help_text, command
    assert "--tz" in CliRunner().invoke(cli, ["db", "derive", "--help"]).output


def gap_with_charge_and_drive(charge_first: bool) -> tuple[Car, pd.DataFrame, float]:
    """Reports stop at 12:00 and resume at 17:30; in the gap the car charged and drove 20 km.
    charge_first: charged at home 12:30-14:00, unplugged, drove at 16:22 (arrives unplugged);
    else: drove at 12:41 to a charger and is still plugged in when next seen."""
    t0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC).timestamp()
    car = Car(soc=0.40, now=t0 - 3600)
    car.park(3600, every=600)  # reports up to 12:00
    if charge_first:
        car.park(1800, every=None)
        car.plug(every_report=False)
        car.charge(0.80, 11.0, every=None)
        car.unplug(every_report=False)
        drive_at = datetime(2026, 3, 4, 16, 22, tzinfo=UTC).timestamp()
        car.park(drive_at - car.now, every=None)
        car.drive(20, 25, every=None, report_at_park=False)
    else:
        drive_at = datetime(2026, 3, 4, 12, 41, tzinfo=UTC).timestamp()
        car.park(drive_at - car.now, every=None)
        car.drive(20, 25, every=None, report_at_park=False)
        car.plug(every_report=False)
        car.charge(0.80, 11.0, every=None)
    car.park(datetime(2026, 3, 4, 17, 30, tzinfo=UTC).timestamp() - car.now, every=None)
    car.sample()  # plugged (charging_state "plugged") only when it charged last
    car.park(3600, every=600)
    df = car.frame()
    quiet = (df["ts"] > t0) & (df["ts"] < t0 + 5.5 * 3600)  # the "complete" report is not polled
    return car, df.loc[~quiet].reset_index(drop=True), drive_at


@pytest.mark.parametrize("charge_first", [True, False])
def test_an_inferred_trip_beside_an_unseen_charge_goes_where_the_plug_says(
    charge_first: bool,
) -> None:
    _car, df, drive_at = gap_with_charge_and_drive(charge_first)
    a = analysis.Analysis(df, S)
    assert len(a.trips) == 1 and bool(a.trips["inferred"].iloc[0])
    trip = a.trips.iloc[0]
    # when in the gap the drive began is unknowable; which end of the gap it is near is not
    assert abs(trip["start_ts"] - drive_at) < 3600, (trip["start_local"], drive_at)
    charge = a.charges.iloc[0]
    assert bool(charge["unseen"])
    if charge_first:
        assert charge["end_ts"] <= trip["start_ts"]
    else:
        assert charge["start_ts"] >= trip["end_ts"]


def whole_km(df: pd.DataFrame) -> pd.DataFrame:
    """The odometer as smart sends it: whole kilometres ("2701.000")."""
    out = df.copy()
    out["odometer"] = (out["odometer"] // 1000.0) * 1000.0
    return out


def test_a_drive_between_two_polls_ends_when_the_car_says_it_parked() -> None:
    car = Car(park_time=True)
    car.sample()
    car.park(1800, every=1800)
    car.park(700, every=None)  # polled every 30 min; the drive falls between two polls
    car.drive(5.3, 7, every=None, report_at_park=False)
    car.park(1800 - 700 - 420, every=None)
    car.sample()
    car.park(3600, every=1800)
    t = analysis.trips(whole_km(car.frame()), S)
    assert len(t) == 1 and bool(t["inferred"].iloc[0])
    true = car.trips[0]
    assert t["end_ts"].iloc[0] == pytest.approx(true.end, abs=1.0)
    assert t["start_ts"].iloc[0] < true.end and t["end_ts"].iloc[0] > true.start


def test_a_short_hop_between_two_polls_is_found_from_the_park_time() -> None:
    car = Car(park_time=True, odometer=10_000_100.0)
    car.sample()
    car.park(1800, every=1800)
    car.park(600, every=None)
    car.drive(0.35, 2, every=None, report_at_park=False)  # the bakery: 10,000 km before and after
    car.park(900, every=None)
    car.drive(0.35, 2, every=None, report_at_park=False)
    car.park(1800 - 600 - 900 - 240, every=None)
    car.sample()
    car.park(3600, every=1800)
    df = whole_km(car.frame())
    assert df["odometer"].nunique() == 1  # the odometer cannot tell
    t = analysis.trips(df, S)
    assert len(t) == 1  # both legs in one gap: one trip, ending when the car parked at home
    assert t["end_ts"].iloc[0] == pytest.approx(car.trips[-1].end, abs=1.0)
    assert t["distance_km"].iloc[0] == 0.0 and t["energy_kwh"].iloc[0] >= 0


def test_without_a_park_time_nothing_is_invented_for_a_still_odometer() -> None:
    car = Car(odometer=10_000_100.0)
    car.sample()
    car.park(2400, every=1800)
    car.drive(0.35, 2, every=None, report_at_park=False)
    car.park(1800, every=1800)
    assert analysis.trips(whole_km(car.frame()), S).empty


def test_an_unseen_drive_takes_the_pace_of_the_cars_own_similar_drives() -> None:
    """Seen only as an odometer jump (no park time, e.g. Smartcar): its start is guessed from how
    fast this car covered similar distances when it was seen, not from a city-wide 40 km/h."""
    car = Car()
    car.sample()
    for _ in range(3):  # the 20 km commute at 66 km/h, seen every minute
        car.park(8 * 3600, every=1800)
        car.drive(20, 18, every=60)
    car.park(8 * 3600, every=1800)
    car.park(600, every=None)
    car.drive(20, 18, every=None, report_at_park=False)  # the same commute between two polls
    car.park(1800 - 600 - 18 * 60, every=None)
    car.sample()
    t = analysis.trips(whole_km(car.frame()), S)
    unseen = t.loc[t["inferred"]]
    assert len(unseen) == 1
    true = car.trips[-1]
    assert unseen["start_ts"].iloc[0] == pytest.approx(true.start, abs=240)


def test_a_charge_paused_and_resumed_unseen_is_one_session() -> None:
    """Load management pauses a home charge; it resumes while the car sleeps and is polled every
    30 min, so the second half is seen only as SoC that rose with the cable in all along."""
    car = Car(soc=0.40)
    car.sample()
    car.plug()
    car.charge(0.55, 11.0, every=60)
    car.sample(charging_state="plugged")  # paused
    car.park(900, every=None)
    car.sample(charging_state="plugged")
    car.park(1800, every=None)
    car.soc = 0.80  # charged on, unseen
    car.sample(charging_state="complete")
    car.park(1800, every=None)
    car.unplug()
    c = analysis.charges(car.frame(), S)
    assert len(c) == 1
    assert c["energy_added_kwh"].iloc[0] == pytest.approx(0.40 * 62.0, rel=0.02)
    assert not bool(c["unseen"].iloc[0])


def test_a_fast_charge_seen_once_without_power_still_spans_its_time() -> None:
    """A #5 at a 300 kW charger, polled every 5 min: one charging report, no power in it (the v2
    API sends no DC voltage), then the car is gone. The session must cover the stop, not be an
    instant at the one report."""
    car = Car(soc=0.24, model="#5", capacity_kwh=94.0)
    car.sample()
    car.drive(30, 25, every=300)
    car.park(120, every=None)
    car.plug(every_report=False)
    start = car.now
    car.charge(0.32, 250.0, every=None)
    car.sample(charging_state="dc_charging", charging_power=float("nan"))
    car.charge(0.43, 250.0, every=None)
    end = car.now
    car.rows.pop()  # the "complete" report fell between two polls
    car.unplug(every_report=False)
    car.park(120, every=None)
    car.drive(5, 6, every=300)
    c = analysis.charges(car.frame(), S)
    assert len(c) == 1
    assert c["start_ts"].iloc[0] < c["end_ts"].iloc[0]
    assert c["start_ts"].iloc[0] <= start + 60 and c["end_ts"].iloc[0] >= end - 60


def test_trip_energy_is_finer_than_whole_percent_where_the_range_moves_with_it() -> None:
    """Whole-percent SoC (0.62 kWh steps) and a range that is the car's own estimate, not SoC x a
    constant (a reserve, a consumption factor): within the drive the range still moves in step
    with SoC, in kilometres, and that places both ends inside their rounding interval."""
    car = Car(soc=0.8046)
    car.sample()
    car.park(3600, every=600)
    car.drive(30, 30, every=60, kwh_100km=15.0)
    car.park(3600, every=600)
    df = car.frame()
    df["electric_range"] = (df["battery_soc"] - 0.02).clip(lower=0) * 350_000.0
    df["battery_soc"] = df["battery_soc"].round(2)
    t = analysis.trips(df, S)
    assert len(t) == 1
    true = car.trips[0].energy_kwh
    assert t["energy_kwh"].iloc[0] == pytest.approx(true, rel=0.03)
    # the same reports without the range: only whole percent, a step off
    t0 = analysis.trips(df.drop(columns=["electric_range"]), S)
    assert abs(t0["energy_kwh"].iloc[0] - true) > 0.1
