"""Idle drain: how much charge a parked car loses, per parked period of at least ``idle_hours``.

A parked period is the time between two activities (trips and charging sessions, seen or inferred),
as TeslaMate's Vampire Drain does. It is measured between the first report after the car parked and
the last report before it left, so the SoC values belong to the period itself. Periods with the
cable in are skipped: the charger may be feeding the car, and the drain is then not the battery's.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from .charges import charges as detect_charges
from .prep import Prepared, local_iso, prepare
from .settings import Settings
from .trips import trips as detect_trips
from .zones import zones

DRAIN_COLUMNS: Final = (
    "vin",
    "start_ts",
    "end_ts",
    "start_local",
    "end_local",
    "duration_h",
    "start_soc_pct",
    "end_soc_pct",
    "soc_lost_pct",
    "energy_kwh",
    "avg_power_w",
    "pct_per_day",
    "range_lost_km",
    "outside_temp_c",
    "samples",
)

_NOISE: Final = 0.005  # a rise below half a point is rounding, not charging


def drain(
    df: pd.DataFrame,
    settings: Settings | None = None,
    *,
    prepared: Prepared | None = None,
    trips_df: pd.DataFrame | None = None,
    charges_df: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per parked period of at least ``settings.idle_hours``."""
    s = settings or Settings()
    p = prepared if prepared is not None else prepare(df, s)
    if p.n == 0:
        return empty()
    tr = trips_df if trips_df is not None else detect_trips(df, s, prepared=p)
    ch = charges_df if charges_df is not None else detect_charges(df, s, prepared=p)
    codes = {v: i for i, v in enumerate(pd.unique(p.vin))}
    acts = pd.concat(
        [tr[["vin", "start_ts", "end_ts"]], ch[["vin", "start_ts", "end_ts"]]], ignore_index=True
    )
    # Every vehicle's first and last sample bound its idle time too.
    first_t = p.t[p.new_vin]
    last_t = p.t[p.last_of_vin]
    vins = p.vin[p.new_vin]
    bounds = pd.DataFrame(
        {
            "vin": np.r_[vins, vins],
            "start_ts": np.r_[first_t, last_t],
            "end_ts": np.r_[first_t, last_t],
        }
    )
    acts = pd.concat([acts, bounds], ignore_index=True)
    acts["g"] = acts["vin"].map(codes).astype("int64")
    acts = acts.sort_values(["g", "start_ts"], kind="mergesort").reset_index(drop=True)
    # Overlapping activities (a trip ending in a charge) form one busy span: running max of ends.
    busy_end = acts.groupby("g")["end_ts"].cummax().to_numpy()
    g = acts["g"].to_numpy()
    gap_lo = busy_end[:-1]
    gap_hi = acts["start_ts"].to_numpy()[1:]
    same = g[:-1] == g[1:]
    cand = same & (gap_hi - gap_lo >= s.idle_hours * 3600.0)
    gg, lo_t, hi_t = g[:-1][cand], gap_lo[cand], gap_hi[cand]
    if not len(gg):
        return empty()
    # Sample indices: first report at/after the period start, last at/before its end.
    key = p.group * 1e10 + p.t
    i0 = np.searchsorted(key, gg * 1e10 + lo_t - 1e-3, side="left")
    i1 = np.searchsorted(key, gg * 1e10 + hi_t + 1e-3, side="right") - 1
    ok = (i1 > i0) & (i0 < p.n) & (i1 >= 0)
    i0, i1 = i0[ok], i1[ok]
    plugged_c = np.r_[0, np.cumsum(p.plugged | p.charging)]
    plugged = plugged_c[i1 + 1] - plugged_c[i0] > 0
    span = p.t[i1] - p.t[i0]
    soc0, soc1 = p.soc_ff[i0], p.soc_ff[i1]
    lost = soc0 - soc1
    with np.errstate(invalid="ignore"):
        keep = ~plugged & (span >= s.idle_hours * 3600.0) & ~(lost < -_NOISE)
    i0, i1, span, soc0, soc1, lost = (
        i0[keep],
        i1[keep],
        span[keep],
        soc0[keep],
        soc1[keep],
        lost[keep],
    )
    if not len(i0):
        return empty()
    cap = p.capacity_kwh[i0]
    energy = lost * cap
    temp_c = np.r_[0.0, np.cumsum(np.nan_to_num(p.temp))]
    temp_n = np.r_[0, np.cumsum(~np.isnan(p.temp))]
    n_t = temp_n[i1 + 1] - temp_n[i0]
    with np.errstate(invalid="ignore", divide="ignore"):
        temp = np.where(n_t > 0, (temp_c[i1 + 1] - temp_c[i0]) / n_t, np.nan)
    out = pd.DataFrame(
        {
            "vin": p.vin[i0],
            "start_ts": p.t[i0],
            "end_ts": p.t[i1],
            "duration_h": span / 3600.0,
            "start_soc_pct": soc0 * 100.0,
            "end_soc_pct": soc1 * 100.0,
            "soc_lost_pct": lost * 100.0,
            "energy_kwh": energy,
            "avg_power_w": energy * 1000.0 / (span / 3600.0),
            "pct_per_day": lost * 100.0 / (span / 86400.0),
            "range_lost_km": (p.rng_ff[i0] - p.rng_ff[i1]) / 1000.0,
            "outside_temp_c": temp,
            "samples": i1 - i0 + 1,
        }
    )
    z = zones(p.vin[i0], p.lat_ff[i0], p.lon_ff[i0], s)  # where it stood
    out.insert(3, "start_local", local_iso(out["start_ts"].to_numpy(), p.vin[i0], s, zones=z))
    out.insert(4, "end_local", local_iso(out["end_ts"].to_numpy(), p.vin[i0], s, zones=z))
    return out[list(DRAIN_COLUMNS)].reset_index(drop=True)


def empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in DRAIN_COLUMNS}).astype(
        {"vin": "object", "start_local": "object", "end_local": "object", "samples": "int64"}
    )
