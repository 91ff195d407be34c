"""Benchmark 4: history bytes per vehicle-day and rows per day, and the writer's insert speed.

Part 1 runs the real exporter runtime (embedded simulator, the demo smart account, default poll
cadence) on an accelerated clock for a few simulated days, then measures the SQLite file (after a
checkpoint and VACUUM, minus an empty database) per vehicle-day, and rows per vehicle-day. The
simulated cars commute, run errands, take longer drives and charge, as the vehicle model plans.

Part 2 compares the writer (``History.add`` + ``flush``: row building, batching, the executor hop,
``INSERT OR IGNORE``) with a raw ``executemany`` of the same tuples into the same schema, same run.

    python -m bench.history_bench --days 3 --speed 2000 --rows 50000 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sqlite3
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench.common import median, table
from bench.samples import clone, real_snapshots
from exporter.clock import ScaledClock
from exporter.config import AccountConfig, Config, PollConfig, SimulatorConfig
from exporter.history import _INSERT, History, _row, connect, migrate
from exporter.runtime import running
from exporter.snapshot import Snapshot


def vacuumed_size(path: Path) -> int:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("VACUUM")
    conn.close()
    return path.stat().st_size


async def storage(days: float, speed: float, tmp: Path) -> dict[str, float]:
    db = tmp / "storage.db"
    cfg = Config(
        db=db,
        poll=PollConfig(),  # the defaults: driving/charging 60 s, parked 600 s, asleep 1800 s
        simulator=SimulatorConfig(enabled=True, speed=speed, seed=11),
        accounts=(AccountConfig("demo-eu", "smart", 0, simulator=True, settings={"region": "EU"}),),
    )
    clock = ScaledClock(speed=speed)
    t0 = clock.now()
    async with running(cfg, clock) as rt:
        await asyncio.wait_for(rt.ready.wait(), 60)
        end = t0 + days * 86400
        while clock.now() < end:
            await asyncio.sleep(0.5)
        vehicles = len(rt.hub.vehicles)
        elapsed_days = (clock.now() - t0) / 86400
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    conn.close()
    empty = tmp / "empty.db"
    e = connect(empty)
    migrate(e)
    e.close()
    data = vacuumed_size(db) - vacuumed_size(empty)
    vd = vehicles * elapsed_days
    without_rowid = layout_experiment(db, tmp) - vacuumed_size(empty)
    return {
        "vehicles": vehicles,
        "days": elapsed_days,
        "rows_per_vehicle_day": rows / vd,
        "bytes_per_vehicle_day": data / vd,
        "bytes_per_row": data / rows if rows else float("nan"),
        "without_rowid_per_vehicle_day": without_rowid / vd,
    }


def layout_experiment(db: Path, tmp: Path) -> int:
    """The same rows in a ``WITHOUT ROWID`` table (the (vin, ts) key is the table, so the separate
    primary-key index and its copy of every VIN disappear): vacuumed file size."""
    copy = tmp / "without_rowid.db"
    conn = sqlite3.connect(db)
    conn.execute("VACUUM INTO ?", (str(copy),))
    conn.close()
    conn = sqlite3.connect(copy)
    (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'samples'").fetchone()
    assert sql.rstrip().endswith(") STRICT"), sql
    conn.execute(
        sql.replace("samples", "samples_wr", 1).rstrip().removesuffix("STRICT")
        + "WITHOUT ROWID, STRICT"
    )
    with conn:
        conn.execute("INSERT INTO samples_wr SELECT * FROM samples")
        conn.execute("DROP TABLE samples")
    conn.close()
    return vacuumed_size(copy)


def writer_rate(snaps: list[Snapshot], db: Path, batch: int) -> float:
    h = History(db, batch_size=batch)
    h.open()
    t = time.perf_counter()
    for i in range(0, len(snaps), batch):
        h.write_now(snaps[i : i + batch])
    dt = time.perf_counter() - t
    assert h.rows_written == len(snaps), (h.rows_written, len(snaps))
    h.close()
    return len(snaps) / dt


def raw_rate(snaps: list[Snapshot], db: Path, batch: int) -> float:
    conn = connect(db)
    migrate(conn)
    rows = [_row(s) for s in snaps]  # prepared outside the clock: the floor is SQLite alone
    t = time.perf_counter()
    for i in range(0, len(rows), batch):
        with conn:
            conn.executemany(_INSERT, rows[i : i + batch])
    dt = time.perf_counter() - t
    conn.close()
    return len(rows) / dt


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.days > 0:
            st = await storage(args.days, args.speed, tmp)
            print(
                table(
                    [
                        "vehicles",
                        "simulated days",
                        "rows / vehicle-day",
                        "bytes / row",
                        "KB / vehicle-day",
                        "KB / vehicle-day WITHOUT ROWID",
                    ],
                    [
                        [
                            int(st["vehicles"]),
                            st["days"],
                            st["rows_per_vehicle_day"],
                            st["bytes_per_row"],
                            st["bytes_per_vehicle_day"] / 1000,
                            st["without_rowid_per_vehicle_day"] / 1000,
                        ]
                    ],
                )
            )
            print()
        base = await real_snapshots()
        snaps: list[Snapshot] = []
        for car in clone(base, 100, t0=1.7e9):
            snaps += [replace(car, car_time=1.7e9 + 60 * j) for j in range(args.rows // 100)]
        rows = []
        for batch in (500, 5000):
            w, r = [], []
            for run in range(args.runs):
                w.append(writer_rate(snaps, tmp / f"w{batch}-{run}.db", batch))
                r.append(raw_rate(snaps, tmp / f"r{batch}-{run}.db", batch))
            ratio = median([a / b for a, b in zip(w, r, strict=True)])
            rows.append([len(snaps), batch, median(w), median(r), f"{ratio * 100:.0f} %"])
        print(
            table(
                ["rows", "batch", "writer rows/s", "raw executemany rows/s", "writer ÷ raw"], rows
            )
        )
        print(f"\nmedian of {args.runs} runs; WAL, synchronous=NORMAL, {len(base)} models cloned")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--days", type=float, default=3.0, help="simulated days (0: skip part 1)")
    ap.add_argument("--speed", type=float, default=2000.0, help="simulated seconds per second")
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
