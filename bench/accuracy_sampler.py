"""Histories for the accuracy run: simulated cars polled by the real scheduler on a moved clock.

``sample_direct`` drives the exporter's own Scheduler, Hub and History on a ManualClock against the
simulator's Fleet. Each poll renders the car's last report exactly as the simulated cloud serves it
and parses it with that provider's own parser, so the stored rows are what the pipeline stores;
only the HTTP hop, signing and login are skipped. That keeps a month of a fleet to seconds.

* smart: ``render.vehicle_status`` (string leaves, whole-percent SoC, whole-km odometer) parsed by
  the smart provider's ``parse_status``.
* Smartcar: every v3 signal body of the car (``v3_signals.body``: whole-percent SoC, km or miles
  with their unit) parsed by the v3 provider's ``parse_signals``. The provider's budget floor is
  played by ``Regime.floor_s`` (``min_poll_interval``); with ``webhooks`` every report in which a
  trigger signal changed is delivered as the simulator's v3 emitter does, and polls are a safety
  net.
* faults: a share of polls fails the way the simulated clouds fail (``faults.DEFAULT_MIX``): an
  error the scheduler backs off from, or a reply with garbage leaves parsed as it is.
* journal (``journal=True``, smart only): the runtime's own ``JournalFetcher`` reads each car's trip
  journal through the provider's ``JournalReader``, answered in-process by the simulator's journal
  renderer (bench/accuracy_journal.py), and queues the rows with ``History.add_journal``; so
  ``carmetrics trips`` takes the car's own trips where the journal has them, as it does at home.

``sample_http`` runs the smart scenario through the real simulator and runtime over HTTP.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.accuracy_journal import JOURNAL_INTERVAL_S, SimJournal
from exporter.clock import ManualClock
from exporter.config import PollConfig
from exporter.health import Health
from exporter.history import History
from exporter.hub import Hub
from exporter.journal import JournalTrip
from exporter.journal_fetch import JournalFetcher
from exporter.providers.base import (
    BadReply,
    BaseProvider,
    Command,
    CommandReceipt,
    PollResult,
    RateLimited,
    UpstreamUnavailable,
)
from exporter.providers.smart.parse import parse_status, to_snapshot
from exporter.providers.smart.vehicles import MODELS
from exporter.providers.smartcar.v3_parse import parse_signals
from exporter.simulator.faults import DEFAULT_MIX, Fault, FaultKind, Faults
from exporter.simulator.fleet import Fleet
from exporter.simulator.smart import render
from exporter.simulator.smartcar.fleet_adapter import DEMO_TRIGGERS, FleetCar
from exporter.simulator.smartcar.v3_signals import CATALOGUE, body, capable
from exporter.snapshot import Snapshot, VehicleInfo

START = 1_772_323_200.0  # 2026-03-01T00:00:00Z
# Smartcar's plan: 500 billed calls per vehicle and month (docs/SMARTCAR.md "Polling and the
# budget"); six billed paths per poll (the v2 batch, or v3 if signals are billed per group) leave
# ~83 polls, one per ~8.7 h. With webhooks the polls are a safety net every 12 h.
SMARTCAR_FLOOR_S = 30 * 86400.0 / (500 / 6)
SMARTCAR_WEBHOOK_POLL_S = 12 * 3600.0


@dataclass(frozen=True)
class Regime:
    """How the cars are read: which cloud, at what cadence, with what trouble."""

    name: str
    cloud: str = "smart"  # "smart" | "smartcar"
    poll: PollConfig = field(default_factory=PollConfig)
    fault_rate: float = 0.0
    floor_s: float = 0.0  # the provider's min_poll_interval (a budget)
    webhooks: bool = False

    @property
    def parked_s(self) -> float:
        """The interval a parked car is polled at: what hides a trip's start."""
        return max(self.poll.parked, self.floor_s)


SMART_MODELS = ["#1", "#3", "#5"]
SMARTCAR_MODELS = ["Tesla Model 3", "Ford Mustang Mach-E", "Volkswagen ID.4"]


class _Faulty:
    """5 %-style trouble on the direct path, drawn reproducibly per regime and seed."""

    def __init__(self, rate: float, seed: int) -> None:
        self.faults = Faults(seed=seed)
        if rate > 0:
            for kind in DEFAULT_MIX:
                self.faults.set_rate(kind, rate / len(DEFAULT_MIX))

    def pick(self, cloud: str, vin: str) -> Fault | None:
        return self.faults.pick(cloud, "status", vin)

    @staticmethod
    def error(fault: Fault) -> PollResult | None:
        kind = fault.kind
        if kind == FaultKind.RATE_LIMITED:
            return PollResult(error=RateLimited("429", code="429", retry_after=fault.retry_after))
        if kind == FaultKind.MALFORMED_JSON:
            return PollResult(error=BadReply("truncated JSON", code="json"))
        if kind in (FaultKind.GARBAGE_FIELDS, FaultKind.TOKEN_EXPIRED):
            return None  # garbled: parsed as it is; a dead token: renewed, then the read works
        return PollResult(error=UpstreamUnavailable(kind.value, code=kind.value))


