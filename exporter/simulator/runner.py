"""Start every simulated cloud on loopback, sharing one fleet, one clock and one fault plan.

    handle = await start_simulator(cfg)            # ScaledClock(speed=cfg.speed), demo fleet
    handle.urls["smart"]["api_v1"]                 # base URL per cloud and host
    handle.logins["smart_eu"]                      # {"username", "password", "region"}
    print(json.dumps(handle.info()))               # the one line `carmetrics simulate` prints
    await handle.close()

Registering another cloud (the Smartcar simulator does this): import its factory and add ONE line to
``CLOUDS`` below, ``"smartcar": smartcar.start_cloud``. A factory is an ``async def
start_cloud(ctx: SimContext) -> CloudHandle | None`` (types in ``exporter.simulator.context``) that
starts its servers on ``ctx.host`` and
returns its base URLs, demo logins and VINs (or None when it has nothing to serve). It finds its
cars with ``ctx.groups["smartcar"]`` (the VINs made from ``cfg.smartcar_vehicles``) or
``ctx.fleet.vins_for(...)``, reads them with ``ctx.fleet.state(vin)``, commands them with
``ctx.fleet.apply_command(...)``, hears new reports with ``ctx.fleet.on_change(callback)``, and
asks ``ctx.faults.pick("smartcar", endpoint, vin)`` for injected faults. Factories are plain imports:
a cloud whose module is missing or broken is an import error, never a silently absent cloud.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exporter.clock import Clock, ScaledClock
from exporter.config import SimulatorConfig
from exporter.simulator import persist, smart, smartcar
from exporter.simulator.context import CloudFactory, CloudHandle, SimContext
from exporter.simulator.faults import Faults
from exporter.simulator.fleet import Fleet
from exporter.simulator.persist import StateError

__all__ = [
    "CLOUDS",
    "CloudFactory",
    "CloudHandle",
    "SimContext",
    "SimulatorHandle",
    "build_fleet",
    "serve_forever",
    "start_simulator",
]

CLOUDS: dict[str, CloudFactory] = {
    "smart": smart.start_cloud,
    "smartcar": smartcar.start_cloud,
}

INTL_MODEL = "#3"


@dataclass
class SimulatorHandle:
    clock: Clock
    fleet: Fleet
    faults: Faults
    clouds: dict[str, CloudHandle]
    cfg: SimulatorConfig | None = None
    demo: bool = False
    _ticker: asyncio.Task[None] | None = None

    @property
    def urls(self) -> dict[str, dict[str, str]]:
        out = {name: dict(c.urls) for name, c in self.clouds.items()}
        for c in self.clouds.values():
            out.update({k: dict(v) for k, v in c.extra_urls.items()})
        return out

    @property
    def logins(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for c in self.clouds.values():
            out.update({k: dict(v) for k, v in c.logins.items()})
        return out

    def service(self, name: str) -> Any:
        """The in-process cloud object (e.g. ``SmartCloud``) for tests that steer it directly."""
        return self.clouds[name].service

    @property
    def smart(self) -> Any:
        return self.service("smart")

    def info(self) -> dict[str, Any]:
        """The one JSON-able line: every host's base URL, the demo logins and the VINs."""
        vins: dict[str, list[str]] = {}
        for c in self.clouds.values():
            vins.update({k: list(v) for k, v in c.vins.items()})
        return {"urls": self.urls, "logins": self.logins, "vins": vins}

    def state(self) -> dict[str, Any]:
        """Everything a restarted simulator needs to continue (``exporter.simulator.persist``)."""
        if self.cfg is None:
            raise RuntimeError("a simulator started without its config cannot be saved")
        out: dict[str, Any] = {"format": persist.FORMAT, "version": persist.VERSION}
        out.update(persist.fleet_state(self.cfg, self.fleet, demo=self.demo, at=self.clock.now()))
        out["clouds"] = {n: c.dump() for n, c in self.clouds.items() if c.dump is not None}
        return out

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        for c in reversed(list(self.clouds.values())):
            await c.close()


