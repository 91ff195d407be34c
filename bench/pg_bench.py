"""Benchmark 10: the PostgreSQL history, each figure a ratio taken in one run.

Part 1, the writer: ``PgHistory`` (``add`` + flush: row building with the SQLite codec, the
quantised values, vehicle ids, the late-row marks, one transaction and one ``COPY`` per batch)
against a raw ``COPY`` of the already built rows into the same partitioned table, one transaction
per batch, same run; the same raw COPY through asyncpg (the other driver); SQLite's writer on the
same rows for scale; and the bytes per row the partitioned table and its index take.

Part 2, the analysis of one vehicle-year (525,600 one-minute rows of the scripted commuter, stored
through each backend's own writer): ``analysis.load`` and ``db derive`` (from scratch, and again with
nothing new) from PostgreSQL against the same from SQLite.

The server is a throw-away cluster (``bench.postgres``) with fsync and synchronous_commit off, as the
tests run it; a production server pays one WAL flush per committed batch on top.

    python -m bench.pg_bench --rows 50000 --runs 3 --days 365
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.common import median, table
from bench.history_bench import timed_writes
from bench.postgres import PASSWORD, Cluster, find_binaries
from bench.samples import clone, real_snapshots
from exporter import history_layout as layout
from exporter.backend import backend
from exporter.dbtarget import PgTarget
from exporter.history import History
from exporter.pg import schema
from exporter.pg.connect import connect
from exporter.pg.history import _copy, pg_row
from exporter.settings import Secret
from exporter.snapshot import Snapshot


def empty(target: PgTarget) -> None:
    """A fresh schema for the next run (the tables dropped, migrations run again)."""
    with connect(target, autocommit=True) as c:
        c.execute("DROP SCHEMA public CASCADE")
        c.execute("CREATE SCHEMA public")
    backend(target).migrate()


def writer_rate(snaps: list[Snapshot], target: PgTarget, batch: int) -> float:
    empty(target)
    return timed_writes(backend(target).writer(batch_size=batch), snaps, batch)


def raw_rate(snaps: list[Snapshot], target: PgTarget, batch: int) -> float:
    """COPY of the finished rows, partitions made beforehand: PostgreSQL and libpq alone."""
    empty(target)
    conn = connect(target, autocommit=True)
    ids: dict[tuple[str, str], int] = {}
    for s in snaps:
        if (s.vin, s.provider) not in ids:
            (vid,) = conn.execute(
                "INSERT INTO vins (vin, provider) VALUES (%s, %s) RETURNING id", (s.vin, s.provider)
            ).fetchone()
            ids[s.vin, s.provider] = int(vid)
    codec = layout.DEFAULT_CODEC
    rows = [pg_row(codec.decode(codec.row(s)), ids[s.vin, s.provider]) for s in snaps]
    months = sorted({schema.month_of(r[1]) for r in rows})
    schema.create_months(conn, months)
    t = time.perf_counter()
    for i in range(0, len(rows), batch):
        with conn.transaction(), conn.cursor() as cur:
            _copy(cur, schema.TABLE, rows[i : i + batch])
    dt = time.perf_counter() - t
    conn.close()
    return len(rows) / dt


def asyncpg_rate(snaps: list[Snapshot], target: PgTarget, batch: int) -> float:
    """The same raw COPY through asyncpg (``copy_records_to_table``, binary): the other driver's
    floor, to choose between them on numbers."""
    import asyncpg

    empty(target)
    conn = connect(target, autocommit=True)
    ids: dict[tuple[str, str], int] = {}
    for s in snaps:
        if (s.vin, s.provider) not in ids:
            (vid,) = conn.execute(
                "INSERT INTO vins (vin, provider) VALUES (%s, %s) RETURNING id", (s.vin, s.provider)
            ).fetchone()
            ids[s.vin, s.provider] = int(vid)
    codec = layout.DEFAULT_CODEC
    rows = [tuple(pg_row(codec.decode(codec.row(s)), ids[s.vin, s.provider])) for s in snaps]
    schema.create_months(conn, sorted({schema.month_of(r[1]) for r in rows}))
    conn.close()
    from exporter.pg.history import COLUMNS

    async def go() -> float:
        password = target.password.reveal() if target.password else None
        a = await asyncpg.connect(target.url, password=password)
        try:
            t = time.perf_counter()
            for i in range(0, len(rows), batch):
                async with a.transaction():
                    await a.copy_records_to_table(
                        schema.TABLE, records=rows[i : i + batch], columns=list(COLUMNS)
                    )
            return time.perf_counter() - t
        finally:
            await a.close()

    return len(rows) / asyncio.run(go())


def sqlite_rate(snaps: list[Snapshot], db: Path, batch: int) -> float:
    h = History(db, batch_size=batch)
    h.open()
    t = time.perf_counter()
    for i in range(0, len(snaps), batch):
        h.write_now(snaps[i : i + batch])
    dt = time.perf_counter() - t
    h.close()
    return len(snaps) / dt


def bytes_per_row(target: PgTarget) -> tuple[float, float]:
    """(heap + TOAST, indexes) bytes per row of ``sample_data`` after a VACUUM."""
    with connect(target, autocommit=True) as c:
        c.execute(f"VACUUM ANALYZE {schema.TABLE}")
        (rows,) = c.execute(f"SELECT count(*) FROM {schema.TABLE}").fetchone()
        heap, index = c.execute(
            "SELECT sum(pg_table_size(relid)), sum(pg_indexes_size(relid)) "
            "FROM pg_partition_tree(%s) WHERE isleaf",
            (schema.TABLE,),
        ).fetchone()
    return float(heap) / rows, float(index) / rows


def writer_part(target: PgTarget, tmp: Path, n: int, runs: int) -> None:
    base = asyncio.run(real_snapshots())
    snaps: list[Snapshot] = []
    for car in clone(base, 100, t0=1.7e9):
        snaps += [replace(car, car_time=1.7e9 + 60 * j) for j in range(n // 100)]
    out = []
    for batch in (500, 5000):
        w, r, lite, apg = [], [], [], []
        for run in range(runs):
            w.append(writer_rate(snaps, target, batch))
            r.append(raw_rate(snaps, target, batch))
            apg.append(asyncpg_rate(snaps, target, batch))
            lite.append(sqlite_rate(snaps, tmp / f"s{batch}-{run}.db", batch))
        ratio = median([a / b for a, b in zip(w, r, strict=True)])
        vs_lite = median([a / b for a, b in zip(w, lite, strict=True)])
        out.append(
            [
                len(snaps),
                batch,
                median(w),
                median(r),
                f"{ratio * 100:.0f} %",
                median(apg),
                f"{median([a / b for a, b in zip(apg, r, strict=True)]) * 100:.0f} %",
                median(lite),
                f"{vs_lite * 100:.0f} %",
            ]
        )
    heap, index = bytes_per_row(target)
    print(
        table(
            [
                "rows",
                "batch",
                "PG writer rows/s",
                "raw COPY rows/s",
                "writer ÷ COPY",
                "asyncpg raw COPY rows/s",
                "asyncpg ÷ psycopg COPY",
                "SQLite writer rows/s",
                "PG ÷ SQLite writer",
            ],
            out,
        )
    )
    print(f"\nsample_data: {heap:.0f} bytes/row of table + {index:.0f} bytes/row of index")
    print(f"(median of {runs} runs, {len(base)} models cloned over 100 cars)")


def timed(fn: Any, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return median(times)


def analysis_part(target: PgTarget, tmp: Path, days: int, runs: int) -> None:
    import pandas as pd

    import analysis
    from analysis.testing import commuter, write_history

    empty(target)
    db = tmp / "year.db"
    t = time.perf_counter()
    frame = commuter(days, 60.0, seed=0, vin="HESXR1C4PGBENCH01").frame()
    print(f"built {len(frame):,} rows in {time.perf_counter() - t:.0f} s")
    for where in (db, target):
        t = time.perf_counter()
        write_history(where, [frame])
        print(
            f"stored through the {type(where).__name__} writer in {time.perf_counter() - t:.1f} s"
        )
    pd.testing.assert_frame_equal(analysis.load(db), analysis.load(target))  # same history
    settings = analysis.Settings(timezone="Europe/Berlin")
    rows = []
    for label, fn in (
        ("load (history -> DataFrame)", lambda where: analysis.load(where)),
        ("db derive, from scratch", lambda where: analysis.derive(where, settings, rebuild=True)),
        ("db derive, nothing new", lambda where: analysis.derive(where, settings)),
    ):
        lite = timed(lambda fn=fn: fn(db), runs)
        pg = timed(lambda fn=fn: fn(target), runs)
        rows.append([label, f"{lite:.2f} s", f"{pg:.2f} s", f"{pg / lite:.2f}"])
    print(table(["one vehicle-year", "SQLite", "PostgreSQL", "PG ÷ SQLite"], rows))
    print(f"(median of {runs} runs, {len(frame):,} rows)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=50_000, help="part 1 rows (0: skip)")
    ap.add_argument("--days", type=int, default=365, help="part 2 days of one car (0: skip)")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)
    bindir = find_binaries()
    if bindir is None:
        raise SystemExit("needs PostgreSQL's initdb/postgres (Debian: apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="carmetrics-pgbench-"))
    root.chmod(0o711)
    cluster = Cluster(bindir, root / "cluster")
    try:
        cluster.start()
        target = PgTarget(cluster.dsn_without_password, Secret(PASSWORD))
        tmp = root / "sqlite"
        tmp.mkdir()
        if args.rows:
            writer_part(target, tmp, args.rows, args.runs)
            print()
        if args.days:
            analysis_part(target, tmp, args.days, args.runs)
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
