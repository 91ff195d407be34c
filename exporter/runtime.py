"""The running exporter: the objects one process shares, and their start/stop order.

Start: history (migrations) -> embedded simulator (demo) -> token store -> providers (built through
the registry; login and vehicle discovery in the background, so /metrics answers at once even while a
cloud is down) -> scheduler. Each account is re-listed every ``[poll] relist`` seconds and at once
after a poll said a car is gone (not_linked, re-auth required), so cars come and go while it runs.
With ``[shard] mode = "auto"`` the providers are started only for the accounts whose lease this
instance wins, and stopped when it lets them go (``exporter.fleet``).
Stop (SIGTERM/Ctrl-C): fleet hand-back (sharding) -> scheduler -> providers -> history flush -> HTTP session -> simulator, so every
report already received reaches the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import aiohttp
from prometheus_client import CollectorRegistry

from exporter import remote_simulator
from exporter.backend import backend
from exporter.clock import Clock, FollowedClock, ManualClock, RealClock, ScaledClock
from exporter.config import AccountConfig, Config, ConfigError
from exporter.health import Health
from exporter.history import HistoryWriter
from exporter.hub import Hub, Outcome
from exporter.hub_metrics import HubCollector
from exporter.journal_fetch import JournalFetcher
from exporter.journal_metrics import JournalCollector
from exporter.logs import mask_vin
from exporter.metrics import VehicleCollector, make_registry
from exporter.providers import registry
from exporter.providers.base import (
    Provider,
    ProviderContext,
    ProviderError,
    ReauthRequired,
    SimulatorLink,
    TokenStore,
    VehicleNotLinked,
)
from exporter.reconnect import ReconnectCollector
from exporter.remote_simulator import RemoteSimulator
from exporter.scheduler import Scheduler
from exporter.simulator.persist import StateError, state_path
from exporter.simulator.persist import read as read_state
from exporter.simulator.persist import write as write_state
from exporter.simulator.runner import start_simulator
from exporter.snapshot import Snapshot, VehicleInfo
from exporter.tokens import tokens_from_config

if TYPE_CHECKING:
    from exporter.fleet.member import FleetMember

log = logging.getLogger(__name__)

SIMULATOR_SAVE_EVERY = 300.0  # real seconds between two saves of the embedded simulator's state
# a poll may ask for its account to be re-listed at most this often (seconds)
RELIST_MIN_GAP: Final = 600.0


@dataclass
class Runtime:
    config: Config
    clock: Clock
    session: aiohttp.ClientSession
    hub: Hub
    health: Health
    history: HistoryWriter
    scheduler: Scheduler
    registry: CollectorRegistry
    tokens: TokenStore
    collector: VehicleCollector
    simulator: Any = None
    journal: JournalFetcher | None = None
    providers: dict[str, Provider] = field(default_factory=dict)
    landing_links: list[tuple[str, str]] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    # every configured account listed at least once: the hub knows every car there is, so a car
    # it does not know has left (the MQTT publisher then clears what it left on the broker)
    all_listed: asyncio.Event = field(default_factory=asyncio.Event)
    _listed: set[str] = field(default_factory=set)
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    _relist: dict[str, asyncio.Event] = field(default_factory=dict)  # account -> "re-list now"
    _account_tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    # VIN -> clock time of its first poll here (a fleet instance taking over an account keeps the
    # cadence its previous holder left off at)
    first_due: dict[str, float] = field(default_factory=dict)
    # account -> clock time before which none of its cars without an entry above is polled
    not_before: dict[str, float] = field(default_factory=dict)
    # called with a VIN when a car left its account (not when this instance only let it go)
    removed_listeners: list[Callable[[str], None]] = field(default_factory=list)
    fleet: FleetMember | None = None  # when [shard] mode = "auto"
    _saved_simulator: dict[str, Any] | None = None  # read at create, replayed at start
    _remote: RemoteSimulator | None = None  # a standalone simulator ([simulator] url)
    _reconnect_told: set[str] = field(
        default_factory=set
    )  # VINs whose "reconnect needed" is logged
    _asked_relist_at: dict[str, float] = field(default_factory=dict)  # account -> last asked list

    # --- construction -----------------------------------------------------------------------------
    @classmethod
    async def create(cls, config: Config, clock: Clock | None = None) -> Runtime:
        """Build every piece (nothing started yet). ``clock`` overrides the choice made from config.

        The history (file or database) is checked first (HistoryError: one line, nothing else
        opened yet)."""
        remote = None
        if config.simulator.url:  # a standalone simulator: its hosts, and its clock to follow
            remote, remote_now, remote_speed = await remote_simulator.connect(config.simulator.url)
            if clock is None:
                _refuse_real_accounts_beside(config, remote_speed)
                clock = FollowedClock(remote_now, remote_speed)
        if clock is None:
            _refuse_real_accounts_on_the_demo_clock(config)  # a config error before any file
        store = backend(config.db)
        await asyncio.to_thread(store.preflight)
        embedded = config.simulator.enabled and remote is None
        saved = await _saved_simulator(config) if embedded else None
        saved_at = saved.get("clock") if saved is not None else None
        if not isinstance(saved_at, int | float):
            saved_at = None
        if clock is None:
            if config.simulator.enabled:
                # The demo starts a few weeks in the past and runs fast until it reaches "now";
                # a restarted demo continues where its simulator (or else its history) stopped
                start = time.time() - config.simulator.history_days * 86400
                resumed = await asyncio.to_thread(store.last_report_time)
                resumed = max(resumed or start, saved_at or start)
                if resumed > start:
                    log.info("demo continues where it stopped", extra={"at": resumed})
                    start = min(resumed, time.time())
                clock = ScaledClock(
                    start=start,
                    speed=config.simulator.speed,
                    cap_at_wall=True,
                )
            else:
                clock = RealClock()
        elif saved_at is not None and isinstance(clock, ManualClock):
            clock.set(saved_at)  # a test's clock continues where the saved simulator stopped
        tokens = await asyncio.to_thread(
            tokens_from_config, config
        )  # ConfigError: nothing to close
        hub = Hub()
        health = Health()
        # a simulator (here or standalone) restarted afresh replays its first days: refuse them
        history = store.writer(one_timeline=config.simulator.enabled or remote is not None)
        scheduler = Scheduler(hub, health, clock, config.poll)
        collector = VehicleCollector(
            hub,
            health,
            clock,
            export_location=config.export_location,
            max_data_age=config.max_data_age,
            history=history,
        )
        registry = make_registry(collector)
        registry.register(HubCollector(hub))
        registry.register(ReconnectCollector(scheduler, health))
        session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(
                total=config.poll.timeout, connect=min(10.0, config.poll.timeout)
            ),
            headers={"User-Agent": "carmetrics"},
            # no shared cookie jar: login cookies of one account must never ride along on another's
            # requests (the smart login sets the cookies it needs explicitly)
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        hub.subscribe(history.add)
        hub.on_vehicle(history.add_vehicle)
        rt = cls(
            config, clock, session, hub, health, history, scheduler, registry, tokens, collector
        )
        if history.stores_journal:  # the cars' own trip logs, where the history can keep them
            rt.journal = JournalFetcher(history, scheduler, clock)
            hub.subscribe(rt.journal.on_report)
            registry.register(JournalCollector(rt.journal))
        scheduler.on_failure(rt._poll_failed)
        hub.subscribe(lambda snap: rt._reconnect_told.discard(snap.vin))  # it works again
        rt._saved_simulator = saved
        rt._remote = remote
        return rt

    # --- health (read by /healthz) ----------------------------------------------------------------
    def alive(self) -> bool:
        """True while the loops that must never end (scheduler, history writer) still run."""
        loops = [t for t in self._tasks if t.get_name() in {"scheduler", "history", "fleet"}]
        return all(not t.done() for t in loops)

    def failed_tasks(self) -> int:
        """Background tasks that ended with an error (the soak counts them)."""
        tasks = [*self._tasks, *self._account_tasks.values()]
        return sum(1 for t in tasks if t.done() and not t.cancelled() and t.exception() is not None)

    # --- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.history.open)
        self._tasks.append(asyncio.create_task(self.history.run(), name="history"))
        if self._remote is not None:
            if isinstance(self.clock, FollowedClock):
                follow = remote_simulator.follow(self.clock, self.session, self._remote.clock_url)
                self._tasks.append(asyncio.create_task(follow, name="simulator-clock"))
        elif self.config.simulator.enabled:
            # the demo (a ScaledClock) starts with cars already on the move; tests keep their own script
            self.simulator = await self._start_simulator()
            self._tasks.append(asyncio.create_task(self._keep_saving(), name="simulator-state"))
        self._tasks.append(asyncio.create_task(self.scheduler.run(), name="scheduler"))
        if self.journal is not None:
            self._tasks.append(asyncio.create_task(self.journal.run(), name="journal"))
        from exporter.fleet.settings import load_settings as shard_settings

        shard = shard_settings(self.config)
        if shard is not None:
            # accounts are started as this instance wins their leases (exporter.fleet)
            from exporter.fleet.member import FleetMember

            self.fleet = FleetMember(self, shard)
            await self.fleet.start()
            return
        for account in self.config.accounts:
            await self.attach_account(account.name)

    async def _start_simulator(self) -> Any:
        """The embedded simulator, continuing from its saved state when there is a usable one."""
        demo = isinstance(self.clock, ScaledClock)
        saved, self._saved_simulator = self._saved_simulator, None
        handle = None
        if saved is not None:
            try:
                handle = await start_simulator(
                    self.config.simulator, self.clock, demo=demo, saved=saved
                )
            except StateError as exc:
                _state_warning(self.config, str(exc))
        resumed = handle is not None
        if handle is None:
            handle = await start_simulator(self.config.simulator, self.clock, demo=demo)
        log.info(
            "embedded simulator started",
            extra={"vehicles": len(handle.fleet.vins), "resumed": resumed},
        )
        return handle

    async def _keep_saving(self) -> None:
        """Save the simulator's state every few real minutes too, so a process that is killed
        (no clean stop) loses only the last minutes of commands, not the demo's continuity."""
        while True:
            await asyncio.sleep(SIMULATOR_SAVE_EVERY)
            await self._save_simulator()

    async def _save_simulator(self) -> None:
        """Write the simulator's state beside the history; a failure costs only the continuity."""
        if not isinstance(self.config.db, Path):
            return  # a PostgreSQL history has no file to keep the state beside
        path = state_path(self.config.db)
        if path is None:
            return
        try:
            await asyncio.to_thread(write_state, path, self.simulator.state())
        except (OSError, ValueError) as exc:
            log.warning(
                "simulator state not saved; the next start begins a fresh simulator",
                extra={"file": str(path), "error": str(exc)},
            )

    async def stop(self) -> None:
        if self.fleet is not None:
            await self.fleet.stop()  # hands every account back before the loops end
        for task in reversed([*self._tasks, *self._account_tasks.values()]):
            task.cancel()
        await asyncio.gather(*self._tasks, *self._account_tasks.values(), return_exceptions=True)
        self._tasks.clear()
        self._account_tasks.clear()
        for provider in self.providers.values():
            try:
                await provider.close()
            except Exception:
                log.exception("provider close failed", extra={"account": provider.account})
        await asyncio.get_running_loop().run_in_executor(None, self.history.close)
        await self.session.close()
        if self.simulator is not None:
            await self._save_simulator()
            await self.simulator.close()
        log.info("stopped", extra={"rows_written": self.history.rows_written})

    # --- accounts ---------------------------------------------------------------------------------
    async def attach_account(
        self,
        name: str,
        next_polls: Mapping[str, float] | None = None,
        not_before: float | None = None,
    ) -> None:
        """Start polling one configured account: its provider logs in and lists its cars in the
        background. ``next_polls`` (VIN -> clock time) delays a car's first poll here, and
        ``not_before`` that of every other car of the account."""
        account = next(a for a in self.config.accounts if a.name == name)
        self.first_due.update(next_polls or {})
        if not_before is not None:
            self.not_before[name] = not_before
        provider = self.build_provider(account)
        self.providers[name] = provider
        self._account_tasks[name] = asyncio.create_task(
            self.add_provider(provider), name=f"add-{name}"
        )

    async def detach_account(self, name: str, *, cancel: bool) -> dict[str, float]:
        """Stop polling one account and forget its cars' series (their history stays); returns
        VIN -> when each car was due next. ``cancel`` abandons polls in flight (see
        :meth:`Scheduler.drop`)."""
        task = self._account_tasks.pop(name, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._relist.pop(name, None)
        self._asked_relist_at.pop(name, None)
        self.not_before.pop(name, None)
        # by the account's name, not its provider object: a detach cut short (a stop that ran
        # out of time) is finished by the next one
        vins = [
            v
            for v in self.scheduler.vins
            if (p := self.scheduler.provider_of(v)) is not None and p.account == name
        ]
        due = await self.scheduler.drop(vins, cancel=cancel)
        others = [v for v, info in self.hub.vehicles.items() if info.account == name]
        for vin in {*vins, *others}:
            self.hub.forget(vin)
            self.health.vehicles.pop(vin, None)
            self.first_due.pop(vin, None)
        provider = self.providers.pop(name, None)
        if provider is None:
            return due
        self.health.api_up.pop((provider.name, name), None)
        try:
            await provider.close()
        except Exception:
            log.exception("provider close failed", extra={"account": name})
        return due

    # --- providers --------------------------------------------------------------------------------
    def public_url(self) -> str:
        """The exporter's own base URL (redirects, webhook callbacks of simulator accounts)."""
        host = self.config.listen
        if host in ("", "0.0.0.0", "::"):
            host = "127.0.0.1"
        return f"http://{host}:{self.config.port}"

    def context(self, account: AccountConfig) -> ProviderContext:
        """What the provider of ``account`` gets: shared session, clock, vault and its own sink."""
        sim = self._remote.link if self._remote is not None else None
        if self.simulator is not None:
            sim = SimulatorLink(urls=self.simulator.urls, logins=self.simulator.logins)
        return ProviderContext(
            session=self.session,
            clock=self.clock,
            tokens=self.tokens,
            sink=AccountSink(self, account.name),
            public_url=self.public_url(),
            simulator=sim,
        )

    def build_provider(self, account: AccountConfig) -> Provider:
        """Instantiate the provider for an account through the registry (validates its settings;
        ConfigError names the key)."""
        return registry.build(account, self.context(account))

    async def add_provider(self, provider: Provider) -> None:
        """Log in and discover vehicles, retrying with backoff so a cloud outage at start-up heals;
        then re-list the account every ``[poll] relist`` seconds or when a poll asks for it."""
        self.providers[provider.account] = provider
        wake = self._relist.setdefault(provider.account, asyncio.Event())
        delay = self.config.poll.backoff_base
        while True:
            try:
                await provider.start()
                vehicles = await provider.vehicles()
                break
            except ProviderError as exc:
                self.health.api_up[(provider.name, provider.account)] = False
                log.warning(
                    "account not ready; retrying",
                    extra={
                        "account": provider.account,
                        "reason": exc.reason,
                        "code": exc.code,
                        "error": str(exc),
                    },
                )
                wait = max(delay, exc.retry_after or 0.0)
                await self.clock.sleep(wait)
                delay = min(delay * 2, self.config.poll.backoff_max)
        self.health.api_up[(provider.name, provider.account)] = True
        self._sync_vehicles(provider, vehicles)
        self.ready.set()
        self._listed.add(provider.account)
        if self._listed >= {a.name for a in self.config.accounts}:
            self.all_listed.set()
        while True:
            await self._wait_relist(provider.account, wake)
            try:
                vehicles = await provider.vehicles()
            except ProviderError as exc:
                log.warning(
                    "vehicle list not re-read; keeping the known cars",
                    extra={"account": provider.account, "reason": exc.reason, "code": exc.code},
                )
                continue
            except Exception:  # a parser bug must not end re-listing for good
                log.exception("vehicle list not re-read", extra={"account": provider.account})
                continue
            self._sync_vehicles(provider, vehicles)

    async def _wait_relist(self, account: str, wake: asyncio.Event) -> None:
        """Until the re-list interval passed or a poll asked for a re-list, whichever is first.

        Polls' requests are honoured at most once per ``RELIST_MIN_GAP``: a car waiting for its
        owner to reconnect fails every poll, and each failure asking for a vehicle list would spend
        the account's request budget on the same answer."""
        await self._first(self.clock.sleep(self.config.poll.relist), wake.wait())
        if wake.is_set():
            last = self._asked_relist_at.get(account)
            gap = min(RELIST_MIN_GAP, self.config.poll.relist)
            if last is not None and last + gap > self.clock.now():
                await self.clock.sleep(last + gap - self.clock.now())
            self._asked_relist_at[account] = self.clock.now()
        wake.clear()

    @staticmethod
    async def _first(*waits: Coroutine[Any, Any, object]) -> None:
        tasks = [asyncio.ensure_future(w) for w in waits]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()

    def _sync_vehicles(self, provider: Provider, vehicles: list[VehicleInfo]) -> None:
        """Start polling the account's new cars and forget the ones it no longer lists."""
        listed = {info.vin for info in vehicles}
        for vin in self.scheduler.vins:
            if vin not in listed and self.scheduler.provider_of(vin) is provider:
                self.vehicle_removed(vin)
        for info in vehicles:
            self.vehicle_added(provider, info)

    def vehicle_added(self, provider: Provider, info: VehicleInfo) -> None:
        known = info.vin in self.scheduler.vins
        self.hub.register(info)
        due = self.first_due.pop(info.vin, self.not_before.get(provider.account))
        delay = 0.0 if due is None else max(0.0, due - self.clock.now())
        self.scheduler.add(info.vin, provider, delay)
        if not known:
            log.info(
                "vehicle added",
                extra={"vin": mask_vin(info.vin), "model": info.model, "account": provider.account},
            )

    def vehicle_removed(self, vin: str) -> None:
        """Stop polling and exporting a car that left its account; its history stays."""
        if vin not in self.scheduler.vins and vin not in self.hub.vehicles:
            return
        self.scheduler.remove(vin)
        self.hub.forget(vin)
        self.health.vehicles.pop(vin, None)
        for cb in self.removed_listeners:
            cb(vin)
        log.info("vehicle removed", extra={"vin": mask_vin(vin)})

    def _poll_failed(self, vin: str, exc: ProviderError) -> None:
        """A poll said the car may have left the account: re-list that account now. A refused
        sign-in is logged once as "reconnect needed" (again only after the car reported since),
        unless the provider keeps a reconnect link for the car and has said so itself."""
        if not isinstance(exc, VehicleNotLinked | ReauthRequired):
            return
        provider = self.scheduler.provider_of(vin)
        announced = provider is not None and vin in provider.reauth_links()  # said it itself
        if isinstance(exc, ReauthRequired) and not announced and vin not in self._reconnect_told:
            self._reconnect_told.add(vin)
            log.warning(
                "reconnect needed: the cloud refused this car's credentials; polling is paused",
                extra={
                    "vin": mask_vin(vin),
                    "account": provider.account if provider is not None else "",
                    "code": exc.code or "none",
                    "fix": exc.reauth_url or "check the account's sign-in (username, password)",
                },
            )
        wake = self._relist.get(provider.account) if provider is not None else None
        if wake is not None:
            wake.set()


async def _saved_simulator(config: Config) -> dict[str, Any] | None:
    """The embedded simulator's saved state, or None (a bad file: one warning, a fresh start)."""
    path = state_path(config.db)
    if path is None:
        return None
    try:
        return await asyncio.to_thread(read_state, path)
    except StateError as exc:
        _state_warning(config, str(exc))
        return None


def _state_warning(config: Config, why: str) -> None:
    where = state_path(config.db) if isinstance(config.db, Path) else config.db
    log.warning(
        "simulator state not used; starting a fresh simulator",
        extra={"file": str(where), "error": why},
    )


def _refuse_real_accounts_on_the_demo_clock(config: Config) -> None:
    """One wall clock for real accounts: the embedded demo runs every piece on its accelerated
    clock, which starts ``history_days`` in the past, so a real account beside it would sign its
    requests (and judge its token lifetimes and poll intervals) by that clock. Such a mix is
    refused at start-up; the demo on wall time (speed 1, no history) is the one exception."""
    sim = config.simulator
    if not sim.enabled or (sim.speed == 1 and sim.history_days == 0):
        return
    for account in config.accounts:
        if not account.simulator:
            raise ConfigError(
                f"{account.key('simulator')} = false (a real account) cannot run beside the "
                "embedded simulator's accelerated demo clock: set simulator.enabled = false, or "
                f"mark the account simulator = true, or run the demo on wall time "
                "(simulator.speed = 1, simulator.history_days = 0)"
            )


def _refuse_real_accounts_beside(config: Config, speed: float) -> None:
    """As for the demo clock: a standalone simulator's accelerated clock is no clock for a real
    account."""
    if speed == 1:
        return
    for account in config.accounts:
        if not account.simulator:
            raise ConfigError(
                f"{account.key('simulator')} = false (a real account) cannot run beside the "
                f"standalone simulator at simulator.url, whose clock runs {speed:g}x: run the real "
                "account in its own carmetrics, or the simulator with --speed 1"
            )


class AccountSink:
    """The :class:`~exporter.providers.base.Sink` one account's provider writes to."""

    def __init__(self, runtime: Runtime, account: str) -> None:
        self._rt = runtime
        self._account = account

    def publish(self, snapshot: Snapshot) -> Outcome:
        return self._rt.hub.publish(snapshot)

    def vehicle_added(self, info: VehicleInfo) -> None:
        provider = self._rt.providers.get(self._account)
        if provider is None:
            raise RuntimeError(f"account {self._account!r} has no running provider")
        self._rt.vehicle_added(provider, info)

    def vehicle_removed(self, vin: str) -> None:
        self._rt.vehicle_removed(vin)

    def request_poll(self, vin: str, delay: float = 0.0) -> None:
        self._rt.scheduler.request_poll(vin, delay)


@contextlib.asynccontextmanager
async def running(config: Config, clock: Clock | None = None) -> Any:
    """``async with running(cfg) as rt:`` — a started runtime, stopped on exit (tests, tools)."""
    rt = await Runtime.create(config, clock)
    try:
        await rt.start()
        yield rt
    finally:
        await rt.stop()
