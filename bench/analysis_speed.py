"""How long the analysis takes on a vehicle-year of one-minute samples (525,600 rows per vehicle).

Builds the history with the scripted commuter of ``analysis.testing`` (two commutes a day, weekend
trips with DC stops, home charging), stores it in the exporter's own schema, then times, as the
median of ``--runs`` runs: reading it (``analysis.load``), trips + charging sessions, every other
result (idle drain, efficiency, battery, summary), and ``derive`` from scratch and again (nothing
new). Figures go to docs/BENCHMARKS.md and docs/ANALYSIS.md.

    python bench/analysis_speed.py                 # 1 vehicle-year
    python bench/analysis_speed.py --vehicles 10   # 10 vehicle-years in one file
    python bench/analysis_speed.py --fleet 100 --distinct 5   # 100 vehicle-years, as the CLI runs them

``--fleet N`` measures what a fleet operator runs: N vehicle-years in one file, analysed one vehicle
at a time as ``carmetrics trips``/``charges`` do (memory bounded by one vehicle), and ``carmetrics db
derive`` from scratch and again. To build 100 vehicle-years in minutes rather than half an hour,
``--distinct`` commuters are generated and each is copied under further VINs inside SQLite (the
analysis cost per vehicle does not depend on which commuter it is).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import analysis
from analysis.testing import commuter
from exporter.history import ALL_COLUMNS, connect, migrate


def build(db: Path, vehicles: int, days: int) -> int:
    """Write ``vehicles`` commuter-years straight into the history schema; returns rows written."""
    conn = connect(db)
    migrate(conn)
    cols = ", ".join(f'"{c}"' for c in ALL_COLUMNS)
    sql = f"INSERT OR IGNORE INTO samples ({cols}) VALUES ({', '.join('?' for _ in ALL_COLUMNS)})"
    total = 0
    for i in range(vehicles):
        car = commuter(days, 60.0, seed=i, vin=f"HESXR1C4BENCH{i:04d}")
        rows = []
        for r in car.rows:
            rec: dict[str, Any] = {
                **r,
                "received_at": r["ts"],
                "provider": "smart",
                "source": "poll",
            }
            rec["last_update"] = r["ts"]
            rows.append(tuple(rec.get(c) for c in ALL_COLUMNS))
        with conn:
            conn.executemany(sql, rows)
            conn.execute(
                "INSERT OR REPLACE INTO vehicles VALUES (?,?,?,?,?,?,?,?,?)",
                (car.vin, "smart", "smart", "#1", "", "HX11", "bench", 0.0, 0.0),
            )
        total += len(rows)
    conn.close()
    return total


def clone_vehicles(db: Path, total: int) -> int:
    """Copy the built vehicles' rows under new VINs until ``total`` vehicles exist; returns rows."""
    from exporter import history_layout as layout

    conn = connect(db)
    cols = [r[1] for r in conn.execute(f"PRAGMA table_info({layout.TABLE})") if r[1] != "vehicle"]
    names = ", ".join(f'"{c}"' for c in cols)
    sources = [r[0] for r in conn.execute("SELECT id FROM vins ORDER BY id")]
    for i in range(len(sources), total):
        vin = f"HESXR1C4BENCH{i:04d}"
        with conn:
            new = conn.execute(
                "INSERT INTO vins (vin, provider) VALUES (?, 'smart')", (vin,)
            ).lastrowid
            conn.execute(
                f"INSERT INTO {layout.TABLE} (vehicle, {names}) "
                f"SELECT ?, {names} FROM {layout.TABLE} WHERE vehicle = ?",
                (new, sources[i % len(sources)]),
            )
            conn.execute(
                "INSERT OR REPLACE INTO vehicles VALUES (?,?,?,?,?,?,?,?,?)",
                (vin, "smart", "smart", "#1", "", "HX11", "bench", 0.0, 0.0),
            )
    (rows,) = conn.execute(f"SELECT count(*) FROM {layout.TABLE}").fetchone()
    conn.close()
    return int(rows)


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def fleet(db: Path, settings: analysis.Settings) -> None:
    """Per vehicle, as the CLI does it; then derive from scratch and with nothing new."""
    vins = analysis.vins(db)
    t0 = time.perf_counter()
    t_load = 0.0
    trips = charges = 0
    for vin in vins:
        t = time.perf_counter()
        df = analysis.load(db, vin=vin)
        t_load += time.perf_counter() - t
        a = analysis.Analysis(df, settings)
        trips += len(a.trips)
        charges += len(a.charges)
    t_all = time.perf_counter() - t0
    t = time.perf_counter()
    analysis.derive(db, settings, rebuild=True)
    t_derive = time.perf_counter() - t
    t = time.perf_counter()
    analysis.derive(db, settings)
    t_again = time.perf_counter() - t
    print(f"vehicles:                         {len(vins):>10,}")
    print(f"trips / charging sessions:        {trips:>10,} / {charges:,}")
    print(f"load + trips + charges, per vin:  {t_all:8.1f} s (of which load {t_load:.1f} s)")
    print(f"derive, from scratch:             {t_derive:8.1f} s")
    print(f"derive, nothing new:              {t_again:8.1f} s")
    print(f"peak RSS:                         {peak_rss_mb():8.0f} MB")


def timed(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--vehicles", type=int, default=1)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--fleet", type=int, default=0, help="N vehicle-years, analysed per vehicle")
    ap.add_argument("--distinct", type=int, default=5, help="--fleet: commuters generated")
    args = ap.parse_args()
    settings = analysis.Settings(timezone="Europe/Berlin")
    if args.fleet:
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "fleet.db"
            t0 = time.perf_counter()
            build(db, min(args.distinct, args.fleet), args.days)
            rows = clone_vehicles(db, args.fleet)
            print(
                f"built {rows:,} rows for {args.fleet} vehicles in {time.perf_counter() - t0:.0f} s"
            )
            print(f"file size: {db.stat().st_size / 1e9:.2f} GB")
            fleet(db, settings)
        return
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "year.db"
        t0 = time.perf_counter()
        rows = build(db, args.vehicles, args.days)
        print(
            f"built {rows:,} rows for {args.vehicles} vehicle(s) in {time.perf_counter() - t0:.1f} s"
        )
        df = analysis.load(db)
        t_load = timed(lambda: analysis.load(db), args.runs)

        def core() -> None:
            a = analysis.Analysis(df, settings)
            _ = a.trips, a.charges

        def everything() -> None:
            a = analysis.Analysis(df, settings)
            _ = a.trips, a.charges, a.drain, a.battery, a.efficiency(), a.summary("day")

        t_core = timed(core, args.runs)
        t_all = timed(everything, args.runs)
        a = analysis.Analysis(df, settings)
        t_derive = timed(lambda: analysis.derive(db, settings, rebuild=True), args.runs)
        t_again = timed(lambda: analysis.derive(db, settings), args.runs)
    print(f"samples:                      {len(df):>10,}")
    print(f"trips / charging sessions:    {len(a.trips):>6,} / {len(a.charges):,}")
    print(f"load (SQLite -> DataFrame):   {t_load:8.2f} s")
    print(f"trips + charges:              {t_core:8.2f} s")
    print(f"all analyses:                 {t_all:8.2f} s")
    print(f"derive, from scratch:         {t_derive:8.2f} s")
    print(f"derive, nothing new:          {t_again:8.2f} s")
    print(f"(median of {args.runs} runs; Python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
