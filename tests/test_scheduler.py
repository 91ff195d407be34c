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


async def test_a_poll_due_later_than_the_dispatchers_wake_up_does_not_wake_it() -> None:
    """Steady state of a fleet: every poll ends by scheduling its car minutes ahead, later than the
    dispatcher's next wake-up, so it costs the dispatcher no round (tasks, timers); the schedule
    is the same as before (first polls at 0, then every 600 s parked)."""
    clock = ManualClock()
    p = FakeProvider(clock, lambda vin, n: {"speed": 0.0})
    cfg = CFG.model_copy(update={"parked": 600, "driving": 600})
    sched = Scheduler(Hub(), Health(), clock, cfg)
    rounds = 0
    original = sched._wait

    async def counted(until: float) -> None:
        nonlocal rounds
        rounds += 1
        await original(until)

    sched._wait = counted  # type: ignore[method-assign]
    for i in range(20):
        sched.add(f"V{i:02d}", p, delay=i * 10.0)  # staggered, as a fleet's first polls are
    await run_for(clock, sched, 3000)
    assert times(p, "V00") == [0, 600, 1200, 1800, 2400, 3000]
    assert times(p, "V19") == [190, 790, 1390, 1990, 2590]
    # one round per due time the dispatcher sleeps to (20 cars, 5 or 6 polls each), none per poll's end
    assert len(p.calls) == 6 + 19 * 5
    assert rounds <= len(p.calls) + 2


async def test_a_round_that_waited_for_a_slot_sleeps_from_the_current_time() -> None:
    """The next wake-up is reckoned from when the dispatcher goes to sleep, not from when its round
    began: a round held up waiting for a free slot must not poll the next car late."""
    clock = ManualClock()
    p = FakeProvider(clock, lambda vin, n: {"speed": 0.0})
    p.gate = asyncio.Event()
    cfg = CFG.model_copy(update={"concurrency": 1})
    sched = Scheduler(Hub(), Health(), clock, cfg)
    sched.add("A", p)
    sched.add("B", p)  # due at once too: waits for A's slot
    sched.add("C", p, delay=100.0)
    task = asyncio.create_task(sched.run())
    for _ in range(10):
        await asyncio.sleep(0)
    await clock.run_until(clock.now() + 60)  # A holds the only slot for a minute
    p.gate.set()
    await clock.run_until(clock.now() + 50)  # t = 110
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert times(p, "C") == [100]
