"""Trips from coarse, car-stamped samples.

A cloud-polled car is seen every minute or so while it drives and rarely while it stands, so a trip
is reconstructed from clues (logger-anchors §2.3, §2.6, §5.3):

* a sample is *moving* when the car says it drives (power state ``driving``), reports speed, or sits
  in the middle of a steady odometer rise; everything else is a *stop*;
* a trip is a run of moving samples framed by the last stop before it (the *start anchor*: where and
  with how much charge the car left) and the first stop after it (the *end anchor*). Distance and
  energy run from anchor to anchor, so the part of the drive before the first moving sample counts;
* the start time is back-filled from the start anchor: the car left ``(odometer at first moving
  sample
  - odometer at anchor) / trip speed`` before it was first seen moving, never before the anchor. The
    end
  time is the end anchor (cars report when they park) unless that report came implausibly late;
* two stops with an odometer rise between them and no sample in between are a trip nobody saw
  (``inferred``): it ends at the second stop, and its start is guessed from a typical speed;
* a standstill with the ignition on and no cable (traffic, a level crossing) shorter than
  ``stop_merge_s`` does not end a trip; a trip shorter than ``min_trip_m`` is dropped as noise.

Everything is vectorised over the whole fleet frame; the only per-row Python is formatting the
output.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from .charges import unseen_rise
from .places import match
from .prep import Prepared, local_iso, mean2, prepare
from .settings import Settings
from .zones import zones

TRIP_COLUMNS: Final = (
    "vin",
    "start_ts",
    "end_ts",
    "start_local",
    "end_local",
    "duration_min",
    "distance_km",
    "start_odometer_km",
    "end_odometer_km",
    "start_latitude",
    "start_longitude",
    "end_latitude",
    "end_longitude",
    "start_place",
    "end_place",
    "avg_speed_kmh",
    "max_speed_kmh",
    "start_soc_pct",
    "end_soc_pct",
    "soc_used_pct",
    "range_used_km",
    "energy_kwh",
    "consumption_kwh_100km",
    "outside_temp_c",
    "samples",
    "inferred",
    "ongoing",
)

_CONTINUOUS_STEP_M: Final = 50.0  # odometer rise per sample that counts as steady motion
_CONTINUOUS_MAX_DT: Final = 900.0


def trips(
    df: pd.DataFrame, settings: Settings | None = None, *, prepared: Prepared | None = None
) -> pd.DataFrame:
    """One row per trip (columns in ``TRIP_COLUMNS``), sorted by vin and start."""
    s = settings or Settings()
    p = prepared if prepared is not None else prepare(df, s)
    return detect(p, s)[list(TRIP_COLUMNS)]


def _shift_prev(a: np.ndarray, new_vin: np.ndarray, fill: float = np.nan) -> np.ndarray:
    out: np.ndarray = np.r_[fill, a[:-1]].astype("float64")
    out[new_vin] = fill
    return out


def _shift_next(a: np.ndarray, last_of_vin: np.ndarray, fill: float = np.nan) -> np.ndarray:
    out: np.ndarray = np.r_[a[1:], fill].astype("float64")
    out[last_of_vin] = fill
    return out


def moving_mask(p: Prepared, s: Settings) -> np.ndarray:
    """Samples that show the car in motion (see the module docstring)."""
    off = p.power_state == "off"
    with np.errstate(invalid="ignore"):
        moving = (p.power_state == "driving") | ((p.speed > s.moving_speed_mps) & ~off)
        dx_prev = p.x - _shift_prev(p.x, p.new_vin)
        dx_next = _shift_next(p.x, p.last_of_vin) - p.x
        dt_next = _shift_next(p.t, p.last_of_vin) - p.t
        steady = (
            (dx_prev >= _CONTINUOUS_STEP_M)
            & (dx_next >= _CONTINUOUS_STEP_M)
            & (p.dt_prev <= _CONTINUOUS_MAX_DT)
            & (dt_next <= _CONTINUOUS_MAX_DT)
        )
    return np.asarray((moving | (steady & ~off)) & ~p.charging, dtype=bool)


def _span_sum(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Sum of ``values`` over the inclusive index ranges [lo, hi] (0 for empty ranges)."""
    c = np.r_[0.0, np.cumsum(values, dtype="float64")]
    out = c[hi + 1] - c[lo]
    return np.where(hi >= lo, out, 0.0)


