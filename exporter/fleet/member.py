"""One instance of a fleet: wins account leases in PostgreSQL, polls what it holds, lets go of the
rest.

Why a lease table with heartbeats rather than advisory locks: an advisory lock lives exactly as
long as the database session, so ownership would follow the TCP connection, not the instance. A
lock is released the moment the server notices a dead connection (a successor starts at once,
before the old owner's last interval has run out: the same car polled twice in one interval), and
kept while a half-open connection lingers (nobody polls). A lease row carries its own expiry in the
database's clock: the successor waits until the lease has run out, reads where the previous
holder's schedule stood (``fleet_vehicles.next_at``) and continues from there. A holder that cannot
renew stops polling on its own (one heartbeat before the lease runs out, by its monotonic clock),
so two instances never poll one account at once, even across a network partition.

Each heartbeat (``[shard] heartbeat``, default a quarter of the lease) in one transaction: say the
instance lives, renew its leases, count the live instances. Then balance: with ``n`` accounts and
``k`` live instances each takes at most ``ceil(n / k)``; one holding more hands the surplus back
after its polls in flight ended (so a newly joined instance gets its share), one holding fewer
claims free accounts. A dead instance's leases are claimed the moment they expire: the loop wakes
up then instead of a heartbeat later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from exporter.fleet.settings import ShardSettings
from exporter.fleet.store import Claimed, PollTime, Store, migrate
from exporter.snapshot import VehicleInfo

if TYPE_CHECKING:
    from exporter.runtime import Runtime

log = logging.getLogger(__name__)

WRITE_EVERY = 1.0  # s between writes of poll times and cars (what a successor continues from)
DB_ERRORS = (psycopg.Error, OSError, TimeoutError)


@dataclass
class FleetStats:
    """What /metrics and /healthz say about this instance's part in the fleet."""

    live_instances: int = 0
    renewals: int = 0  # heartbeats that renewed this instance's leases
    renewal_failures: int = 0  # heartbeats that failed (database unreachable, too slow)
    acquired: int = 0  # leases won
    takeovers: int = 0  # of those, accounts whose previous holder's lease had expired
    released: int = 0  # accounts handed back for balance or at a clean stop
    lost: int = 0  # leases gone before they were handed back (renewal failed too long)
    connected: bool = False


