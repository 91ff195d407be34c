"""carmetrics reads the smart trip journal through its own signed path, against the simulator.

The simulated cloud grants, rotates the token on the grant, pages and answers 8153 as the real one
does (tests/test_smart_journal_sim.py holds it to pysmarthashtag). Here: every logged trip arrives
exactly (times, distance, energy), with its route; the grant is posted once per access token; a car
whose trip recording is off gives no rows and no warning; a failed read is logged with its code and
the next poll is unaffected; re-reading never duplicates a row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from exporter import polyline
from exporter.clock import ManualClock
from exporter.config import PollConfig, SimulatorConfig
from exporter.health import Health
from exporter.history import History
from exporter.history_layout import JOURNAL_TABLE
from exporter.hub import Hub
from exporter.journal import JournalKnown
from exporter.journal_fetch import AFTER_DRIVE_S, ROUTE_RETRY_S, JournalFetcher
from exporter.journal_metrics import JournalCollector
from exporter.providers.smart import SmartProvider
from exporter.providers.smart.journal import GRANT, TRACK_PENDING_S, parse_trip
from exporter.providers.smart.settings import SmartAccount
from exporter.scheduler import Scheduler
from exporter.simulator.runner import SimulatorHandle, start_simulator
from exporter.snapshot import Snapshot
from tests.test_smart_wire_oracle import _provider

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

Env = tuple[SimulatorHandle, ManualClock, SmartProvider, str]


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    clock = ManualClock()
    handle = await start_simulator(SimulatorConfig(seed=21), clock, tick_every=None)
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
            provider = _provider(handle, session)
            await provider.start()
            await provider.vehicles()
            vin = handle.info()["vins"]["smart_eu"][0]
            yield handle, clock, provider, vin
            await provider.close()
    finally:
        await handle.close()


def _logged(handle: SimulatorHandle, vin: str, since: float) -> list[dict[str, Any]]:
    car = handle.fleet.vehicle(vin)
    return [
        t
        for t in handle.fleet.ground_truth(vin)["trips"]
        if t["start"] >= since and car.journal_recording(t["start"])
    ]


def _grants(handle: SimulatorHandle) -> int:
    return sum(1 for c in handle.smart.captured or () if c.path == GRANT)


async def test_every_logged_trip_arrives_exactly_with_its_route(env: Env) -> None:
    handle, clock, provider, vin = env
    since = clock.now()
    clock.advance(10 * 86400)  # more than one page of 20 trips
    truth = _logged(handle, vin, since)
    assert len(truth) > 20
    assert (await provider.poll(vin)).error is None  # renews the day-old token first
    handle.smart.captured = []
    got = await provider.journal(vin, since, frozenset())
    assert _grants(handle) == 1
    assert [round(t.start_ts) for t in got] == [round(t["start"]) for t in truth]
    for mine, real in zip(got, truth, strict=True):
        assert mine.end_ts == pytest.approx(real["end"], abs=0.001)
        assert mine.distance_m == pytest.approx(real["distance_km"] * 1000, abs=50)
        assert mine.energy_kwh == pytest.approx(real["energy_kwh"], rel=0.02, abs=0.02)
        assert mine.route is not None and len(mine.route) >= 1
        lat, lon = mine.route[-1]
        assert (lat, lon) == pytest.approx((real["end_lat"], real["end_lon"]), abs=0.01)

    # the same token: no second grant; stored routes are not asked for again
    handle.smart.captured = []
    again = await provider.journal(vin, since, frozenset(t.trip_id for t in got))
    assert _grants(handle) == 0
    assert [t.trip_id for t in again] == [t.trip_id for t in got]
    assert all(t.route is None for t in again)
    assert not any("journal-service" in c.path for c in handle.smart.captured or ())

    # a renewed token: the grant is posted again (it is cached per token)
    session = await provider.auth.session()
    await provider.auth.renew(session.access_token)
    handle.smart.captured = []
    await provider.journal(vin, clock.now() - 86400, frozenset())
    assert _grants(handle) == 1
    handle.smart.captured = None


async def test_recording_off_gives_nothing_and_no_warning(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    handle, clock, provider, vin = env
    since = clock.now()
    handle.fleet.set_journal_recording(vin, False)
    clock.advance(3 * 86400)
    assert handle.fleet.ground_truth(vin)["trips"]
    with caplog.at_level(logging.INFO):
        assert await provider.journal(vin, since, frozenset()) == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [r for r in caplog.records if "8153" in r.getMessage()]  # debug only
    # switched on again: only the trips from then on are in the journal
    handle.fleet.set_journal_recording(vin, True)
    on_at = clock.now()
    clock.advance(2 * 86400)
    got = await provider.journal(vin, since, frozenset())
    assert got and all(t.start_ts >= on_at for t in got)
    assert len(got) == len(_logged(handle, vin, since))


async def _fetcher(env: Env, tmp_path: Path) -> tuple[JournalFetcher, History, Scheduler]:
    _handle, clock, provider, vin = env
    history = History(tmp_path / "h.db")
    history.open()
    scheduler = Scheduler(Hub(), Health(), clock, PollConfig())
    scheduler.add(vin, provider)
    return JournalFetcher(history, scheduler, clock), history, scheduler


def _rows(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            f"SELECT trip_id, start_ts, distance_m, route, route_points FROM {JOURNAL_TABLE}"
        ).fetchall()


async def test_re_reading_stores_each_trip_once(env: Env, tmp_path: Path) -> None:
    handle, clock, _p, vin = env
    fetcher, history, _ = await _fetcher(env, tmp_path)
    try:
        clock.advance(4 * 86400)
        assert await fetcher.fetch(vin)
        await history.flush()
        first = _rows(history.path)
        truth = _logged(handle, vin, clock.now() - 30 * 86400)
        assert len(first) == len(truth) > 0
        clock.advance(86400)
        assert await fetcher.fetch(vin)
        assert await fetcher.fetch(vin)
        await history.flush()
        second = _rows(history.path)
        assert len(second) == len(_logged(handle, vin, 0)) > len(first)
        assert len({r[0] for r in second}) == len(second)
        # routes read once are kept, and decode to the stored number of points
        for _tid, _start, _dist, route, n in second:
            assert route is not None and len(polyline.decode(route)) == n
    finally:
        history.close()


async def test_a_failed_read_is_logged_with_its_code_and_polling_goes_on(
    env: Env, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    handle, clock, provider, vin = env
    fetcher, history, _ = await _fetcher(env, tmp_path)
    try:
        clock.advance(86400)
        handle.faults.script("server_error", count=5, endpoint="journal", cloud="smart")
        with caplog.at_level(logging.WARNING):
            assert not await fetcher.fetch(vin)
        warned = [r for r in caplog.records if r.getMessage().startswith("trip journal not read")]
        assert len(warned) == 1 and str(getattr(warned[0], "code", "")).startswith("5")
        assert (await provider.poll(vin)).error is None
        await history.flush()
        assert _rows(history.path) == []
        registry = CollectorRegistry()
        registry.register(JournalCollector(fetcher))
        text = generate_latest(registry).decode()
        assert (
            'carmetrics_journal_reads_total{code="503",reason="upstream",result="failed"} 1.0'
            in (text)
        ), text
    finally:
        history.close()


async def test_a_drive_ending_brings_the_next_read_forward(env: Env, tmp_path: Path) -> None:
    _handle, clock, _p, vin = env
    fetcher, history, _ = await _fetcher(env, tmp_path)
    try:
        fetcher._due[vin] = clock.now() + 6 * 3600

        def report(t: float, state: str) -> Snapshot:
            return Snapshot.build(vin, "smart", t, t, {"power_state": state})

        fetcher.on_report(report(clock.now(), "driving"))
        assert fetcher._due[vin] == clock.now() + 6 * 3600
        fetcher.on_report(report(clock.now() + 60, "off"))
        assert fetcher._due[vin] == clock.now() + AFTER_DRIVE_S
    finally:
        history.close()


def test_entries_without_a_start_and_end_are_skipped_and_strings_read() -> None:
    item = {
        "tripId": "17",
        "startTime": "1767225600000",
        "endTime": "1767226800000",
        "traveledDistance": "12.5",
        "electricConsumption": "16.0",
        "avgSpeed": "37.5",
        "startOdometer": "100.0",
        "endOdometer": "112.5",
        "trackpoints": [{"position": {"latitude": "", "longitude": ""}}],
    }
    trip = parse_trip("V", item)
    assert trip is not None
    assert trip.distance_m == 12500 and trip.energy_kwh == pytest.approx(2.0)
    assert trip.avg_speed_mps == pytest.approx(37.5 / 3.6) and trip.start_latitude is None
    assert parse_trip("V", {**item, "endTime": ""}) is None
    assert parse_trip("V", {**item, "endTime": "1767225500000"}) is None  # ends before it starts
    assert parse_trip("V", "garbage") is None


async def test_a_retry_after_binds_the_journal_and_the_polls(env: Env, tmp_path: Path) -> None:
    handle, clock, _p, vin = env
    fetcher, history, scheduler = await _fetcher(env, tmp_path)
    try:
        clock.advance(86400)
        handle.faults.script("rate_limited", endpoint="journal", cloud="smart", retry_after=900)
        assert not await fetcher.fetch(vin)
        assert scheduler.not_before(vin) == pytest.approx(clock.now() + 900, abs=1)
        # and the other way: a Retry-After the polls got keeps the reader away until it expires
        done = asyncio.Event()
        read = fetcher.fetch

        async def fetch_and_tell(v: str) -> bool:
            try:
                return await read(v)
            finally:
                done.set()

        fetcher.fetch = fetch_and_tell  # type: ignore[method-assign]
        task = asyncio.create_task(fetcher.run())
        await clock.run_until(clock.now() + 800)
        assert fetcher.fetches == 1 and not done.is_set()
        await clock.run_until(clock.now() + 200)
        await asyncio.wait_for(done.wait(), 120)  # a generous bound on a loaded machine
        assert fetcher.fetches == 2
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        history.close()


def _routes(path: Path) -> dict[str, tuple[float, str | None]]:
    """trip id -> (start, stored route)."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute(f"SELECT trip_id, start_ts, route FROM {JOURNAL_TABLE}").fetchall()
    return {tid: (start, route) for tid, start, route in rows}


