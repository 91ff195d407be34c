"""Clocks that can be moved instead of waited on.

Everything that schedules (the poller, token renewal, the simulator's cars, rate-limit windows) takes a
Clock, so tests and the accelerated demo move time rather than sleep through it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Unix seconds."""

    async def sleep(self, seconds: float) -> None:
        """Return once ``seconds`` of this clock's time have passed."""


class RealClock:
    """Wall time."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ScaledClock:
    """Wall time running ``speed`` times faster from ``start``, plus a manual offset.

    The embedded demo runs the simulated cars (and the exporter that polls them) on this: at 60x an
    hour of driving passes per real minute. With ``cap_at_wall`` the clock starts in the past and runs
    fast only until it catches up with the wall clock, then at normal speed: timestamps never lie in the
    future, so Prometheus, Grafana time ranges and alert rules stay sane however long the demo runs.
    ``advance`` lets a test jump days ahead (token expiry, refresh-token lifetimes) at once.
    """

    def __init__(
        self, start: float | None = None, speed: float = 1.0, *, cap_at_wall: bool = False
    ) -> None:
        self._t0_real = time.monotonic()
        self._t0_wall = time.time()
        self._t0 = self._t0_wall if start is None else start
        self.speed = speed
        self.cap_at_wall = cap_at_wall
        self._offset = 0.0

    @classmethod
    def shared(cls, start: float, anchor_monotonic: float, speed: float) -> ScaledClock:
        """The clock another process built with ``start`` at ``anchor_monotonic``: the monotonic clock
        is system-wide (Linux CLOCK_MONOTONIC), so a simulator child and the exporter under test agree."""
        clock = cls(start, speed)
        clock._t0_real = anchor_monotonic
        return clock

    @property
    def anchor(self) -> tuple[float, float]:
        """(start, monotonic anchor): what ``shared`` needs to rebuild this clock elsewhere."""
        return self._t0, self._t0_real

    def _scaled(self) -> float:
        return self._t0 + (time.monotonic() - self._t0_real) * self.speed + self._offset

    def now(self) -> float:
        t = self._scaled()
        if self.cap_at_wall:
            return min(t, self._t0_wall + (time.monotonic() - self._t0_real) + self._offset)
        return t

    @property
    def effective_speed(self) -> float:
        if self.cap_at_wall and self._scaled() >= self.now():
            return 1.0
        return self.speed

    def advance(self, seconds: float) -> None:
        self._offset += seconds

    async def sleep(self, seconds: float) -> None:
        speed = self.effective_speed
        await asyncio.sleep(max(0.0, seconds) / speed if speed > 0 else 0)


class FollowedClock:
    """Another process's clock, followed: the exporter beside a standalone simulator
    (``carmetrics run --simulator-url``) must read the time the simulated cars report in, or the
    hub's bound on reports from the future refuses them all. Between two ``sync`` calls it runs at
    the other clock's speed; a sync never moves it backwards (a report can only look older)."""

    def __init__(self, now: float, speed: float) -> None:
        self._base = now
        self._t0 = time.monotonic()
        self.speed = speed

    def now(self) -> float:
        return self._base + (time.monotonic() - self._t0) * self.speed

    def sync(self, now: float, speed: float) -> None:
        self._base = max(now, self.now())
        self._t0 = time.monotonic()
        self.speed = speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed if self.speed > 0 else 0)


class ManualClock:
    """Time that moves only when told to; sleepers wake when ``advance`` passes their deadline."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = start
        self._seq = itertools.count()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        await fut

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline passed (in deadline order)."""
        self.set(self._now + seconds)

    def set(self, t: float) -> None:
        self._now = max(self._now, t)
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    @property
    def next_deadline(self) -> float | None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)
        return self._sleepers[0][0] if self._sleepers else None

    async def run_until(self, t: float, step: float | None = None, settle: int = 30) -> None:
        """Advance to ``t`` one deadline at a time, letting woken tasks run in between.

        After each step the loop is given ``settle`` turns, enough for a woken task to finish its
        reaction (an HTTP round trip on loopback needs real I/O, which ``settle_io`` covers)."""
        while True:
            await self._settle(settle)
            nd = self.next_deadline
            if nd is None or nd > t:
                break
            if step is not None:
                nd = min(nd, self._now + step)
            self.set(nd)
        self.set(t)
        await self._settle(settle)

    @staticmethod
    async def _settle(turns: int) -> None:
        for _ in range(turns):
            await asyncio.sleep(0)