def instance_id() -> str:
    """Host name, process id and a random part: a restarted process never inherits leases."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def first_polls(
    seen: list[PollTime], claimed: Claimed, shortest: float
) -> tuple[dict[str, float], float | None]:
    """VIN -> the earliest moment this instance may poll the car, and the earliest for a car it
    has no record of, so no car is polled twice in one interval across a change of holder.

    An account handed back on purpose: its holder stopped polling, then wrote each car's next poll
    time; this instance continues from there. An account whose holder's lease expired (it died, or
    lost the database): the holder may have polled a car after its last write, up to the moment it
    stopped on its own, which is before its lease ran out. A car that was due by then counts as
    polled at that moment, and waits one of its intervals after it (the interval its holder last
    used); a car due later was not polled since the write, and keeps its time. A car without a
    record (listed and polled for the first time within the holder's last second) waits the
    shortest ``[poll]`` interval after the lease ran out.
    """
    out: dict[str, float] = {}
    for p in seen:
        assert p.next_at is not None
        if claimed.previous is None or p.next_at > claimed.previous_expiry:
            out[p.vin] = p.next_at
        else:
            interval = p.next_at - p.polled_at if p.polled_at is not None else shortest
            out[p.vin] = claimed.previous_expiry + max(0.0, interval)
    unknown = None if claimed.previous is None else claimed.previous_expiry + shortest
    return out, unknown


class FleetMember:
    def __init__(self, runtime: Runtime, settings: ShardSettings, me: str | None = None) -> None:
        self.rt = runtime
        self.settings = settings
        self.id = me or instance_id()
        self.accounts = [a.name for a in runtime.config.accounts]
        poll = runtime.config.poll
        self._shortest = min(poll.driving, poll.charging, poll.parked, poll.asleep)
        self.held: dict[str, int] = {}  # account -> lease generation
        self.stats = FleetStats()
        self.pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._releasing: set[str] = set()
        self._detached: set[str] = set()  # let go of, the release not yet written
        self._fence_at = 0.0  # monotonic: stop polling by then unless a renewal succeeds
        self._polls: dict[str, PollTime] = {}
        self._cars: dict[str, VehicleInfo] = {}
        self._gone: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._write_lock = asyncio.Lock()  # one write at a time: a newer next poll time wins
        from exporter.fleet.forward import Forwarder
        from exporter.fleet.metrics import ShardCollector

        self.forwarder = Forwarder(self)
        runtime.registry.register(ShardCollector(self, self.forwarder))

    # --- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Hook into the runtime and start the heartbeat; the database may still be down (the
        loop keeps trying and holds no account until it answers)."""
        self.pool = AsyncConnectionPool(
            self.settings.dsn,
            min_size=1,
            max_size=4,
            kwargs={"autocommit": True, "connect_timeout": 5},
            open=False,
            timeout=5,
            name="carmetrics-fleet",
        )
        await self.pool.open(wait=False)
        self.rt.scheduler.on_polled(self._polled)
        self.rt.hub.on_vehicle(self._vehicle)
        self.rt.removed_listeners.append(self._removed)
        self._tasks = [
            asyncio.create_task(self.run(), name="fleet"),
            asyncio.create_task(self._write_forever(), name="fleet-writer"),
        ]
        self.rt._tasks.append(self._tasks[0])
        log.info(
            "fleet instance started",
            extra={"instance": self.id, "url": self.settings.advertise_url},
        )

    async def stop(self) -> None:
        """Hand every account back after its polls in flight ended, so the others take over at
        once instead of after the lease time."""

        # everything that may still poll ends before the leases could expire (the fence): after
        # that another instance may claim them
        def left() -> float:
            return max(0.1, self._fence_at - time.monotonic())

        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=min(5.0, left()))
            if stuck:
                log.warning("fleet tasks did not stop", extra={"tasks": len(stuck)})
        log.info("handing every account back", extra={"accounts": len(self.held)})
        try:
            await asyncio.wait_for(self._let_go_all(cancel=False), left())
        except TimeoutError:
            log.warning("polls in flight did not end in time; abandoning them")
            await self._let_go_all(cancel=True)
        try:
            await self._write()
            if self._conn is not None:
                await asyncio.wait_for(Store(self._conn, self.id).leave(), 5)
                self.released_all()
        except DB_ERRORS as exc:
            log.warning(
                "leases not handed back; they expire after the lease time",
                extra={"error": str(exc)},
            )
        if self._conn is not None:
            await self._conn.close()
        if self.pool is not None:
            await self.pool.close()
        await self.forwarder.close()

    async def _let_go_all(self, *, cancel: bool) -> None:
        for account in list(self.held):
            if account not in self._detached:
                await self._let_go(account, cancel=cancel)

    def released_all(self) -> None:
        self.stats.released += len(self.held)
        self.held.clear()
        self._detached.clear()

    # --- the heartbeat ----------------------------------------------------------------------------
    async def run(self) -> None:
        settle_until = time.monotonic() + self.settings.heartbeat
        while True:
            wait = self.settings.heartbeat
            try:
                wait = await self._tick(settle_until)
            except DB_ERRORS as exc:
                self.stats.renewal_failures += 1
                self.stats.connected = False
                log.warning(
                    "fleet heartbeat failed",
                    extra={"error": str(exc) or type(exc).__name__, "held": len(self.held)},
                )
                await self._reconnect()
            if self.held and time.monotonic() >= self._fence_at:
                log.error(
                    "leases not renewed in time: stopping every account before they expire",
                    extra={"accounts": len(self.held)},
                )
                for account in list(self.held):
                    await self._lose(account)
            if self.held:
                wait = min(wait, max(0.0, self._fence_at - time.monotonic()))
            await asyncio.sleep(max(0.05, wait))

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self.settings.dsn, autocommit=True, connect_timeout=5
            )
            await migrate(self._conn)
            await Store(self._conn, self.id).add_accounts(self.accounts)
        return self._conn

    async def _reconnect(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
        self._conn = None

    async def _tick(self, settle_until: float) -> float:
        """One heartbeat; returns the seconds until the next one."""
        s = self.settings
        store = Store(await asyncio.wait_for(self._connection(), s.heartbeat), self.id)
        sent = time.monotonic()
        live, renewed = await asyncio.wait_for(self._renew(store), s.heartbeat)
        # the lease's expiry counts from the database's now(), which is later than ``sent``
        self._fence_at = sent + s.lease - s.heartbeat
        self.stats.connected = True
        self.stats.live_instances = live
        if self.held:
            self.stats.renewals += 1
        for account in [a for a in self.held if a not in renewed and a not in self._releasing]:
            log.warning("lease lost to another instance", extra={"account": account})
            await self._lose(account)
        unknown = [a for a in renewed if a not in self.held]
        if unknown:  # claimed, but the answer never arrived (a claim that timed out)
            log.warning(
                "leases held but not polled; polling them", extra={"accounts": len(unknown)}
            )
            await self._attach(store, await store.claims(unknown))
        for account in [a for a in self._detached if a not in self._releasing]:
            # a hand-back whose release was not written (its task writes the schedule first)
            await self._write()
            await store.release(account)
            self._detached.discard(account)
            self.held.pop(account, None)
            self.stats.released += 1
        if time.monotonic() < settle_until:
            # one heartbeat to let instances started together see each other before claiming
            return max(0.05, settle_until - time.monotonic())
        share = math.ceil(len(self.accounts) / max(1, live))
        polling = [a for a in self.held if a not in self._releasing and a not in self._detached]
        if len(polling) > share:
            for account in sorted(polling)[share:]:
                self._releasing.add(account)
                self._tasks.append(
                    asyncio.create_task(self._release(account), name=f"release-{account}")
                )
        elif len(self.held) < share:
            claimed = await asyncio.wait_for(
                store.claim(self.accounts, share - len(self.held), s.lease), s.lease / 2
            )
            self.stats.acquired += len(claimed)
            self.stats.takeovers += sum(1 for c in claimed if c.previous is not None)
            await self._attach(store, claimed)
        until = await store.seconds_to_next_expiry(self.accounts)
        return s.heartbeat if until is None else min(s.heartbeat, until + 0.05)

    async def _renew(self, store: Store) -> tuple[int, dict[str, int]]:
        async with store.conn.transaction():
            live = await store.heartbeat(self.settings.advertise_url, self.settings.lease)
            return live, await store.renew(self.settings.lease)

    async def _attach(self, store: Store, claimed: list[Claimed]) -> None:
        """Start polling newly held accounts, each car from where its previous holder left it."""
        for c in claimed:
            self.held[c.account] = c.generation
        seen = await store.poll_times([c.account for c in claimed])
        for c in claimed:
            log.info(
                "account taken" + (" over" if c.previous else ""),
                extra={"account": c.account, "generation": c.generation},
            )
            known, unknown = first_polls(seen.get(c.account, []), c, self._shortest)
            await self.rt.attach_account(c.account, known, unknown)

    async def _release(self, account: str) -> None:
        """Balance: stop polling (polls in flight end normally), write where each car's schedule
        stands, then free the lease for the instance that has fewer."""
        try:
            await self._let_go(account, cancel=False)
            await self._write()
            assert self.pool is not None
            async with self.pool.connection() as conn:  # the heartbeat's connection is its own
                await Store(conn, self.id).release(account)
            if account in self._detached:
                self._detached.discard(account)
                self.held.pop(account, None)
                self.stats.released += 1
                log.info("account handed back for balance", extra={"account": account})
        except DB_ERRORS as exc:  # the next heartbeat writes the release
            log.warning("account release not written yet", extra={"error": str(exc)})
        finally:
            self._releasing.discard(account)

    async def _let_go(self, account: str, *, cancel: bool) -> None:
        due = await self.rt.detach_account(account, cancel=cancel)
        for vin, at in due.items():
            known = self._polls.get(vin)
            self._polls[vin] = PollTime(vin, known.polled_at if known else None, at)
        self._detached.add(account)

    async def _lose(self, account: str) -> None:
        """The lease is (or is about to be) gone: stop at once, abandoning polls in flight."""
        await self._let_go(account, cancel=True)
        self._detached.discard(account)
        self.held.pop(account, None)
        self.stats.lost += 1

    # --- what a successor continues from ----------------------------------------------------------
    def _polled(self, vin: str, polled_at: float) -> None:
        # recorded once the next poll is scheduled: the successor needs both times
        self._polls[vin] = PollTime(vin, polled_at, self.rt.scheduler.due(vin))

    def _vehicle(self, info: VehicleInfo) -> None:
        if info.account in self.held:
            self._cars[info.vin] = info

    def _removed(self, vin: str) -> None:
        self._cars.pop(vin, None)
        self._gone.add(vin)

    async def _write_forever(self) -> None:
        while True:
            await asyncio.sleep(WRITE_EVERY)
            try:
                await self._write()
            except DB_ERRORS as exc:
                log.warning("fleet state not written; retrying", extra={"error": str(exc)})

    async def _write(self) -> None:
        async with self._write_lock:
            await self._write_locked()

    async def _write_locked(self) -> None:
        if not (self._polls or self._cars or self._gone) or self.pool is None:
            return
        polls, self._polls = list(self._polls.values()), {}
        cars, self._cars = list(self._cars.values()), {}
        gone, self._gone = list(self._gone), set()
        try:
            async with self.pool.connection() as conn:
                store = Store(conn, self.id)
                rows = []
                for info in cars:
                    provider = self.rt.providers.get(info.account)
                    if provider is None:
                        continue  # let go of meanwhile: its new holder describes the car
                    commands = sorted(provider.supported_commands(info.vin))
                    car = (info.vin, info.account, info.provider, info.make, info.model)
                    rows.append((*car, info.year, commands))
                await store.add_vehicles(rows)
                for vin in gone:
                    await store.remove_vehicle(vin, list(self.held))
                await store.record_polls(polls)
        except BaseException:
            # keep what was not written (newer entries win) for the next attempt
            for p in polls:
                self._polls.setdefault(p.vin, p)
            for info in cars:
                self._cars.setdefault(info.vin, info)
            self._gone.update(gone)
            raise

    # --- read by /healthz and /metrics ------------------------------------------------------------
    def held_accounts(self) -> list[str]:
        return sorted(a for a in self.held if a not in self._detached)

    def health(self) -> dict[str, Any]:
        """For /healthz: account names only, never a setting or a secret."""
        return {
            "instance": self.id,
            "accounts": self.held_accounts(),
            "live_instances": self.stats.live_instances,
            "database": "up" if self.stats.connected else "down",
        }
