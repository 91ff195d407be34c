"""Charging sessions: seen ones from charging samples, unseen ones from SoC that rose in silence.

* a session is a run of charging samples (state ``charging``/``dc_charging``, or power when the car
  reports no state). Runs separated by a pause merge into one session while the cable stays in: no
  sample says unplugged, the car did not move, and the pause is shorter than ``merge_pause_s``
  (VWsFriend's 24 h; scheduled or solar-paused charging is one session, not many);
* the start is back-filled from the sample before the first charging one, by the SoC gained since
  then at the power first seen; the end is extended to the SoC the next sample shows, at the last
  power seen (a car reports when it finishes, so that sample's SoC is the final one);
* energy added comes from the SoC gained times the usable capacity, and also from integrating power
  over time; the SoC figure is the default because cars report charging power only roughly (smart
  sends no power at all, clients multiply volts by amperes), the power figure is kept next to it;
* SoC that rose by ``unseen_min_soc`` or more between two samples with no charging sample in between
  is a charge nobody saw (exporter down, car offline): a session flagged ``unseen``, its start and
  end the two samples around it (TeslaMate's "charged while offline").
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from .costs import add_session_costs
from .prep import Prepared, local_iso, mean2, prepare
from .settings import Settings
from .zones import zones

CHARGE_COLUMNS: Final = (
    "vin",
    "start_ts",
    "end_ts",
    "start_local",
    "end_local",
    "duration_min",
    "charging_min",
    "kind",
    "latitude",
    "longitude",
    "place",
    "odometer_km",
    "start_soc_pct",
    "end_soc_pct",
    "soc_added_pct",
    "energy_added_kwh",
    "energy_power_kwh",
    "avg_power_kw",
    "peak_power_kw",
    "energy_grid_kwh",
    "cost",
    "currency",
    "range_added_km",
    "cost_per_100km_range",
    "outside_temp_c",
    "samples",
    "unseen",
    "ongoing",
)

_MOVED_M: Final = 100.0


def charges(
    df: pd.DataFrame, settings: Settings | None = None, *, prepared: Prepared | None = None
) -> pd.DataFrame:
    """One row per charging session (columns in ``CHARGE_COLUMNS``), sorted by vin and start."""
    s = settings or Settings()
    p = prepared if prepared is not None else prepare(df, s)
    return detect(p, s)[list(CHARGE_COLUMNS)]


def detect(p: Prepared, s: Settings) -> pd.DataFrame:
    """Seen and unseen sessions, with ``_lo``/``_hi``/``_anchored`` as in ``trips.detect``."""
    seen = _seen(p, s)
    unseen = _unseen(p, s)
    parts = [f for f in (seen, unseen) if len(f)]
    out = pd.concat(parts, ignore_index=True) if parts else empty_raw()
    out = out.sort_values(["vin", "start_ts"], kind="mergesort").reset_index(drop=True)
    out = _join_resumed(out, p, s)
    vin = out["vin"].to_numpy()
    z = zones(vin, out["latitude"].to_numpy(), out["longitude"].to_numpy(), s)
    out.insert(3, "start_local", local_iso(out["start_ts"].to_numpy(), vin, s, zones=z))
    out.insert(4, "end_local", local_iso(out["end_ts"].to_numpy(), vin, s, zones=z))
    return add_session_costs(out, p, s)


def _join_resumed(out: pd.DataFrame, p: Prepared, s: Settings) -> pd.DataFrame:
    """An unseen rise right after a session, the cable in all along and the car where it was, is
    that session resumed after a pause (load management, a tariff window) while nobody looked: one
    session, as seen pauses are (see ``session_spans``)."""
    if len(out) < 2 or not out["unseen"].any():
        return out
    lo = out["_lo"].to_numpy(dtype=np.int64)
    hi = out["_hi"].to_numpy(dtype=np.int64)
    unplug_c = np.r_[0, np.cumsum(p.unplugged)]
    with np.errstate(invalid="ignore"):
        joined = (
            out["unseen"].to_numpy(dtype=bool)[1:]
            & (out["vin"].to_numpy()[1:] == out["vin"].to_numpy()[:-1])
            & (lo[1:] >= hi[:-1])
            & (unplug_c[hi[1:] + 1] - unplug_c[hi[:-1]] == 0)
            & (p.plugged[lo[1:]] | p.charging[lo[1:]])
            & (p.plugged[hi[1:]] | p.charging[hi[1:]])
            & (np.abs(p.x[hi[1:]] - p.x[hi[:-1]]) < _MOVED_M)
            & (out["start_ts"].to_numpy()[1:] - out["end_ts"].to_numpy()[:-1] <= s.merge_pause_s)
        )
    if not joined.any():
        return out
    gid = np.r_[0, np.cumsum(~joined)]
    agg: dict[str, str] = {c: "first" for c in out.columns}
    agg.update(
        end_ts="last",
        end_soc_pct="last",
        odometer_km="last",
        soc_added_pct="sum",
        energy_added_kwh="sum",
        samples="sum",
        ongoing="last",
        _hi="last",
        peak_power_kw="max",
    )
    merged = out.groupby(gid, sort=False).agg(agg).reset_index(drop=True)
    merged["duration_min"] = (merged["end_ts"] - merged["start_ts"]) / 60.0
    grew = np.bincount(gid) > 1  # power was not seen over the resumed part
    for col in ("energy_power_kwh", "avg_power_kw", "charging_min"):
        merged.loc[grew, col] = np.nan
    return pd.DataFrame(merged)


def session_spans(p: Prepared, s: Settings) -> tuple[np.ndarray, np.ndarray]:
    """First and last charging sample index of every seen session (after merging pauses)."""
    chg = p.charging
    n = p.n
    if n == 0 or not chg.any():
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    prev_chg = np.r_[False, chg[:-1]] & ~p.new_vin
    next_chg = np.r_[chg[1:], False] & ~p.last_of_vin
    f = np.flatnonzero(chg & ~prev_chg)
    last = np.flatnonzero(chg & ~next_chg)
    if len(f) > 1:
        unplug_c = np.r_[0, np.cumsum(p.unplugged)]
        prev_last, nxt_first = last[:-1], f[1:]
        # samples strictly between the two runs
        unplugged_between = unplug_c[nxt_first] - unplug_c[prev_last + 1] > 0
        with np.errstate(invalid="ignore"):
            moved = (p.x[nxt_first] - p.x[prev_last]) >= _MOVED_M
        pause = p.t[nxt_first] - p.t[prev_last]
        joined = (
            (p.group[nxt_first] == p.group[prev_last])
            & ~unplugged_between
            & ~moved
            & (pause <= s.merge_pause_s)
        )
        keep_first = np.r_[True, ~joined]
        keep_last = np.r_[~joined, True]
        f, last = f[keep_first], last[keep_last]
    return f, last


def _seen(p: Prepared, s: Settings) -> pd.DataFrame:
    f, last = session_spans(p, s)
    k = len(f)
    if k == 0:
        return empty_raw()
    t, soc, x, cap = p.t, p.soc_ff, p.x, p.capacity_kwh[f]
    has_prev = ~p.new_vin[f]
    has_next = ~p.last_of_vin[last]
    prev = np.where(has_prev, f - 1, f)
    nxt = np.where(has_next, last + 1, last)
    power = p.power_w
    with np.errstate(invalid="ignore", divide="ignore"):
        # SoC gained per second at the first and last power seen, else the session's own pace.
        span = t[last] - t[f]
        pace = np.where(span > 0, (soc[last] - soc[f]) / span, np.nan)
        pace = np.where(pace > 0, pace, np.nan)
        per_s_first = power[f] / 3.6e6 / cap
        per_s_last = power[last] / 3.6e6 / cap
        per_s_first = np.where(per_s_first > 0, per_s_first, pace)
        per_s_last = np.where(per_s_last > 0, per_s_last, pace)

        # Arrived from a trip (the sample before is elsewhere): the SoC at plug-in is the SoC
        # then minus the vehicle's consumption over the distance since.
        drove = np.maximum(np.nan_to_num(x[f] - x[prev]), 0.0)
        moved_in = drove >= _MOVED_M
        soc_prev = soc[prev]
        arrival = soc_prev - np.where(moved_in, drove * p.soc_per_m[f], 0.0)
        head_soc = np.where(has_prev, np.maximum(soc[f] - arrival, 0.0), np.nan)
        earliest = t[prev] + np.where(moved_in, drove / 40.0, 0.0)

        drove_out = np.maximum(np.nan_to_num(x[nxt] - x[last]), 0.0)
        moved_out = drove_out >= _MOVED_M
        # Left the charger and drove before the next report (coarse polls): the car unplugged with
        # at least the SoC it arrived with plus what that drive used, so charging went on unseen.
        left_with = soc[nxt] + drove_out * p.soc_per_m[last]
        gained_out = np.where(has_next & moved_out, np.fmax(left_with - soc[last], 0.0), 0.0)
        tail_soc = np.where(
            has_next & ~moved_out, np.maximum(soc[nxt] - soc[last], 0.0), np.nan_to_num(gained_out)
        )
        # it cannot have charged while driving there: the drive takes at least drove_out / 40 m/s
        room = np.maximum(t[nxt] - t[last] - np.where(moved_out, drove_out / 40.0, 0.0), 0.0)
        # No power and a single charging report (a #5's DC session polled every 5 min): the rate
        # is unknown, so the gain is spread over the whole window the car stood there, at the
        # lowest rate that explains it; better a session that spans the stop than an instant.
        window = np.maximum(t[f] - earliest, 0.0) + span + room
        gain = np.nan_to_num(head_soc) + np.maximum(soc[last] - soc[f], 0.0) + tail_soc
        slowest = np.where((window > 0) & (gain > 0), gain / window, np.nan)
        per_s_first = np.where(np.isnan(per_s_first), slowest, per_s_first)
        per_s_last = np.where(np.isnan(per_s_last), slowest, per_s_last)
        head = np.nan_to_num(head_soc / per_s_first)
        head = np.clip(head, 0.0, np.maximum(t[f] - earliest, 0.0))
        start = np.where(has_prev, t[f] - head, t[f])
        back = soc[f] - head * per_s_first
        start_soc = np.where(
            has_prev & ~moved_in & ~np.isnan(soc_prev),
            soc_prev,
            np.where(has_prev & ~np.isnan(back), back, soc[f]),
        )
        tail = np.nan_to_num(np.minimum(tail_soc / per_s_last, room))
        end = t[last] + np.where(has_next, tail, 0.0)
        end_soc = np.where(
            has_next & ~moved_out,
            np.fmax(soc[nxt], soc[last]),
            soc[last] + np.nan_to_num(gained_out),
        )

    # Aggregates over the session's samples (first..last): one groupby on an owner array.
    lengths = last - f + 1
    owner = np.repeat(np.arange(k), lengths)
    pos = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    idx = np.repeat(f, lengths) + pos
    chg = p.charging[idx]
    pw = np.where(chg, np.nan_to_num(power[idx]), 0.0)
    # Energy from power: trapezoids between samples, zero across pauses (power 0 when not charging).
    nxt_idx = np.minimum(idx + 1, p.n - 1)
    inner = np.r_[owner[1:] == owner[:-1], False]
    pw_next = np.where(inner, np.where(p.charging[nxt_idx], np.nan_to_num(power[nxt_idx]), 0.0), 0)
    dt = np.where(inner, t[nxt_idx] - t[idx], 0.0)
    seg_e = (pw + pw_next) / 2.0 * dt
    seg_active = np.where(chg | (pw_next > 0), dt, 0.0)
    frame = pd.DataFrame(
        {
            "o": owner,
            "e": seg_e,
            "active": seg_active,
            "pw": np.where(chg, power[idx], np.nan),
            "dc": p.dc_state[idx],
            "lat": p.lat_ff[idx],
            "lon": p.lon_ff[idx],
            "temp": p.temp[idx],
            "has_pw": chg & (np.nan_to_num(power[idx]) > 0),
        }
    )
    g = frame.groupby("o")
    e_inner = g["e"].sum().to_numpy()
    active = g["active"].sum().to_numpy()
    peak = g["pw"].max().to_numpy()
    dc_any = g["dc"].any().to_numpy()
    lat = g["lat"].median().to_numpy()
    lon = g["lon"].median().to_numpy()
    temp = g["temp"].mean().to_numpy()
    pw_share = g["has_pw"].mean().to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        p_first = np.nan_to_num(power[f])
        p_last = np.nan_to_num(power[last])
        energy_power_j = e_inner + p_first * (t[f] - start) + p_last * (end - t[last])
        energy_power = np.where(pw_share >= 0.5, energy_power_j / 3.6e6, np.nan)
        energy_soc = (end_soc - start_soc) * cap
        energy = np.where(np.isnan(energy_soc), energy_power, energy_soc)
        charging_s = active + (t[f] - start) + (end - t[last])
        avg_kw = np.where(charging_s > 0, energy / (charging_s / 3600.0), np.nan)
    kind = np.where(dc_any | (peak > s.dc_power_w), "dc", "ac")
    return pd.DataFrame(
        {
            "vin": p.vin[f],
            "start_ts": start,
            "end_ts": end,
            "duration_min": (end - start) / 60.0,
            "charging_min": charging_s / 60.0,
            "kind": kind,
            "latitude": lat,
            "longitude": lon,
            "odometer_km": x[f] / 1000.0,
            "start_soc_pct": start_soc * 100.0,
            "end_soc_pct": end_soc * 100.0,
            "soc_added_pct": (end_soc - start_soc) * 100.0,
            "energy_added_kwh": energy,
            "energy_power_kwh": energy_power,
            "avg_power_kw": avg_kw,
            "peak_power_kw": peak / 1000.0,
            "outside_temp_c": temp,
            "samples": lengths,
            "unseen": False,
            "ongoing": ~has_next,
            "_lo": prev,
            "_hi": nxt,
            "_anchored": has_prev,
        }
    )


def unseen_rise(p: Prepared, s: Settings, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SoC gained between samples ``a`` and ``b`` beyond what driving in between would have used,
    minus the margin below which a rise is noise (rounding, regeneration, a consumption guess that
    was a little high). Positive means charge was added unseen."""
    with np.errstate(invalid="ignore"):
        drove = np.maximum(np.nan_to_num(p.x[b] - p.x[a]), 0.0)
        used = drove * p.soc_per_m[a]
        expected = p.soc_ff[a] - used
        return np.asarray(p.soc_ff[b] - expected - (s.unseen_min_soc + 0.3 * used))