def detect(p: Prepared, s: Settings) -> pd.DataFrame:
    """The detector proper, on prepared arrays.

    Besides ``TRIP_COLUMNS`` the result has ``_lo``/``_hi`` (first and last sample index, anchors
    included) and ``_anchored`` (a start anchor was seen), which ``analysis.derive`` needs.
    """
    n = p.n
    if n == 0:
        return empty()
    x = p.x
    moving = moving_mask(p, s)
    stop = ~moving
    hard = (p.power_state == "off") | p.plugged | p.charging

    # A silence longer than gap_split_s between two moving samples, at less than walking pace, means
    # the car stopped unseen: split there (no anchor on either side of the gap).
    with np.errstate(invalid="ignore", divide="ignore"):
        pace = (x - _shift_prev(x, p.new_vin)) / p.dt_prev
        slow = ~(pace >= 2.0)  # unknown pace counts as slow
    prev_moving = np.r_[False, moving[:-1]] & ~p.new_vin
    split = moving & prev_moving & (p.dt_prev > s.gap_split_s) & slow
    split_next = np.r_[split[1:], False]

    prev_stop = np.r_[True, stop[:-1]] | p.new_vin
    next_stop = np.r_[stop[1:], True] | p.last_of_vin
    first = np.flatnonzero(moving & (prev_stop | split))
    last = np.flatnonzero(moving & (next_stop | split_next))
    has_a = ~p.new_vin[first] & ~split[first]
    has_b = ~p.last_of_vin[last] & ~split_next[last]
    a = np.where(has_a, first - 1, first)
    b = np.where(has_b, last + 1, last)

    # Odometer jumps between two consecutive stops: trips that happened between samples. A car
    # that says it parked again in between (a new park time) drove too, even when a whole-km
    # odometer did not move (a few hundred metres to the bakery and back).
    ps = p.parked_since
    with np.errstate(invalid="ignore"):
        parked_again = (ps > _shift_prev(ps, p.new_vin) + 1.0) & (ps > _shift_prev(p.t, p.new_vin))
    jump = np.flatnonzero(
        stop
        & prev_stop
        & ~p.new_vin
        & (((x - _shift_prev(x, p.new_vin)) >= s.min_trip_m) | parked_again)
    )
    k_seen, k_inf = len(first), len(jump)
    lo = np.r_[a, jump - 1].astype(np.int64)
    hi = np.r_[b, jump].astype(np.int64)
    in_lo = np.r_[first, jump].astype(np.int64)  # empty inner range for inferred: in_lo > in_hi
    in_hi = np.r_[last, jump - 1].astype(np.int64)
    has_a = np.r_[has_a, np.ones(k_inf, dtype=bool)]
    has_b = np.r_[has_b, np.ones(k_inf, dtype=bool)]
    inferred = np.r_[np.zeros(k_seen, dtype=bool), np.ones(k_inf, dtype=bool)]
    order = np.argsort(lo * 2 + inferred, kind="stable")  # inferred jump sorts before a seen run
    lo, hi, in_lo, in_hi = lo[order], hi[order], in_lo[order], in_hi[order]
    has_a, has_b, inferred = has_a[order], has_b[order], inferred[order]

    start, end = _times(p, s, moving, lo, hi, in_lo, in_hi, has_a, has_b, inferred)

    # Merge pieces split by a short standstill without ignition-off or cable (see docstring).
    if len(lo) > 1:
        hard_c = np.r_[0, np.cumsum(hard)]
        nxt_lo, cur_hi = lo[1:], hi[:-1]
        hard_between = hard_c[np.maximum(nxt_lo, cur_hi) + 1] - hard_c[np.minimum(nxt_lo, cur_hi)]
        joined = (
            (p.group[nxt_lo] == p.group[cur_hi])
            & has_b[:-1]
            & has_a[1:]
            & (hard_between == 0)
            & (start[1:] - end[:-1] <= s.stop_merge_s)
        )
        gid = np.r_[0, np.cumsum(~joined)]
    else:
        gid = np.zeros(len(lo), dtype=np.int64)
    if len(lo) and gid[-1] != len(lo) - 1:
        firsts = np.r_[0, np.flatnonzero(np.diff(gid)) + 1]
        lasts = np.r_[firsts[1:] - 1, len(lo) - 1]
        lo, hi = lo[firsts], hi[lasts]
        in_lo = np.where(has_a[firsts], lo + 1, lo)
        in_hi = np.where(has_b[lasts], hi - 1, hi)
        inferred = np.minimum.reduceat(inferred.astype(np.int8), firsts).astype(bool)
        start, end = start[firsts], end[lasts]
        has_a, has_b = has_a[firsts], has_b[lasts]
        in_lo = np.where(inferred, lo + 1, in_lo)
        in_hi = np.where(inferred, lo, in_hi)

    return _rows(p, s, moving, lo, hi, in_lo, in_hi, has_a, has_b, inferred, start, end)


