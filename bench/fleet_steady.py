"""Benchmark 2: a 10,000-vehicle fleet at the default cadence, measured in steady state.

The simulator runs in its own process (real time, speed 1) with the cars spread over smart
accounts; this process runs the pipeline as ``carmetrics run`` builds it (scheduler at the default
``[poll]`` settings, providers, hub, SQLite history, the /metrics handler of ``exporter.server`` on a
loopback port) and is scraped every 15 s like Prometheus does it: over HTTP, gzip, by another process
(a small urllib client in a child process, whose CPU is not counted). After a warm-up (start-up polls every car once at
once) it reports this process's CPU share of one core, peak RSS (VmHWM, reset after the warm-up),
event-loop lag p99 and scrape time as the scraper saw it.

    python -m bench.fleet_steady --vehicles 10000 --accounts 50 --minutes 10 --warmup 90
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import tempfile
import time
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
from aiohttp import web

from bench import simproc
from bench.common import LoopLag, cpu_seconds, median, percentile, rss_bytes, table
from bench.poll_throughput import _account
from exporter.clock import RealClock
from exporter.config import PollConfig
from exporter.health import Health
from exporter.history import History
from exporter.hub import Hub
from exporter.metrics import VehicleCollector, make_registry
from exporter.providers.base import MemoryTokenStore, ProviderError
from exporter.providers.smart import build
from exporter.scheduler import Scheduler
from exporter.server import _RENDER, RUNTIME, metrics


async def serve_metrics(registry: object, collector: object) -> tuple[web.AppRunner, int]:
    """The real /metrics handler on a loopback port, over the bench's own pipeline pieces."""
    app = web.Application()
    app[RUNTIME] = types.SimpleNamespace(registry=registry, collector=collector)  # type: ignore[misc]
    app[_RENDER] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics")
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, int(port)


_SCRAPER = """
import sys, time, urllib.request
req = urllib.request.Request(sys.argv[1], headers={"Accept-Encoding": "gzip"})
t = time.perf_counter()
with urllib.request.urlopen(req, timeout=120) as resp:
    size = len(resp.read())
print(time.perf_counter() - t, size)
"""


async def scrape(port: int) -> tuple[float, int]:
    """One scrape as Prometheus does it (gzip), by another process: (seconds, bytes on the wire)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _SCRAPER,
        f"http://127.0.0.1:{port}/metrics",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    seconds, size = out.split()
    return float(seconds), int(size)


def reset_peak_rss() -> bool:
    """Reset VmHWM (Linux: write 5 to clear_refs), so the peak is of the measured window only."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


async def run(
    vehicles: int, accounts: int, minutes: float, warmup: float, db: Path, scrape_every: float
) -> None:
    clock = RealClock()
    with simproc.start(smart=vehicles, accounts=accounts, speed=1) as sim:
        hub, health, history = Hub(), Health(), History(db)
        history.open()
        hub.subscribe(history.add)
        hub.on_vehicle(history.add_vehicle)
        polls = [0, 0]

        def on_poll(_vin: str, result: object) -> None:
            polls[1 if isinstance(result, ProviderError) else 0] += 1

        sched = Scheduler(hub, health, clock, PollConfig(), on_poll=on_poll)
        collector = VehicleCollector(hub, health, clock, history=history)
        registry = make_registry(collector)
        runner, port = await serve_metrics(registry, collector)
        lag = LoopLag(interval=0.05)
        tasks = [asyncio.create_task(history.run()), asyncio.create_task(sched.run())]
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            store = MemoryTokenStore()
            for i, acc in enumerate(sim.info["accounts"]):
                p = build(_account(i, acc), session, clock, store, sim.info["urls"]["smart"])
                await p.start()
                for info in await p.vehicles():
                    hub.register(info)
                    sched.add(info.vin, p)
            tasks.append(asyncio.create_task(lag.run()))
            await asyncio.sleep(warmup)
            peak_reset = reset_peak_rss()
            lag.samples.clear()
            p0, rows0 = polls[:], history.rows_written
            c0, c0_sim, t0 = cpu_seconds(), _sim_cpu(sim.pid), time.perf_counter()
            scrapes: list[float] = []
            sizes: list[int] = []
            rss: list[int] = []
            end = t0 + minutes * 60
            while time.perf_counter() < end:
                s = time.perf_counter()
                if scrape_every > 0:
                    took, size = await scrape(port)
                    scrapes.append(took)
                    sizes.append(size)
                rss.append(rss_bytes())
                await asyncio.sleep(max(0.0, (scrape_every or 15) - (time.perf_counter() - s)))
            wall = time.perf_counter() - t0
            peak = peak_rss_bytes() if peak_reset else max(rss)
            cpu = cpu_seconds() - c0
            sim_cpu = _sim_cpu(sim.pid) - c0_sim
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await runner.cleanup()
        history.close()
    print(
        table(
            [
                "vehicles",
                "minutes",
                "polls/s",
                "errors",
                "rows/s",
                "CPU % of one core",
                "RSS MB (first / peak)",
                "loop lag p99 ms",
                "scrape ms (median / max)",
                "scrape MB (gzip)",
                "simulator CPU %",
            ],
            [
                [
                    vehicles,
                    wall / 60,
                    (polls[0] - p0[0]) / wall,
                    polls[1] - p0[1],
                    (history.rows_written - rows0) / wall,
                    100 * cpu / wall,
                    f"{rss[0] / 1e6:.0f} / {peak / 1e6:.0f}",
                    percentile(lag.samples, 99) * 1000,
                    f"{median(scrapes) * 1000:.0f} / {max(scrapes) * 1000:.0f}"
                    if scrapes
                    else "no scrapes",
                    median([float(s) for s in sizes]) / 1e6 if sizes else float("nan"),
                    100 * sim_cpu / wall,
                ]
            ],
        )
    )
    print(
        f"\n{accounts} smart accounts, default [poll] cadence, scrape every {scrape_every:g} s, "
        f"after {warmup:g} s warm-up"
    )


def _sim_cpu(pid: int) -> float:
    from bench.common import proc_cpu_seconds

    with contextlib.suppress(OSError):
        return proc_cpu_seconds(pid)
    return float("nan")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--vehicles", type=int, default=10_000)
    ap.add_argument("--accounts", type=int, default=50)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=90.0)
    ap.add_argument("--scrape-every", type=float, default=15.0, help="0: no scrapes")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)
    with tempfile.TemporaryDirectory() as d:
        asyncio.run(
            run(
                args.vehicles,
                args.accounts,
                args.minutes,
                args.warmup,
                Path(d) / "h.db",
                args.scrape_every,
            )
        )


if __name__ == "__main__":
    main()
