"""Scoring detected trips and charging sessions against the simulator's ground-truth log.

Matching is one-to-one by time overlap: every true trip (or session) is paired with the detected one
it overlaps most, and a detected one serves at most one true one. So a detected trip that swallowed
two real ones (an errand and the way back, both between two polls) finds one and misses the other,
and a detected trip that overlaps nothing real is a false trip. Errors are reported as medians and
90th percentiles over matched pairs, and energy also as the error of the total, which is what a
monthly figure sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

# Sessions estimated from sparse reports may miss the true span by a little; within this many seconds
# they still count as overlapping (a parked car is polled every 30 minutes).
OVERLAP_SLACK_S = 120.0
SESSION_SLACK_S = 1800.0


@dataclass
class Match:
    truth: list[dict[str, Any]]
    detected: pd.DataFrame
    pairs: list[tuple[int, int]] = field(default_factory=list)  # (truth index, detected row)

    @property
    def matched_truth(self) -> set[int]:
        return {t for t, _ in self.pairs}

    @property
    def matched_detected(self) -> set[int]:
        return {d for _, d in self.pairs}


def match(
    truth: Sequence[dict[str, Any]],
    detected: pd.DataFrame,
    *,
    truth_span: tuple[str, str] = ("start", "end"),
    detected_span: tuple[str, str] = ("start_ts", "end_ts"),
    scale: float = 1.0,
    slack: float = OVERLAP_SLACK_S,
) -> Match:
    """Greedy one-to-one pairing by largest overlap of the two spans (ties: earliest).

    Trips are matched on odometer spans (a trip *is* the kilometres it covered, wherever its
    estimated times fall), charging sessions on time spans.
    """
    m = Match(list(truth), detected.reset_index(drop=True))
    if not len(truth) or detected.empty:
        return m
    ts = np.array([t[truth_span[0]] for t in truth], dtype=float)
    te = np.array([t[truth_span[1]] for t in truth], dtype=float)
    ds = m.detected[detected_span[0]].to_numpy(dtype=float) * scale
    de = m.detected[detected_span[1]].to_numpy(dtype=float) * scale
    # overlap[i, j] between truth i and detected j (negative: a gap)
    overlap = np.minimum(te[:, None], de[None, :]) - np.maximum(ts[:, None], ds[None, :])
    cand = np.argwhere(overlap > -slack)
    order = np.argsort(-overlap[cand[:, 0], cand[:, 1]], kind="stable")
    used_t: set[int] = set()
    used_d: set[int] = set()
    for i, j in cand[order]:
        if i in used_t or j in used_d:
            continue
        used_t.add(int(i))
        used_d.add(int(j))
        m.pairs.append((int(i), int(j)))
    m.pairs.sort()
    return m


def _pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


Fleet = Sequence[tuple[Sequence[dict[str, Any]], pd.DataFrame]]  # per vehicle: (truth, detected)


def _rel(a: float, b: float) -> float:
    return abs(a - b) / b


def score_trips(fleet: Fleet) -> dict[str, float]:
    """Pooled over vehicles (each matched on its own): counts add up, errors are over all pairs."""
    n_true = n_big = found_big = found = n_det = false = 0
    start_err: list[float] = []
    end_err: list[float] = []
    dist_err: list[float] = []
    e_rel: list[float] = []
    e_true = e_det = 0.0
    for truth, detected in fleet:
        m = match(
            truth,
            detected,
            truth_span=("odometer_from_km", "odometer_to_km"),
            detected_span=("start_odometer_km", "end_odometer_km"),
            slack=-0.05,  # at least 50 m of the same road
        )
        big = [i for i, t in enumerate(m.truth) if t["distance_km"] > 1.0]
        n_true += len(m.truth)
        n_big += len(big)
        found_big += sum(1 for i in big if i in m.matched_truth)
        found += len(m.pairs)
        n_det += len(m.detected)
        false += len(m.detected) - len(m.matched_detected)
        for i, j in m.pairs:
            t, d = m.truth[i], m.detected.iloc[j]
            start_err.append(abs(float(d["start_ts"]) - t["start"]))
            end_err.append(abs(float(d["end_ts"]) - t["end"]))
            if t["distance_km"] > 0:
                dist_err.append(_rel(float(d["distance_km"]), t["distance_km"]))
            if np.isfinite(d["energy_kwh"]):
                e_true += t["energy_kwh"]
                e_det += float(d["energy_kwh"])
                if t["distance_km"] > 5.0 and t["energy_kwh"] > 0:
                    e_rel.append(_rel(float(d["energy_kwh"]), t["energy_kwh"]))
    return {
        "true trips": n_true,
        "true trips > 1 km": n_big,
        "found > 1 km %": 100.0 * found_big / n_big if n_big else float("nan"),
        "found (all) %": 100.0 * found / n_true if n_true else float("nan"),
        "detected": n_det,
        "false trips": false,
        "start error median s": _pct(start_err, 50),
        "start error p90 s": _pct(start_err, 90),
        "end error median s": _pct(end_err, 50),
        "end error p90 s": _pct(end_err, 90),
        "distance error median %": 100.0 * _pct(dist_err, 50),
        "distance error p90 %": 100.0 * _pct(dist_err, 90),
        "energy error of total %": 100.0 * (e_det - e_true) / e_true if e_true else float("nan"),
        "energy error median % (trips > 5 km)": 100.0 * _pct(e_rel, 50),
        "energy error p90 % (trips > 5 km)": 100.0 * _pct(e_rel, 90),
    }


def score_charges(fleet: Fleet) -> dict[str, float]:
    """Pooled over vehicles, as ``score_trips``."""
    n_true = found = n_big = found_big = n_det = unseen = false = 0
    rel: list[float] = []
    kind_ok: list[bool] = []
    start_err: list[float] = []
    end_err: list[float] = []
    e_true = e_det = 0.0
    for truth, detected in fleet:
        m = match(truth, detected, slack=SESSION_SLACK_S)
        big = [i for i, t in enumerate(m.truth) if t["energy_added_kwh"] >= 2.0]
        n_true += len(m.truth)
        found += len(m.pairs)
        n_big += len(big)
        found_big += sum(1 for i in big if i in m.matched_truth)
        n_det += len(m.detected)
        unseen += int(m.detected["unseen"].astype(bool).sum()) if len(m.detected) else 0
        false += len(m.detected) - len(m.matched_detected)
        for i, j in m.pairs:
            t, d = m.truth[i], m.detected.iloc[j]
            e_true += t["energy_added_kwh"]
            e_det += float(d["energy_added_kwh"])
            if t["energy_added_kwh"] > 1.0:
                rel.append(_rel(float(d["energy_added_kwh"]), t["energy_added_kwh"]))
            if str(d["kind"]) in ("ac", "dc"):  # "unknown" (unseen) is not a wrong answer
                kind_ok.append(str(d["kind"]).upper() == str(t["kind"]).upper())
            start_err.append(abs(float(d["start_ts"]) - t["start"]))
            end_err.append(abs(float(d["end_ts"]) - t["end"]))
    return {
        "true sessions": n_true,
        "found %": 100.0 * found / n_true if n_true else float("nan"),
        "found (>= 2 kWh) %": 100.0 * found_big / n_big if n_big else float("nan"),
        "detected": n_det,
        "of which unseen": unseen,
        "false sessions": false,
        "energy error of total %": 100.0 * (e_det - e_true) / e_true if e_true else float("nan"),
        "energy error median % (> 1 kWh)": 100.0 * _pct(rel, 50),
        "energy error p90 % (> 1 kWh)": 100.0 * _pct(rel, 90),
        "AC/DC correct %": 100.0 * float(np.mean(kind_ok)) if kind_ok else float("nan"),
        "start error median s": _pct(start_err, 50),
        "end error median s": _pct(end_err, 50),
    }


def finished_within(items: Sequence[dict[str, Any]], t0: float, t1: float) -> list[dict[str, Any]]:
    """Ground-truth items that started at/after ``t0`` and ended by ``t1``."""
    return [x for x in items if x.get("end") is not None and x["start"] >= t0 and x["end"] <= t1]
