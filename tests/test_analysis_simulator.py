"""The analysis against the simulator's ground truth, end to end, in small: the same scorer and samplers
as bench/accuracy.py (which publishes the full figures in docs/ACCURACY.md), on a few simulated days,
so a change in the parser, scheduler or detectors that breaks accuracy fails here first."""

from __future__ import annotations

from pathlib import Path

import analysis
from bench.accuracy_sampler import Sampled, sample_direct, sample_http
from bench.accuracy_scorer import finished_within, score_charges, score_trips
from exporter.config import PollConfig

S = analysis.Settings(timezone="UTC")


def scored(res: Sampled) -> tuple[dict[str, float], dict[str, float]]:
    trips, charges = [], []
    for vin, gt in res.truth.items():
        a = analysis.Analysis(analysis.load(res.db, vin=vin), S)
        t0, t1 = res.start, res.end
        trips.append((finished_within(gt["trips"], t0, t1), a.trips.loc[~a.trips["ongoing"]]))
        charges.append(
            (finished_within(gt["charges"], t0, t1), a.charges.loc[~a.charges["ongoing"]])
        )
    return score_trips(trips), score_charges(charges)


async def test_a_simulated_week_at_default_intervals(tmp_path: Path) -> None:
    res = await sample_direct(tmp_path / "h.db", ["#1", "#3", "#5"], 7, PollConfig(), seed=5)
    trips, charges = scored(res)
    assert trips["true trips > 1 km"] >= 20
    assert trips["found > 1 km %"] >= 95
    assert trips["false trips"] <= 1
    assert abs(trips["energy error of total %"]) < 3
    assert trips["distance error median %"] < 0.5
    assert charges["true sessions"] >= 5
    assert charges["found (>= 2 kWh) %"] == 100
    assert abs(charges["energy error of total %"]) < 3
    assert charges["AC/DC correct %"] == 100


async def test_the_real_pipeline_over_http_feeds_the_analysis(tmp_path: Path) -> None:
    res = await sample_http(tmp_path / "h.db", ["#1", "#5"], 1.5, PollConfig(), seed=3)
    assert res.rows > 100 and res.polls > res.rows / 2
    trips, _ = scored(res)
    assert trips["true trips > 1 km"] >= 2
    assert trips["found > 1 km %"] == 100
    assert trips["distance error median %"] < 0.5
