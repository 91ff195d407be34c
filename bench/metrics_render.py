"""Benchmark 3: /metrics render time and size at 100, 1,000 and 10,000 vehicles.

The registry is the exporter's own (``VehicleCollector`` over a Hub filled with real snapshots, plus
health bookkeeping and process metrics), rendered with prometheus_client's text encoder as the
/metrics handler does. "Per 10k series" scales the render time to the issue's unit. A second part
checks that a scrape does not stall polling: the handler renders in a worker thread, and a loop-lag
probe runs on the event loop while scrapes are rendered back to back.

    python -m bench.metrics_render --sizes 100,1000,10000 --runs 7
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import time
from concurrent.futures import ThreadPoolExecutor

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from bench.common import LoopLag, median, percentile, table
from bench.samples import clone, info_for, real_snapshots
from exporter.clock import ManualClock
from exporter.health import Health
from exporter.hub import Hub
from exporter.metrics import VehicleCollector, make_registry


def build_registry(n: int, base: list[object]) -> tuple[CollectorRegistry, ManualClock]:
    clock = ManualClock()
    hub, health = Hub(), Health()
    for snap in clone(base, n, t0=clock.now() - 60):  # type: ignore[arg-type]
        hub.register(info_for(snap))
        hub.publish(snap)
        h = health.vehicle(snap.vin)
        h.provider, h.polls, h.last_success = snap.provider, 10, clock.now()
        h.last_duration, h.next_poll, h.interval = 0.05, clock.now() + 600, 600.0
    return make_registry(VehicleCollector(hub, health, clock)), clock


def series_count(body: bytes) -> int:
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


async def lag_during_scrapes(registry: CollectorRegistry, seconds: float) -> tuple[float, int]:
    """p99 loop lag (s) while scrapes render back to back in a worker thread, as /metrics does."""
    probe = LoopLag(interval=0.01)
    task = asyncio.create_task(probe.run())
    loop = asyncio.get_running_loop()
    scrapes = 0
    with ThreadPoolExecutor(max_workers=1) as pool:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            await loop.run_in_executor(pool, generate_latest, registry)
            scrapes += 1
    task.cancel()
    return percentile(probe.samples, 99), scrapes


async def main_async(sizes: list[int], runs: int, lag_seconds: float) -> None:
    base = await real_snapshots()
    rows = []
    for n in sizes:
        registry, _ = build_registry(n, base)  # type: ignore[arg-type]
        times = []
        body = b""
        for _ in range(runs):
            t = time.perf_counter()
            body = generate_latest(registry)
            times.append(time.perf_counter() - t)
        series = series_count(body)
        ms = median(times) * 1000
        lag, scrapes = await lag_during_scrapes(registry, lag_seconds)
        rows.append(
            [
                n,
                series,
                ms,
                ms * 10_000 / series,
                len(body) / 1e6,
                len(gzip.compress(body)) / 1e6,
                lag * 1000,
                scrapes,
            ]
        )
    print(
        table(
            [
                "vehicles",
                "series",
                "render ms (median)",
                "ms per 10k series",
                "size MB",
                "gzip MB",
                "loop lag p99 ms during scrapes",
                "scrapes in lag window",
            ],
            rows,
        )
    )
    print(f"\nmedian of {runs} renders; loop lag probed every 10 ms for {lag_seconds:g} s")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--lag-seconds", type=float, default=5.0)
    args = ap.parse_args(argv)
    asyncio.run(main_async([int(s) for s in args.sizes.split(",")], args.runs, args.lag_seconds))


if __name__ == "__main__":
    main()
