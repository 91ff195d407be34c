"""What carmetrics spends per vehicle-poll around the HTTP, stage by stage, without the network.

Benchmark 1 (``bench.poll_throughput``) gives the whole poll's CPU against the bare client's; this
script splits the part that is carmetrics' own (the bare client does none of it except signing) on
real replies of the bundled simulator (``tests/data/smart_sim_replies.json``: a parked, a
switched-on and a driving car), each status/soc/state triple wrapped in the cloud's envelope:

* **envelope x3**: ``parse_envelope`` of the three replies (JSON decoding, the code check);
* **parse_status**: the three ``data`` parts to canonical values;
* **snapshot**: ``to_snapshot`` (the signal table's checks, the frozen mapping);
* **history row**: ``Codec.row`` of that snapshot (what ``History.add`` builds per new report);
* **sign x3**: the canonical queries and the signed headers of the three GETs (the bare client
  signs too).

Each figure is CPU time (``time.process_time``) per poll, the best of ``--rounds`` rounds: on a
shared machine the best round is the one least disturbed.

A second table times the layer around the provider the same way: the real ``Scheduler`` (every
interval 0, ``concurrency`` 8), ``Hub`` and SQLite ``History`` over ``--cars`` cars whose provider
answers at once with a prepared snapshot of the driving reply (a ``--new`` share of them newer than
the last: stored rows), against the same provider called in a plain loop. It is what the pipeline
adds per poll on top of the provider, without the network's noise. Run it in two trees to compare
them:

    python -m bench.poll_stages --rounds 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from bench.common import table
from exporter import history_layout as layout
from exporter.clock import RealClock
from exporter.config import PollConfig
from exporter.health import Health
from exporter.history import History, migrate
from exporter.hub import Hub
from exporter.providers.base import BaseProvider, Command, CommandReceipt, PollResult
from exporter.providers.smart import signing
from exporter.providers.smart.parse import parse_status, to_snapshot
from exporter.providers.smart.transport import RawReply, parse_envelope
from exporter.scheduler import Scheduler
from exporter.snapshot import Snapshot, Value

REPLIES = Path(__file__).resolve().parent.parent / "tests" / "data" / "smart_sim_replies.json"
QUERIES: tuple[tuple[str, list[tuple[str, str]]], ...] = (
    ("/remote-control/vehicle/status/VIN", [("latest", "True"), ("target", "basic,more")]),
    ("/remote-control/vehicle/status/soc/VIN", [("setting", "charging")]),
    ("/remote-control/vehicle/status/state/VIN", []),
)


def _raw(data: Any) -> RawReply:
    text = json.dumps({"code": "1000", "data": data, "message": "operation succeed"})
    headers = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json; charset=utf-8"}))
    return RawReply(200, headers, text, "http://127.0.0.1/x")


def stages() -> tuple[int, dict[str, Callable[[], object]]]:
    """(polls per call, the stage functions); each call runs the stage for every reply triple."""
    triples = [
        tuple(_raw(r[k]) for k in ("status", "soc", "state"))
        for r in json.loads(REPLIES.read_text()).values()
    ]
    datas = [[parse_envelope(x).data for x in t] for t in triples]
    parsed = [parse_status(s, soc, st, series="HX11") for s, soc, st in datas]
    snaps = [to_snapshot("HESXR1C43SG815785", p, 1.0) for p in parsed]
    conn = sqlite3.connect(":memory:")
    migrate(conn)
    codec = layout.codec(conn)
    region = signing.EU

    def envelopes() -> None:
        for t in triples:
            for x in t:
                parse_envelope(x)

    def parses() -> None:
        for s, soc, st in datas:
            parse_status(s, soc, st, series="HX11")

    def snapshots() -> None:
        for p in parsed:
            to_snapshot("HESXR1C43SG815785", p, 1.0)

    def rows() -> None:
        for s in snaps:
            codec.row(s)

    def sign() -> None:
        for _ in triples:
            for path, query in QUERIES:
                qs = signing.canonical_query([*query, ("userId", "1234567")])
                signing.signed_headers(
                    region,
                    method="GET",
                    path=path,
                    query=qs,
                    body=None,
                    timestamp_ms="1700000000000",
                    nonce=region.new_nonce(),
                    device_id="0123456789abcdef",
                    token="token",
                )

    return len(triples), {
        "envelope x3": envelopes,
        "parse_status": parses,
        "snapshot": snapshots,
        "history row": rows,
        "sign x3": sign,
    }


class _Instant(BaseProvider):
    """Answers every poll at once with the driving reply's values; every ``1/new``-th report of
    a car is newer than its last (a stored row), the rest are refreshes."""

    name = "smart"
    account = "bench"

    def __init__(self, values: dict[str, Value], new: float) -> None:
        self.values = values
        self.new = new
        self.n = 0
        self.car_time: dict[str, float] = {}

    async def poll(self, vin: str) -> PollResult:
        self.n += 1
        t = self.car_time.get(vin, 1_772_323_200.0)
        if (self.n % 100) < self.new * 100:
            t = self.car_time[vin] = t + 1.0
        await asyncio.sleep(0)  # one suspension, as a reply's arrival is
        return PollResult(Snapshot.build(vin, "smart", t, t + 5.0, self.values))

    async def command(self, vin: str, command: Command) -> CommandReceipt:
        raise NotImplementedError


def _writer_cpu() -> float:
    """CPU seconds of every thread but the event loop's (the history writer)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir("/proc/self/task"):
        if tid == str(os.getpid()):
            continue
        with open(f"/proc/self/task/{tid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


async def _pipeline_round(
    values: dict[str, Value], cars: int, new: float, seconds: float, tmp: Path
) -> tuple[float, float, float, float]:
    """(plain loop, + scheduler and hub, + history, of which the writer thread): µs CPU per poll."""
    vins = [f"HESXR1C4BENCH{i:05d}" for i in range(cars)]

    async def plain() -> float:
        p = _Instant(values, new)
        done = [0]

        async def worker(k: int) -> None:
            while True:
                for vin in vins[k::8]:
                    await p.poll(vin)
                    done[0] += 1

        tasks = [asyncio.create_task(worker(k)) for k in range(8)]
        await asyncio.sleep(0.2)
        c0, n0 = time.process_time(), done[0]
        await asyncio.sleep(seconds)
        c1, n1 = time.process_time(), done[0]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return (c1 - c0) / max(1, n1 - n0)

    async def scheduled(store: bool) -> tuple[float, float]:
        hub, done = Hub(max_skew=1e12), [0]
        zero = PollConfig.model_construct(
            driving=0, charging=0, parked=0, asleep=0, jitter=0, concurrency=8
        )
        sched = Scheduler(
            hub,
            Health(),
            RealClock(),
            zero,
            on_poll=lambda _v, _r: done.__setitem__(0, done[0] + 1),
        )
        p = _Instant(values, new)
        for vin in vins:
            sched.add(vin, p)
        history = History(tmp / f"h{time.monotonic_ns()}.db") if store else None
        tasks = [asyncio.create_task(sched.run())]
        if history is not None:
            history.open()
            hub.subscribe(history.add)
            tasks.append(asyncio.create_task(history.run()))
        await asyncio.sleep(0.2)
        c0, n0, w0 = time.process_time(), done[0], _writer_cpu()
        await asyncio.sleep(seconds)
        c1, n1, w1 = time.process_time(), done[0], _writer_cpu()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if history is not None:
            history.close()
        n = max(1, n1 - n0)
        return (c1 - c0) / n, (w1 - w0) / n

    base = await plain()
    hub_only, _ = await scheduled(False)
    stored, writer = await scheduled(True)
    return base, hub_only, stored, writer


def pipeline(cars: int, new: float, rounds: int, seconds: float) -> list[list[object]]:
    """Rows of the second table: the best round of each figure (µs CPU per poll)."""
    s, soc, st = (
        parse_envelope(_raw(r)).data
        for r in (json.loads(REPLIES.read_text())["driving"][k] for k in ("status", "soc", "state"))
    )
    snap = to_snapshot("HESXR1C43SG815785", parse_status(s, soc, st, series="HX11"), 1.0)
    values = {k: v for k, v in snap.values.items() if k != "last_update"}
    best = [float("inf")] * 4
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            got = asyncio.run(_pipeline_round(values, cars, new, seconds, Path(tmp)))
            best = [min(b, g) for b, g in zip(best, got, strict=True)]
    base, hub_only, stored, writer = (x * 1e6 for x in best)
    return [
        ["provider in a plain loop (the snapshot built)", f"{base:.1f}"],
        ["+ scheduler and hub", f"{hub_only - base:.1f}"],
        [f"+ history ({new:.0%} of polls a new row)", f"{stored - hub_only:.1f}"],
        ["  of which the writer thread", f"{writer:.1f}"],
    ]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=200, help="calls per round")
    ap.add_argument("--cars", type=int, default=5000, help="cars of the pipeline table")
    ap.add_argument("--new", type=float, default=0.4, help="share of polls with a new report")
    ap.add_argument("--pipeline-rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0, help="window of a pipeline round")
    args = ap.parse_args(argv)
    per, fns = stages()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(args.rounds):
        for name, fn in fns.items():  # interleaved: a noisy moment hits every stage alike
            t = time.process_time()
            for _ in range(args.repeat):
                fn()
            best[name] = min(best[name], (time.process_time() - t) / args.repeat / per)
    rows: list[list[object]] = [[name, f"{s * 1e6:.1f}"] for name, s in best.items()]
    rows.append(["total", f"{sum(best.values()) * 1e6:.1f}"])
    print(table(["stage", "µs CPU per vehicle-poll (best round)"], rows))
    print()
    rows = pipeline(args.cars, args.new, args.pipeline_rounds, args.seconds)
    print(table([f"pipeline, {args.cars} cars", "µs CPU per vehicle-poll (best round)"], rows))


if __name__ == "__main__":
    main()
