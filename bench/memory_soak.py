"""Does a long-lived exporter's memory grow? Weeks of faults against a simulator in another process.

The fault soak (``bench/soak.py``) restarts the exporter every simulated day and shares its process
with both simulated clouds, so its RSS says little about one exporter running for weeks. Here the smart
simulator runs in a child process (``bench/simproc.py``, every fault knob at ``--fault-rate``) and this
process holds only the pipeline ``carmetrics run`` builds — scheduler at the default ``[poll]``
cadence, smart providers, hub, SQLite history, the real /metrics handler scraped over HTTP — for
``--days`` simulated days without a restart. Both processes run the same accelerated clock
(``ScaledClock.shared``). Once per simulated day it records this process's RSS, the number of objects
the cyclic GC tracks and the poll counts; at the end the peak RSS (VmHWM) and the growth from day 2 to
the last day (day 1 includes start-up: logins, first polls, imports).

    python -m bench.memory_soak --days 30 --smart 50 --accounts 5 --speed 3000 --fault-rate 0.05
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import tempfile
import time
from pathlib import Path

import aiohttp

from bench import simproc
from bench.common import rss_bytes, table
from bench.pipeline import Pipeline, peak_rss_bytes, scrape
from exporter.config import PollConfig

DAY = 86400.0


Day = tuple[int, float, int, int, int, int]  # day, RSS MB, tracked objects, polls, failed, rows


async def run(args: argparse.Namespace, db: Path) -> list[Day]:
    with simproc.start(
        smart=args.smart,
        accounts=args.accounts,
        speed=args.speed,
        fault_rate=args.fault_rate,
        hang_seconds=1.5,
    ) as sim:
        clock = simproc.clock_of(sim.info)
        # client timeouts are real seconds: 1 s against the simulator's 1.5 s hang
        pipe = Pipeline(clock, db, PollConfig(timeout=1.0))
        await pipe.start()
        polls, history = pipe.polls, pipe.history
        rows: list[Day] = []
        timeout = aiohttp.ClientTimeout(total=1.0)
        async with aiohttp.ClientSession(timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()) as s:
            await pipe.add_smart_accounts(sim.info, s)
            t0 = clock.now()
            for day in range(1, args.days + 1):
                while clock.now() < t0 + day * DAY:
                    await scrape(pipe.port)  # as Prometheus would, a few times per simulated day
                    await asyncio.sleep(args.scrape_every)
                rows.append(
                    (
                        day,
                        rss_bytes() / 1e6,
                        len(gc.get_objects()),
                        polls[0],
                        polls[1],
                        history.rows_written,
                    )
                )
                print(*rows[-1], flush=True)
        await pipe.stop()
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--smart", type=int, default=50)
    ap.add_argument("--accounts", type=int, default=5)
    ap.add_argument("--speed", type=float, default=3000.0)
    ap.add_argument("--fault-rate", type=float, default=0.05)
    ap.add_argument("--scrape-every", type=float, default=5.0, help="real seconds between scrapes")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        rows = asyncio.run(run(args, Path(d) / "h.db"))
    peak = peak_rss_bytes() / 1e6
    shown = [list(r) for r in rows if r[0] in {1, 2, 5, 10, 15, 20, 25} or r is rows[-1]]
    print(
        table(
            ["simulated day", "RSS MB", "GC-tracked objects", "polls", "failed polls", "rows"],
            shown,
        )
    )
    if len(rows) > 2:
        first, last = rows[1], rows[-1]
        per_day = (last[1] - first[1]) / (last[0] - first[0])
        print(
            f"\nRSS day 2 -> day {last[0]}: {first[1]:.1f} -> {last[1]:.1f} MB "
            f"({per_day * 1000:+.0f} kB per simulated day); peak {peak:.1f} MB; "
            f"GC-tracked objects {first[2]} -> {last[2]}; "
            f"{args.smart} smart cars, fault rate {args.fault_rate:.0%}, "
            f"{time.perf_counter() - started:.0f} s wall"
        )


if __name__ == "__main__":
    main()