def _unseen(p: Prepared, s: Settings) -> pd.DataFrame:
    """SoC rises between consecutive SoC readings with no charging sample in between."""
    idx = np.flatnonzero(~np.isnan(p.soc))
    if len(idx) < 2:
        return empty_raw()
    a, b = idx[:-1], idx[1:]
    same = p.group[a] == p.group[b]
    chg_c = np.r_[0, np.cumsum(p.charging)]
    saw_charging = (chg_c[b + 1] - chg_c[a]) > 0  # any charging sample in [a, b]
    gap = p.t[b] - p.t[a]
    with np.errstate(invalid="ignore"):
        hit = (
            same & ~saw_charging & (gap >= s.unseen_min_gap_s) & (unseen_rise(p, s, a, b) >= -1e-9)
        )
    a, b = a[hit], b[hit]
    if not len(a):
        return empty_raw()
    cap = p.capacity_kwh[a]
    drove = np.maximum(np.nan_to_num(p.x[b] - p.x[a]), 0.0)
    # Still plugged in when seen again: the car drove to the charger first, so the charge began no
    # earlier than that drive could have ended. Unplugged: it charged where it stood, then drove,
    # so the charge ended before that drive (trips.detect places the drive the same way).
    last_plugged = p.plugged[b] | p.charging[b]
    drive_s = drove / s.default_speed_mps
    start = np.where(last_plugged, np.minimum(p.t[a] + drive_s, p.t[b]), p.t[a])
    end = np.where(last_plugged, p.t[b], np.maximum(p.t[b] - drive_s, p.t[a]))
    from_soc = p.soc_ff[a] - drove * p.soc_per_m[a]
    rise = p.soc_ff[b] - from_soc
    span = end - start
    energy = rise * cap
    with np.errstate(invalid="ignore", divide="ignore"):
        stayed = drove < _MOVED_M
        min_kw = energy / (span / 3600.0)
    return pd.DataFrame(
        {
            "vin": p.vin[a],
            "start_ts": start,
            "end_ts": end,
            "duration_min": span / 60.0,
            "charging_min": np.nan,
            # Only a rise faster than any AC charger is known to be DC; otherwise we cannot tell.
            "kind": np.where(min_kw * 1000.0 > s.dc_power_w, "dc", "unknown"),
            "latitude": np.where(stayed | ~last_plugged, p.lat_ff[a], p.lat_ff[b]),
            "longitude": np.where(stayed | ~last_plugged, p.lon_ff[a], p.lon_ff[b]),
            "odometer_km": p.x[b] / 1000.0,
            "start_soc_pct": from_soc * 100.0,
            "end_soc_pct": p.soc_ff[b] * 100.0,
            "soc_added_pct": rise * 100.0,
            "energy_added_kwh": energy,
            "energy_power_kwh": np.nan,
            "avg_power_kw": np.nan,
            "peak_power_kw": np.nan,
            "outside_temp_c": mean2(p.temp[a], p.temp[b]),
            "samples": 2,
            "unseen": True,
            "ongoing": False,
            "_lo": a,
            "_hi": b,
            "_anchored": True,
        }
    )


def empty_raw() -> pd.DataFrame:
    cols = [c for c in CHARGE_COLUMNS if c not in ("start_local", "end_local")]
    cols += ["_lo", "_hi", "_anchored"]
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in cols}).astype(
        {
            "vin": "object",
            "kind": "object",
            "place": "object",
            "currency": "object",
            "unseen": bool,
            "ongoing": bool,
            "samples": "int64",
            "_lo": "int64",
            "_hi": "int64",
            "_anchored": bool,
        }
    )


def empty() -> pd.DataFrame:
    """A sessions frame with no rows and the right columns."""
    out = empty_raw()
    out.insert(3, "start_local", pd.Series(dtype="object"))
    out.insert(4, "end_local", pd.Series(dtype="object"))
    return out[list(CHARGE_COLUMNS)]
