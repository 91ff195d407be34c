"""The kill -9 drill: SIGKILL the history writer at random moments, 100 times, and check the file.

A writer child (``python -m bench.kill9 --writer DB TEMPLATE``) runs the real ``History`` (batched
single-writer thread, WAL, one transaction per flush) on an event loop, appending reports for 20
cars at up to ~20,000 rows/s. Every row is checkable: its odometer and state of charge are a function of
(car, tick), every other column equals a template snapshot taken from the simulator. On start the
child reads where each car stopped and continues from the next tick.

After each kill the parent checks: ``PRAGMA integrity_check`` is ``ok``; every row equals what the
writer would have written (no partial or torn row); each car's ticks are 0..n-1 with no gap (it
resumed exactly where the last commit ended) and the file grew since the previous round.

    python -m bench.kill9 --kills 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import table
from exporter.history import ALL_COLUMNS, History, stored_row
from exporter.snapshot import Snapshot

CARS = 20
T0 = 1_767_225_600.0
STEP = 60.0


def snapshot(template: dict[str, Any], car: int, tick: int) -> Snapshot:
    values = dict(template)
    values["odometer"] = 1000.0 * tick + car
    values["battery_soc"] = ((tick * 7 + car) % 101) / 100
    t = T0 + STEP * tick
    return Snapshot.build(f"KILL9CAR{car:09d}", "smart", t, t, values)


async def write_forever(db: Path, template: dict[str, Any]) -> None:
    history = History(db, batch_size=200, flush_interval=0.02)
    history.open()
    start = dict.fromkeys(range(CARS), 0)
    with sqlite3.connect(db) as c:
        for vin, ts in c.execute("SELECT vin, MAX(ts) FROM samples GROUP BY vin"):
            start[int(vin[-9:])] = round((ts - T0) / STEP) + 1
    runner = asyncio.create_task(history.run())
    print("ready", flush=True)
    tick = min(start.values())
    while True:
        for car in range(CARS):
            if tick >= start[car]:
                history.add(snapshot(template, car, tick))
        tick += 1
        # ~20k rows/s, 100x a busy exporter; a loop that never idles would starve the writer
        # thread of the GIL, which no real event loop does
        await asyncio.sleep(0.001)
        if runner.done():
            runner.result()


def check(
    db: Path, template: dict[str, Any], since: dict[str, float] | None = None
) -> tuple[bool, int, int, int]:
    """(integrity ok, rows, rows that differ from what was written, cars with a gap).

    Rows newer than ``since[vin]`` are compared column by column (older ones were checked in an
    earlier round; ``since`` is updated in place); contiguity is checked for every car."""
    since = {} if since is None else since
    conn = sqlite3.connect(db)
    try:
        ok = conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        cols = ", ".join(f'"{c}"' for c in ALL_COLUMNS)
        shape = conn.execute(
            "SELECT vin, COUNT(*), MIN(ts), MAX(ts) FROM samples GROUP BY vin"
        ).fetchall()
        bad = 0
        for vin, _, _, _ in shape:
            new = conn.execute(
                f"SELECT {cols} FROM samples WHERE vin = ? AND ts > ? ORDER BY ts",
                (vin, since.get(vin, -1.0)),
            ).fetchall()
            for row in new:
                want = stored_row(snapshot(template, int(row[0][-9:]), round((row[1] - T0) / STEP)))
                bad += tuple(row) != want
            if new:
                since[vin] = new[-1][1]
    finally:
        conn.close()
    gaps = sum(1 for _, n, lo, hi in shape if lo != T0 or round((hi - lo) / STEP) + 1 != n)
    return ok, sum(n for _, n, _, _ in shape), bad, gaps


def drill(
    kills: int, seed: int, tmp: Path, wait: tuple[float, float] = (0.05, 0.6)
) -> dict[str, Any]:
    """``kills`` rounds: start the writer, SIGKILL it after a random ``wait`` (s), check."""
    from bench.samples import real_snapshots

    snap = asyncio.run(real_snapshots())[0]
    template = {k: v for k, v in snap.values.items() if k != "last_update"}
    tpath = tmp / "template.json"
    tpath.write_text(json.dumps(template))
    db = tmp / "kill9.db"
    rng = random.Random(seed)
    failures: list[str] = []
    rows_before = 0
    stalled = 0
    checked: dict[str, float] = {}
    t_start = time.perf_counter()
    for i in range(kills):
        child = subprocess.Popen(
            [sys.executable, "-m", "bench.kill9", "--writer", str(db), str(tpath)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            child.wait()
            failures.append(f"round {i}: writer did not start (exit {child.returncode})")
            continue
        time.sleep(rng.uniform(*wait))
        child.send_signal(signal.SIGKILL)
        child.wait()
        ok, rows, bad, gaps = check(db, template, checked)
        if not ok:
            failures.append(f"round {i}: integrity_check failed")
        if bad:
            failures.append(f"round {i}: {bad} rows differ from what was written")
        if gaps:
            failures.append(f"round {i}: {gaps} cars have a gap (did not resume in place)")
        if rows <= rows_before:
            stalled += 1
        rows_before = rows
    return {
        "kills": kills,
        "integrity_check ok": kills - sum("integrity" in f for f in failures),
        "rows in the end": rows_before,
        "partial / wrong rows": sum("differ" in f for f in failures),
        "rounds with a gap": sum("gap" in f for f in failures),
        "rounds without progress": stalled,
        "wall s": time.perf_counter() - t_start,
        "failures": failures[:10],
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--writer", nargs=2, metavar=("DB", "TEMPLATE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.writer:
        db, tpath = Path(args.writer[0]), Path(args.writer[1])
        asyncio.run(write_forever(db, json.loads(tpath.read_text())))
        return
    with tempfile.TemporaryDirectory() as d:
        result = drill(args.kills, args.seed, Path(d))
    failures = result.pop("failures")
    print(table(["measure", "value"], [[k, v] for k, v in result.items()]))
    if failures:
        print("\nfailures:\n  " + "\n  ".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
