"""Battery health: usable capacity estimated from charging sessions, per month, with its spread.

Each session that added at least ``min_soc_pct`` points gives one estimate: energy measured by
integrating charging power, divided by the SoC gained. The energy must come from power, never from
SoC times the configured capacity, or the estimate would only echo the configuration. One session is
noisy (SoC is reported in whole percent; power is sampled), so each month reports the median with
the interquartile range, the number of sessions behind it and a 90 % interval for the health figure;
a real fade shows as a drift of the median over months, well beyond the spread. A month with fewer
than three estimates, or with AC ones only that no DC session put on the battery's footing, shows
"not enough data" instead of a number that would look precise and be wrong by the charger's losses. AC and DC sessions are first put on one footing (see
``battery_side``).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from .prep import local_times
from .settings import Settings

BATTERY_COLUMNS: Final = (
    "vin",
    "month",
    "sessions",
    "capacity_kwh",
    "capacity_p25_kwh",
    "capacity_p75_kwh",
    "capacity_std_kwh",
    "nominal_kwh",
    "health_pct",
    "health_low_pct",
    "health_high_pct",
    "ac_scale",
    "note",
)
# A month's health figure needs this many estimates, on the DC footing (see ``battery``).
MIN_SESSIONS: Final = 3
MIN_DC: Final = 2
Z90: Final = 1.645
ESTIMATE_COLUMNS: Final = (
    "vin",
    "start_ts",
    "start_local",
    "kind",
    "soc_added_pct",
    "energy_power_kwh",
    "capacity_kwh",
)


def capacity_estimates(charges_df: pd.DataFrame, min_soc_pct: float = 10.0) -> pd.DataFrame:
    """One capacity estimate per qualifying session (see the module docstring)."""
    c = charges_df
    ok = (
        ~c["unseen"].astype(bool)
        & ~c["ongoing"].astype(bool)
        & (c["soc_added_pct"] >= min_soc_pct)
        & c["energy_power_kwh"].notna()
        & (c["energy_power_kwh"] > 0)
    )
    e = c.loc[ok].copy()
    e["capacity_kwh"] = e["energy_power_kwh"] / (e["soc_added_pct"] / 100.0)
    return e[list(ESTIMATE_COLUMNS)].reset_index(drop=True)


def battery(
    charges_df: pd.DataFrame,
    settings: Settings | None = None,
    *,
    nominal_kwh: dict[str, float] | None = None,
    min_soc_pct: float = 10.0,
) -> pd.DataFrame:
    """Per vehicle and local month: median capacity estimate, quartiles, std, health vs nominal."""
    s = settings or Settings()
    est = battery_side(capacity_estimates(charges_df, min_soc_pct))
    if est.empty:
        return empty()
    local = local_times(est["start_ts"].to_numpy(), est["vin"].to_numpy(), s)
    est["month"] = local.dt.strftime("%Y-%m").to_numpy()
    g = est.groupby(["vin", "month"], sort=True)["capacity_kwh"]
    dc_n = (est["kind"] == "dc").groupby([est["vin"], est["month"]], sort=True).sum()
    out = pd.DataFrame(
        {
            "sessions": g.size(),
            "capacity_kwh": g.median(),
            "capacity_p25_kwh": g.quantile(0.25),
            "capacity_p75_kwh": g.quantile(0.75),
            "capacity_std_kwh": g.std(ddof=1),
            "dc": dc_n,
        }
    ).reset_index()
    nominal = nominal_kwh or {}
    out["nominal_kwh"] = out["vin"].map(lambda v: nominal.get(v, np.nan)).astype("float64")
    out["ac_scale"] = out["vin"].map(est.groupby("vin")["ac_scale"].first()).astype("float64")
    # Honest uncertainty: the median's standard error (1.2533 sigma / sqrt(n)), a 90 % interval.
    # A month with too few estimates, or only AC ones that no DC session calibrated (smart reports
    # AC power at the wall, so those read high by the charger's losses), gets no health figure.
    calibrated = out["ac_scale"].notna() | (out["dc"] >= MIN_DC)
    enough = (out["sessions"] >= MIN_SESSIONS) & calibrated
    se = 1.2533 * out["capacity_std_kwh"] / np.sqrt(out["sessions"])
    health = out["capacity_kwh"] / out["nominal_kwh"] * 100.0
    half = Z90 * se / out["nominal_kwh"] * 100.0
    out["health_pct"] = health.where(enough)
    out["health_low_pct"] = (health - half).where(enough)
    out["health_high_pct"] = (health + half).where(enough)
    out["note"] = np.where(
        out["nominal_kwh"].isna(),
        "no nominal capacity",
        np.where(
            out["sessions"] < MIN_SESSIONS,
            "not enough data: " + out["sessions"].astype(str) + " sessions",
            np.where(calibrated, "", "not enough data: AC only, no DC session to calibrate"),
        ),
    )
    return out[list(BATTERY_COLUMNS)]


def battery_side(est: pd.DataFrame, min_each: int = 2) -> pd.DataFrame:
    """Estimates on one footing: AC ones divided by the vehicle's AC/DC ratio when it has both.

    DC power is measured at the battery; AC power is often the wall side (smart multiplies the
    charger's volts and amperes), so AC estimates include charging losses. A vehicle with at least
    ``min_each`` sessions of each kind shows its own ratio (median AC / median DC estimate), and
    AC estimates are scaled by it (``ac_scale``); without DC sessions they are left as measured
    (``ac_scale`` NaN) and read a few percent high, consistently, which is what a trend needs.
    """
    out = est.copy()
    out["ac_scale"] = np.nan
    for vin, part in est.groupby("vin"):
        ac = part.loc[part["kind"] == "ac", "capacity_kwh"]
        dc = part.loc[part["kind"] == "dc", "capacity_kwh"]
        if len(ac) >= min_each and len(dc) >= min_each:
            scale = float(ac.median() / dc.median())
            mine = out["vin"] == vin
            out.loc[mine, "ac_scale"] = scale
            out.loc[mine & (out["kind"] == "ac"), "capacity_kwh"] /= scale
    return out


def empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in BATTERY_COLUMNS}).astype(
        {"vin": "object", "month": "object", "sessions": "int64", "note": "object"}
    )
