"""Instances sharing accounts through PostgreSQL leases, in one process (a real PostgreSQL, real
time: leases expire by the database's clock). The process-level drill with kill -9 is
tests/test_fleet_e2e.py; here: the share, the hand-over on a clean stop and the wait for an
expired lease."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bench.postgres import Cluster
from exporter.clock import RealClock
from exporter.config import AccountConfig, Config, ConfigError, PollConfig
from exporter.fleet import settings as fleet_settings
from exporter.fleet.member import first_polls
from exporter.fleet.store import Claimed, PollTime
from exporter.providers import registry
from exporter.runtime import Runtime
from tests.toy_provider import ENTRY
from tests.toy_provider.cloud import ToyCloud

ACCOUNTS = 6
LEASE = 2.0


@pytest.fixture
async def clouds() -> AsyncIterator[list[ToyCloud]]:
    registry.register(ENTRY)
    out = []
    for a in range(ACCOUNTS):
        cloud = ToyCloud(RealClock())
        cloud.cars = {f"TOYFLEET{a:02d}CAR{c:04d}": 50.0 for c in range(2)}
        await cloud.start()
        out.append(cloud)
    try:
        yield out
    finally:
        for cloud in out:
            await cloud.close()
        registry.unregister(ENTRY.name)


@pytest.fixture
def dsn(postgres: Cluster, monkeypatch: pytest.MonkeyPatch) -> str:
    """The runtime keeps its history in SQLite here; the leases go to the test's PostgreSQL."""
    monkeypatch.setattr(fleet_settings, "dsn_of", lambda _config: postgres.dsn)
    return postgres.dsn


def config(tmp_path: Path, name: str, clouds: list[ToyCloud]) -> Config:
    return Config(
        db=tmp_path / f"{name}.db",
        poll=PollConfig(jitter=0, timeout=1.0, parked=1, asleep=1, driving=1, charging=1),
        accounts=tuple(
            AccountConfig(f"acct{i}", "toy", i, simulator=True, settings={"url": c.url})
            for i, c in enumerate(clouds)
        ),
        extra={"shard": {"mode": "auto", "lease": LEASE, "heartbeat": LEASE / 8}},
    )


async def until(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait for a condition (a deadline only a failure reaches)."""
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        await asyncio.sleep(0.05)


async def started(cfg: Config) -> Runtime:
    rt = await Runtime.create(cfg, RealClock())
    await rt.start()
    return rt


def held(rt: Runtime) -> set[str]:
    assert rt.fleet is not None
    return set(rt.fleet.held_accounts())


async def test_two_instances_split_the_accounts_and_hand_over_on_a_clean_stop(
    dsn: str, clouds: list[ToyCloud], tmp_path: Path
) -> None:
    a = await started(config(tmp_path, "a", clouds))
    b = await started(config(tmp_path, "b", clouds))
    try:
        await until(lambda: len(held(a)) == 3 and len(held(b)) == 3)
        assert not held(a) & held(b)
        # each polls exactly the cars of the accounts it holds
        await until(lambda: len(a.hub.latest_all()) == 6 and len(b.hub.latest_all()) == 6)
        cars_a = {v.account for v in a.hub.vehicles.values()}
        assert cars_a == held(a)
        assert set(a.hub.latest_all()).isdisjoint(b.hub.latest_all())
        stopped_at = time.monotonic()
        await a.stop()
        await until(lambda: len(held(b)) == ACCOUNTS)
        # handed back, not expired: faster than the lease
        assert time.monotonic() - stopped_at < LEASE
        assert b.fleet is not None and b.fleet.stats.takeovers == 0
        await until(lambda: len(b.hub.latest_all()) == 12)
    finally:
        await b.stop()


async def test_a_dead_instances_accounts_wait_for_its_lease_then_move(
    dsn: str, clouds: list[ToyCloud], tmp_path: Path
) -> None:
    a = await started(config(tmp_path, "a", clouds))
    b = await started(config(tmp_path, "b", clouds))
    try:
        await until(lambda: len(held(a)) == 3 and len(held(b)) == 3)
        assert a.fleet is not None and b.fleet is not None
        lost = held(a)
        # a dies: its heartbeat stops, nothing is handed back (as after kill -9)
        for task in a.fleet._tasks:
            task.cancel()
        died = time.monotonic()
        await until(lambda: held(b) >= lost, timeout=LEASE * 10)
        waited = time.monotonic() - died
        # never before the lease ran out (minus the heartbeat a renewal may have been ahead of
        # the death) and not much after it
        assert waited >= LEASE - LEASE / 8 - 0.1
        assert b.fleet.stats.takeovers == 3
    finally:
        await b.stop()
        await a.stop()


async def test_an_instance_cut_off_from_the_database_stops_polling_before_its_lease_expires(
    dsn: str, clouds: list[ToyCloud], tmp_path: Path
) -> None:
    a = await started(config(tmp_path, "a", clouds))
    b = await started(config(tmp_path, "b", clouds))
    try:
        await until(lambda: len(held(a)) == 3 and len(held(b)) == 3)
        assert a.fleet is not None and b.fleet is not None
        lost = held(a)

        async def unreachable() -> None:
            raise OSError("connection refused")

        a.fleet._connection = unreachable  # type: ignore[method-assign,assignment]
        await a.fleet._reconnect()
        events: list[str] = []

        def watch() -> bool:
            if not held(a) and "a let go" not in events:
                events.append("a let go")
            if held(b) >= lost and "b took over" not in events:
                events.append("b took over")
            return len(events) == 2

        await until(watch, timeout=LEASE * 10)
        # a stopped polling on its own before b could claim its accounts
        assert events == ["a let go", "b took over"]
        assert not {v.account for v in a.hub.vehicles.values()}
        assert a.fleet.stats.lost == 3 and a.fleet.stats.renewal_failures >= 1
    finally:
        await b.stop()
        await a.stop()


def test_sharding_needs_a_postgresql_database(tmp_path: Path) -> None:
    cfg = Config(db=tmp_path / "h.db", extra={"shard": {"mode": "auto"}})
    with pytest.raises(ConfigError, match=r"shard\.mode = 'auto' needs the PostgreSQL database"):
        fleet_settings.load_settings(cfg)


def test_the_heartbeat_must_leave_room_for_a_lost_renewal(tmp_path: Path) -> None:
    cfg = Config(db=tmp_path / "h.db", extra={"shard": {"lease": 10, "heartbeat": 5}})
    with pytest.raises(ConfigError, match=r"shard.heartbeat = 5.0: expected less than half"):
        fleet_settings.load_settings(cfg)


def test_a_successor_continues_a_handed_back_account_where_its_holder_left_it() -> None:
    seen = [PollTime("A", 100.0, 160.0), PollTime("B", 90.0, 690.0)]
    got = first_polls(seen, Claimed("acct", 2, None, 150.0), shortest=60.0)
    assert got == ({"A": 160.0, "B": 690.0}, None)


def test_after_a_takeover_a_car_due_before_the_lease_ran_out_counts_as_polled_then() -> None:
    # the dead holder may have polled A (due at 160) after its last write, up to 170 at most
    seen = [PollTime("A", 100.0, 160.0), PollTime("B", 90.0, 690.0), PollTime("C", None, 120.0)]
    got = first_polls(seen, Claimed("acct", 2, "dead-instance", 170.0), shortest=30.0)
    # C's interval is unknown (no poll recorded): the shortest one; so is that of a car with no
    # record at all (it may have been listed and polled in the holder's last second)
    assert got == ({"A": 170.0 + 60.0, "B": 690.0, "C": 170.0 + 30.0}, 170.0 + 30.0)
