"""Strict scoring of what a user sees against the simulator's ground truth.

What is scored is the output of ``carmetrics trips|charges --format json`` (the user's view, not
the analysis internals), against ``Fleet.ground_truth(vin)`` (the same records ``GET
/_sim/ground_truth/{vin}`` serves), both restricted to items that started and ended inside the run.

Matching is one-to-one by **time overlap**: a true trip and a detected one pair up only when their
time spans overlap by more than zero seconds; pairs are taken greedily by the largest overlap, and
each side serves at most once. So a detected trip that swallowed two real ones finds one and misses
the other; an inferred trip put at the wrong hour of a gap is a miss *and* a false trip. Beside it,
the lenient match of earlier versions (by the odometer span a trip covers, 50 m of the same road)
is reported for trips, because a trip whose kilometres are right but whose hour is a guess is still
worth something in a monthly total.

Recall = matched true / true; precision = matched detected / detected. Trips are split at 2 km:
recall by the true distance, precision by the detected one. Errors are over matched pairs:
median, p90 and p95 of |start - true start|, |end - true end|, |distance - true| (km), and the
relative energy error per pair; the energy error of the total is over matched pairs too. A
negative energy in the output is counted wherever it occurs.

Where the trip list draws on more than one source (``source``: the car's own trip journal beside
polling), ``trips_by_source`` scores each source's trips on their own beside the total, with the
same matching against every true trip: a source's "found" is the share of all true trips it
supplied (the shares add up to the total, because the trip list never keeps a polling trip over a
journal trip), its precision and errors are over its own trips.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

SHORT_KM = 2.0


@dataclass
class Match:
    pairs: list[tuple[int, int]] = field(default_factory=list)  # (truth index, detected index)

    @property
    def truth(self) -> set[int]:
        return {t for t, _ in self.pairs}

    @property
    def detected(self) -> set[int]:
        return {d for _, d in self.pairs}


def match(
    truth: Sequence[tuple[float, float]],
    detected: Sequence[tuple[float, float]],
    slack: float = 0.0,
) -> Match:
    """Greedy one-to-one pairing by the largest overlap of the spans (more than ``-slack``)."""
    m = Match()
    if not truth or not detected:
        return m
    ts, te = (np.array(x, dtype=float) for x in zip(*truth, strict=True))
    ds, de = (np.array(x, dtype=float) for x in zip(*detected, strict=True))
    overlap = np.minimum(te[:, None], de[None, :]) - np.maximum(ts[:, None], ds[None, :])
    cand = np.argwhere(overlap > -slack)
    order = np.argsort(-overlap[cand[:, 0], cand[:, 1]], kind="stable")
    used_t: set[int] = set()
    used_d: set[int] = set()
    for i, j in cand[order]:
        if int(i) in used_t or int(j) in used_d:
            continue
        used_t.add(int(i))
        used_d.add(int(j))
        m.pairs.append((int(i), int(j)))
    m.pairs.sort()
    return m


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def _share(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else float("nan")


def _spread(name: str, values: Sequence[float], scale: float = 1.0) -> dict[str, float]:
    return {
        f"{name} median": pct(values, 50) * scale,
        f"{name} p90": pct(values, 90) * scale,
        f"{name} p95": pct(values, 95) * scale,
    }


Vehicle = tuple[Sequence[dict[str, Any]], Sequence[dict[str, Any]]]  # (truth, detected rows)


def _time_span(d: dict[str, Any]) -> tuple[float, float]:
    return float(d["start_ts"]), float(d["end_ts"])


def score_trips(fleet: Iterable[Vehicle], half_interval_s: float) -> dict[str, float]:
    """Trip figures pooled over vehicles (each matched on its own)."""
    n = {"true": 0, "true long": 0, "true short": 0, "det": 0, "det long": 0, "det short": 0}
    hit = {"true long": 0, "true short": 0, "det long": 0, "det short": 0, "odo": 0, "odo det": 0}
    start_err: list[float] = []
    end_err: list[float] = []
    dist_err: list[float] = []
    e_rel: list[float] = []
    e_true = e_det = 0.0
    negative = 0
    for truth, detected in fleet:
        negative += sum(1 for d in detected if (d.get("energy_kwh") or 0.0) < 0)
        m = match([(t["start"], t["end"]) for t in truth], [_time_span(d) for d in detected])
        long_t = [t["distance_km"] >= SHORT_KM for t in truth]
        long_d = [float(d["distance_km"] or 0.0) >= SHORT_KM for d in detected]
        n["true"] += len(truth)
        n["true long"] += sum(long_t)
        n["true short"] += len(truth) - sum(long_t)
        n["det"] += len(detected)
        n["det long"] += sum(long_d)
        n["det short"] += len(detected) - sum(long_d)
        for i, j in m.pairs:
            hit["true long" if long_t[i] else "true short"] += 1
            hit["det long" if long_d[j] else "det short"] += 1
            t, d = truth[i], detected[j]
            if not long_t[i]:
                continue  # errors are over trips of 2 km and more
            start_err.append(abs(float(d["start_ts"]) - t["start"]))
            end_err.append(abs(float(d["end_ts"]) - t["end"]))
            dist_err.append(abs(float(d["distance_km"]) - t["distance_km"]))
            e = d.get("energy_kwh")
            if e is not None and np.isfinite(e):
                e_true += t["energy_kwh"]
                e_det += float(e)
                if t["energy_kwh"] > 0:
                    e_rel.append(abs(float(e) - t["energy_kwh"]) / t["energy_kwh"])
        odo = match(
            [(t["odometer_from_km"], t["odometer_to_km"]) for t in truth],
            [(float(d["start_odometer_km"]), float(d["end_odometer_km"])) for d in detected],
            slack=-0.05,
        )
        hit["odo"] += len(odo.pairs)
        hit["odo det"] += len(odo.detected)
    within = sum(1 for x in start_err if x <= half_interval_s)
    return {
        "true trips >= 2 km": n["true long"],
        "found >= 2 km %": _share(hit["true long"], n["true long"]),
        "precision >= 2 km %": _share(hit["det long"], n["det long"]),
        "true trips < 2 km": n["true short"],
        "found < 2 km %": _share(hit["true short"], n["true short"]),
        "precision < 2 km %": _share(hit["det short"], n["det short"]),
        "found, odometer-span match %": _share(hit["odo"], n["true"]),
        "precision, odometer-span match %": _share(hit["odo det"], n["det"]),
        "half the parked poll interval s": half_interval_s,
        "start within half the parked interval %": _share(within, len(start_err)),
        **_spread("start error s", start_err),
        **_spread("end error s", end_err),
        **_spread("distance error km", dist_err),
        "distance within 1 km %": _share(sum(1 for x in dist_err if x <= 1.0), len(dist_err)),
        **_spread("energy error %", e_rel, 100.0),
        "energy error of total %": 100.0 * (e_det - e_true) / e_true if e_true else float("nan"),
        "negative energies": negative,
    }


def score_charges(fleet: Iterable[Vehicle]) -> dict[str, float]:
    """Charging-session figures pooled over vehicles."""
    n_true = n_det = found = used = negative = 0
    start_err: list[float] = []
    end_err: list[float] = []
    e_rel: list[float] = []
    e_true = e_det = 0.0
    for truth, detected in fleet:
        negative += sum(1 for d in detected if (d.get("energy_added_kwh") or 0.0) < 0)
        m = match([(t["start"], t["end"]) for t in truth], [_time_span(d) for d in detected])
        n_true += len(truth)
        n_det += len(detected)
        found += len(m.truth)
        used += len(m.detected)
        for i, j in m.pairs:
            t, d = truth[i], detected[j]
            start_err.append(abs(float(d["start_ts"]) - t["start"]))
            end_err.append(abs(float(d["end_ts"]) - t["end"]))
            e = float(d.get("energy_added_kwh") or 0.0)
            e_true += t["energy_added_kwh"]
            e_det += e
            if t["energy_added_kwh"] > 1.0:
                e_rel.append(abs(e - t["energy_added_kwh"]) / t["energy_added_kwh"])
    return {
        "true sessions": n_true,
        "found %": _share(found, n_true),
        "precision %": _share(used, n_det),
        **_spread("start error s", start_err),
        **_spread("end error s", end_err),
        **_spread("energy error % (> 1 kWh)", e_rel, 100.0),
        "energy error of total %": 100.0 * (e_det - e_true) / e_true if e_true else float("nan"),
        "negative energies": negative,
    }


def finished_within(items: Sequence[dict[str, Any]], t0: float, t1: float) -> list[dict[str, Any]]:
    """Ground-truth items that started at/after ``t0`` and ended by ``t1``."""
    return [x for x in items if x.get("end") is not None and x["start"] >= t0 and x["end"] <= t1]


POLL: Final = "poll"


def trips_by_source(
    fleet: Iterable[Vehicle], half_interval_s: float
) -> dict[str, dict[str, float]]:
    """``{"all": score}``, plus one score per source (journal first, then poll, also when polling
    supplied none) when any trip came from somewhere other than polling."""
    cars = [(truth, list(detected)) for truth, detected in fleet]
    out = {"all": score_trips(cars, half_interval_s)}
    sources = set(by_source([d for _, ds in cars for d in ds]))
    if sources <= {POLL, "polling"}:
        return out
    for name in sorted(sources | {POLL}, key=lambda s: (s == POLL, s)):
        split = [(truth, by_source(ds).get(name, [])) for truth, ds in cars]
        out[name] = score_trips(split, half_interval_s)
    return out


def by_source(
    rows: Sequence[dict[str, Any]], key: Callable[[dict[str, Any]], str] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Detected rows split by where they came from (``source``: a car's own trip journal or
    polling), so each source can be scored on its own; one group "all" when there is no column."""
    key = key or (lambda r: str(r.get("source") or "polling"))
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(key(r), []).append(r)
    return out
