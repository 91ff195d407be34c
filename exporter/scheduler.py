"""Per-vehicle adaptive polling.

Each vehicle has one "next poll at" time. A single dispatcher pops due vehicles from a heap and starts
polls under a global concurrency limit; a vehicle is never polled twice at once. After a poll the next
time follows the vehicle's state (driving and charging fast, parked slow, asleep rarely), with jitter so a
fleet does not stampede the cloud in lock-step. After a failure it backs off exponentially with jitter,
never sooner than the cloud's Retry-After, and a provider may impose a floor (a monthly request budget).

Everything runs on an injected Clock: tests move a ManualClock, the demo runs on the simulator's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from exporter.clock import Clock
from exporter.config import PollConfig
from exporter.health import Health
from exporter.hub import Hub, Outcome
from exporter.logs import mask_vin
from exporter.providers.base import (
    AuthError,
    BadReply,
    Provider,
    ProviderError,
    RateLimited,
    ReauthRequired,
    UpstreamUnavailable,
)
from exporter.snapshot import Snapshot

log = logging.getLogger(__name__)

ASLEEP_AFTER = 1800.0  # a parked car whose last report is older than this is treated as asleep
SETTLE_S = 900.0  # after driving or charging, keep polling fast this long


@dataclass
class _Entry:
    provider: Provider
    due: float
    paused: bool = False
    requested: float | None = None  # a poll asked for while one was running
    not_before: float = 0.0  # the cloud's Retry-After: nothing, not even a requested poll, earlier


def vehicle_state(snap: Snapshot, now: float) -> str:
    """driving | charging | parked | asleep, from what the car last reported."""
    v = snap.values
    if v.get("charging_state") in ("charging", "dc_charging"):
        return "charging"
    speed = v.get("speed")
    if v.get("power_state") == "driving" or (isinstance(speed, float) and speed > 0.5):
        return "driving"
    if now - snap.car_time > ASLEEP_AFTER:
        return "asleep"
    return "parked"


class Scheduler:
    def __init__(
        self,
        hub: Hub,
        health: Health,
        clock: Clock,
        poll: PollConfig,
        *,
        rng: random.Random | None = None,
        on_poll: Callable[[str, Outcome | ProviderError], None] | None = None,
    ) -> None:
        self.hub = hub
        self.health = health
        self.clock = clock
        self.cfg = poll
        self.rng = rng or random.Random()
        self.on_poll = on_poll
        self._failure_listeners: list[Callable[[str, ProviderError], None]] = []
        self._polled_listeners: list[Callable[[str, float], None]] = []
        self._entries: dict[str, _Entry] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        # the dispatcher sleeps until this clock time (-inf while it works): a vehicle due later
        # needs no wake-up, which spares a dispatcher round per poll in the steady state
        self._sleep_until = -math.inf
        self._sem = asyncio.Semaphore(poll.concurrency)
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._poll_done: dict[str, asyncio.Event] = {}
        self._dropping: set[str] = set()  # let go of; a poll in flight is still finishing

    # --- membership -------------------------------------------------------------------------------
    def add(self, vin: str, provider: Provider, delay: float = 0.0) -> None:
        if vin in self._entries:
            self._entries[vin].provider = provider
            return
        h = self.health.vehicle(vin)
        h.provider, h.account = provider.name, provider.account
        self._entries[vin] = _Entry(provider, self.clock.now() + delay)
        self._push(vin)

    def remove(self, vin: str) -> None:
        """Stop polling ``vin`` (a poll in flight finishes; its result is still published)."""
        self._entries.pop(vin, None)

    async def drop(self, vins: list[str], *, cancel: bool) -> dict[str, float]:
        """Stop polling ``vins``; once none of their polls runs any more, VIN -> when each would
        have been polled next (a poll that was in flight has rescheduled its car by then).

        ``cancel`` abandons polls in flight (a lease that is already lost: another instance may
        poll the car soon); otherwise they finish and their reports are still published (an
        account handed over on purpose)."""
        self._dropping.update(vins)
        for vin in vins:
            e = self._entries.get(vin)
            if e is not None:
                e.paused = True  # not dispatched again, still rescheduled by a poll in flight
        running = [t for vin in vins if (t := self._inflight.get(vin)) is not None]
        if cancel:
            for task in running:
                task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        due = {}
        self._dropping.difference_update(vins)
        for vin in vins:
            e = self._entries.pop(vin, None)
            if e is not None:
                due[vin] = e.due
        return due

    def due(self, vin: str) -> float | None:
        """When ``vin`` is polled next (clock time), or None when it is not scheduled."""
        e = self._entries.get(vin)
        return e.due if e is not None else None

    def on_polled(self, cb: Callable[[str, float], None]) -> None:
        """Call ``cb(vin, polled_at)`` after every scheduled poll, success or failure, once the
        next poll is scheduled (a fleet member records both so a successor keeps the cadence)."""
        self._polled_listeners.append(cb)

    def on_failure(self, cb: Callable[[str, ProviderError], None]) -> None:
        """Call ``cb(vin, error)`` after every failed poll (the runtime re-lists on not_linked)."""
        self._failure_listeners.append(cb)

    @property
    def vins(self) -> list[str]:
        return list(self._entries)

    @property
    def busy(self) -> bool:
        """True while any poll is in flight (tests wait for quiet before moving the clock)."""
        return bool(self._inflight)

    def provider_of(self, vin: str) -> Provider | None:
        e = self._entries.get(vin)
        return e.provider if e else None

    def request_poll(self, vin: str, delay: float = 0.0) -> None:
        """Poll ``vin`` within ``delay`` seconds (earlier if already due). Resumes a paused vehicle.

        A request made while a poll of the vehicle runs is remembered and applied when it ends, unless
        the cloud answered with a Retry-After that forbids it."""
        e = self._entries.get(vin)
        if e is None or vin in self._dropping:
            return
        e.paused = False
        due = max(self.clock.now() + delay, e.not_before)
        if vin in self._inflight:
            e.requested = due if e.requested is None else min(e.requested, due)
            return
        if due < e.due:
            e.due = due
            self._push(vin)

    def not_before(self, vin: str) -> float:
        """The time before which the cloud forbade any request for ``vin`` (its Retry-After)."""
        e = self._entries.get(vin)
        return e.not_before if e is not None else 0.0

    def hold(self, vin: str, until: float) -> None:
        """No poll of ``vin`` before ``until``: a Retry-After the cloud gave another caller (the
        journal reader) binds the polls too."""
        e = self._entries.get(vin)
        if e is None or until <= e.not_before:
            return
        e.not_before = until
        if e.due < until and vin not in self._inflight:
            e.due = until
            self._push(vin)

    def _push(self, vin: str) -> None:
        e = self._entries[vin]
        self.health.vehicle(vin).next_poll = e.due
        heapq.heappush(self._heap, (e.due, next(self._seq), vin))
        if e.due < self._sleep_until:
            self._wake.set()

    # --- running ----------------------------------------------------------------------------------
    async def run(self) -> None:
        """Dispatch polls until cancelled; in-flight polls are cancelled with it."""
        try:
            while True:
                now = self.clock.now()
                while self._heap and self._heap[0][0] <= now:
                    due, _, vin = heapq.heappop(self._heap)
                    e = self._entries.get(vin)
                    if e is None or e.due != due or e.paused or vin in self._inflight:
                        continue  # superseded, removed, paused or already running
                    await self._sem.acquire()
                    if self._entries.get(vin) is not e or e.paused or e.due != due:
                        self._sem.release()  # removed, paused or moved while waiting for a slot
                        continue
                    self._inflight[vin] = asyncio.create_task(
                        self._poll(vin, e.provider), name=f"poll-{vin}"
                    )
                until = self._heap[0][0] if self._heap else math.inf
                await self._wait(until)
        finally:
            for task in list(self._inflight.values()):
                task.cancel()
            if self._inflight:
                await asyncio.gather(*self._inflight.values(), return_exceptions=True)

    async def _wait(self, until: float) -> None:
        """Sleep until clock time ``until`` or until a vehicle becomes due before it."""
        self._wake.clear()
        seconds = until - self.clock.now()  # now, not when the round began: it may have waited
        if seconds <= 0:
            await asyncio.sleep(0)  # let polls and other tasks run between rounds
            return
        self._sleep_until = until
        waiter = asyncio.ensure_future(self._wake.wait())
        tasks: set[asyncio.Future[Any]] = {waiter}
        if until != math.inf:
            tasks.add(asyncio.ensure_future(self.clock.sleep(seconds)))
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._sleep_until = -math.inf
            for t in tasks:
                t.cancel()

    async def poll_now(self, vin: str) -> Outcome:
        """Poll once, outside the schedule (CLI, command verification). Raises ProviderError."""
        e = self._entries.get(vin)
        if e is None:
            raise KeyError(vin)
        running = self._inflight.get(vin)
        if running is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(running)
        wait = e.not_before - self.clock.now()
        if wait > 0:  # the cloud's Retry-After binds out-of-schedule polls too
            raise RateLimited("the cloud asked to wait (Retry-After)", code="429", retry_after=wait)
        result = await e.provider.poll(vin)
        outcome = self.hub.publish(result.snapshot) if result.snapshot is not None else None
        if result.error is not None:
            raise result.error
        assert outcome is not None
        return outcome

    async def _poll(self, vin: str, provider: Provider) -> None:
        h = self.health.vehicle(vin)
        polled_at = self.clock.now()
        started = time.perf_counter()
        result: Outcome | ProviderError
        try:
            polled = await provider.poll(vin)
            if polled.snapshot is not None:  # also a report read before a later call failed
                outcome = self.hub.publish(polled.snapshot)
            if polled.error is not None:
                result = polled.error
                self._failed(vin, provider, polled.error)
            else:
                assert polled.snapshot is not None
                result = outcome
                self._succeeded(vin, provider, polled.snapshot)
        except ProviderError as exc:  # raised instead of returned: treated the same
            result = exc
            self._failed(vin, provider, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in a parser must not stop the poller
            log.exception("poll crashed", extra={"vin": mask_vin(vin)})
            result = BadReply(f"internal error: {type(exc).__name__}", code="exception")
            self._failed(vin, provider, result)
        finally:
            h.last_duration = time.perf_counter() - started
            self._inflight.pop(vin, None)
            self._sem.release()
        for cb in self._polled_listeners:
            cb(vin, polled_at)
        if self.on_poll is not None:
            self.on_poll(vin, result)

    def _floor(self, vin: str, provider: Provider) -> float:
        return float(provider.min_poll_interval(vin))

    def _jittered(self, seconds: float) -> float:
        j = self.cfg.jitter
        return seconds * (1.0 + self.rng.uniform(-j, j)) if j else seconds

    def _succeeded(self, vin: str, provider: Provider, snap: Snapshot) -> None:
        now = self.clock.now()
        h = self.health.vehicle(vin)
        h.polls += 1
        h.last_success = now
        h.consecutive_failures = 0
        h.last_error = ""
        self.health.api_up[(provider.name, provider.account)] = True
        latest = self.hub.latest(vin) or snap
        state = vehicle_state(latest, now)
        base: float = getattr(self.cfg, state)  # the interval named after the state
        if state in ("driving", "charging"):
            h.last_active = now
        elif state == "parked" and h.last_active is not None and now - h.last_active < SETTLE_S:
            # just parked: the next minutes decide whether a charge starts (a drive to a DC
            # charger) or a short hop follows; keep the fast interval so neither is seen late
            base = self.cfg.driving
        h.state = state
        self._reschedule(vin, max(self._jittered(base), self._floor(vin, provider)))

    def _failed(self, vin: str, provider: Provider, exc: ProviderError) -> None:
        h = self.health.vehicle(vin)
        h.consecutive_failures += 1
        h.errors[(exc.reason, exc.code or "none")] += 1
        h.last_error = f"{exc.reason}: {exc}"
        if isinstance(exc, UpstreamUnavailable | AuthError):
            self.health.api_up[(provider.name, provider.account)] = False
        n = h.consecutive_failures
        backoff = min(self.cfg.backoff_max, self.cfg.backoff_base * 2 ** (n - 1))
        delay = backoff * self.rng.uniform(0.5, 1.0)  # "equal jitter": never 0, never all at once
        if exc.retry_after is not None:
            delay = max(delay if not isinstance(exc, RateLimited) else 0.0, exc.retry_after)
        delay = max(delay, self._floor(vin, provider))
        if isinstance(exc, ReauthRequired):
            h.state = "paused"
            delay = max(delay, self.cfg.backoff_max)
        else:
            h.state = "backoff"
        hard = exc.retry_after is not None or isinstance(exc, ReauthRequired)
        if exc.retry_after is not None:
            e = self._entries.get(vin)
            if e is not None:
                e.not_before = self.clock.now() + exc.retry_after
        log.warning(
            "poll failed",
            extra={
                "vin": mask_vin(vin),
                "reason": exc.reason,
                "code": exc.code or "none",
                "error": str(exc),
                "retry_in_s": round(delay, 1),
            },
        )
        self._reschedule(vin, delay, hard=hard)
        for cb in self._failure_listeners:
            cb(vin, exc)

    def _reschedule(self, vin: str, delay: float, *, hard: bool = False) -> None:
        e = self._entries.get(vin)
        if e is None:
            return
        now = self.clock.now()
        due = now + delay
        if e.requested is not None and not hard:
            due = min(due, max(e.requested, now))
        e.requested = None
        e.due = due
        self.health.vehicle(vin).interval = delay
        self._push(vin)