class FleetReader(BaseProvider):
    """A Provider that reads the simulated smart cars in-process (render -> parse)."""

    name = "smart"
    account = "bench"

    def __init__(self, fleet: Fleet, clock: ManualClock, regime: Regime, seed: int = 1) -> None:
        self.fleet = fleet
        self.clock = clock
        self.regime = regime
        self.polls = 0
        self._faulty = _Faulty(regime.fault_rate, seed)
        self.journal_source: SimJournal | None = None  # set: the cars keep a trip journal

    async def start(self) -> None:
        return None

    async def vehicles(self) -> list[VehicleInfo]:
        out = []
        for vin in self.fleet.vins:
            spec = self.fleet.vehicle(vin).spec
            out.append(
                VehicleInfo(
                    vin=vin,
                    provider=self.name,
                    make=spec.make if self.name == "smartcar" else "smart",
                    model=MODELS.get(spec.series[:2].upper(), spec.model),
                    series=spec.series,
                    account=self.account,
                )
            )
        return out

    def min_poll_interval(self, vin: str) -> float:
        return self.regime.floor_s

    async def poll(self, vin: str) -> PollResult:
        self.polls += 1
        fault = self._faulty.pick(self.name, vin)
        if fault is not None and (failed := _Faulty.error(fault)) is not None:
            return failed
        garble = fault is not None and fault.kind == FaultKind.GARBAGE_FIELDS
        return self.read(vin, fault if garble else None)

    def read(self, vin: str, fault: Fault | None = None) -> PollResult:
        car = self.fleet.vehicle(vin)
        s = self.fleet.state(vin)
        status = render.vehicle_status(vin, car.spec, s)
        if fault is not None:
            self._faulty.faults.garble(status, fault)
        soc = render.soc_setting(s, s.report_time)
        state = render.vehicle_state(vin, s, s.report_time + 3600.0)
        parsed = parse_status(status, soc, state, series=car.spec.series)
        return PollResult(to_snapshot(vin, parsed, self.clock.now()))

    def journal_interval(self, vin: str) -> float:
        return JOURNAL_INTERVAL_S if self.journal_source is not None else 0.0

    async def journal(self, vin: str, since: float, routed: frozenset[str]) -> list[JournalTrip]:
        if self.journal_source is None:
            return []
        return await self.journal_source.trips(vin, since, self.clock.now(), routed)

    def supported_commands(self, vin: str) -> frozenset[str]:
        return frozenset()

    async def command(self, vin: str, command: Command) -> CommandReceipt:
        raise NotImplementedError

    async def close(self) -> None:
        return None


class SmartcarReader(FleetReader):
    """The same for cars behind Smartcar: v3 signal bodies parsed by the v3 parser."""

    name = "smartcar"

    def __init__(self, fleet: Fleet, clock: ManualClock, regime: Regime, seed: int = 1) -> None:
        super().__init__(fleet, clock, regime, seed)
        self._cars = {vin: FleetCar(fleet, vin) for vin in fleet.vins}
        self._triggers: dict[str, list[Any]] = {}

    def items(self, vin: str) -> tuple[list[dict[str, Any]], list[Any]]:
        car = self._cars[vin]
        r = car.read()
        oem = int(r.time * 1000)
        items, triggers = [], []
        for code in CATALOGUE:
            if not capable(car, code):
                continue
            b = body(code, car, r)
            if code in DEMO_TRIGGERS:
                triggers.append(b)
            if b is None:
                continue
            items.append(
                {
                    "id": code,
                    "type": "signal",
                    "attributes": {"code": code, "status": {"value": "SUCCESS"}, "body": b},
                    "meta": {"oemUpdatedAt": oem, "retrievedAt": int(self.clock.now() * 1000)},
                }
            )
        return items, triggers

    def read(self, vin: str, fault: Fault | None = None) -> PollResult:
        items, triggers = self.items(vin)
        self._triggers[vin] = triggers
        if fault is not None:
            self._faulty.faults.garble({"items": {str(i): x for i, x in enumerate(items)}}, fault)
        parsed = parse_signals(items)
        values = {k: v for k, v in parsed.values.items() if k != "last_update"}
        now = self.clock.now()
        return PollResult(Snapshot.build(vin, self.name, parsed.newest or now, now, values))

    def webhook(self, vin: str) -> Snapshot | None:
        """The delivery of a new report when a trigger signal changed (v3 emitter rule)."""
        _, triggers = self.items(vin)
        if self._triggers.get(vin) == triggers:
            return None
        self._triggers[vin] = triggers
        return self.read(vin).snapshot


class _Fetcher(JournalFetcher):
    """The runtime's journal reader, counting reads in flight: a read first asks the history
    (on its writer thread) where to resume, and the moved clock must wait for that answer, or the
    read would happen at whatever moment the thread was scheduled, not when it was due."""

    in_flight = 0

    async def fetch(self, vin: str) -> bool:
        self.in_flight += 1
        try:
            return await super().fetch(vin)
        finally:
            self.in_flight -= 1


