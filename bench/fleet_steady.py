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
import tempfile
import time
from pathlib import Path

import aiohttp

from bench import simproc
from bench.common import LoopLag, cpu_seconds, median, percentile, rss_bytes, table
from bench.pipeline import Pipeline, peak_rss_bytes, reset_peak_rss, scrape
from exporter.clock import RealClock
from exporter.config import PollConfig


async def run(
    vehicles: int, accounts: int, minutes: float, warmup: float, db: Path, scrape_every: float
) -> None:
    clock = RealClock()
    with simproc.start(smart=vehicles, accounts=accounts, speed=1) as sim:
        pipe = Pipeline(clock, db, PollConfig())
        await pipe.start()
        polls, history = pipe.polls, pipe.history
        lag = LoopLag(interval=0.05)
        lag_task = asyncio.create_task(lag.run())
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            await pipe.add_smart_accounts(sim.info, session)
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
                    took, size = await scrape(pipe.port)
                    scrapes.append(took)
                    sizes.append(size)
                rss.append(rss_bytes())
                await asyncio.sleep(max(0.0, (scrape_every or 15) - (time.perf_counter() - s)))
            wall = time.perf_counter() - t0
            peak = peak_rss_bytes() if peak_reset else max(rss)
            cpu = cpu_seconds() - c0
            sim_cpu = _sim_cpu(sim.pid) - c0_sim
            lag_task.cancel()
        await pipe.stop()
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