def _times(
    p: Prepared,
    s: Settings,
    moving: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    in_lo: np.ndarray,
    in_hi: np.ndarray,
    has_a: np.ndarray,
    has_b: np.ndarray,
    inferred: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Back-filled start and estimated end of each trip piece."""
    t, x = p.t, p.x
    k = len(lo)
    if k == 0:
        return np.zeros(0), np.zeros(0)
    f = np.where(inferred, hi, in_lo)
    last = np.where(inferred, hi, in_hi)
    with np.errstate(invalid="ignore", divide="ignore"):
        span = t[last] - t[f]
        dx_in = x[last] - x[f]
        v = np.where((span >= 120) & (dx_in > 0), dx_in / span, np.nan)
        dist = np.nan_to_num(x[hi] - x[lo])
        # how fast this car covered similar distances where it was seen doing so
        v_typ = typical_speed(p.group[lo], dist, v, ~inferred & (dx_in >= 1000.0))
        spd = np.where(moving & (p.speed > s.moving_speed_mps), p.speed, 0.0)
        spd = np.nan_to_num(spd)
        cnt = _span_sum((moving & (p.speed > s.moving_speed_mps)).astype(float), in_lo, in_hi)
        mean_spd = np.where(cnt > 0, _span_sum(spd, in_lo, in_hi) / np.maximum(cnt, 1), np.nan)
        v = np.where(np.isnan(v), v_typ, v)
        v = np.where(np.isnan(v), mean_spd, v)
        v = np.clip(np.where(np.isnan(v), s.default_speed_mps, v), 2.0, 40.0)
        v_gap = np.clip(np.where(np.isnan(v_typ), s.default_speed_mps, v_typ), 2.0, 40.0)

        head = np.nan_to_num(np.maximum(x[f] - x[lo], 0.0)) / v
        start = np.where(has_a, np.maximum(t[lo], t[f] - head), t[f])
        tail = np.nan_to_num(np.maximum(x[hi] - x[last], 0.0)) / v
        end = np.where(has_b, np.minimum(t[hi], t[last] + 1.5 * tail + 60.0), t[last])
        end = np.where(inferred, t[hi], end)
        # Ended at a charger that was already charging when the car was next seen: the trip ended
        # when that charging began, found by running the charger's power back to the arrival SoC.
        arrival = arrival_soc(p, lo, hi, in_hi, inferred)
        per_s = p.power_w[hi] / 3.6e6 / p.capacity_kwh[hi]
        charged = np.maximum(p.soc_ff[hi] - arrival, 0.0)
        known = np.where(inferred, lo, in_hi)
        earliest = t[known] + np.nan_to_num(np.maximum(x[hi] - x[known], 0.0)) / 40.0
        began = np.clip(t[hi] - charged / per_s, earliest, t[hi])
        at_charger = has_b & p.charging[hi] & (per_s > 0) & ~np.isnan(began)
        end = np.where(at_charger, began, end)
        inf_start = np.maximum(t[lo], end - dist / v_gap)
        # Charge was added unseen in the same gap. Still plugged in when seen again: it drove to the
        # charger first, so the drive goes at the gap's start. Unplugged: it charged where it stood
        # and drove afterwards, so the drive stays at the gap's end.
        rose = (
            inferred
            & ~at_charger
            & (unseen_rise(p, s, lo, hi) >= 0)
            & (p.plugged[hi] | p.charging[hi])
        )
        inf_start = np.where(rose, t[lo], inf_start)
        end = np.where(rose, np.minimum(t[lo] + dist / v_gap, t[hi]), end)
        # The car's own park time, where it reports one, is when the drive ended: exact, and it
        # settles where in a gap an unseen drive goes.
        ps = p.parked_since[hi]
        seen_end = np.where(inferred, t[lo], t[last])
        parked = has_b & (ps > seen_end) & (ps <= t[hi] + 1.0)
        end = np.where(parked, np.minimum(ps, t[hi]), end)
        guess = np.maximum(dist, 500.0) / v_gap  # a whole-km odometer may say 0
        inf_start = np.where(parked, np.maximum(t[lo], end - guess), inf_start)
    start = np.where(inferred, inf_start, start)
    return start, end


def typical_speed(
    group: np.ndarray, dist: np.ndarray, v: np.ndarray, reliable: np.ndarray
) -> np.ndarray:
    """Per trip piece: the median pace of the same vehicle's reliably timed pieces whose distance is
    within 30 % of this one's (NaN when there are fewer than two). Commutes and errands repeat, so
    a drive seen only as an odometer jump usually has siblings that were seen."""
    out = np.full(len(dist), np.nan)
    ok = reliable & np.isfinite(v) & (dist > 0)
    need = ~ok  # a reliably timed piece keeps its own measured pace
    for g in np.unique(group[need]):
        mine = group == g
        ref = np.flatnonzero(mine & ok)
        want = np.flatnonzero(mine & need)
        if len(ref) < 2 or not len(want):
            continue
        near = np.abs(dist[ref][None, :] - dist[want][:, None]) <= 0.3 * dist[want][:, None]
        vals = np.where(near, v[ref][None, :], np.nan)
        enough = near.sum(axis=1) >= 2
        if enough.any():
            out[want[enough]] = np.nanmedian(vals[enough], axis=1)
    return out


def _whole_interval(soc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where a reported SoC may truly be: its rounding interval when it is whole percent."""
    pct = soc * 100.0
    whole = np.abs(pct - np.round(pct)) < 1e-6
    half = np.where(whole, 0.005, 0.0005)
    return soc - half, soc + half


def range_fit(
    p: Prepared,
    lo: np.ndarray,
    hi: np.ndarray,
    in_lo: np.ndarray,
    in_hi: np.ndarray,
    inferred: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Start and end SoC of each seen trip, finer than whole percent, from the range during it.

    The car's range estimate is its own (recent consumption, temperature, a reserve), so range /
    range-at-100 % is not SoC; but within one drive it moves in step with SoC, in kilometres, and
    the whole-percent SoC readings scatter around that line. A least-squares line of SoC on range
    over the start anchor and the moving reports places both ends inside their rounding interval;
    the end anchor is reached along the drive's own rate (the estimate is recomputed when a drive
    ends). NaN where the drive has too few reports or too little SoC spread to fit.
    """
    k = len(lo)
    nan = np.full(k, np.nan)
    first = np.where(inferred, hi + 1, lo)  # the anchor and the moving reports
    lengths = np.maximum(in_hi - first + 1, 0)
    if not lengths.any():
        return nan, nan.copy()
    owner = np.repeat(np.arange(k), lengths)
    pos = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    idx = np.repeat(first, lengths) + pos
    y, r = p.soc_raw_ff[idx], p.rng_ff[idx]
    ok = np.isfinite(y) & np.isfinite(r)
    w = ok.astype(float)
    y0, r0 = np.where(ok, y, 0.0), np.where(ok, r, 0.0)

    def total(v: np.ndarray) -> np.ndarray:
        return np.bincount(owner, weights=v, minlength=k)

    n, sy, sr = total(w), total(y0), total(r0)
    with np.errstate(invalid="ignore", divide="ignore"):
        my, mr = sy / n, sr / n
        cov = total(y0 * r0) / n - my * mr
        var = total(r0 * r0) / n - mr * mr
        slope = cov / var
        spread = _span_max(y, owner, ok, k) - _span_min(y, owner, ok, k)
        good = (n >= 4) & (var > 0) & (slope > 0) & (spread >= 0.015) & ~inferred
        lo_a, hi_a = _whole_interval(p.soc_raw_ff[lo])
        fa = np.clip(my + slope * (p.rng_ff[lo] - mr), lo_a, hi_a)
        lo_l, hi_l = _whole_interval(p.soc_raw_ff[in_hi])
        fl = np.clip(my + slope * (p.rng_ff[in_hi] - mr), lo_l, hi_l)
        driven = p.x[in_hi] - p.x[lo]
        rate = np.where(driven > 0, (fa - fl) / driven, 0.0)
        fb = fl - np.maximum(np.nan_to_num(p.x[hi] - p.x[in_hi]), 0.0) * rate
        lo_b, hi_b = _whole_interval(p.soc_raw_ff[hi])
        fb = np.where(np.isnan(p.soc_ff[hi]) | p.charging[hi], fb, np.clip(fb, lo_b, hi_b))
    return np.where(good, fa, np.nan), np.where(good, fb, np.nan)


def _span_max(v: np.ndarray, owner: np.ndarray, ok: np.ndarray, k: int) -> np.ndarray:
    out = np.full(k, -np.inf)
    np.maximum.at(out, owner[ok], v[ok])
    return out


def _span_min(v: np.ndarray, owner: np.ndarray, ok: np.ndarray, k: int) -> np.ndarray:
    out = np.full(k, np.inf)
    np.minimum.at(out, owner[ok], v[ok])
    return out


def arrival_soc(
    p: Prepared, lo: np.ndarray, hi: np.ndarray, in_hi: np.ndarray, inferred: np.ndarray
) -> np.ndarray:
    """SoC on arrival at the end anchor, from the last SoC seen before it and the distance left.

    The trip's own consumption is used when it drove far enough to measure it, else the vehicle's.
    """
    x, soc = p.x, p.soc_ff
    known = np.where(inferred, lo, in_hi)
    with np.errstate(invalid="ignore", divide="ignore"):
        d_seen = x[known] - x[lo]
        own = np.where(d_seen > 5000.0, (soc[lo] - soc[known]) / d_seen, np.nan)
        rate = np.where((own > 0) & ~np.isnan(own), own, p.soc_per_m[hi])
        left = np.maximum(np.nan_to_num(x[hi] - x[known]), 0.0)
        return np.asarray(soc[known] - rate * left, dtype="float64")


def _rows(
    p: Prepared,
    s: Settings,
    moving: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    in_lo: np.ndarray,
    in_hi: np.ndarray,
    has_a: np.ndarray,
    has_b: np.ndarray,
    inferred: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
) -> pd.DataFrame:
    k = len(lo)
    if k == 0:
        return empty()
    x, soc = p.x, p.soc_ff
    t_lo = p.t[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        dist = x[hi] - x[lo]
        soc_a = np.where(np.isnan(soc[lo]), soc[np.maximum(in_lo, lo)], soc[lo])
        soc_b = soc[hi].copy()
        fine_a, fine_b = range_fit(p, lo, hi, in_lo, in_hi, inferred)
        soc_a = np.where(np.isnan(fine_a), soc_a, fine_a)
        soc_b = np.where(np.isnan(fine_b), soc_b, fine_b)
        # A trip that ends at a charger may be seen first when charging has already added charge:
        # the end SoC is then the arrival SoC estimated from the distance driven since last seen.
        arrival = arrival_soc(p, lo, hi, in_hi, inferred)
        known = np.where(inferred, lo, in_hi)
        charged = p.charging[hi] | (unseen_rise(p, s, known, hi) >= 0)
        at_charger = has_b & charged & ~np.isnan(arrival)
        soc_b = np.where(at_charger, np.minimum(arrival, soc_b), soc_b)
        soc_b = np.where(np.isnan(soc_b), soc[np.where(inferred, lo, in_hi)], soc_b)
        # Started from a charger whose last report came before charging ended (coarse polls): the
        # car left with more than that report says, at least the arrival SoC plus the drive's use.
        # More generally a trip never gains charge: where the SoCs say it did, the drive's energy
        # comes from the vehicle's typical consumption instead (never a negative energy).
        used = np.nan_to_num(dist) * p.soc_per_m[lo]
        from_charger = p.charging[lo]
        soc_a = np.where(from_charger, np.fmax(soc_a, soc_b + used), soc_a)
        soc_a = np.where(soc_a < soc_b, soc_b + used, soc_a)
        cap = p.capacity_kwh[lo]
        energy = (soc_a - soc_b) * cap
        duration = end - start
        rng_used = p.rng_ff[lo] - p.rng_ff[hi]

    # Per-trip aggregates over the inner samples: one groupby on an owner array.
    lengths = np.maximum(in_hi - in_lo + 1, 0)
    owner = np.repeat(np.arange(k), lengths)
    pos = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    idx = np.repeat(in_lo, lengths) + pos
    agg = pd.DataFrame(
        {"o": owner, "speed": p.speed[idx], "temp": p.temp[idx], "m": moving[idx]}
    ).groupby("o")
    max_speed = agg["speed"].max().reindex(range(k)).to_numpy()
    temp = agg["temp"].mean().reindex(range(k)).to_numpy()
    n_moving = agg["m"].sum().reindex(range(k)).fillna(0).to_numpy()
    anchor_temp = mean2(p.temp[lo], p.temp[hi])
    temp = np.where(np.isnan(temp), anchor_temp, temp)

    vins = p.vin[lo]
    ongoing = ~has_b & p.last_of_vin[hi]
    with np.errstate(invalid="ignore"):
        ps = p.parked_since
        hop = inferred & (ps[hi] > ps[lo] + 1.0) & (ps[hi] > t_lo)
    keep = (dist >= s.min_trip_m) | (np.isnan(dist) & (n_moving >= 2)) | hop
    out = pd.DataFrame(
        {
            "vin": vins,
            "start_ts": start,
            "end_ts": end,
            "duration_min": duration / 60.0,
            "distance_km": dist / 1000.0,
            "start_odometer_km": x[lo] / 1000.0,
            "end_odometer_km": x[hi] / 1000.0,
            "start_latitude": p.lat_ff[lo],
            "start_longitude": p.lon_ff[lo],
            "end_latitude": p.lat_ff[hi],
            "end_longitude": p.lon_ff[hi],
            "avg_speed_kmh": np.where(
                duration > 0, dist / np.where(duration > 0, duration, 1), np.nan
            )
            * 3.6,
            "max_speed_kmh": max_speed * 3.6,
            "start_soc_pct": soc_a * 100.0,
            "end_soc_pct": soc_b * 100.0,
            "soc_used_pct": (soc_a - soc_b) * 100.0,
            "range_used_km": rng_used / 1000.0,
            "energy_kwh": energy,
            "consumption_kwh_100km": np.where(
                dist > 0, energy / np.where(dist > 0, dist, 1), np.nan
            )
            * 100_000.0,
            "outside_temp_c": temp,
            "samples": hi - lo + 1,
            "inferred": inferred,
            "ongoing": ongoing,
            "_lo": lo,
            "_hi": hi,
            "_anchored": has_a,
        }
    )
    out = out.loc[keep].sort_values(["vin", "start_ts"], kind="mergesort")
    out = pd.DataFrame(out.reset_index(drop=True))
    vin = out["vin"].to_numpy()
    lat0, lon0 = out["start_latitude"].to_numpy(), out["start_longitude"].to_numpy()
    lat1, lon1 = out["end_latitude"].to_numpy(), out["end_longitude"].to_numpy()
    z0, z1 = zones(vin, lat0, lon0, s), zones(vin, lat1, lon1, s)
    out.insert(3, "start_local", local_iso(out["start_ts"].to_numpy(), vin, s, zones=z0))
    out.insert(4, "end_local", local_iso(out["end_ts"].to_numpy(), vin, s, zones=z1))
    at = list(out.columns).index("end_longitude") + 1
    out.insert(at, "start_place", match(lat0, lon0, s.places))
    out.insert(at + 1, "end_place", match(lat1, lon1, s.places))
    return out


def empty() -> pd.DataFrame:
    """A trips frame with no rows and the right columns."""
    cols = (*TRIP_COLUMNS, "_lo", "_hi", "_anchored")
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in cols}).astype(
        {
            "vin": "object",
            "start_local": "object",
            "end_local": "object",
            "start_place": "object",
            "end_place": "object",
            "inferred": bool,
            "ongoing": bool,
            "samples": "int64",
            "_lo": "int64",
            "_hi": "int64",
            "_anchored": bool,
        }
    )
