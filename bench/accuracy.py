"""How well trips and charging sessions come out of polled reports, scored strictly against truth.

Simulated cars (smart #1/#3/#5 on the smart cloud, three Smartcar makes on Smartcar; several seeds,
so several cities and habits; with ``--rare`` each car also meets one rare event: an odometer reset,
days of deep sleep, a switch to miles) live for ``--days`` simulated days and are read by the
exporter's own scheduler, hub and history on a moved clock (bench/accuracy_sampler.py), in each
regime below. Each smart car's own trip journal is read as the runtime reads it (every 6 h and
after a drive, through the provider's journal reader, answered by the simulator's journal renderer;
``--no-journal`` leaves it out, for the polling-only figures). What a user would see, ``carmetrics
trips|charges --format json``, is then scored against the simulator's ground truth by one-to-one
time overlap (bench/accuracy_scorer.py), for trips per source (journal / poll) beside the total.

Regimes:
  default     the default intervals (60 s driving/charging, 600 s parked, 1800 s asleep)
  coarse      300 s driving/charging, 1800 s parked/asleep
  faults      the default intervals, 5 % of polls failing as the simulated clouds fail
  smartcar    Smartcar at its budget-bound cadence: one poll per ~8.7 h, no webhooks
  webhooks    Smartcar with webhooks (a delivery per report with a changed trigger signal) and
              a safety poll every 12 h

    python bench/accuracy.py                        # all regimes, 3 seeds x 30 days, rare events
    python bench/accuracy.py --no-journal           # the same from polling alone
    python bench/accuracy.py --regimes default coarse --days 14 --seeds 1
    python bench/accuracy.py --out /tmp/accuracy.md

Prints Markdown tables (the ones in docs/ACCURACY.md). No wall-clock waits: a month of nine cars
takes seconds to a minute of CPU per regime.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from click.testing import CliRunner

from bench.accuracy_sampler import (
    SMARTCAR_FLOOR_S,
    SMARTCAR_WEBHOOK_POLL_S,
    Regime,
    Sampled,
    sample_direct,
)
from bench.accuracy_scorer import finished_within, score_charges, trips_by_source
from exporter.cli import cli
from exporter.config import PollConfig

COARSE = PollConfig(driving=300.0, charging=300.0, parked=1800.0, asleep=1800.0)
REGIMES: dict[str, Regime] = {
    "default": Regime("default"),
    "coarse": Regime("coarse", poll=COARSE),
    "faults": Regime("faults", fault_rate=0.05),
    "smartcar": Regime("smartcar", cloud="smartcar", floor_s=SMARTCAR_FLOOR_S),
    "webhooks": Regime(
        "webhooks", cloud="smartcar", floor_s=SMARTCAR_WEBHOOK_POLL_S, webhooks=True
    ),
}


def user_view(db: Path, what: str) -> list[dict[str, Any]]:
    """``carmetrics <what> --db <db> --format json --tz UTC``, run in-process, finished rows."""
    res = CliRunner().invoke(
        cli, [what, "--db", str(db), "--format", "json", "--tz", "UTC"], catch_exceptions=False
    )
    if res.exit_code != 0:
        raise RuntimeError(f"carmetrics {what} failed: {res.output}")
    rows: list[dict[str, Any]] = json.loads(res.stdout or "[]")
    return [r for r in rows if not r.get("ongoing")]


Car = tuple[list[Any], list[Any], list[Any], list[Any]]


def vehicles(res: Sampled) -> list[Car]:
    """Per car: (true trips, detected trips, true sessions, detected sessions), finished in the
    run on both sides; detected trips keep their ``source`` (journal or poll)."""
    trips = user_view(res.db, "trips")
    charges = user_view(res.db, "charges")
    return [
        (
            finished_within(gt["trips"], res.start, res.end),
            [r for r in trips if r["vin"] == vin],
            finished_within(gt["charges"], res.start, res.end),
            [c for c in charges if c["vin"] == vin],
        )
        for vin, gt in res.truth.items()
    ]


async def run_regime(regime: Regime, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    started = time.perf_counter()
    cars: list[Car] = []
    count: dict[str, int] = defaultdict(int)
    for seed in args.seeds:
        db = tmp / f"{regime.name}_{seed}.db"
        res = await sample_direct(
            db, None, args.days, regime, seed=seed, rare=args.rare, journal=args.journal
        )
        for key in ("polls", "rows", "pushes", "journal_reads", "journal_failures"):
            count[key] += getattr(res, key)
        cars += vehicles(res)
    half = regime.parked_s / 2.0
    out: dict[str, Any] = {
        "trips": trips_by_source([(t, d) for t, d, _, _ in cars], half),
        "charges": score_charges([(t, d) for _, _, t, d in cars]),
        "vehicles": len(cars),
        **count,
        "seconds": time.perf_counter() - started,
    }
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, float) and math.isnan(v):
        return "–"
    if isinstance(v, int) or float(v).is_integer():
        return f"{int(v)}"
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def _table(title: str, columns: dict[str, dict[str, Any]]) -> list[str]:
    names = list(columns)
    metrics: list[str] = []
    for col in columns.values():
        metrics += [m for m in col if m not in metrics]
    lines = [f"| {title} | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for m in metrics:
        lines.append(f"| {m} | " + " | ".join(_fmt(columns[n].get(m, "–")) for n in names) + " |")
    return lines


def markdown(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    first = next(iter(results.values()))
    lines = [
        f"{first['vehicles']} vehicles per regime (3 models x seeds "
        f"{' '.join(map(str, args.seeds))}), {args.days:g} simulated days each, rare events "
        f"{'on' if args.rare else 'off'}, smart trip journals "
        f"{'read' if args.journal else 'not read (polling only)'}.",
        "",
    ]
    trips = {name: r["trips"]["all"] for name, r in results.items()}
    lines += [*_table("trips", trips), ""]
    lines += [*_table("charging sessions", {n: r["charges"] for n, r in results.items()}), ""]
    for name, r in results.items():
        if len(r["trips"]) > 1:  # "all" and each source, where there is more than one
            lines += [*_table(f"trips by source ({name})", r["trips"]), ""]
    lines += _table(
        "run",
        {
            n: {
                "polls": r["polls"],
                "webhook deliveries": r["pushes"],
                "journal reads": r["journal_reads"],
                "journal reads failed": r["journal_failures"],
                "rows": r["rows"],
                "seconds": round(r["seconds"]),
            }
            for n, r in results.items()
        },
    )
    return "\n".join(lines) + "\n"


async def run(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.regimes:
            out[name] = await run_regime(REGIMES[name], args, Path(tmp))
    return out


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--days", type=float, default=30.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--regimes", nargs="+", choices=list(REGIMES), default=list(REGIMES))
    ap.add_argument(
        "--rare",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="every car meets one rare event (odometer reset, days asleep, miles)",
    )
    ap.add_argument(
        "--journal",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="read the smart cars' own trip journals as the runtime does (--no-journal: polling "
        "only)",
    )
    ap.add_argument("--out", type=Path, default=None, help="also write the tables to this file")
    args = ap.parse_args(argv)
    logging.getLogger("exporter").setLevel(logging.ERROR)  # failed polls are the point of "faults"
    results = asyncio.run(run(args))
    text = markdown(results, args)
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return text


if __name__ == "__main__":
    main()
