"""Consumption by outside temperature, by speed and by month, from the trips.

Each band's figure is total energy over total distance (not a mean of per-trip ratios), so a 300 km
motorway trip weighs as much as its kilometres and a 150 m hop with a rounding-sized SoC step cannot
dominate. Trips under ``min_km`` and trips whose energy is unknown are left out.
"""

from __future__ import annotations

import itertools
from typing import Final

import numpy as np
import pandas as pd

from .prep import local_times
from .settings import Settings
from .zones import zones

EFFICIENCY_COLUMNS: Final = (
    "vin",
    "dimension",
    "band",
    "trips",
    "distance_km",
    "energy_kwh",
    "consumption_kwh_100km",
    "avg_speed_kmh",
    "outside_temp_c",
)
DIMENSIONS: Final = ("temperature", "speed", "month")
TEMP_STEP_C: Final = 5.0
SPEED_EDGES_KMH: Final = (0.0, 30.0, 50.0, 70.0, 90.0, 110.0, 130.0, 1000.0)


def _temp_band(t: float) -> str:
    if np.isnan(t):
        return "unknown"
    lo = np.floor(t / TEMP_STEP_C) * TEMP_STEP_C
    return f"{lo:+.0f}..{lo + TEMP_STEP_C:+.0f} C"


def _speed_bands(v: pd.Series) -> pd.Series:
    edges = list(SPEED_EDGES_KMH)
    labels = [
        f"{int(a)}-{int(b)} km/h" if b < 1000 else f">= {int(a)} km/h"
        for a, b in itertools.pairwise(edges)
    ]
    return pd.cut(v, edges, labels=labels, right=False).astype("object").fillna("unknown")


def efficiency(
    trips_df: pd.DataFrame,
    settings: Settings | None = None,
    *,
    by: str | None = None,
    min_km: float = 1.0,
) -> pd.DataFrame:
    """Long table: one row per vehicle, dimension (temperature|speed|month) and band."""
    s = settings or Settings()
    dims = DIMENSIONS if by is None else (by,)
    for d in dims:
        if d not in DIMENSIONS:
            raise ValueError(f"unknown efficiency dimension {d!r}; expected one of {DIMENSIONS}")
    t = trips_df.loc[
        (trips_df["distance_km"] >= min_km) & trips_df["energy_kwh"].notna()
    ].reset_index(drop=True)
    if t.empty:
        return empty()
    hours = (t["end_ts"] - t["start_ts"]) / 3600.0
    frames = []
    for d in dims:
        if d == "temperature":
            band = t["outside_temp_c"].map(_temp_band)
            order = t["outside_temp_c"].fillna(1e9)
        elif d == "speed":
            band = _speed_bands(t["avg_speed_kmh"])
            order = t["avg_speed_kmh"].fillna(1e9)
        else:
            z = zones(
                t["vin"].to_numpy(),
                t["start_latitude"].to_numpy(dtype="float64"),
                t["start_longitude"].to_numpy(dtype="float64"),
                s,
            )
            local = local_times(t["start_ts"].to_numpy(), t["vin"].to_numpy(), s, zones=z)
            band = local.dt.strftime("%Y-%m")
            order = pd.Series(local.to_numpy().astype("datetime64[s]").astype("int64"))
        g = pd.DataFrame(
            {
                "vin": t["vin"],
                "band": band,
                "order": order,
                "distance_km": t["distance_km"],
                "energy_kwh": t["energy_kwh"],
                "hours": hours,
                "temp": t["outside_temp_c"],
            }
        ).groupby(["vin", "band"], sort=False)
        agg = g.agg(
            trips=("distance_km", "size"),
            distance_km=("distance_km", "sum"),
            energy_kwh=("energy_kwh", "sum"),
            hours=("hours", "sum"),
            outside_temp_c=("temp", "mean"),
            order=("order", "min"),
        ).reset_index()
        agg["dimension"] = d
        frames.append(agg)
    out = pd.concat(frames, ignore_index=True)
    out["consumption_kwh_100km"] = out["energy_kwh"] / out["distance_km"] * 100.0
    out["avg_speed_kmh"] = out["distance_km"] / out["hours"].where(out["hours"] > 0)
    dim_rank = out["dimension"].map({d: i for i, d in enumerate(DIMENSIONS)})
    out = out.assign(_d=dim_rank).sort_values(["vin", "_d", "order"], kind="mergesort")
    return out[list(EFFICIENCY_COLUMNS)].reset_index(drop=True)


def empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in EFFICIENCY_COLUMNS}).astype(
        {"vin": "object", "dimension": "object", "band": "object", "trips": "int64"}
    )
