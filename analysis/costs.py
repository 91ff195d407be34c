"""Places and money on the detected sessions: where each trip and charge happened, what each charge
cost, and monthly totals.

Per charging session: the energy from the grid is the energy into the battery ÷ the charging
efficiency (AC or DC, analysis.tariffs); its cost is that energy spread over the session as the car
drew it — by the charging power the cloud reported between samples where there is one (Smartcar),
else evenly over the time the car reported charging (smart sends no power) — each part priced by
the time-of-use window it falls in (local time where the car charged), plus the session fee.
"""

from __future__ import annotations

import itertools
import math
from typing import Final

import numpy as np
import pandas as pd

from .places import match
from .prep import Prepared, local_times
from .settings import Settings
from .tariffs import price_session
from .zones import zones

COST_COLUMNS: Final = (
    "place",
    "energy_grid_kwh",
    "cost",
    "currency",
    "range_added_km",
    "cost_per_100km_range",
)


def _profile(
    p: Prepared, lo: int, hi: int, start: float, end: float, anchored: bool, ongoing: bool
) -> list[tuple[float, float, float]]:
    """(start, end, weight) pieces of a seen session: each piece draws the power of the latest
    session sample at or before it (the first one for the back-filled head), nothing while paused;
    where the power is unknown, the session's mean reported power (or 1 W if it reported none, which
    spreads the energy evenly over the charging time)."""
    first = lo + 1 if anchored else lo
    last = hi if ongoing else hi - 1
    if last < first:
        return [(start, end, 1.0)]
    idx = np.arange(first, last + 1)
    t = p.t[idx]
    pw = p.power_w[idx]
    chg = p.charging[idx]
    with np.errstate(invalid="ignore"):
        known = chg & (pw > 0)
    fill = float(np.mean(pw[known])) if known.any() else 1.0
    power = np.where(known, pw, np.where(chg, fill, 0.0))
    edges = np.unique(np.clip(np.r_[start, t, end], start, end))
    out: list[tuple[float, float, float]] = []
    for a, b in itertools.pairwise(edges):
        k = max(int(np.searchsorted(t, a, side="right")) - 1, 0)
        out.append((float(a), float(b), float(power[k]) * (float(b) - float(a))))
    return out


def add_session_costs(raw: pd.DataFrame, p: Prepared, s: Settings) -> pd.DataFrame:
    """Add ``COST_COLUMNS`` to raw sessions (with ``_lo``/``_hi``/``_anchored``)."""
    n = len(raw)
    lat = raw["latitude"].to_numpy(dtype="float64")
    lon = raw["longitude"].to_numpy(dtype="float64")
    place = match(lat, lon, s.places)
    raw["place"] = place
    kind = raw["kind"].to_numpy()
    eff = np.array([s.tariffs.efficiency(str(k)) for k in kind], dtype="float64")
    added = raw["energy_added_kwh"].to_numpy(dtype="float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        grid = np.where(added > 0, added / eff, np.where(added == added, 0.0, np.nan))
    raw["energy_grid_kwh"] = grid
    # range added: SoC added at the car's own km per % when it finished
    hi = raw["_hi"].to_numpy(dtype="int64")
    with np.errstate(invalid="ignore", divide="ignore"):
        km_per_soc = p.rng_ff[hi] / p.soc_ff[hi] / 1000.0 if p.n else np.zeros(0)
        rng_added = raw["soc_added_pct"].to_numpy(dtype="float64") / 100.0 * km_per_soc
    rng_added = np.where(np.isfinite(rng_added) & (rng_added > 0), rng_added, np.nan)
    raw["range_added_km"] = rng_added
    cost = np.full(n, np.nan)
    if s.tariffs.tariffs and n:
        place_tariff = {pl.name: pl.tariff for pl in s.places}
        zone = zones(raw["vin"].to_numpy(), lat, lon, s)
        lo = raw["_lo"].to_numpy(dtype="int64")
        anchored = raw["_anchored"].to_numpy(dtype=bool)
        ongoing = raw["ongoing"].to_numpy(dtype=bool)
        unseen = raw["unseen"].to_numpy(dtype=bool)
        start = raw["start_ts"].to_numpy(dtype="float64")
        end = raw["end_ts"].to_numpy(dtype="float64")
        for i in range(n):
            tariff = s.tariffs.for_session(
                place_tariff.get(place[i]) if place[i] else None, str(kind[i])
            )
            if tariff is None or not math.isfinite(grid[i]):
                continue
            if unseen[i]:
                profile = [(float(start[i]), float(end[i]), 1.0)]
            else:
                profile = _profile(
                    p,
                    int(lo[i]),
                    int(hi[i]),
                    float(start[i]),
                    float(end[i]),
                    bool(anchored[i]),
                    bool(ongoing[i]),
                )
            cost[i] = round(price_session(profile, float(grid[i]), tariff, str(zone[i])), 2)
    raw["cost"] = cost
    raw["currency"] = s.tariffs.currency or None if s.tariffs.tariffs else None
    with np.errstate(invalid="ignore", divide="ignore"):
        raw["cost_per_100km_range"] = np.where(rng_added > 0, cost / rng_added * 100.0, np.nan)
    return raw


MONTHLY_COLUMNS: Final = (
    "month",
    "vin",
    "place",
    "kind",
    "sessions",
    "energy_added_kwh",
    "energy_grid_kwh",
    "cost",
    "currency",
)


def monthly_costs(charges: pd.DataFrame, s: Settings) -> pd.DataFrame:
    """Cost per month, vehicle, place (``other`` where none matched) and AC/DC."""
    if not len(charges):
        return pd.DataFrame(columns=list(MONTHLY_COLUMNS))
    z = zones(
        charges["vin"].to_numpy(),
        charges["latitude"].to_numpy(dtype="float64"),
        charges["longitude"].to_numpy(dtype="float64"),
        s,
    )
    local = local_times(charges["start_ts"].to_numpy(), charges["vin"].to_numpy(), s, zones=z)
    frame = pd.DataFrame(
        {
            "month": local.dt.strftime("%Y-%m").to_numpy(),
            "vin": charges["vin"].to_numpy(),
            "place": charges["place"].fillna("other").to_numpy(),
            "kind": charges["kind"].to_numpy(),
            "energy_added_kwh": charges["energy_added_kwh"].to_numpy(dtype="float64"),
            "energy_grid_kwh": charges["energy_grid_kwh"].to_numpy(dtype="float64"),
            "cost": charges["cost"].to_numpy(dtype="float64"),
        }
    )
    out = (
        frame.groupby(["month", "vin", "place", "kind"], sort=True)
        .agg(
            sessions=("cost", "size"),
            energy_added_kwh=("energy_added_kwh", "sum"),
            energy_grid_kwh=("energy_grid_kwh", "sum"),
            cost=("cost", lambda c: c.sum(min_count=1)),
        )
        .reset_index()
    )
    out["cost"] = out["cost"].round(2)
    out["currency"] = s.tariffs.currency or None
    return out[list(MONTHLY_COLUMNS)]
