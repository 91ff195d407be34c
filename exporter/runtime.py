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
from typing import TYPE_CHECKING, Any, Final

import aiohttp
from prometheus_client import CollectorRegistry

from exporter.backend import backend
from exporter.clock import Clock, RealClock, ScaledClock
from exporter.config import AccountConfig, Config, ConfigError
from exporter.health import Health
from exporter.history import HistoryWriter
from exporter.hub import Hub, Outcome
from exporter.hub_metrics import HubCollector
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
from exporter.scheduler import Scheduler
from exporter.simulator.runner import start_simulator
from exporter.snapshot import Snapshot, VehicleInfo
from exporter.tokens import tokens_from_config

if TYPE_CHECKING:
    from exporter.fleet.member import FleetMember

log = logging.getLogger(__name__)

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
    providers: dict[str, Provider] = field(default_factory=dict)
    landing_links: list[tuple[str, str]] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
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
    _asked_relist_at: dict[str, float] = field(default_factory=dict)  # account -> last asked list

    # --- construction -----------------------------------------------------------------------------
    @classmethod
    async def create(cls, config: Config, clock: Clock | None = None) -> Runtime:
        """Build every piece (nothing started yet). ``clock`` overrides the choice made from config.

        The history (file or database) is checked first (HistoryError: one line, nothing else
        opened yet)."""
        if clock is None:
            _refuse_real_accounts_on_the_demo_clock(config)  # a config error before any file
        store = backend(config.db)
        await asyncio.to_thread(store.preflight)
        if clock is None:
            if config.simulator.enabled:
                # The demo starts a few weeks in the past and runs fast until it reaches "now";
                # a restarted demo continues from its history's last report instead
                start = time.time() - config.simulator.history_days * 86400
                resumed = await asyncio.to_thread(store.last_report_time)
                if resumed is not None and resumed > start:
                    log.info("demo continues where its history stopped", extra={"at": resumed})
                    start = min(resumed, time.time())
                clock = ScaledClock(
                    start=start,
                    speed=config.simulator.speed,
                    cap_at_wall=True,
                )
            else:
                clock = RealClock()
        tokens = await asyncio.to_thread(
            tokens_from_config, config
        )  # a ConfigError: nothing to close
        hub = Hub()
        health = Health()
        history = store.writer(one_timeline=config.simulator.enabled)
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
        scheduler.on_failure(rt._poll_failed)
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
        if self.config.simulator.enabled:
            # the demo (a ScaledClock) starts with cars already on the move; tests keep their own script
            self.simulator = await start_simulator(
                self.config.simulator, self.clock, demo=isinstance(self.clock, ScaledClock)
            )
            log.info(
                "embedded simulator started", extra={"vehicles": len(self.simulator.fleet.vins)}
            )
        self._tasks.append(asyncio.create_task(self.scheduler.run(), name="scheduler"))
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
        sim = None
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
        """A poll said the car may have left the account: re-list that account now."""
        if not isinstance(exc, VehicleNotLinked | ReauthRequired):
            return
        provider = self.scheduler.provider_of(vin)
        wake = self._relist.get(provider.account) if provider is not None else None
        if wake is not None:
            wake.set()


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
