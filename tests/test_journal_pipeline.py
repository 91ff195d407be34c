"""The journal end to end: the real runtime polls and reads the journal of the simulated cars over
loopback on a moving ManualClock; ``carmetrics trips`` then lists the car's own trips (exact against
the simulator's ground truth) with polling filling in for a car whose trip recording is off, and
``carmetrics report`` draws each journal trip's route."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from analysis.journal import load_journal
from bench.demo_runtime import advance, smart_demo_config, started
from exporter.cli import cli
from exporter.clock import ManualClock

START = 1_772_323_200.0  # 2026-03-01T00:00:00Z
DAYS = 2.0


async def _run(db: Path) -> tuple[dict[str, Any], str, str, str, float]:
    """Three smart cars for two simulated days: the first records every trip in its journal, the
    second none, the third only from the middle of the run on (returned: when)."""
    clock = ManualClock(START)
    rt = await started(smart_demo_config(db, seed=3, models=("#1", "#5", "#3")), clock)
    try:
        fleet = rt.simulator.fleet
        by_model = {fleet.vehicle(v).spec.model: v for v in rt.scheduler.vins}
        on, off, late = by_model["#1"], by_model["#5"], by_model["#3"]
        fleet.set_journal_recording(off, False)
        fleet.set_journal_recording(late, False)
        switched = START + DAYS * 86400.0 / 2
        end = START + DAYS * 86400.0
        await advance(rt, clock, switched)
        fleet.set_journal_recording(late, True)
        await advance(rt, clock, end)
        assert rt.journal is not None
        assert rt.journal.fetches >= 3 * (DAYS * 4 - 1)  # every 6 h and after drives, each car
        assert rt.journal.failures == 0
        for vin in (on, off, late):  # a last read now, so every finished trip is in
            assert await rt.journal.fetch(vin)
        await rt.history.flush()
        truth = {vin: fleet.ground_truth(vin) for vin in (on, off, late)}
    finally:
        await rt.stop()
    return truth, on, off, late, switched


@pytest.fixture(scope="module")
def run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, Any], str, str, str, float]:
    db = tmp_path_factory.mktemp("journal") / "h.db"
    truth, on, off, late, switched = asyncio.run(_run(db))
    return db, truth, on, off, late, switched


@pytest.fixture
def sampled(
    run: tuple[Path, dict[str, Any], str, str, str, float],
) -> tuple[Path, dict[str, Any], str, str]:
    return run[:4]


def test_before_the_first_journal_entry_polling_lists_the_trips(
    run: tuple[Path, dict[str, Any], str, str, str, float],
) -> None:
    db, truth, _on, _off, late, switched = run
    out = CliRunner().invoke(
        cli, ["trips", "--db", str(db), "--vin", late, "--format", "json", "--tz", "UTC"]
    )
    rows = json.loads(out.output)
    journal = [r for r in rows if r["source"] == "journal"]
    polled = [r for r in rows if r["source"] == "poll"]
    logged = [t for t in truth[late]["trips"] if t["start"] >= switched]
    assert len(journal) == len(logged) > 0
    assert all(r["start_ts"] >= switched for r in journal)
    before = [t for t in truth[late]["trips"] if t["end"] < switched]
    assert before and polled  # the half without a journal comes from polling
    assert all(r["start_ts"] < switched for r in polled)  # and nothing is listed twice


def test_the_journal_holds_every_trip_of_the_recording_car(
    sampled: tuple[Path, dict[str, Any], str, str],
) -> None:
    db, truth, on, off = sampled
    j = load_journal(db)
    assert off not in set(j["vin"])  # a car that records nothing: no rows, no errors
    j = j.loc[j["vin"] == on]
    trips = truth[on]["trips"]
    assert len(j) == len(trips) > 2
    assert np.allclose(j["start_ts"], [t["start"] for t in trips], atol=0.001)
    assert np.allclose(j["distance_m"], [t["distance_km"] * 1000 for t in trips], atol=50)
    assert j["route_points"].min() >= 1


def test_trips_prefer_the_journal_and_fill_gaps_from_polling(
    sampled: tuple[Path, dict[str, Any], str, str],
) -> None:
    db, truth, on, off = sampled
    out = CliRunner().invoke(cli, ["trips", "--db", str(db), "--format", "json", "--tz", "UTC"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    mine = [r for r in rows if r["vin"] == on]
    other = [r for r in rows if r["vin"] == off]
    # the recording car: exactly its own trips, nothing doubled by polling
    assert {r["source"] for r in mine} == {"journal"}
    real = truth[on]["trips"]
    assert len(mine) == len(real)
    for r, t in zip(mine, real, strict=True):
        assert r["start_ts"] == pytest.approx(t["start"], abs=0.001)
        assert r["end_ts"] == pytest.approx(t["end"], abs=0.001)
        assert r["distance_km"] == pytest.approx(t["distance_km"], abs=0.05)
        assert r["energy_kwh"] == pytest.approx(t["energy_kwh"], rel=0.02, abs=0.02)
        assert r["start_soc_pct"] is not None  # from the reports around the trip
    # the car without a journal: polling's trips
    assert other and {r["source"] for r in other} == {"poll"}
    assert all(r["trip_id"] is None for r in other)
    # the terminal table says where each trip came from
    table = CliRunner().invoke(cli, ["trips", "--db", str(db), "--tz", "UTC"]).output
    assert "source" in table.splitlines()[0] and "journal" in table and "poll" in table


def test_the_report_draws_each_journal_trip_route(
    sampled: tuple[Path, dict[str, Any], str, str], tmp_path: Path
) -> None:
    db, _truth, on, off = sampled
    out = CliRunner().invoke(cli, ["report", "--db", str(db), "--out", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert (tmp_path / f"{on}_routes.png").stat().st_size > 1000
    assert not (tmp_path / f"{off}_routes.png").exists()  # no journal, no routes
    html = (tmp_path / "report.html").read_text()
    assert "Trip routes" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.I)  # nothing fetched


def test_combine_drops_poll_trips_a_journal_trip_overlaps() -> None:
    """In time or in odometer (an inferred trip placed at the wrong time), and keeps the rest."""
    import pandas as pd

    from analysis.journal import combine
    from analysis.trips import empty

    columns = list(empty().columns)
    poll = pd.DataFrame(
        {
            **{c: [np.nan] * 3 for c in columns},
            "vin": ["V"] * 3,
            "start_ts": [0.0, 5000.0, 20000.0],
            "end_ts": [1000.0, 6000.0, 21000.0],
            "start_odometer_km": [10.0, 40.0, 80.0],
            "end_odometer_km": [20.0, 50.0, 90.0],
        }
    )
    journal = pd.DataFrame(
        {
            **{c: [np.nan] * 2 for c in columns},
            "vin": ["V", "V"],
            "start_ts": [500.0, 9000.0],  # overlaps the first in time
            "end_ts": [1200.0, 9500.0],
            "start_odometer_km": [10.0, 40.2],  # the second: same road as poll trip 2, other time
            "end_odometer_km": [20.0, 49.9],
            "source": ["journal", "journal"],
            "trip_id": ["a", "b"],
        }
    )
    got = combine(poll, journal)
    assert list(got["source"]) == ["journal", "journal", "poll"]
    assert list(got["start_ts"]) == [500.0, 9000.0, 20000.0]


def test_combine_keeps_the_next_drive_a_whole_km_odometer_reads_low() -> None:
    """The smart odometer is cut to whole km: a drive starting where a journal trip ended at
    31719.7 km is read from 31719, sharing 0.7 km of odometer with the journal trip without being
    the same drive (seen on the accuracy bench: the drive vanished from the trip list)."""
    import pandas as pd

    from analysis.journal import combine
    from analysis.trips import empty

    columns = list(empty().columns)
    poll = pd.DataFrame(
        {
            **{c: [np.nan] for c in columns},
            "vin": ["V"],
            "start_ts": [4000.0],
            "end_ts": [4650.0],
            "start_odometer_km": [31719.0],
            "end_odometer_km": [31727.0],
        }
    )
    journal = pd.DataFrame(
        {
            **{c: [np.nan] for c in columns},
            "vin": ["V"],
            "start_ts": [0.0],
            "end_ts": [690.0],
            "start_odometer_km": [31712.0],
            "end_odometer_km": [31719.7],
            "source": ["journal"],
            "trip_id": ["a"],
        }
    )
    got = combine(poll, journal)
    assert list(got["source"]) == ["journal", "poll"]


def test_combine_drops_the_last_km_of_a_journal_trip_read_as_a_hop() -> None:
    """A poll inferred a 1 km hop right after a journal trip, read 20124 -> 20125 on the whole-km
    odometer, while the journal trip ended at 20125.2: a drive starting there would read 20125, so
    the hop is the journal trip's own last kilometre (seen on the accuracy bench's faults regime)."""
    import pandas as pd

    from analysis.journal import combine
    from analysis.trips import empty

    columns = list(empty().columns)
    poll = pd.DataFrame(
        {
            **{c: [np.nan] for c in columns},
            "vin": ["V"],
            "start_ts": [1820.0],
            "end_ts": [1880.0],
            "start_odometer_km": [20124.0],
            "end_odometer_km": [20125.0],
        }
    )
    journal = pd.DataFrame(
        {
            **{c: [np.nan] for c in columns},
            "vin": ["V"],
            "start_ts": [0.0],
            "end_ts": [1820.0],
            "start_odometer_km": [20092.7],
            "end_odometer_km": [20125.2],
            "source": ["journal"],
            "trip_id": ["a"],
        }
    )
    got = combine(poll, journal)
    assert list(got["source"]) == ["journal"]


def test_journal_odometers_continue_across_a_replaced_cluster_like_the_polled_ones() -> None:
    """After a reset the car logs its trips with the new unit's low count; the trip list carries
    the step over for them as for polled trips, so both share one odometer (and the check that a
    polled trip is a journal trip's drive compares like with like)."""
    import pandas as pd

    import analysis
    from analysis.clean import clean
    from analysis.journal import as_trips
    from analysis.prep import prepare
    from analysis.settings import Settings
    from analysis.testing import Car

    s = Settings(timezone="UTC")
    car = Car()
    car.sample()
    logged = []
    for day in range(4):
        if day == 2:
            car.odometer = 3_000.0  # instrument cluster replaced: a new odometer at 3 km
        # the reset's day: no report until the drive, which starts before the step's first report
        car.park(8 * 3600, every=None if day == 2 else 600)
        t0, o0 = car.now, car.odometer
        car.drive(12, 20)
        logged.append((t0, car.now, o0, car.odometer))
    journal = pd.DataFrame(
        {
            "vin": car.vin,
            "trip_id": [str(i) for i in range(4)],
            "start_ts": [x[0] for x in logged],
            "end_ts": [x[1] for x in logged],
            "start_odometer_m": [x[2] for x in logged],
            "end_odometer_m": [x[3] for x in logged],
            "distance_m": 12_000.0,
        }
    )
    # the history is cleaned when loaded and again when prepared: the steps must survive that
    got = as_trips(journal, s, prepare(clean(car.frame()), s))
    polled = analysis.trips(car.frame(), s)
    assert len(polled) == len(got) == 4
    # one odometer for both: the polled trips' (the km driven before the step's first report are
    # unknown to the reports and counted as nothing, the same for both)
    for side in ("start_odometer_km", "end_odometer_km"):
        assert got[side].to_numpy() == pytest.approx(polled[side].to_numpy(), abs=1.0), side
    assert np.diff(got["start_odometer_km"].to_numpy()).min() > 11.0
