"""The accuracy bench reads the smart cars' own trip journals as the runtime does and scores trips
per source: the journal's trips are the car's own (distance to 0.1 km of the truth), polling fills
in where there is no journal (recording off, Smartcar), and ``--no-journal`` measures polling."""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bench import accuracy
from bench.accuracy_journal import SimJournal
from bench.accuracy_sampler import Sampled, sample_direct
from bench.accuracy_scorer import match, trips_by_source
from exporter.clock import ManualClock
from exporter.providers.base import ProviderError
from exporter.simulator.faults import FaultKind
from exporter.simulator.fleet import Fleet

DAYS = 3.0


@pytest.fixture(scope="module")
def smart_run(tmp_path_factory: pytest.TempPathFactory) -> Sampled:
    """Three smart cars for three days, journals read; the #5's owner keeps trip recording off."""
    import asyncio

    db = tmp_path_factory.mktemp("acc") / "h.db"
    return asyncio.run(
        sample_direct(
            db,
            ["#1", "#3", "#5"],
            DAYS,
            accuracy.REGIMES["default"],
            seed=2,
            rare=True,
            journal=True,
            recording_off=("#5",),
        )
    )


def _by_vin(res: Sampled) -> dict[str, tuple[list[Any], list[Any]]]:
    return {
        vin: (t, d) for vin, (t, d, _, _) in zip(res.truth, accuracy.vehicles(res), strict=True)
    }


def test_recording_cars_get_their_trips_from_the_journal_to_the_100_m(smart_run: Sampled) -> None:
    res = smart_run
    assert res.journal_reads > 0 and res.journal_trips > 0
    cars = _by_vin(res)
    checked = 0
    for vin, model in res.models.items():
        if model == "#5":
            continue
        truth, detected = cars[vin]
        journal = [d for d in detected if d["source"] == "journal"]
        assert journal, model
        m = match(
            [(t["start"], t["end"]) for t in truth], [(d["start_ts"], d["end_ts"]) for d in journal]
        )
        assert len(m.pairs) == len(journal), model  # every journal trip is a real drive
        for i, j in m.pairs:
            t, d = truth[i], journal[j]
            assert abs(d["distance_km"] - t["distance_km"]) <= 0.1, (model, t, d)
            assert d["start_ts"] == pytest.approx(t["start"], abs=0.001)  # the car's own times
            assert d["end_ts"] == pytest.approx(t["end"], abs=0.001)
            checked += 1
    assert checked >= 5


def test_polling_fills_in_for_the_car_whose_recording_is_off(smart_run: Sampled) -> None:
    res = smart_run
    (off,) = [v for v, m in res.models.items() if m == "#5"]
    truth, detected = _by_vin(res)[off]
    assert truth and detected
    assert {d["source"] for d in detected} == {"poll"}
    with sqlite3.connect(res.db) as conn:
        rows = conn.execute(
            "SELECT vin, start_ts, end_ts, fetched_at FROM journal_trips"
        ).fetchall()
    assert rows and off not in {r[0] for r in rows}  # nothing listed for it, nothing stored
    # a trip is listed once the car parked: read after it ended, never while it was under way
    assert all(fetched >= end for _, _, end, fetched in rows)
    long = [t for t in truth if t["distance_km"] >= 2.0]
    m = match(
        [(t["start"], t["end"]) for t in long], [(d["start_ts"], d["end_ts"]) for d in detected]
    )
    assert long and len(m.pairs) >= 0.9 * len(long)


def test_trips_are_scored_per_source_beside_the_total(smart_run: Sampled) -> None:
    cars = [(t, d) for t, d, _, _ in accuracy.vehicles(smart_run)]
    scores = trips_by_source(cars, 300.0)
    assert list(scores) == ["all", "journal", "poll"]
    assert scores["journal"]["distance error km p95"] <= 0.1
    assert scores["poll"]["found >= 2 km %"] > 0  # the #5's drives
    for key in ("found >= 2 km %", "found < 2 km %"):  # the sources split the total
        assert scores["journal"][key] + scores["poll"][key] == pytest.approx(scores["all"][key])


async def test_no_journal_and_smartcar_score_polling_alone(tmp_path: Path) -> None:
    args = argparse.Namespace(days=2.0, seeds=[2], rare=True, journal=False)
    res = await accuracy.run_regime(accuracy.REGIMES["default"], args, tmp_path)
    assert list(res["trips"]) == ["all"] and res["journal_reads"] == 0
    args.journal = True  # Smartcar has no journal: nothing to split, nothing read
    res_sc = await accuracy.run_regime(accuracy.REGIMES["smartcar"], args, tmp_path)
    assert list(res_sc["trips"]) == ["all"] and res_sc["journal_reads"] == 0
    res_j = await accuracy.run_regime(accuracy.REGIMES["default"], args, tmp_path / "j")
    text = accuracy.markdown({"default": res_j, "smartcar": res_sc}, args)
    assert "| trips by source (default) | all | journal | poll |" in text
    assert "trips by source (smartcar)" not in text
    assert "| journal reads |" in text


async def test_a_faulty_cloud_fails_journal_calls_as_it_fails_polls() -> None:
    clock = ManualClock(1_772_323_200.0)
    fleet = Fleet((), seed=4, clock=clock)
    vin = fleet.add("#1")
    clock.set(clock.now() + 2 * 86400.0)
    sim = SimJournal(fleet)
    sim.faults.script(FaultKind.RATE_LIMITED, count=1, endpoint="journal")  # tracks: "track"
    since = clock.now() - 2 * 86400.0
    with pytest.raises(ProviderError) as err:
        await sim.trips(vin, since, clock.now(), frozenset())
    assert err.value.reason == "rate_limited" and err.value.retry_after
    trips = await sim.trips(vin, since, clock.now(), frozenset())  # the next read works
    truth = fleet.ground_truth(vin)["trips"]
    assert trips and [t.start_ts for t in trips] == pytest.approx(
        [t["start"] for t in truth], abs=1e-3
    )
    assert all(t.route for t in trips)  # each new trip's track was read as well


def test_after_an_odometer_reset_the_journal_logs_the_new_units_count() -> None:
    """The car's journal and its reports come from one unit: after a reset (a replaced cluster)
    both count from the new unit's low value, while the ground truth keeps the physical one."""
    from exporter.simulator.smart.journal import journal_page

    clock = ManualClock(1_772_323_200.0)
    fleet = Fleet((), seed=1, clock=clock, rare=True)
    vin = fleet.add("#1")  # index 0 of a rare fleet: an odometer reset in its first three weeks
    car = fleet.vehicle(vin)
    reset_at = car.quirks.odometer_reset_at
    assert reset_at is not None
    clock.set(reset_at + 4 * 86400.0)
    shown = fleet.state(vin).odometer_km  # what the reports say now
    page = journal_page(fleet, vin, reset_at, clock.now(), 1, 50)
    assert page is not None
    newest = page["list"][0]
    truth = fleet.ground_truth(vin)["trips"][-1]
    assert float(newest["startTime"]) / 1000 == pytest.approx(truth["start"], abs=1e-3)
    assert truth["odometer_to_km"] > shown + 100  # the physical count runs on, far above
    assert float(newest["endOdometer"]) <= shown + 0.05  # the journal logs what the car showed
    assert float(newest["traveledDistance"]) == pytest.approx(truth["distance_km"], abs=0.05)
