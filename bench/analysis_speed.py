"""How long the analysis takes on a vehicle-year of one-minute samples (525,600 rows per vehicle).

Builds the history with the scripted commuter of ``analysis.testing`` (two commutes a day, weekend
trips with DC stops, home charging), stores it in the exporter's own schema, then times, as the
median of ``--runs`` runs: reading it (``analysis.load``), trips + charging sessions, every other
result (idle drain, efficiency, battery, summary), and ``derive`` from scratch and again (nothing
new). Figures go to docs/BENCHMARKS.md and docs/ANALYSIS.md.

    python bench/analysis_speed.py                 # 1 vehicle-year
    python bench/analysis_speed.py --vehicles 10   # 10 vehicle-years in one file
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
    args = ap.parse_args()
    settings = analysis.Settings(timezone="Europe/Berlin")
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
