"""Histories for the accuracy run: simulated cars polled by the real scheduler on a moved clock.

``sample_direct`` drives the exporter's own Scheduler, Hub and History on a ManualClock against the
simulator's Fleet. Each poll renders the car's last report exactly as the simulated smart cloud
serves it (string leaves, whole-percent SoC, km) and parses it with the smart provider's parser, so
the stored rows are what the pipeline stores; only the HTTP hop and request signing are skipped.
That keeps a month of a fleet to a few seconds. ``bench/accuracy.py --path http`` runs the same
scenario through the real simulator over HTTP when that is available.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter.clock import ManualClock
from exporter.config import PollConfig
from exporter.health import Health
from exporter.history import History
from exporter.hub import Hub
from exporter.providers.base import BaseProvider, Command, CommandReceipt, PollResult
from exporter.providers.smart.parse import parse_status, to_snapshot
from exporter.providers.smart.vehicles import MODELS
from exporter.simulator.fleet import Fleet
from exporter.simulator.smart import render
from exporter.snapshot import VehicleInfo

START = 1_772_323_200.0  # 2026-03-01T00:00:00Z


class FleetReader(BaseProvider):
    """A Provider that reads the simulated cars in-process (render -> parse, as over the wire)."""

    name = "smart"
    account = "bench"

    def __init__(self, fleet: Fleet, clock: ManualClock) -> None:
        self.fleet = fleet
        self.clock = clock
        self.polls = 0

    async def start(self) -> None:
        return None

    async def vehicles(self) -> list[VehicleInfo]:
        out = []
        for vin in self.fleet.vins:
            spec = self.fleet.vehicle(vin).spec
            out.append(
                VehicleInfo(
                    vin=vin,
                    provider="smart",
                    make="smart",
                    model=MODELS.get(spec.series[:2].upper(), spec.model),
                    series=spec.series,
                    account=self.account,
                )
            )
        return out

    async def poll(self, vin: str) -> PollResult:
        self.polls += 1
        car = self.fleet.vehicle(vin)
        s = self.fleet.state(vin)
        status = render.vehicle_status(vin, car.spec, s)
        soc = render.soc_setting(s, s.report_time)
        state = render.vehicle_state(vin, s, s.report_time + 3600.0)
        parsed = parse_status(status, soc, state, series=car.spec.series)
        return PollResult(to_snapshot(vin, parsed, self.clock.now()))

    def supported_commands(self, vin: str) -> frozenset[str]:
        return frozenset()

    async def command(self, vin: str, command: Command) -> CommandReceipt:
        raise NotImplementedError

    async def close(self) -> None:
        return None


@dataclass
class Sampled:
    db: Path
    start: float
    end: float
    truth: dict[str, dict[str, Any]]  # vin -> fleet.ground_truth(vin)
    polls: int
    rows: int


async def sample_direct(
    db: Path,
    models: list[str],
    days: float,
    poll: PollConfig,
    seed: int = 1,
    start: float = START,
) -> Sampled:
    """Run the scheduler over ``days`` simulated days; the history lands in ``db``."""
    clock = ManualClock(start)
    fleet = Fleet(models, seed=seed, clock=clock)
    hub, health = Hub(), Health()
    history = History(db, batch_size=100_000)
    await asyncio.get_running_loop().run_in_executor(None, history.open)
    hub.subscribe(history.add)
    hub.on_vehicle(history.add_vehicle)
    from exporter.scheduler import Scheduler

    sched = Scheduler(hub, health, clock, poll, rng=random.Random(seed))
    reader = FleetReader(fleet, clock)
    for info in await reader.vehicles():
        hub.register(info)
        sched.add(info.vin, reader, delay=random.Random(f"{seed}/{info.vin}").uniform(0, 60))
    task = asyncio.create_task(sched.run())
    end = start + days * 86400.0
    t = start
    try:
        while t < end:  # a day at a time, flushing the history as the exporter would
            t = min(end, t + 86400.0)
            await clock.run_until(t)
            await history.flush()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(None, history.close)
    truth = {vin: fleet.ground_truth(vin) for vin in fleet.vins}
    return Sampled(db, start, end, truth, reader.polls, history.rows_written)


async def sample_http(
    db: Path,
    models: list[str],
    days: float,
    poll: PollConfig,
    seed: int = 1,
    start: float = START,
    step: float = 10.0,
) -> Sampled:
    """The honest path: the embedded simulator and the real runtime (smart provider, signing, HTTP
    on loopback, scheduler, hub, history) on one ManualClock moved ``step`` seconds at a time; each
    step waits until every poll in flight has its reply, so no request straddles a clock jump."""

    from exporter.config import AccountConfig, Config, SimulatorConfig
    from exporter.runtime import Runtime

    clock = ManualClock(start)
    cfg = Config(
        db=db,
        poll=poll,
        simulator=SimulatorConfig(enabled=True, seed=seed, smart_vehicles=tuple(models)),
        accounts=(
            AccountConfig(
                name="sim-eu", provider="smart", index=0, simulator=True, settings={"region": "EU"}
            ),
        ),
    )
    rt = await Runtime.create(cfg, clock)
    await rt.start()
    try:
        deadline = asyncio.get_running_loop().time() + 60.0
        while not rt.ready.is_set():  # login and discovery over HTTP (no clock sleeps on success)
            await clock.run_until(clock.now() + 1.0)
            await asyncio.sleep(0.01)
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError("the runtime did not log in to the simulator within 60 s")
        end = start + days * 86400.0
        next_flush = clock.now() + 86400.0
        while clock.now() < end:
            await clock.run_until(min(end, clock.now() + step))
            while rt.scheduler.busy:
                await asyncio.sleep(0)
                await asyncio.sleep(0.0005)
            if clock.now() >= next_flush:
                await rt.history.flush()
                next_flush += 86400.0
        await rt.history.flush()
        fleet = rt.simulator.fleet
        polled = set(rt.scheduler.vins)
        truth = {vin: fleet.ground_truth(vin) for vin in fleet.vins if vin in polled}
        polls = sum(rt.health.vehicle(v).polls for v in polled)
    finally:
        await rt.stop()
    return Sampled(db, start, end, truth, polls, rt.history.rows_written)
