"""Where a vehicle-poll's CPU goes, layer by layer, against the same simulator in the same process.

Benchmark 1 (``bench.poll_throughput``) compares the whole pipeline with a bare client, one after
the other; on a shared machine the load moves between the two windows by more than the effect
being looked for. This script alternates short windows of four clients many times in one process
and reports, per layer, the median CPU time per vehicle-poll relative to the bare client's in
the same round:

* **bare**: the three signed GETs with the binding headers, reading the bytes (``poll_throughput``'s
  ceiling client);
* **api**: the same three calls through ``SignedApi.call`` (signing, the guarded transport, the
  envelope and JSON decoding), nothing parsed;
* **provider**: ``SmartProvider.poll`` in a loop (the calls as above plus the provider's
  bookkeeping, parsing and the Snapshot);
* **pipeline**: the ``Scheduler`` with every interval 0, the hub and the batched SQLite history
  (``poll_throughput``'s carmetrics client).

Every layer polls the same cars with one worker per account. "CPU" is the process's (the history
writer thread included); the simulator runs in its own process.

    python -m bench.poll_layers --size 1000 --rounds 8 --window 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from bench import simproc
from bench.common import cpu_seconds, median, table
from bench.poll_throughput import (
    Counter,
    _cars,
    _providers,
    _session,
    run_carmetrics,
    run_ceiling,
)
from exporter.providers.smart.provider import SOC, STATE, STATUS, SmartProvider

Run = Callable[[dict[str, Any], float, float], Coroutine[Any, Any, tuple[int, float]]]


async def _windowed(
    info: dict[str, Any],
    warmup: float,
    window: float,
    worker: Callable[[SmartProvider, list[str], Counter], Coroutine[Any, Any, None]],
) -> tuple[int, float]:
    async with _session(len(info["accounts"])) as session:
        providers = await _providers(info, session)
        counter: Counter = [0, 0, 0]
        tasks = [asyncio.create_task(worker(p, v, counter)) for p, v in providers]
        try:
            await asyncio.sleep(warmup)
            while counter[0] < _cars(providers):  # every car read once, as benchmark 1 waits
                await asyncio.sleep(0.05)
            n0, c0 = counter[0], cpu_seconds()
            await asyncio.sleep(window)
            return counter[0] - n0, cpu_seconds() - c0
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(BaseException):
                    await t


async def run_api(info: dict[str, Any], warmup: float, window: float) -> tuple[int, float]:
    async def worker(p: SmartProvider, vins: list[str], counter: Counter) -> None:
        s = await p.auth.session()
        calls = [
            (STATUS, [("latest", "True"), ("target", "basic,more"), ("userId", s.user_id)]),
            (SOC, [("setting", "charging")]),
            (STATE, []),
        ]
        recs = [await p._record(v) for v in vins]
        while True:
            for rec in recs:
                binding = p._binding(rec)
                for path, q in calls:
                    await p.api.call(
                        "GET",
                        p._base(rec),
                        path.format(vin=rec.vin),
                        query=q,
                        token=s.access_token,
                        headers=binding,
                    )
                counter[0] += 1

    return await _windowed(info, warmup, window, worker)


async def run_provider(info: dict[str, Any], warmup: float, window: float) -> tuple[int, float]:
    async def worker(p: SmartProvider, vins: list[str], counter: Counter) -> None:
        while True:
            for vin in vins:
                await p.poll(vin)
                counter[0] += 1

    return await _windowed(info, warmup, window, worker)


async def run_bare(info: dict[str, Any], warmup: float, window: float) -> tuple[int, float]:
    r = await run_ceiling(info, warmup, window)
    return r.polls, r.cpu


async def run_pipeline(info: dict[str, Any], warmup: float, window: float) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        r = await run_carmetrics(info, warmup, window, Path(tmp) / "h.db")
    return r.polls, r.cpu


LAYERS: dict[str, Run] = {
    "bare": run_bare,
    "api": run_api,
    "provider": run_provider,
    "pipeline": run_pipeline,
}


async def measure(
    size: int, accounts: int, rounds: int, warmup: float, window: float
) -> dict[str, list[float]]:
    """Per layer and round: CPU µs per poll, and its ratio to the bare client's in that round."""
    ratios: dict[str, list[float]] = {k: [] for k in LAYERS if k != "bare"}
    per_poll: dict[str, list[float]] = {k: [] for k in LAYERS}
    with simproc.start(smart=size, accounts=accounts, speed=60) as sim:
        for _ in range(rounds):
            got: dict[str, float] = {}
            for name, run in LAYERS.items():
                polls, cpu = await run(sim.info, warmup, window)
                got[name] = cpu / polls if polls else float("nan")
                per_poll[name].append(got[name] * 1e6)
            for name in ratios:
                ratios[name].append(got[name] / got["bare"])
    return {**{f"{k} us": v for k, v in per_poll.items()}, **ratios}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--accounts", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--window", type=float, default=2.0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)
    t0 = time.perf_counter()
    res = asyncio.run(measure(args.size, args.accounts, args.rounds, args.warmup, args.window))
    rows = [
        [
            name,
            f"{median(res[f'{name} us']):.0f}",
            f"{median(res[name]) * 100:.0f} %" if name in res else "100 %",
            " / ".join(f"{r * 100:.0f}" for r in res[name]) if name in res else "",
        ]
        for name in LAYERS
    ]
    print(table(["layer", "CPU µs per poll (median)", "vs bare (median)", "per round (%)"], rows))
    print(
        f"\n{args.size} cars, {args.accounts} accounts; {args.rounds} rounds of {args.window:g} s "
        f"windows after {args.warmup:g} s warm-up, in {time.perf_counter() - t0:.0f} s."
    )


if __name__ == "__main__":
    main()