def _track_reads(handle: SimulatorHandle) -> int:
    return sum(1 for c in handle.smart.captured or () if "journal-service" in c.path)


async def test_a_track_not_processed_yet_is_asked_again_until_it_is(
    env: Env, tmp_path: Path
) -> None:
    """The cloud answers 8153 for a fresh trip's track (issue 14): such a trip is stored without
    a route and asked for again at later reads - also once newer trips moved the read's window
    (a day before the newest stored trip) past it - and stored with its route when it comes."""
    handle, clock, _p, vin = env
    fetcher, history, _ = await _fetcher(env, tmp_path)
    try:
        handle.smart.config.track_delay = 40 * 3600.0
        clock.advance(3.5 * 86400)
        first_read = clock.now()
        assert await fetcher.fetch(vin)
        await history.flush()
        first = _routes(history.path)
        waiting = {tid for tid, (_s, route) in first.items() if route is None}
        ended = {str(int(t["start"])): t["end"] for t in _logged(handle, vin, 0)}
        assert set(ended) >= set(first)
        assert waiting == {t for t in first if ended[t] > first_read - 40 * 3600.0} != set()
        assert all(first[t][1] for t in first if t not in waiting)  # the older ones: routed
        newest = max(start for start, _r in first.values())
        assert any(first[t][0] < newest - 86400.0 for t in waiting)  # behind the next window

        clock.advance(20 * 3600.0)  # the car drove on; tracks of 20 h more are processed
        assert await fetcher.fetch(vin)
        await history.flush()
        second = _routes(history.path)
        for tid in waiting:
            _start, route = second[tid]
            if ended[tid] + 40 * 3600.0 <= clock.now():
                assert route and polyline.decode(route), tid  # asked again, routed now
            else:
                assert route is None, tid  # still not processed: still waiting
        assert any(second[t][1] for t in waiting) and any(second[t][1] is None for t in waiting)
    finally:
        history.close()


