"""The analysis against the simulator's ground truth, end to end, in small: the same sampler, user
view (``carmetrics trips|charges --format json``) and strict scorer as bench/accuracy.py (which
publishes the full figures in docs/ACCURACY.md), on a few simulated days, so a change in the
parser, scheduler or detectors that breaks accuracy fails here first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.accuracy import REGIMES, vehicles
from bench.accuracy_sampler import Sampled, sample_direct, sample_http
from bench.accuracy_scorer import score_charges, score_trips
from exporter.config import PollConfig


def scored(res: Sampled, half: float = 300.0) -> tuple[dict[str, Any], dict[str, Any]]:
    vs = vehicles(res)
    return score_trips([(t, d) for t, d, _, _ in vs], half), score_charges(
        [(t, d) for _, _, t, d in vs]
    )


async def test_a_simulated_week_at_default_intervals(tmp_path: Path) -> None:
    res = await sample_direct(tmp_path / "h.db", ["#1", "#3", "#5"], 7, PollConfig(), seed=5)
    trips, charges = scored(res)
    assert trips["true trips >= 2 km"] >= 20
    assert trips["found >= 2 km %"] >= 95
    assert trips["precision >= 2 km %"] >= 95
    assert abs(trips["energy error of total %"]) < 3
    assert trips["distance within 1 km %"] == 100  # whole-km odometer: never a full km off
    assert trips["negative energies"] == 0
    assert charges["true sessions"] >= 5
    assert charges["found %"] >= 95
    assert abs(charges["energy error of total %"]) < 3
    assert charges["negative energies"] == 0


async def test_rare_events_keep_trips_on_both_clouds(tmp_path: Path) -> None:
    """An odometer reset, days of deep sleep (smart), a switch to miles (Smartcar v3): no trip
    is lost to them, none is invented across them."""
    for name in ("default", "webhooks"):
        res = await sample_direct(tmp_path / f"{name}.db", None, 21, REGIMES[name], rare=True)
        trips, _ = scored(res)
        assert trips["true trips >= 2 km"] >= 40, name
        assert trips["found >= 2 km %"] >= 90, (name, trips)
        assert trips["precision >= 2 km %"] >= 90, (name, trips)
        assert trips["distance error km p95"] < 1.0, (name, trips)
        assert trips["negative energies"] == 0


async def test_the_real_pipeline_over_http_feeds_the_analysis(tmp_path: Path) -> None:
    res = await sample_http(tmp_path / "h.db", ["#1", "#5"], 1.5, PollConfig(), seed=3)
    assert res.rows > 100 and res.polls > res.rows / 2
    trips, _ = scored(res)
    assert trips["true trips >= 2 km"] >= 2
    assert trips["found >= 2 km %"] == 100
    assert trips["distance within 1 km %"] == 100
