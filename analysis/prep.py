"""Per-sample arrays that the trip and charge detectors share, computed once and vectorised.

Detectors work on plain numpy arrays over the whole (vin, ts)-sorted frame: a vehicle boundary is
just a flag (``new_vin``), so a fleet costs no more Python work than one car. "Previous/next sample"
always means of the same vehicle; values that must survive gaps (odometer, SoC, position) are
forward-filled within each vehicle, never across vehicles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .clean import clean
from .settings import Settings

EARTH_RADIUS_M = 6_371_008.8


def haversine_m(
    lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray
) -> np.ndarray:
    """Great-circle distance in metres (NaN where a position is unknown)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp = p2 - p1
    dl = np.radians(lon2 - lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    out: np.ndarray = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    return out


def mean2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise mean of two arrays ignoring NaN (NaN only where both are)."""
    both = ~np.isnan(a) & ~np.isnan(b)
    return np.where(both, (a + b) / 2.0, np.where(np.isnan(a), b, a))


def _col(df: pd.DataFrame, name: str) -> np.ndarray:
    if name not in df.columns:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype="float64")


def _text(df: pd.DataFrame, name: str) -> np.ndarray:
    if name not in df.columns:
        return np.full(len(df), None, dtype=object)
    return df[name].astype("object").to_numpy()


@dataclass
class Prepared:
    """The cleaned frame plus the shared per-sample arrays (all of length n)."""

    df: pd.DataFrame
    vin: np.ndarray
    group: np.ndarray  # 0..V-1 per vehicle
    new_vin: np.ndarray  # first sample of a vehicle
    last_of_vin: np.ndarray  # last sample of a vehicle
    t: np.ndarray
    dt_prev: np.ndarray  # seconds since the previous sample (NaN at a vehicle's first)
    x: np.ndarray  # distance coordinate (odometer, else summed path), forward-filled, metres
    soc: np.ndarray
    soc_ff: np.ndarray
    rng_ff: np.ndarray
    speed: np.ndarray
    temp: np.ndarray
    lat_ff: np.ndarray
    lon_ff: np.ndarray
    power_state: np.ndarray
    charging_state: np.ndarray
    charging: np.ndarray  # AC or DC charging now
    dc_state: np.ndarray
    plugged: np.ndarray  # cable known to be in
    unplugged: np.ndarray  # cable known to be out
    power_w: np.ndarray
    capacity_kwh: np.ndarray  # per sample, from the vehicle's capacity
    capacity_by_vin: dict[str, float]
    soc_per_m: np.ndarray  # the vehicle's typical SoC used per metre driven, per sample
    # when the car last parked, by its own clock (smart parkTime; NaN where not reported)
    parked_since: np.ndarray
    soc_raw_ff: np.ndarray  # SoC as reported (before de-rounding), forward-filled

    @property
    def n(self) -> int:
        return len(self.t)

    def prev_same(self) -> np.ndarray:
        """Index of the previous sample of the same vehicle, -1 at a vehicle's first sample."""
        idx = np.arange(self.n) - 1
        idx[self.new_vin] = -1
        return idx


def _ffill(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    return pd.Series(values).groupby(group).ffill().to_numpy(dtype="float64")


def refine_soc(soc: np.ndarray, rng: np.ndarray, full: np.ndarray, group: np.ndarray) -> np.ndarray:
    """SoC with the whole-percent rounding undone where the range says more.

    smart (and many clouds) report SoC in whole percent, so a 5 km trip's 0.8 kWh is either 0 or
    1.2 kWh; but range and range-at-100 % come in kilometres, four times finer. Where a vehicle's SoC
    is always whole percent, ``range / range_at_full`` places the true SoC inside the rounding
    interval (it is clipped to it, so a car whose range model is not proportional to SoC is never
    made worse than the rounding already is).
    """
    out = soc.copy()
    if not len(soc):
        return out
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = soc * 100.0
        whole = np.isnan(pct) | (np.abs(pct - np.round(pct)) < 1e-6)
        whole_vin = pd.Series(whole).groupby(group).transform("all").to_numpy(dtype=bool)
        ratio = np.where((full > 0) & (rng >= 0), rng / full, np.nan)
        fine = np.clip(ratio, soc - 0.005, soc + 0.005)
    use = whole_vin & ~np.isnan(fine) & ~np.isnan(soc)
    out[use] = fine[use]
    return out


def capacities(df: pd.DataFrame, settings: Settings) -> dict[str, float]:
    """Usable kWh per VIN from settings, the model/series columns, or the fallback."""
    out: dict[str, float] = {}
    if df.empty:
        return out
    cols = [c for c in ("vin", "model", "series") if c in df.columns]
    first = df[cols].drop_duplicates("vin")
    for row in first.itertuples(index=False):
        vin = str(row[0])
        model = getattr(row, "model", None) if "model" in cols else None
        series = getattr(row, "series", None) if "series" in cols else None
        out[vin] = settings.capacity_for(
            vin,
            model if isinstance(model, str) else None,
            series if isinstance(series, str) else None,
        )
    return out


def prepare(df: pd.DataFrame, settings: Settings, *, cleaned: bool = False) -> Prepared:
    """Clean (unless told it already is) and derive the shared arrays."""
    d = df if cleaned else clean(df)
    n = len(d)
    vin = d["vin"].astype("object").to_numpy()
    new_vin = np.ones(n, dtype=bool)
    if n:
        new_vin[1:] = vin[1:] != vin[:-1]
    last_of_vin = np.r_[new_vin[1:], True] if n else np.zeros(0, dtype=bool)
    group = np.cumsum(new_vin) - 1
    t = d["ts"].to_numpy(dtype="float64")
    dt_prev = np.r_[np.nan, np.diff(t)] if n else np.zeros(0)
    dt_prev[new_vin] = np.nan

    lat, lon = _col(d, "latitude"), _col(d, "longitude")
    lat_ff, lon_ff = _ffill(lat, group), _ffill(lon, group)
    odo = _col(d, "odometer")
    x = _ffill(odo, group)
    # Vehicles that never report an odometer get a path length from positions instead, counting
    # only steps beyond GPS jitter so a parked car does not creep.
    has_odo = pd.Series(~np.isnan(odo)).groupby(group).transform("any").to_numpy(dtype=bool)
    if n and not has_odo.all():
        step = haversine_m(np.r_[np.nan, lat_ff[:-1]], np.r_[np.nan, lon_ff[:-1]], lat_ff, lon_ff)
        step[new_vin] = 0.0
        step = np.where(np.isnan(step) | (step < settings.jitter_m), 0.0, step)
        path = pd.Series(step).groupby(group).cumsum().to_numpy(dtype="float64")
        x = np.where(has_odo, x, path)

    soc = refine_soc(
        _col(d, "battery_soc"), _col(d, "electric_range"), _col(d, "electric_range_at_full"), group
    )
    cs = _text(d, "charging_state")
    conn = _col(d, "charger_connected")
    power = _col(d, "charging_power")
    vdc, idc = _col(d, "charging_voltage_dc"), _col(d, "charging_current_dc")
    with np.errstate(invalid="ignore"):
        dc_power = vdc * np.abs(idc)
        power = np.where(np.isnan(power) & (dc_power > 0), dc_power, power)
        dc_state = (cs == "dc_charging") | (np.isnan(_col(d, "charging_power")) & (dc_power > 0))
        charging = (cs == "charging") | (cs == "dc_charging")
        # No state reported at all: charging is what the power says.
        charging |= pd.isna(cs) & (power > 50.0)
        plugged = np.isin(cs, ["plugged", "charging", "dc_charging", "complete", "error"]) | (
            conn == 1
        )
        unplugged = (cs == "disconnected") | (conn == 0)
    caps = capacities(d, settings)
    cap = d["vin"].map(caps).to_numpy(dtype="float64") if n else np.zeros(0)
    return Prepared(
        df=d,
        vin=vin,
        group=group,
        new_vin=new_vin,
        last_of_vin=last_of_vin,
        t=t,
        dt_prev=dt_prev,
        x=x,
        soc=soc,
        soc_ff=_ffill(soc, group),
        rng_ff=_ffill(_col(d, "electric_range"), group),
        speed=_col(d, "speed"),
        temp=_col(d, "outside_temperature"),
        lat_ff=lat_ff,
        lon_ff=lon_ff,
        power_state=_text(d, "power_state"),
        charging_state=cs,
        charging=np.asarray(charging, dtype=bool),
        dc_state=np.asarray(dc_state, dtype=bool),
        plugged=np.asarray(plugged, dtype=bool),
        unplugged=np.asarray(unplugged, dtype=bool),
        power_w=power,
        capacity_kwh=cap,
        capacity_by_vin=caps,
        soc_per_m=_soc_per_m(x, soc, t, np.asarray(charging, dtype=bool), new_vin, group, cap),
        parked_since=_col(d, "parked_since"),
        soc_raw_ff=_ffill(_col(d, "battery_soc"), group),
    )


DEFAULT_KWH_PER_KM = 0.17


def _soc_per_m(
    x: np.ndarray,
    soc: np.ndarray,
    t: np.ndarray,
    charging: np.ndarray,
    new_vin: np.ndarray,
    group: np.ndarray,
    cap: np.ndarray,
) -> np.ndarray:
    """Each vehicle's SoC used per metre, from all its seen driving (sums, so rounding cancels).

    Used where a stretch of driving was not seen, e.g. the last kilometres before a charger that was
    already charging when the car was next polled.
    """
    n = len(x)
    fallback = DEFAULT_KWH_PER_KM / 1000.0 / cap
    if n < 2:
        return fallback
    dx = np.r_[np.nan, np.diff(x)]
    dsoc = np.r_[np.nan, -np.diff(soc)]
    dt = np.r_[np.nan, np.diff(t)]
    ok = (
        ~new_vin
        & ~charging
        & ~np.r_[False, charging[:-1]]
        & (dx > 100.0)
        & (dt < 900.0)
        & ~np.isnan(dsoc)
    )
    frame = (
        pd.DataFrame({"g": group[ok], "dx": dx[ok], "dsoc": dsoc[ok]})
        .groupby("g")[["dx", "dsoc"]]
        .sum()
    )
    rate = (frame["dsoc"] / frame["dx"]).where((frame["dx"] > 20_000.0) & (frame["dsoc"] > 0))
    per = pd.Series(group).map(rate).to_numpy(dtype="float64")
    return np.where(np.isnan(per), fallback, per)


def _zone_keys(vins: np.ndarray, settings: Settings, zones: np.ndarray | None) -> np.ndarray:
    if zones is not None:
        return np.asarray(zones, dtype=object)
    return np.array([settings.timezone_name(str(v)) for v in vins], dtype=object)


def local_iso(
    ts: np.ndarray, vins: np.ndarray, settings: Settings, zones: np.ndarray | None = None
) -> list[str | None]:
    """ISO-8601 local times with offset (e.g. 2026-03-29T03:10:00+02:00): in ``zones`` (a zone name
    per row, from where the car was: analysis.zones) or else each vehicle's configured zone."""
    out: list[str | None] = [None] * len(ts)
    if not len(ts):
        return out
    keys = _zone_keys(vins, settings, zones)
    # Whole seconds are cut in UTC: flooring a local time fails in the repeated hour of a DST end.
    s = pd.Series(np.floor(np.asarray(ts, dtype="float64")))
    for zone in pd.unique(keys):
        mask = keys == zone
        local = pd.to_datetime(s[mask], unit="s", utc=True).dt.tz_convert(str(zone))
        for i, v in zip(np.flatnonzero(mask), local, strict=True):
            out[i] = None if pd.isna(v) else v.isoformat()
    return out


def local_times(
    ts: np.ndarray, vins: np.ndarray, settings: Settings, zones: np.ndarray | None = None
) -> pd.Series:
    """Local wall-clock times (tz-naive; per row zone as in ``local_iso``) for bucketing into
    days/weeks/months."""
    out = pd.Series(pd.NaT, index=range(len(ts)), dtype="datetime64[ns]")
    if not len(ts):
        return out
    keys = _zone_keys(vins, settings, zones)
    s = pd.Series(ts)
    for zone in pd.unique(keys):
        mask = keys == zone
        local = pd.to_datetime(s[mask], unit="s", utc=True).dt.tz_convert(str(zone))
        out.iloc[np.flatnonzero(mask)] = local.dt.tz_localize(None).to_numpy()
    return out