async def test_a_track_the_cloud_never_has_is_stored_empty_once_old_enough(
    env: Env, tmp_path: Path
) -> None:
    """8153 on every track (the simulator's fault on endpoint ``track``): a trip is stored without
    a route and asked again while younger than TRACK_PENDING_S, then stored with an empty route
    for good and never asked again."""
    handle, clock, _p, vin = env
    fetcher, history, _ = await _fetcher(env, tmp_path)
    try:
        handle.faults.set_rate("data_unavailable", 1.0, cloud="smart", endpoint="track", vin=vin)
        clock.advance(86400)
        assert await fetcher.fetch(vin)
        await history.flush()
        day_one = _routes(history.path)
        assert day_one and all(route is None for _s, route in day_one.values())

        clock.advance(1.5 * 86400)
        assert await fetcher.fetch(vin)
        await history.flush()
        ended = {str(int(t["start"])): t["end"] for t in _logged(handle, vin, 0)}
        for tid, (_s, route) in _routes(history.path).items():
            old = ended[tid] <= clock.now() - TRACK_PENDING_S
            assert route == ("" if old else None), tid

        clock.advance(2 * 86400)  # every day-one trip is old enough now, and out of the window
        assert await fetcher.fetch(vin)
        await history.flush()
        after = _routes(history.path)
        assert all(after[tid][1] == "" for tid in day_one)

        handle.smart.captured = []
        assert await fetcher.fetch(vin)
        await history.flush()
        waiting = [t for t, (_s, r) in _routes(history.path).items() if r is None]
        assert _track_reads(handle) == len(waiting)  # only the young ones are asked again
        handle.smart.captured = None
    finally:
        history.close()


def test_reads_reach_back_past_the_wait_for_a_track() -> None:
    """The last retry of a track answered 8153, the one that stores "no route" for good, happens
    at the first read after TRACK_PENDING_S; the reads reach un-routed trips for ROUTE_RETRY_S."""
    interval = SmartAccount.model_fields["journal_interval"].default
    assert TRACK_PENDING_S + 4 * interval <= ROUTE_RETRY_S


async def test_a_history_that_does_not_answer_fails_one_read_only(
    env: Env, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The reader asks the history what it holds before each read; a history that cannot answer
    (a PostgreSQL server restarting) fails that read with one warning, not the reader's loop."""
    _handle, clock, _p, vin = env
    fetcher, history, _ = await _fetcher(env, tmp_path)
    try:
        clock.advance(86400)
        known = history.journal_known

        async def broken(v: str, since: float) -> JournalKnown:
            raise sqlite3.OperationalError("disk I/O error")

        history.journal_known = broken  # type: ignore[method-assign]
        with caplog.at_level(logging.WARNING):
            assert not await fetcher.fetch(vin)
        assert fetcher.failed_by == {("history", "none"): 1}
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
            "trip journal not read: the history did not answer"
        ]
        history.journal_known = known  # type: ignore[method-assign]
        assert await fetcher.fetch(vin)
    finally:
        history.close()
