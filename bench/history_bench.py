"""Benchmark 4: history bytes per vehicle-day and rows per day, and the writer's insert speed.

Part 1 runs the real exporter runtime (embedded simulator, the demo smart account, default poll
cadence) on an accelerated clock for a few simulated days, then measures the SQLite file (after a
checkpoint and VACUUM, minus an empty database) per vehicle-day, and rows per vehicle-day; also the
file as the writer left it (before the VACUUM: pages as live appends filled them). The
simulated cars commute, run errands, take longer drives and charge, as the vehicle model plans. The
same rows (as the ``samples`` view reads them) are then copied into the version-1 layout (one REAL
per signal, TEXT VIN and enums, rowid table with a (vin, ts) key index) and measured the same way:
a same-run ratio of the two layouts.

Part 2 compares the writer (``History.add`` + ``flush``: row building, vehicle ids, the late-row
mark, batching, the executor hop, ``INSERT OR IGNORE``) with a raw ``executemany`` of the already
built rows into the same table (``sample_data``), same run.

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
from exporter import history_layout
from exporter.clock import ScaledClock
from exporter.config import AccountConfig, Config, PollConfig, SimulatorConfig
from exporter.history import History, HistoryWriter, _v1, connect, migrate
from exporter.runtime import running
from exporter.snapshot import Snapshot


def vacuumed_size(path: Path) -> int:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("VACUUM")
    conn.close()
    return path.stat().st_size


def written_size(path: Path) -> int:
    """The file as the live writer left it (pages as filled by appends), WAL folded in."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
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
    empty_size = vacuumed_size(empty)
    written = written_size(db) - empty_size
    data = vacuumed_size(db) - empty_size
    vd = vehicles * elapsed_days
    v1 = v1_layout(db, tmp)
    return {
        "vehicles": vehicles,
        "days": elapsed_days,
        "rows_per_vehicle_day": rows / vd,
        "bytes_per_vehicle_day": data / vd,
        "written_per_vehicle_day": written / vd,
        "bytes_per_row": data / rows if rows else float("nan"),
        "v1_per_vehicle_day": v1 / vd,
        "v1_bytes_per_row": v1 / rows if rows else float("nan"),
    }


def v1_layout(db: Path, tmp: Path) -> int:
    """The same rows in the version-1 table (what ``samples`` was before the compact layout):
    vacuumed bytes, minus an empty version-1 file."""
    sizes = []
    for name, copy in (("v1-empty.db", False), ("v1.db", True)):
        path = tmp / name
        conn = sqlite3.connect(path)
        with conn:
            _v1(conn)
            if copy:
                conn.execute("ATTACH DATABASE ? AS src", (str(db),))
                conn.execute("INSERT INTO main.samples SELECT * FROM src.samples ORDER BY vin, ts")
                conn.execute("INSERT INTO main.vehicles SELECT * FROM src.vehicles")
        if copy:
            conn.execute("DETACH DATABASE src")
        conn.close()
        sizes.append(vacuumed_size(path))
    return sizes[1] - sizes[0]


def writer_rate(snaps: list[Snapshot], db: Path, batch: int) -> float:
    return timed_writes(History(db, batch_size=batch), snaps, batch)


def timed_writes(h: HistoryWriter, snaps: list[Snapshot], batch: int) -> float:
    """Rows per second of ``h`` writing ``snaps`` in batches, as the running writer does."""
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
    codec = history_layout.codec(conn)
    ids: dict[tuple[str, str], int] = {}
    with conn:
        for s in snaps:
            if (s.vin, s.provider) not in ids:
                cur = conn.execute(
                    "INSERT INTO vins (vin, provider) VALUES (?, ?)", (s.vin, s.provider)
                )
                ids[s.vin, s.provider] = int(cur.lastrowid or 0)
    # built outside the clock: the floor is SQLite alone
    rows = [codec.row(s) for s in snaps]
    for r in rows:
        r[0] = ids[r[0]]
    t = time.perf_counter()
    for i in range(0, len(rows), batch):
        with conn:
            conn.executemany(codec.insert_sql, rows[i : i + batch])
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
                        "as written (before VACUUM)",
                        "v1 layout: bytes / row",
                        "v1 layout: KB / vehicle-day",
                        "compact ÷ v1",
                    ],
                    [
                        [
                            int(st["vehicles"]),
                            st["days"],
                            st["rows_per_vehicle_day"],
                            st["bytes_per_row"],
                            st["bytes_per_vehicle_day"] / 1000,
                            st["written_per_vehicle_day"] / 1000,
                            st["v1_bytes_per_row"],
                            st["v1_per_vehicle_day"] / 1000,
                            f"{st['bytes_per_vehicle_day'] / st['v1_per_vehicle_day'] * 100:.0f} %",
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