async def _run_until(clock: ManualClock, t: float, fetcher: _Fetcher | None) -> None:
    """``clock.run_until(t)`` that lets every journal read finish before time moves on."""

    async def settle() -> None:
        for _ in range(30):
            await asyncio.sleep(0)
        while fetcher is not None and fetcher.in_flight:
            await asyncio.sleep(0.0005)

    while True:
        await settle()
        nd = clock.next_deadline
        if nd is None or nd > t:
            break
        clock.set(nd)
    clock.set(t)
    await settle()


@dataclass
class Sampled:
    db: Path
    start: float
    end: float
    truth: dict[str, dict[str, Any]]  # vin -> fleet.ground_truth(vin)
    polls: int
    rows: int
    pushes: int = 0
    journal_reads: int = 0  # JournalFetcher reads (each: a grant check, pages, new trips' tracks)
    journal_failures: int = 0  # reads that failed (the faults regime) and were retried later
    journal_trips: int = 0  # trips those reads returned (a re-read trip counts again)
    models: dict[str, str] = field(default_factory=dict)  # vin -> simulator model ("#1", ...)


async def sample_direct(
    db: Path,
    models: list[str] | None,
    days: float,
    poll: PollConfig | Regime,
    seed: int = 1,
    start: float = START,
    *,
    rare: bool = False,
    journal: bool = False,
    recording_off: Collection[str] = (),
) -> Sampled:
    """Run the scheduler over ``days`` simulated days; the history lands in ``db``.

    ``poll``: a Regime, or a PollConfig for the smart cloud without faults. ``rare``: every car
    gets one rare event (see ``exporter/simulator/quirks.py``). ``journal``: smart cars' trip
    journals are read as the runtime reads them (off by default, so a test of the detector scores
    polling). ``recording_off``: models whose trip recording is off from the start.
    """
    regime = poll if isinstance(poll, Regime) else Regime("custom", poll=poll)
    if models is None:
        models = SMARTCAR_MODELS if regime.cloud == "smartcar" else SMART_MODELS
    clock = ManualClock(start)
    fleet = Fleet((), seed=seed, clock=clock, rare=rare)
    model_of: dict[str, str] = {}
    for m in models:
        vin = fleet.add(m, cloud=regime.cloud)
        model_of[vin] = m
        if m in recording_off:  # the owner never switched "record trips" on
            fleet.set_journal_recording(vin, False)
    hub, health = Hub(), Health()
    history = History(db, batch_size=100_000)
    await asyncio.get_running_loop().run_in_executor(None, history.open)
    hub.subscribe(history.add)
    hub.on_vehicle(history.add_vehicle)
    from exporter.scheduler import Scheduler

    sched = Scheduler(hub, health, clock, regime.poll, rng=random.Random(seed))
    cls = SmartcarReader if regime.cloud == "smartcar" else FleetReader
    reader = cls(fleet, clock, regime, seed)
    for info in await reader.vehicles():
        hub.register(info)
        sched.add(info.vin, reader, delay=random.Random(f"{seed}/{info.vin}").uniform(0, 60))
    fetcher: _Fetcher | None = None
    if journal and regime.cloud == "smart":
        reader.journal_source = SimJournal(fleet, regime.fault_rate, seed=seed + 7919)
        fetcher = _Fetcher(history, sched, clock)
        hub.subscribe(fetcher.on_report)
    pushes = 0
    tick: Callable[[], object] | None = None
    if regime.webhooks and isinstance(reader, SmartcarReader):
        wr = reader

        def deliver(vin: str) -> None:
            nonlocal pushes
            snap = wr.webhook(vin)
            if snap is not None:
                pushes += 1
                hub.publish(snap)

        fleet.on_change(deliver)
        tick = fleet.tick
    tasks = [asyncio.create_task(sched.run())]
    if fetcher is not None:
        tasks.append(asyncio.create_task(fetcher.run()))
    end = start + days * 86400.0
    t = start
    try:
        while t < end:  # a day at a time, flushing the history as the exporter would
            day_end = min(end, t + 86400.0)
            if tick is None:
                t = day_end
                await _run_until(clock, t, fetcher)
            else:
                while t < day_end:  # the car uploads at most once a minute: tick that often
                    t = min(day_end, t + 60.0)
                    await _run_until(clock, t, fetcher)
                    tick()
            await history.flush()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(None, history.close)
    truth = {vin: fleet.ground_truth(vin) for vin in fleet.vins}
    out = Sampled(db, start, end, truth, reader.polls, history.rows_written, pushes)
    out.models = model_of
    if fetcher is not None:
        out.journal_reads, out.journal_trips = fetcher.fetches, fetcher.trips_stored
        out.journal_failures = fetcher.failures
    return out


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

    from bench.demo_runtime import advance, smart_demo_config, started

    clock = ManualClock(start)
    rt = await started(smart_demo_config(db, seed=seed, models=models, poll=poll), clock)
    try:
        end = start + days * 86400.0
        next_flush = clock.now() + 86400.0
        while clock.now() < end:
            await advance(rt, clock, min(end, next_flush), step)
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
