"""How well trips and charging sessions are recovered from polled reports, against ground truth.

Simulated smart cars (#1, #3, #5; several seeds, so several cities and habits) live for ``--days``
simulated days and are polled by the exporter's scheduler at the default intervals (60 s driving or
charging, 10 min parked, 30 min asleep) and, separately, every 5 minutes whatever they do. The stored
history is analysed with ``analysis`` exactly as ``carmetrics trips/charges`` would, and scored
against the simulator's own log of what happened (``Fleet.ground_truth``): see accuracy_scorer.py.

    python bench/accuracy.py                   # 3 models x 3 seeds x 30 days, both cadences, HTTP
    python bench/accuracy.py --path direct     # the same without the HTTP hop, in seconds
    python bench/accuracy.py --days 60 --seeds 1 2 3 4 --out /tmp/accuracy.md

Prints a Markdown table (the one in docs/ACCURACY.md).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from accuracy_sampler import Sampled, sample_direct, sample_http
from accuracy_scorer import finished_within, score_charges, score_trips

import analysis
from exporter.config import PollConfig

CADENCES = {
    "default intervals": PollConfig(),
    "every 5 min": PollConfig(driving=300.0, charging=300.0, parked=300.0, asleep=300.0),
}


def detected(res: Sampled, settings: analysis.Settings) -> list[tuple[Any, Any, Any, Any]]:
    """Per vehicle: (true trips, detected trips, true sessions, detected sessions), both finished."""
    out = []
    for vin, gt in res.truth.items():
        a = analysis.Analysis(analysis.load(res.db, vin=vin), settings)
        trips = a.trips.loc[~a.trips["ongoing"]]
        charges = a.charges.loc[~a.charges["ongoing"]]
        out.append(
            (
                finished_within(gt["trips"], res.start, res.end),
                trips,
                finished_within(gt["charges"], res.start, res.end),
                charges,
            )
        )
    return out


async def run(
    args: argparse.Namespace,
) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, Any]]:
    settings = analysis.Settings(timezone="UTC")
    trips: dict[str, dict[str, float]] = {}
    charges: dict[str, dict[str, float]] = {}
    info: dict[str, Any] = {"vehicles": 0, "polls": {}, "rows": {}, "seconds": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, poll in CADENCES.items():
            started = time.perf_counter()
            per_vehicle: list[tuple[Any, Any, Any, Any]] = []
            polls = rows = 0
            for seed in args.seeds:
                db = Path(tmp) / f"{name.replace(' ', '_')}_{seed}.db"
                if args.path == "http":
                    res = await sample_http(db, args.models, args.days, poll, seed=seed)
                else:
                    res = await sample_direct(db, args.models, args.days, poll, seed=seed)
                polls += res.polls
                rows += res.rows
                per_vehicle += detected(res, settings)
            trips[name] = score_trips([(t, d) for t, d, _, _ in per_vehicle])
            charges[name] = score_charges([(t, d) for _, _, t, d in per_vehicle])
            info["vehicles"] = len(per_vehicle)
            info["polls"][name] = polls
            info["rows"][name] = rows
            info["seconds"][name] = time.perf_counter() - started
    return {"trips": trips, "charges": charges}, info


def _fmt(v: float) -> str:
    if isinstance(v, int) or float(v).is_integer():
        return f"{int(v)}"
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def markdown(results: dict[str, Any], info: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        f"{info['vehicles']} vehicles ({', '.join(args.models)} x seeds "
        f"{' '.join(map(str, args.seeds))}), {args.days:g} simulated days each, "
        f"path: {args.path}.",
        "",
    ]
    for what in ("trips", "charges"):
        table = pd.DataFrame(results[what])
        lines.append(f"| {what} | " + " | ".join(table.columns) + " |")
        lines.append("|---|" + "---:|" * len(table.columns))
        for metric, row in table.iterrows():
            lines.append(f"| {metric} | " + " | ".join(_fmt(v) for v in row) + " |")
        lines.append("")
    lines.append(
        "| run | "
        + " | ".join(
            f"{n}: {info['polls'][n]} polls, {info['rows'][n]} rows, {info['seconds'][n]:.0f} s"
            for n in CADENCES
        )
        + " |"
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--days", type=float, default=30.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--models", type=lambda s: s.split(","), default=["#1", "#3", "#5"])
    ap.add_argument("--out", type=Path, default=None, help="also write the table to this file")
    ap.add_argument(
        "--path",
        choices=("http", "direct"),
        default="http",
        help="http: simulator + real runtime over loopback HTTP (default, ~1 min per car-month);\n"
        "direct: same scheduler and parser, no HTTP hop (seconds; for quick iterations)",
    )
    args = ap.parse_args()
    results, info = asyncio.run(run(args))
    text = markdown(results, info, args)
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
