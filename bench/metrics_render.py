"""Benchmark 3: /metrics render time and size at 100, 1,000 and 10,000 vehicles.

The registry is the exporter's own (``VehicleCollector`` over a Hub filled with real snapshots, plus
health bookkeeping and process metrics), rendered by ``render_exposition`` exactly as the /metrics
handler does. Three render times per size, all in the same run:

* **cold**: a fresh collector, nothing cached (the first scrape after start-up);
* **steady**: between two scrapes ``--churn`` of the cars (default 2.5 %: 10,000 cars at the default
  cadence poll ~17 cars/s, a scrape every 15 s) publish a new report and their poll health changes;
* **library**: prometheus_client's text encoder over the *same samples*, handed to it as ready-made
  metric families, i.e. the encoding alone, which is a lower bound of the previous renderer (that also
  built the families on every scrape).

"Per 10k series" scales a render time to the issue's unit. A second part checks that a scrape does not
stall polling: the handler renders in a worker thread, and a loop-lag probe runs on the event loop
while steady-state scrapes (with churn) are rendered back to back.

    python -m bench.metrics_render --sizes 100,1000,10000 --runs 7
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import random
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from bench.common import LoopLag, median, percentile, table
from bench.samples import clone, info_for, real_snapshots
from exporter.clock import ManualClock
from exporter.health import Health
from exporter.hub import Hub
from exporter.metrics import VehicleCollector, make_registry, render_exposition
from exporter.snapshot import Snapshot


class Scene:
    """A hub of ``n`` cars and the exporter's registry over it, with a way to make some cars report."""

    def __init__(self, n: int, base: list[Snapshot]) -> None:
        self.clock = ManualClock()
        self.hub, self.health = Hub(), Health()
        self.rng = random.Random(n)
        for snap in clone(base, n, t0=self.clock.now() - 60):
            self.hub.register(info_for(snap))
            self.hub.publish(snap)
            h = self.health.vehicle(snap.vin)
            h.provider, h.polls, h.last_success = snap.provider, 10, self.clock.now()
            h.last_duration, h.next_poll, h.interval = 0.05, self.clock.now() + 600, 600.0
        self.vins = list(self.hub.vehicles)
        self.fresh_collector()

    def fresh_collector(self) -> None:
        self.collector = VehicleCollector(self.hub, self.health, self.clock)
        self.registry = make_registry(self.collector)

    def churn(self, share: float) -> None:
        """``share`` of the cars publish a new report (a minute later, SoC moved) and were polled."""
        self.clock.advance(15)
        for vin in self.rng.sample(self.vins, max(1, round(len(self.vins) * share))):
            prev = self.hub.latest(vin)
            assert prev is not None
            values = dict(prev.values)
            values["battery_soc"] = max(0.0, float(values.get("battery_soc") or 0.5) - 0.001)
            t = prev.car_time + 60
            self.hub.publish(replace(prev, car_time=t, received_at=t, values=values))
            h = self.health.vehicle(vin)
            h.polls += 1
            h.last_success, h.next_poll = self.clock.now(), self.clock.now() + 60

    def render(self) -> bytes:
        return b"".join(render_exposition(self.registry, self.collector))


class Frozen(Collector):
    """Ready-made families: what prometheus_client's encoder costs without building them."""

    def __init__(self, body: bytes) -> None:
        self.metrics = list(text_string_to_metric_families(body.decode()))

    def collect(self) -> Iterator[Metric]:
        return iter(self.metrics)


def series_count(body: bytes) -> int:
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


def timed(fn: object, runs: int, before: object = None) -> float:
    times = []
    for _ in range(runs):
        if callable(before):
            before()
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return median(times)


async def lag_during_scrapes(scene: Scene, seconds: float, churn: float) -> tuple[float, int]:
    """p99 loop lag (s) while scrapes render back to back in a worker thread, as /metrics does."""
    probe = LoopLag(interval=0.01)
    task = asyncio.create_task(probe.run())
    loop = asyncio.get_running_loop()
    scrapes = 0
    with ThreadPoolExecutor(max_workers=1) as pool:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            scene.churn(churn)
            await loop.run_in_executor(pool, render_exposition, scene.registry, scene.collector)
            scrapes += 1
    task.cancel()
    return percentile(probe.samples, 99), scrapes


async def main_async(sizes: list[int], runs: int, lag_seconds: float, churn: float) -> None:
    base = await real_snapshots()
    rows = []
    for n in sizes:
        scene = Scene(n, base)
        body = scene.render()
        series = series_count(body)
        cold = timed(scene.render, runs, before=scene.fresh_collector)
        scene.render()
        steady = timed(scene.render, runs, before=lambda s=scene: s.churn(churn))
        frozen = CollectorRegistry(auto_describe=False)
        frozen.register(Frozen(scene.render()))
        library = timed(lambda r=frozen: generate_latest(r), runs)
        lag, scrapes = await lag_during_scrapes(scene, lag_seconds, churn)
        per10k = 10_000 / series
        rows.append(
            [
                n,
                series,
                cold * 1000,
                cold * 1000 * per10k,
                steady * 1000,
                steady * 1000 * per10k,
                library * 1000,
                library / steady,
                len(body) / 1e6,
                len(gzip.compress(body)) / 1e6,
                lag * 1000,
                scrapes,
            ]
        )
        del scene, frozen
    print(
        table(
            [
                "vehicles",
                "series",
                "cold ms",
                "cold ms per 10k series",
                "steady ms",
                "steady ms per 10k series",
                "library encoder ms",
                "library ÷ steady",
                "size MB",
                "gzip MB",
                "loop lag p99 ms during scrapes",
                "scrapes in lag window",
            ],
            rows,
        )
    )
    print(
        f"\nmedian of {runs} renders each; steady = {churn:.1%} of the cars reported since the last "
        f"scrape; loop lag probed every 10 ms for {lag_seconds:g} s"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--lag-seconds", type=float, default=5.0)
    ap.add_argument("--churn", type=float, default=0.025, help="share of cars reporting per scrape")
    args = ap.parse_args(argv)
    asyncio.run(
        main_async([int(s) for s in args.sizes.split(",")], args.runs, args.lag_seconds, args.churn)
    )


if __name__ == "__main__":
    main()