def build_fleet(
    cfg: SimulatorConfig, clock: Clock, *, demo: bool, starts: Mapping[str, float] | None = None
) -> tuple[Fleet, dict[str, list[str]]]:
    """The fleet of a config: the EU account's smart cars, one INTL car, the Smartcar cars.
    ``starts`` (VIN -> start time) rebuilds saved cars from where their lives began."""
    fleet = Fleet(seed=cfg.seed, clock=clock, demo=demo)
    groups: dict[str, list[str]] = {"smart_eu": [], "smart_intl": [], "smartcar": []}
    plan = [(m, "smart", "smart_eu") for m in cfg.smart_vehicles]
    if cfg.smart_vehicles:
        plan.append((INTL_MODEL, "smart", "smart_intl"))
    plan += [(m, "smartcar", "smartcar") for m in cfg.smartcar_vehicles]
    t0 = clock.now()
    for model, cloud, group in plan:
        # a VIN depends on the seed, the index and the model, never on time: the first car's
        # VIN tells where its saved start is found
        vin = fleet.add(model, cloud=cloud, t0=t0)
        if starts is not None and vin in starts and starts[vin] != t0:
            fleet.discard(vin)
            vin = fleet.add(model, cloud=cloud, t0=starts[vin])
        groups[group].append(vin)
    return fleet, groups


def _restored_fleet(
    cfg: SimulatorConfig, clock: Clock, demo: bool, saved: Mapping[str, Any]
) -> tuple[Fleet, dict[str, list[str]]]:
    """The saved fleet, replayed up to its saved moment (StateError when it cannot be)."""
    persist.check_recipe(saved, cfg, demo)
    probe, _ = build_fleet(cfg, clock, demo=demo)
    starts = persist.starts(saved, probe.vins)
    at = saved.get("clock")
    if isinstance(at, int | float) and at > clock.now() + 1e-6:
        raise StateError("the saved simulator is ahead of this clock")
    fleet, groups = build_fleet(cfg, clock, demo=demo, starts=starts)
    persist.restore_fleet(fleet, saved)
    return fleet, groups


async def start_simulator(
    cfg: SimulatorConfig,
    clock: Clock | None = None,
    host: str = "127.0.0.1",
    *,
    demo: bool | None = None,
    tick_every: float | None = 1.0,
    options: dict[str, Any] | None = None,
    saved: Mapping[str, Any] | None = None,
) -> SimulatorHandle:
    """Start every registered cloud on its own free loopback ports.

    ``clock`` defaults to ``ScaledClock(speed=cfg.speed)``; tests pass a ``ManualClock``.
    ``demo`` (default: when no clock is given) makes the first minutes lively. Every
    ``tick_every`` real seconds the fleet is advanced in the background so ``on_change`` listeners
    (webhooks) hear reports even when nobody polls; None disables it. ``options`` carries
    per-cloud settings, e.g. ``{"smart": SmartCloudConfig(...)}``. ``saved`` is what
    ``SimulatorHandle.state()`` returned before a restart (``persist.read``): the fleet is replayed
    to where it stopped and every cloud takes back its memory; StateError (nothing left running)
    when it does not fit this config.
    """
    if demo is None:
        demo = clock is None
    if clock is None:
        clock = ScaledClock(speed=cfg.speed)
    if saved is None:
        fleet, groups = build_fleet(cfg, clock, demo=demo)
    else:
        # CPU-bound catch-up (every simulated minute driven since the cars' start): off the loop,
        # before any server shares the fleet
        fleet, groups = await asyncio.to_thread(_restored_fleet, cfg, clock, demo, saved)
    faults = Faults(clock=clock, seed=cfg.seed)
    if cfg.fault_rate > 0:
        faults.set_global_rate(cfg.fault_rate)
    ctx = SimContext(cfg, clock, fleet, faults, host, groups, dict(options or {}))
    handle = SimulatorHandle(clock, fleet, faults, {}, cfg, demo)
    try:
        for name, factory in CLOUDS.items():
            started = await factory(ctx)
            if started is not None:
                handle.clouds[name] = started
        if saved is not None:
            _restore_clouds(handle, saved)
    except BaseException:
        await handle.close()
        raise
    if tick_every is not None and tick_every > 0:
        handle._ticker = asyncio.create_task(fleet.run(tick_every), name="sim-fleet-ticker")
    return handle


def _restore_clouds(handle: SimulatorHandle, saved: Mapping[str, Any]) -> None:
    clouds = saved.get("clouds")
    if not isinstance(clouds, dict):
        raise StateError("the saved simulator has no clouds")
    for name, cloud in handle.clouds.items():
        data = clouds.get(name)
        if cloud.load is None or data is None:
            continue
        try:
            cloud.load(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateError(f"the saved {name} cloud does not load ({exc})") from None


async def serve_forever(handle: SimulatorHandle) -> None:
    """Keep the simulator running until cancelled (Ctrl-C), then close it."""
    try:
        await asyncio.Event().wait()
    finally:
        await handle.close()
