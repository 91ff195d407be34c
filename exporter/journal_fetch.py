"""The slow loop that copies each car's own trip log into the history.

A car's journal changes only when it drives, and reading it costs a grant and a session renewal on
the smart cloud, so it is read rarely: every ``journal_interval`` seconds of its account (default
6 h), and once ``AFTER_DRIVE_S`` after the polls saw a drive end (the car uploads the trip when it
parks). A read resumes a day before the newest stored trip (a trip the cloud wrote late is still
found), or earlier at the oldest recent trip still without its route (``ROUTE_RETRY_S``), or reaches
``BACKFILL_S`` back on the first read; the table's key makes a re-read an update.
A failed read is logged with the cloud's code and retried at the next turn; it never touches
polling, which runs in its own loop, except that a Retry-After binds both: the reader waits for one
the polls received, and one it receives holds the car's polls.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from exporter.clock import Clock
from exporter.history import HistoryWriter
from exporter.logs import mask_vin
from exporter.providers.base import ProviderError
from exporter.scheduler import Scheduler, vehicle_state
from exporter.snapshot import Snapshot

log = logging.getLogger(__name__)

AFTER_DRIVE_S: Final = 600.0
OVERLAP_S: Final = 86400.0
BACKFILL_S: Final = 30 * 86400.0
FIRST_S: Final = 60.0  # a new car's first read waits for its first polls
RETRY_S: Final = 3600.0  # after a failure, at most this long until the next attempt
ROUTE_RETRY_S: Final = 4 * 86400.0
"""How long after its start a trip stored without a route keeps the reads reaching back to it.

A read resumes ``OVERLAP_S`` before the newest stored trip, so a trip whose track was not there
(smart answers 8153 until it has processed a fresh trip's track: ``TRACK_PENDING_S``, 48 h) or
whose track read failed would fall out of reach as soon as the car drove again a day later, and
keep no route for ever. So a read starts no later than the oldest such trip of this span. It must
exceed the longest wait a provider allows for a track plus one ``journal_interval``, or the last
retry, which stores "no route" for good, never comes (the route then stays unread: no route
either way); four days leave room for a daily read. Older trips are not asked again."""


class JournalFetcher:
    def __init__(self, history: HistoryWriter, scheduler: Scheduler, clock: Clock) -> None:
        self.history = history
        self.scheduler = scheduler
        self.clock = clock
        self._due: dict[str, float] = {}
        self._driving: dict[str, bool] = {}
        self._wake = asyncio.Event()
        self.fetches = 0
        self.failures = 0
        self.failed_by: dict[tuple[str, str], int] = {}  # (reason, cloud code) -> failed reads
        self.trips_stored = 0

    def on_report(self, snap: Snapshot) -> None:
        """A hub listener: a car that stopped driving gets its journal read soon."""
        driving = vehicle_state(snap, snap.car_time) == "driving"
        was = self._driving.get(snap.vin)
        self._driving[snap.vin] = driving
        if was and not driving and snap.vin in self._due:
            self._due[snap.vin] = min(self._due[snap.vin], self.clock.now() + AFTER_DRIVE_S)
            self._wake.set()

    def _failed(self, reason: str, code: str) -> None:
        self.failures += 1
        self.failed_by[(reason, code)] = self.failed_by.get((reason, code), 0) + 1

    async def run(self) -> None:
        while True:
            now = self.clock.now()
            nxt = now + 3600.0
            polled = set(self.scheduler.vins)
            for table in (self._due, self._driving):  # forget cars that left their account
                for gone in [v for v in table if v not in polled]:
                    del table[gone]
            for vin in self.scheduler.vins:
                provider = self.scheduler.provider_of(vin)
                interval = provider.journal_interval(vin) if provider is not None else 0.0
                if interval <= 0:
                    self._due.pop(vin, None)
                    continue
                due = max(self._due.setdefault(vin, now + FIRST_S), self.scheduler.not_before(vin))
                if due <= now:
                    ok = await self.fetch(vin)
                    now = self.clock.now()
                    due = self._due[vin] = now + (interval if ok else min(interval, RETRY_S))
                nxt = min(nxt, due)
            self._wake.clear()
            await self._sleep_or_wake(nxt - self.clock.now())

    async def _sleep_or_wake(self, seconds: float) -> None:
        sleeper = asyncio.ensure_future(self.clock.sleep(max(seconds, 0.0)))
        waiter = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waiter.cancel()

    async def fetch(self, vin: str) -> bool:
        """Read one car's journal now and queue what it holds; False when the read failed."""
        provider = self.scheduler.provider_of(vin)
        if provider is None:
            return False
        self.fetches += 1
        now = self.clock.now()
        try:
            known = await self.history.journal_known(vin, now - ROUTE_RETRY_S)
        except Exception as exc:  # e.g. the PostgreSQL server restarting: try at the next turn
            self._failed("history", "none")
            log.warning(
                "trip journal not read: the history did not answer",
                extra={"vin": mask_vin(vin), "error": str(exc)},
            )
            return False
        since = now - BACKFILL_S
        if known.newest is not None:
            since = max(since, known.newest - OVERLAP_S)
        if known.unrouted is not None:  # a trip still without its route: ask for it again
            since = min(since, known.unrouted)
        try:
            trips = await provider.journal(vin, since, known.routed)
        except ProviderError as exc:
            self._failed(exc.reason, exc.code or "none")
            if exc.retry_after is not None:  # the cloud's Retry-After binds this car's polls too
                self.scheduler.hold(vin, self.clock.now() + exc.retry_after)
            log.warning(
                "trip journal not read; polling goes on",
                extra={
                    "vin": mask_vin(vin),
                    "reason": exc.reason,
                    "code": exc.code,
                    "error": str(exc),
                },
            )
            return False
        except Exception:  # a parser bug must not end the loop
            self._failed("bug", "none")
            log.exception("trip journal not read", extra={"vin": mask_vin(vin)})
            return False
        if trips:
            self.history.add_journal(t.row(now) for t in trips)
            self.trips_stored += len(trips)
        log.debug("trip journal read", extra={"vin": mask_vin(vin), "trips": len(trips)})
        return True
