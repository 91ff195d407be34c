"""The running exporter: the objects one process shares, and their start/stop order.

Start: history (migrations) -> embedded simulator (demo) -> token store -> providers (login and vehicle
discovery in the background, so /metrics answers at once even while a cloud is down) -> scheduler.
Stop (SIGTERM/Ctrl-C): scheduler -> providers -> history flush -> HTTP session -> simulator, so every
report already received reaches the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry

from exporter.clock import Clock, RealClock, ScaledClock
from exporter.config import AccountConfig, Config, ConfigError
from exporter.health import Health
from exporter.history import History, last_report_time, preflight
from exporter.hub import Hub
from exporter.hub_metrics import HubCollector
from exporter.logs import mask_vin
from exporter.metrics import VehicleCollector, make_registry
from exporter.providers.base import MemoryTokenStore, Provider, ProviderError, TokenStore
from exporter.scheduler import Scheduler

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    config: Config
    clock: Clock
    session: aiohttp.ClientSession
    hub: Hub
    health: Health
    history: History
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

    # --- construction -----------------------------------------------------------------------------
    @classmethod
    async def create(cls, config: Config, clock: Clock | None = None) -> Runtime:
        """Build every piece (nothing started yet). ``clock`` overrides the choice made from config.

        The history file is checked first (HistoryError: one line, nothing else opened yet)."""
        if clock is None:
            _refuse_real_accounts_on_the_demo_clock(config)  # a config error before any file
        await asyncio.to_thread(preflight, config.db)
        if clock is None:
            if config.simulator.enabled:
                # The demo starts a few weeks in the past and runs fast until it reaches "now";
                # a restarted demo continues from its history's last report instead
                start = time.time() - config.simulator.history_days * 86400
                resumed = await asyncio.to_thread(last_report_time, config.db)
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
        hub = Hub()
        health = Health()
        history = History(config.db, one_timeline=config.simulator.enabled)
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
        tokens = _token_store(config)
        hub.subscribe(history.add)
        hub.on_vehicle(history.add_vehicle)
        return cls(
            config, clock, session, hub, health, history, scheduler, registry, tokens, collector
        )

    # --- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.history.open)
        self._tasks.append(asyncio.create_task(self.history.run(), name="history"))
        if self.config.simulator.enabled:
            from exporter.simulator.runner import start_simulator

            # the demo (a ScaledClock) starts with cars already on the move; tests keep their own script
            self.simulator = await start_simulator(
                self.config.simulator, self.clock, demo=isinstance(self.clock, ScaledClock)
            )
            log.info(
                "embedded simulator started", extra={"vehicles": len(self.simulator.fleet.vins)}
            )
        self._tasks.append(asyncio.create_task(self.scheduler.run(), name="scheduler"))
        for account in self.config.accounts:
            provider = self.build_provider(account)
            if provider is not None:
                self._tasks.append(
                    asyncio.create_task(self.add_provider(provider), name=f"add-{account.name}")
                )

    async def stop(self) -> None:
        for task in reversed(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
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

    # --- providers --------------------------------------------------------------------------------
    def build_provider(self, account: AccountConfig) -> Provider | None:
        """Instantiate the provider for an account (validates its settings; ConfigError names the key)."""
        if account.provider == "smart":
            from exporter.providers import smart

            urls = None
            if account.simulator:
                if self.simulator is None:
                    raise ConfigError(
                        f"{account.key('simulator')} = true but no simulator is running"
                    )
                urls = self.simulator.urls["smart"]
                account = _with_sim_login(account, self.simulator, "smart")
            return smart.build(account, self.session, self.clock, self.tokens, urls)
        if account.provider == "smartcar":
            from exporter.providers import smartcar

            builder = getattr(smartcar, "build_from_runtime", None)
            if builder is None:
                log.warning(
                    "smartcar provider not available in this build", extra={"account": account.name}
                )
                return None
            provider: Provider | None = builder(account, self)
            return provider
        raise ConfigError(f"{account.key('provider')} = {account.provider!r}: unknown provider")

    async def add_provider(self, provider: Provider) -> None:
        """Log in and discover vehicles, retrying with backoff so a cloud outage at start-up heals."""
        self.providers[provider.account] = provider
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
        for info in vehicles:
            self.hub.register(info)
            self.scheduler.add(info.vin, provider)
            log.info(
                "vehicle added",
                extra={"vin": mask_vin(info.vin), "model": info.model, "account": provider.account},
            )
        self.ready.set()


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


def _token_store(config: Config) -> TokenStore:
    """The encrypted vault when available and needed; memory for simulator-only demos."""
    try:
        from exporter.tokens import tokens_from_config
    except ImportError:  # pragma: no cover - the vault ships with the package
        return MemoryTokenStore()
    return tokens_from_config(config)


def _with_sim_login(account: AccountConfig, simulator: Any, provider: str) -> AccountConfig:
    """Give a simulator account the simulator's demo login (never written to any file)."""
    from dataclasses import replace

    from exporter.config import Secret

    region = str(account.settings.get("region", "EU")).lower()
    login = simulator.logins.get(f"{provider}_{region}") or {}
    settings = dict(account.settings)
    secrets = dict(account.secrets)
    if "username" not in settings and "username" in login:
        settings["username"] = login["username"]
    if "password" not in secrets and "password" in login:
        secrets["password"] = Secret(login["password"])
    return replace(account, settings=settings, secrets=secrets)


@contextlib.asynccontextmanager
async def running(config: Config, clock: Clock | None = None) -> Any:
    """``async with running(cfg) as rt:`` — a started runtime, stopped on exit (tests, tools)."""
    rt = await Runtime.create(config, clock)
    try:
        await rt.start()
        yield rt
    finally:
        await rt.stop()
