"""Making a history safe to analyse: one row per report, impossible values turned into "unknown".

Clouds send garbage now and then (a 0 odometer after a reset of the telematics unit, SoC 255, a
position of 0/0, a row twice). A single bad odometer would invent a 1000 km trip, and one SoC of
2.55 would add a phantom charge, so every physically impossible value becomes NaN here and the
detectors treat it as a missing reading. Rows are never invented and valid values are never altered.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from exporter.signals import CHARGING_STATES, POWER_STATES

# Physically possible ranges in SI units; anything outside is a sensor or parser error.
LIMITS: Final = {
    "battery_soc": (0.0, 1.0),
    "electric_range": (0.0, 2_000_000.0),
    "electric_range_at_full": (1.0, 2_000_000.0),
    "odometer": (1e-9, 5e9),  # 0 is the classic "unknown" sentinel
    "speed": (0.0, 100.0),  # 360 km/h
    "latitude": (-90.0, 90.0),
    "longitude": (-180.0, 180.0),
    "charging_power": (0.0, 500_000.0),
    "charging_voltage_dc": (0.0, 1500.0),
    "charging_current_dc": (-1000.0, 1000.0),
    "outside_temperature": (-60.0, 65.0),
}
ODO_SPEED_LIMIT: Final = 70.0  # m/s; an odometer rising faster than ~250 km/h is a bad reading
ODO_SLACK_M: Final = 2000.0


def clean(df: pd.DataFrame) -> pd.DataFrame:
    """Sorted by (vin, ts), one row per (vin, ts), impossible values as NaN. Returns a new frame."""
    missing = [c for c in ("vin", "ts") if c not in df.columns]
    if missing and len(df):
        raise ValueError(f"samples need the columns vin and ts (missing: {', '.join(missing)})")
    out = df.copy()
    for c in missing:  # an empty frame without columns is just "no samples"
        out[c] = pd.Series(dtype="object" if c == "vin" else "float64")
    out["ts"] = pd.to_numeric(out["ts"], errors="coerce")
    ok = np.isfinite(out["ts"].to_numpy(dtype="float64")) & out["vin"].notna().to_numpy()
    out = out.loc[ok]
    out = out.sort_values(["vin", "ts"], kind="mergesort")
    # Two rows for one report (replayed webhook, merged files): keep the last, the most complete.
    out = out.drop_duplicates(["vin", "ts"], keep="last").reset_index(drop=True)
    for col, (lo, hi) in LIMITS.items():
        if col in out.columns:
            v = pd.to_numeric(out[col], errors="coerce").to_numpy(dtype="float64", copy=True)
            with np.errstate(invalid="ignore"):
                v[(v < lo) | (v > hi)] = np.nan
            out[col] = v
    if "latitude" in out.columns and "longitude" in out.columns:
        lat = out["latitude"].to_numpy(dtype="float64", copy=True)
        lon = out["longitude"].to_numpy(dtype="float64", copy=True)
        null_island = (lat == 0) & (lon == 0)
        bad = null_island | np.isnan(lat) | np.isnan(lon)
        lat[bad] = np.nan
        lon[bad] = np.nan
        out["latitude"], out["longitude"] = lat, lon
    for col, states in (("charging_state", CHARGING_STATES), ("power_state", POWER_STATES)):
        if col in out.columns:
            s = out[col].astype("object")
            out[col] = s.where(s.isin(states), None)
    if "charger_connected" in out.columns:
        c = pd.to_numeric(out["charger_connected"], errors="coerce").to_numpy(dtype="float64")
        out["charger_connected"] = np.where((c == 0) | (c == 1), c, np.nan)
    steps: list[dict[str, object]] = []
    if "odometer" in out.columns:
        out["odometer"] = _clean_odometer(
            out["vin"].to_numpy(),
            out["ts"].to_numpy(dtype="float64"),
            out["odometer"].to_numpy(),
            steps,
        )
    result = pd.DataFrame(out)
    # a frame cleaned before (``analysis.load`` cleans) keeps the steps already carried over in it
    result.attrs["odometer_steps"] = [*df.attrs.get("odometer_steps", []), *steps]
    return result


STEP_CONFIRM: Final = 3  # readings at a new level that make a step permanent, not a glitch


def _clean_odometer(
    vin: np.ndarray, ts: np.ndarray, odo: np.ndarray, steps: list[dict[str, object]] | None = None
) -> np.ndarray:
    """Drop odometer readings that jump out of line or go backwards; carry permanent steps over.

    A reading is compared with the median of the five good readings around it (robust to two bad
    ones in a row, also at the start of a history): further from it than a car could drive in the
    time between them means a spike. Then a reading below the highest good reading so far went
    backwards (odometers never do) and is dropped too. Both passes are vectorised.

    A *permanent* step is different: an instrument cluster or telematics unit replaced (a new, low
    odometer), or a unit switch (miles read as km, or back). Dropping every later reading would drop
    every later trip, so when ``STEP_CONFIRM`` readings in a row were dropped and agree with each
    other (rising no faster than a car drives), the readings from the first of them on are shifted
    to continue from the last good one — the distance driven across the step itself is unknown and
    counted as nothing — and the step is recorded in ``steps`` (vin, ts, prev_ts: the good reading
    before it, from_m, to_m).
    """
    odo = np.asarray(odo, dtype="float64").copy()
    out = _odometer_pass(vin, ts, odo)
    for _ in range(20):  # each round resolves the earliest step; a history has a handful at most
        step = _first_step(vin, ts, odo, out)
        if step is None:
            break
        i, j = step  # i: first reading at the new level, j: end of that vehicle's rows
        prev = int(np.flatnonzero(~np.isnan(out[:i]))[-1])
        last_good = out[prev]
        shift = float(last_good - odo[i])
        if steps is not None:
            steps.append(
                {
                    "vin": str(vin[i]),
                    "ts": float(ts[i]),
                    "prev_ts": float(ts[prev]),  # the step happened after this good reading
                    "from_m": float(last_good),
                    "to_m": float(odo[i]),
                }
            )
        odo[i:j] += shift
        out[i:j] = _odometer_pass(vin[i:j], ts[i:j], odo[i:j], start=float(last_good))
    return out


def _first_step(
    vin: np.ndarray, ts: np.ndarray, raw: np.ndarray, kept: np.ndarray
) -> tuple[int, int] | None:
    """The earliest permanent step: (index of the first reading at the new level, end of that
    vehicle's rows), or None.

    Down (or a unit switch to a smaller unit): ``STEP_CONFIRM`` dropped readings in a row that agree
    with each other, after a good reading of the same vehicle. Up (a switch to a larger unit): a
    kept reading higher than the one before by more than a car can drive in the time between,
    followed by ``STEP_CONFIRM - 1`` more of the same vehicle.
    """
    valid = np.flatnonzero(~np.isnan(raw))
    if len(valid) < STEP_CONFIRM + 1:
        return None
    found: list[int] = []
    dropped = np.isnan(kept[valid])
    for k in np.flatnonzero(dropped):
        run = valid[k : k + STEP_CONFIRM]
        if len(run) < STEP_CONFIRM or not dropped[k : k + STEP_CONFIRM].all():
            continue
        if (vin[run] != vin[run[0]]).any():
            continue
        before = valid[:k][vin[valid[:k]] == vin[run[0]]]
        if not len(before) or np.isnan(kept[before]).all():
            continue
        r, t = raw[run], ts[run]
        rises = np.diff(r)
        if (rises < -1.0).any() or (rises > ODO_SPEED_LIMIT * np.diff(t) + ODO_SLACK_M).any():
            continue  # the dropped readings disagree among themselves: glitches, not a new level
        found.append(int(run[0]))
        break
    good = np.flatnonzero(~np.isnan(kept))
    if len(good) > STEP_CONFIRM:
        same = vin[good[1:]] == vin[good[:-1]]
        rise = np.diff(kept[good])
        limit = ODO_SPEED_LIMIT * np.diff(ts[good]) + ODO_SLACK_M
        for k in np.flatnonzero(same & (rise > limit)):
            after = good[k + 1 : k + 1 + STEP_CONFIRM]
            if len(after) == STEP_CONFIRM and (vin[after] == vin[after[0]]).all():
                found.append(int(good[k + 1]))
                break
    if not found:
        return None
    first = min(found)
    end = int(np.flatnonzero(vin == vin[first])[-1]) + 1
    return first, end


def _odometer_pass(
    vin: np.ndarray, ts: np.ndarray, odo: np.ndarray, start: float | None = None
) -> np.ndarray:
    """Spikes and backwards readings as NaN (``start``: a good reading just before these rows)."""
    odo = np.asarray(odo, dtype="float64").copy()
    n = len(odo)
    if n == 0:
        return odo
    idx = np.flatnonzero(~np.isnan(odo))
    if len(idx) >= 3:
        g = pd.Series(vin[idx])
        frame = pd.DataFrame({"o": odo[idx], "t": ts[idx]})
        roll = frame.groupby(g.to_numpy(), sort=False).rolling(5, center=True, min_periods=1)
        med = roll.median().reset_index(level=0, drop=True).sort_index()
        with np.errstate(invalid="ignore"):
            far = np.abs(frame["o"].to_numpy() - med["o"].to_numpy()) > (
                ODO_SPEED_LIMIT * np.abs(frame["t"].to_numpy() - med["t"].to_numpy()) + ODO_SLACK_M
            )
        odo[idx[far]] = np.nan
    new_vin = np.ones(n, dtype=bool)
    new_vin[1:] = vin[1:] != vin[:-1]
    group = np.cumsum(new_vin) - 1
    best = pd.Series(odo).groupby(group).cummax().to_numpy()
    best = pd.Series(best).groupby(group).ffill().to_numpy()
    best_before = np.r_[np.nan, best[:-1]]
    best_before[new_vin] = np.nan
    if start is not None:
        best_before[0] = start
        best_before = np.where(group == 0, np.fmax(best_before, start), best_before)
    with np.errstate(invalid="ignore"):
        back = odo < best_before - 1.0
    odo[back] = np.nan
    return odo
