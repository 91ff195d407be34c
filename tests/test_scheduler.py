"""The poller: adaptive intervals, concurrency limit, backoff, Retry-After and provider floors.

The shared scripted provider (tests/fakes.py) stands in for a cloud here because what is under test
is the timing logic; the real clients are exercised over HTTP against the simulators in their own
tests.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from exporter.clock import ManualClock
from exporter.config import PollConfig
from exporter.health import Health
from exporter.hub import Hub
from exporter.providers.base import (
    RateLimited,
    ReauthRequired,
    UpstreamUnavailable,
)
from exporter.scheduler import Scheduler
from tests.fakes import FakeProvider

CFG = PollConfig(
    driving=60,
    charging=60,
    parked=600,
    asleep=1800,
    jitter=0,
    concurrency=2,
    backoff_base=30,
    backoff_max=3600,
)


def times(p: FakeProvider, vin: str) -> list[float]:
    t0 = 1_767_225_600.0
    return [round(t - t0) for v, t in p.calls if v == vin]


async def run_for(clock: ManualClock, sched: Scheduler, seconds: float) -> None:
    task = asyncio.create_task(sched.run())
    await clock.run_until(clock.now() + seconds)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_interval_follows_the_vehicle_state() -> None:
    clock = ManualClock()
    states = {1: {"speed": 20.0}, 2: {"speed": 25.0}, 3: {"charging_state": "charging"}}
    p = FakeProvider(clock, lambda vin, n: states.get(n, {"speed": 0.0}))
    sched = Scheduler(Hub(), Health(), clock, CFG)
    sched.add("V1", p)
    await run_for(clock, sched, 2000)
    # driving, driving, charging -> 60 s; just parked -> still 60 s for 15 min after the last
    # activity (seen at t=120), so a charge or a short hop right after parking is not missed;
    # then parked -> 600 s
    assert times(p, "V1") == [*range(0, 1021, 60), 1620]


async def test_concurrency_limit_is_never_exceeded() -> None:
    clock = ManualClock()
    p = FakeProvider(clock, lambda vin, n: {})
    p.gate = asyncio.Event()
    sched = Scheduler(Hub(), Health(), clock, CFG)
    for i in range(6):
        sched.add(f"V{i}", p)
    task = asyncio.create_task(sched.run())
    for _ in range(20):
        await asyncio.sleep(0)
    assert p.active == 2
    p.gate.set()
    await clock.run_until(clock.now() + 1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert p.max_active == 2
    assert len(p.calls) == 6


async def test_failures_back_off_exponentially_and_recover() -> None:
    clock = ManualClock()
    p = FakeProvider(clock, lambda vin, n: UpstreamUnavailable("503", code="503") if n <= 3 else {})
    health = Health()
    sched = Scheduler(Hub(), health, clock, CFG)
    sched.add("V1", p)
    await run_for(clock, sched, 400)
    t = times(p, "V1")
    gaps = [b - a for a, b in itertools.pairwise(t)]
    assert 15 <= gaps[0] <= 30 and 30 <= gaps[1] <= 60 and 60 <= gaps[2] <= 120
    h = health.vehicle("V1")
    assert h.errors[("upstream", "503")] == 3
    assert h.polls == 1 and h.consecutive_failures == 0
    assert health.api_up[("smart", "acc")] is True


async def test_retry_after_is_obeyed_exactly() -> None:
    clock = ManualClock()
    p = FakeProvider(
        clock,
        lambda vin, n: RateLimited("slow down", code="429", retry_after=500) if n == 1 else {},
    )
    sched = Scheduler(Hub(), Health(), clock, CFG)
    sched.add("V1", p)
    sched.request_poll("V1", 0)
    await run_for(clock, sched, 700)
    t = times(p, "V1")
    assert t[0] == 0
    assert t[1] >= 500  # not one request before Retry-After expired


async def test_request_poll_during_a_running_poll_is_not_lost() -> None:
    clock = ManualClock()
    p = FakeProvider(clock, lambda vin, n: {})
    p.gate = asyncio.Event()
    sched = Scheduler(Hub(), Health(), clock, CFG)
    sched.add("V1", p)
    task = asyncio.create_task(sched.run())
    for _ in range(10):
        await asyncio.sleep(0)
    sched.request_poll("V1", delay=8)  # e.g. after a command
    p.gate.set()
    await clock.run_until(clock.now() + 100)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert times(p, "V1")[:2] == [0, 8]


async def test_provider_floor_spreads_polls_for_a_budget() -> None:
    clock = ManualClock()
    p = FakeProvider(clock, lambda vin, n: {"speed": 30.0})
    p.floor = 5400
    sched = Scheduler(Hub(), Health(), clock, CFG)
    sched.add("V1", p)
    await run_for(clock, sched, 11000)
    assert times(p, "V1") == [0, 5400, 10800]


async def test_reauth_required_pauses_until_asked() -> None:
    clock = ManualClock()
    p = FakeProvider(clock, lambda vin, n: ReauthRequired("consent revoked") if n == 1 else {})
    health = Health()
    sched = Scheduler(Hub(), health, clock, CFG)
    sched.add("V1", p)
    task = asyncio.create_task(sched.run())
    await clock.run_until(clock.now() + 1000)
    assert health.vehicle("V1").state == "paused"
    assert len(p.calls) == 1
    sched.request_poll("V1")  # e.g. the user reconnected
    await clock.run_until(clock.now() + 1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(p.calls) == 2


@pytest.mark.parametrize("jitter", [0.1, 0.3])
async def test_jitter_stays_within_its_share(jitter: float) -> None:
    import random

    clock = ManualClock()
    p = FakeProvider(clock, lambda vin, n: {})
    cfg = CFG.model_copy(update={"jitter": jitter})
    sched = Scheduler(Hub(), Health(), clock, cfg, rng=random.Random(1))
    sched.add("V1", p)
    await run_for(clock, sched, 20000)
    t = times(p, "V1")
    gaps = [b - a for a, b in itertools.pairwise(t)]
    assert all(600 * (1 - jitter) - 1 <= g <= 600 * (1 + jitter) + 1 for g in gaps)
    assert len(set(gaps)) > 1


async def test_a_requested_poll_never_jumps_a_retry_after() -> None:
    """Webhooks and commands ask for polls; the cloud's Retry-After still wins."""
    clock = ManualClock()
    p = FakeProvider(
        clock,
        lambda vin, n: RateLimited("slow down", code="429", retry_after=500) if n == 1 else {},
    )
    sched = Scheduler(Hub(), Health(), clock, CFG)
    sched.add("V1", p)
    task = asyncio.create_task(sched.run())
    await clock.run_until(clock.now() + 10)
    sched.request_poll("V1")  # e.g. a webhook arrived
    with pytest.raises(RateLimited):
        await sched.poll_now("V1")  # e.g. a command's verification
    await clock.run_until(clock.now() + 600)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert times(p, "V1")[:2] == [0, 500]
