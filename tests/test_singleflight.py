"""One renewal for many callers, owned and cancellable: the helper both token ladders use."""

from __future__ import annotations

import asyncio

import pytest

from exporter.clock import ManualClock
from exporter.providers.base import MemoryTokenStore, UpstreamUnavailable
from exporter.providers.smartcar.rotation import RotatingToken, TokenPair
from exporter.singleflight import SingleFlight


async def test_callers_during_a_run_share_it_and_later_callers_start_another() -> None:
    runs = 0
    release = asyncio.Event()

    async def job() -> int:
        nonlocal runs
        runs += 1
        await release.wait()
        return runs

    flight: SingleFlight[int] = SingleFlight()
    waiters = [asyncio.create_task(flight.run(job)) for _ in range(5)]
    await asyncio.sleep(0)
    assert flight.running
    release.set()
    assert await asyncio.gather(*waiters) == [1] * 5
    assert flight.task is not None and flight.task.done()
    assert await flight.run(job) == 2  # the next renewal is a new run


async def test_a_cancelled_caller_does_not_cancel_the_shared_run() -> None:
    release = asyncio.Event()

    async def job() -> str:
        await release.wait()
        return "new token"

    flight: SingleFlight[str] = SingleFlight()
    impatient = asyncio.create_task(flight.run(job))
    patient = asyncio.create_task(flight.run(job))
    await asyncio.sleep(0)
    impatient.cancel()
    await asyncio.sleep(0)
    release.set()
    assert await patient == "new token"


async def test_the_owner_cancels_a_run_in_flight() -> None:
    started = asyncio.Event()

    async def job() -> None:
        started.set()
        await asyncio.Event().wait()  # a renewal that would never end

    flight: SingleFlight[None] = SingleFlight()
    waiter = asyncio.create_task(flight.run(job))
    await started.wait()
    task = flight.task
    await flight.cancel()
    assert task is not None and task.cancelled()
    assert not flight.running
    with pytest.raises(asyncio.CancelledError):
        await waiter


async def test_a_failing_run_gives_every_waiter_its_error() -> None:
    async def job() -> None:
        await asyncio.sleep(0)
        raise UpstreamUnavailable("502", code="502")

    flight: SingleFlight[None] = SingleFlight()
    got = await asyncio.gather(flight.run(job), flight.run(job), return_exceptions=True)
    assert all(isinstance(g, UpstreamUnavailable) for g in got)


async def test_a_smartcar_refresh_in_flight_is_cancelled_by_close() -> None:
    clock = ManualClock()
    hang = asyncio.Event()
    calls = 0

    async def refresh(_rt: str) -> TokenPair:
        nonlocal calls
        calls += 1
        await hang.wait()
        raise AssertionError("never reached")

    token = RotatingToken(MemoryTokenStore(), "k", clock, refresh)
    token.install(TokenPair("at", "rt", clock.now() - 1, clock.now() + 86400, clock.now()))
    callers = [asyncio.create_task(token.access_token()) for _ in range(3)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert calls == 1  # three callers, one refresh
    await token.close()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
