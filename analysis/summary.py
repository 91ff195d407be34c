"""Totals per local day, ISO week or month: distance, drives, energy used and charged, AC/DC share,
what charging cost and what that makes per 100 km driven.

Buckets are the local calendar where the car was (or the pinned zone; DST-aware), and a trip or session
counts in the bucket where it *started*, as TeslaMate's statistics do: a drive across midnight
belongs to the evening it began, so per-day sums always add up to the total.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import pandas as pd

from .prep import local_times
from .settings import Settings
from .zones import zones


def _column(df: pd.DataFrame, name: str) -> Any:
    """A column of a sessions frame made before places and costs existed reads as unknown."""
    if name in df.columns:
        return df[name].to_numpy(dtype="float64")
    return np.full(len(df), np.nan)


PERIODS: Final = ("day", "week", "month")
SUMMARY_COLUMNS: Final = (
    "vin",
    "period",
    "drives",
    "distance_km",
    "driving_h",
    "energy_used_kwh",
    "consumption_kwh_100km",
    "charges",
    "energy_charged_kwh",
    "ac_kwh",
    "dc_kwh",
    "dc_share_pct",
    "energy_grid_kwh",
    "cost",
    "cost_per_100km",
)


def _label(local: pd.Series, period: str) -> pd.Series:
    if period == "day":
        return pd.Series(local.dt.strftime("%Y-%m-%d"))
    if period == "month":
        return pd.Series(local.dt.strftime("%Y-%m"))
    iso = local.dt.isocalendar()
    return pd.Series(iso["year"].astype(str) + "-W" + iso["week"].astype(str).str.zfill(2))


def summary(
    trips_df: pd.DataFrame,
    charges_df: pd.DataFrame,
    settings: Settings | None = None,
    *,
    period: str = "month",
) -> pd.DataFrame:
    """One row per vehicle and period that had a drive or a charge."""
    if period not in PERIODS:
        raise ValueError(f"unknown period {period!r}; expected one of {PERIODS}")
    s = settings or Settings()
    t, c = trips_df, charges_df
    if t.empty and c.empty:
        return empty()
    t_vin, c_vin = t["vin"].to_numpy(), c["vin"].to_numpy()
    t_zone = zones(t_vin, t["start_latitude"].to_numpy(), t["start_longitude"].to_numpy(), s)
    c_zone = zones(c_vin, c["latitude"].to_numpy(), c["longitude"].to_numpy(), s)
    t_lab = _label(local_times(t["start_ts"].to_numpy(), t_vin, s, zones=t_zone), period)
    c_lab = _label(local_times(c["start_ts"].to_numpy(), c_vin, s, zones=c_zone), period)
    tg = (
        pd.DataFrame(
            {
                "vin": t["vin"].to_numpy(),
                "period": t_lab.to_numpy(),
                "distance_km": t["distance_km"].to_numpy(),
                "driving_h": ((t["end_ts"] - t["start_ts"]) / 3600.0).to_numpy(),
                "energy_used_kwh": t["energy_kwh"].to_numpy(),
            }
        )
        .groupby(["vin", "period"])
        .agg(
            drives=("distance_km", "size"),
            distance_km=("distance_km", "sum"),
            driving_h=("driving_h", "sum"),
            energy_used_kwh=("energy_used_kwh", "sum"),
        )
    )
    kind = c["kind"].astype("object").to_numpy()
    e = c["energy_added_kwh"].to_numpy()
    cg = (
        pd.DataFrame(
            {
                "vin": c["vin"].to_numpy(),
                "period": c_lab.to_numpy(),
                "energy_charged_kwh": e,
                "ac_kwh": pd.Series(e).where(kind == "ac", 0.0).to_numpy(),
                "dc_kwh": pd.Series(e).where(kind == "dc", 0.0).to_numpy(),
                "energy_grid_kwh": _column(c, "energy_grid_kwh"),
                "cost": _column(c, "cost"),
            }
        )
        .groupby(["vin", "period"])
        .agg(
            charges=("energy_charged_kwh", "size"),
            energy_charged_kwh=("energy_charged_kwh", "sum"),
            ac_kwh=("ac_kwh", "sum"),
            dc_kwh=("dc_kwh", "sum"),
            energy_grid_kwh=("energy_grid_kwh", "sum"),
            # no tariff for any session of the period: no cost (NaN), not 0
            cost=("cost", lambda x: x.sum(min_count=1)),
        )
    )
    out = tg.join(cg, how="outer").reset_index()
    for col in ("drives", "charges"):
        out[col] = out[col].fillna(0).astype("int64")
    for col in (
        "distance_km",
        "driving_h",
        "energy_used_kwh",
        "energy_charged_kwh",
        "ac_kwh",
        "dc_kwh",
    ):
        out[col] = out[col].astype("float64").fillna(0.0)
    known = out["ac_kwh"] + out["dc_kwh"]
    out["dc_share_pct"] = (out["dc_kwh"] / known.where(known > 0) * 100.0).astype("float64")
    out["consumption_kwh_100km"] = (
        out["energy_used_kwh"] / out["distance_km"].where(out["distance_km"] > 0) * 100.0
    )
    out["energy_grid_kwh"] = out["energy_grid_kwh"].astype("float64").fillna(0.0)
    out["cost"] = out["cost"].astype("float64").round(2)
    # what driving cost: the period's charging bill per 100 km driven in it
    out["cost_per_100km"] = out["cost"] / out["distance_km"].where(out["distance_km"] > 0) * 100.0
    out = out.sort_values(["vin", "period"], kind="mergesort")
    return out[list(SUMMARY_COLUMNS)].reset_index(drop=True)


def empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in SUMMARY_COLUMNS}).astype(
        {"vin": "object", "period": "object", "drives": "int64", "charges": "int64"}
    )
