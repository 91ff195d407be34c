"""Trips from the car's own trip log, and the one trip list that prefers them.

Where a car keeps a trip journal (``journal_trips``, filled by the exporter), its trips are exact:
the car knows when it started and stopped, how far it went and what it used. Polling only
reconstructs them from reports a minute or more apart. So a trip the journal holds is taken from the
journal (``source = "journal"``), with the state of charge and outside temperature read from the
reports around it; a polling-derived trip (``source = "poll"``) stays only where no journal trip
overlaps it in time or in odometer: cars without a journal (Smartcar), recording switched off, the
time before the first journal entry, a journal read that has not happened yet.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from exporter.dbtarget import PgTarget
from exporter.history_layout import JOURNAL_TABLE

from .clean import ODO_SLACK_M
from .load import columns_of, connect_readonly
from .places import match
from .prep import Prepared, local_iso, mean2
from .settings import Settings
from .trips import TRIP_COLUMNS
from .zones import zones

SOURCES: Final = ("journal", "poll")
# what ``carmetrics trips`` lists: the detector's columns, where each trip came from, and the
# cloud's id of a journal trip (empty for a polling-derived one)
OUTPUT_COLUMNS: Final = (*TRIP_COLUMNS, "source", "trip_id")
# the journal's odometer has 0.1 km: its ends are within this of the truth
_JOURNAL_ODO_M: Final = 50.0
_KM: Final = 1000.0


def load_journal(
    db_path: Path | str | PgTarget,
    vin: str | None = None,
    since: float | None = None,
    until: float | None = None,
) -> pd.DataFrame:
    """The stored journal trips (SI units, ``route`` as stored), by vin and start, from either
    backend; empty when the history has no journal (a file from before schema version 3 opened
    read-only, a PostgreSQL database not yet migrated to its version 2)."""
    none = pd.DataFrame(columns=["vin", "trip_id", "start_ts", "end_ts", "route"])
    where, params = ["1 = 1"], []
    for cond, value in (("vin = ?", vin), ("start_ts >= ?", since), ("start_ts <= ?", until)):
        if value is not None:
            where.append(cond)
            params.append(value)
    sql = f"SELECT * FROM {JOURNAL_TABLE} WHERE {' AND '.join(where)} ORDER BY vin, start_ts"
    if isinstance(db_path, PgTarget):
        from .pg_load import journal

        got = journal(db_path, sql.replace("?", "%s"), params)
        return none if got is None else got
    with connect_readonly(db_path) as conn:
        if not columns_of(conn, JOURNAL_TABLE):
            return none
        try:
            return pd.read_sql_query(sql, conn, params=params)
        except (sqlite3.Error, pd.errors.DatabaseError):
            return none


def _col(df: pd.DataFrame, name: str) -> np.ndarray:
    if name not in df.columns:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype="float64")


def _around(
    p: Prepared | None, vins: np.ndarray, t0: np.ndarray, t1: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per trip: index of the last report at or before its start and of the first at or after its
    end (same vehicle), -1 where there is none."""
    n = len(t0)
    before, after = np.full(n, -1), np.full(n, -1)
    if p is None or not p.n:
        return before, after
    for v in pd.unique(vins):
        idx = np.flatnonzero(p.vin == v)
        if not len(idx):
            continue
        t = p.t[idx]
        rows = np.flatnonzero(vins == v)
        b = np.searchsorted(t, t0[rows], side="right") - 1
        a = np.searchsorted(t, t1[rows], side="left")
        before[rows] = np.where(b >= 0, idx[np.clip(b, 0, len(idx) - 1)], -1)
        after[rows] = np.where(a < len(idx), idx[np.clip(a, 0, len(idx) - 1)], -1)
    return before, after


def _carried(p: Prepared | None, vins: np.ndarray, t: np.ndarray, odo: np.ndarray) -> np.ndarray:
    """Journal odometer readings (m) continued across the permanent steps the reports' cleaning
    carried over (``clean``'s ``odometer_steps``: a replaced cluster), so journal and polled trips
    share one odometer in the trip list. The car logs its trips with the new unit's count: a
    reading is on the new level from the step's first report on, and before it, back to the last
    good report, when it is lower than that report (an odometer never goes back)."""
    steps = p.df.attrs.get("odometer_steps", []) if p is not None else []
    if not steps:
        return odo
    out = odo.copy()
    for s in sorted(steps, key=lambda s: float(s["ts"])):  # each in the frame the last one left
        after = t >= float(s["ts"])
        before = (t >= float(s["prev_ts"])) & (out < float(s["from_m"]) - ODO_SLACK_M)
        mine = (vins == s["vin"]) & (after | before)
        out[mine] += float(s["from_m"]) - float(s["to_m"])
    return out


def as_trips(j: pd.DataFrame, settings: Settings, prepared: Prepared | None = None) -> pd.DataFrame:
    """Journal rows as trips (``TRIP_COLUMNS`` + ``source``); SoC and temperature from the reports
    just before and after each trip when there are any."""
    if j.empty:
        return empty()
    vins = j["vin"].astype("object").to_numpy()
    t0, t1 = _col(j, "start_ts"), _col(j, "end_ts")
    dist_m = _col(j, "distance_m")
    energy = _col(j, "energy_kwh")
    duration = t1 - t0
    speed = _col(j, "avg_speed_mps") * 3.6
    speed = np.where(
        np.isnan(speed) & (duration > 0), dist_m / np.maximum(duration, 1) * 3.6, speed
    )
    b, a = _around(prepared, vins, t0, t1)
    nan = np.full(len(j), np.nan)

    def at(arr: np.ndarray | None, idx: np.ndarray) -> np.ndarray:
        if arr is None:
            return nan
        return np.where(idx >= 0, arr[np.maximum(idx, 0)], np.nan)

    p = prepared
    soc0 = at(p.soc_ff if p is not None else None, b) * 100.0
    soc1 = at(p.soc_ff if p is not None else None, a) * 100.0
    rng0 = at(p.rng_ff if p is not None else None, b)
    rng1 = at(p.rng_ff if p is not None else None, a)
    temp = mean2(at(p.temp if p is not None else None, b), at(p.temp if p is not None else None, a))
    out = pd.DataFrame(
        {
            "vin": vins,
            "start_ts": t0,
            "end_ts": t1,
            "duration_min": duration / 60.0,
            "distance_km": dist_m / 1000.0,
            "start_odometer_km": _carried(p, vins, t0, _col(j, "start_odometer_m")) / 1000.0,
            "end_odometer_km": _carried(p, vins, t1, _col(j, "end_odometer_m")) / 1000.0,
            "start_latitude": _col(j, "start_latitude"),
            "start_longitude": _col(j, "start_longitude"),
            "end_latitude": _col(j, "end_latitude"),
            "end_longitude": _col(j, "end_longitude"),
            "avg_speed_kmh": speed,
            "max_speed_kmh": nan,
            "start_soc_pct": soc0,
            "end_soc_pct": soc1,
            "soc_used_pct": soc0 - soc1,
            "range_used_km": (rng0 - rng1) / 1000.0,
            "energy_kwh": energy,
            "consumption_kwh_100km": np.where(
                dist_m > 0, energy / np.where(dist_m > 0, dist_m, 1), np.nan
            )
            * 100_000.0,
            "outside_temp_c": temp,
            "samples": np.zeros(len(j), dtype="int64"),
            "inferred": np.zeros(len(j), dtype=bool),
            "ongoing": np.zeros(len(j), dtype=bool),
            "source": "journal",
            "trip_id": j["trip_id"].astype("object").to_numpy(),
        }
    )
    # where the journal entry has no end positions, the reports around the trip say where it was
    if p is not None:
        for side, idx in (("start", b), ("end", a)):
            for axis, arr in (("latitude", p.lat_ff), ("longitude", p.lon_ff)):
                col = f"{side}_{axis}"
                out[col] = np.where(np.isnan(out[col]), at(arr, idx), out[col])
    lat0, lon0 = out["start_latitude"].to_numpy(), out["start_longitude"].to_numpy()
    lat1, lon1 = out["end_latitude"].to_numpy(), out["end_longitude"].to_numpy()
    z0, z1 = zones(vins, lat0, lon0, settings), zones(vins, lat1, lon1, settings)
    out.insert(3, "start_local", local_iso(t0, vins, settings, zones=z0))
    out.insert(4, "end_local", local_iso(t1, vins, settings, zones=z1))
    at_col = list(out.columns).index("end_longitude") + 1
    out.insert(at_col, "start_place", match(lat0, lon0, settings.places))
    out.insert(at_col + 1, "end_place", match(lat1, lon1, settings.places))
    return out[list(OUTPUT_COLUMNS)]


def empty() -> pd.DataFrame:
    from .trips import empty as empty_trips

    return empty_trips().assign(source=pd.Series(dtype="object"), trip_id=pd.Series(dtype="object"))


def _drove_inside(po0: np.ndarray, po1: np.ndarray, jo0: np.ndarray, jo1: np.ndarray) -> np.ndarray:
    """[poll trip, journal trip]: whether the polled trip covered odometer the journal trip drove.

    Reports may read the odometer cut to whole km (smart), up to 1 km below the truth. A drive
    that starts where a journal trip ended reads at least the whole km below that end, and one
    that ends where it started reads at most its start; a polled trip whose start reads lower than
    the first and whose end reads higher than the second drove part of the journal trip (a fixed
    overlap threshold would either drop the next drive, which may share 0.9 km of readings with
    it, or keep a trip's last kilometre read as a hop). Unknown odometers never overlap."""
    lowest_next = np.floor((jo1 - _JOURNAL_ODO_M) / _KM) * _KM
    with np.errstate(invalid="ignore"):
        return (po0[:, None] < lowest_next[None, :]) & (
            po1[:, None] > jo0[None, :] + _JOURNAL_ODO_M
        )


def combine(poll: pd.DataFrame, journal: pd.DataFrame) -> pd.DataFrame:
    """One trip list: every journal trip, and each polling-derived trip that no journal trip of the
    same car overlaps in time or in odometer. Sorted by vin and start."""
    poll = poll.assign(source="poll", trip_id=None)
    if journal.empty:
        return poll
    keep = np.ones(len(poll), dtype=bool)
    for v in pd.unique(journal["vin"]):
        rows = np.flatnonzero(poll["vin"].to_numpy() == v)
        if not len(rows):
            continue
        jv = journal.loc[journal["vin"] == v]
        js, je = jv["start_ts"].to_numpy(float), jv["end_ts"].to_numpy(float)
        jo0 = jv["start_odometer_km"].to_numpy(float) * 1000.0
        jo1 = jv["end_odometer_km"].to_numpy(float) * 1000.0
        ps = poll["start_ts"].to_numpy(float)[rows]
        pe = poll["end_ts"].to_numpy(float)[rows]
        po0 = poll["start_odometer_km"].to_numpy(float)[rows] * 1000.0
        po1 = poll["end_odometer_km"].to_numpy(float)[rows] * 1000.0
        in_time = (ps[:, None] < je[None, :]) & (pe[:, None] > js[None, :])
        in_odo = _drove_inside(po0, po1, jo0, jo1)
        keep[rows] = ~(in_time | in_odo).any(axis=1)
    frames = [f for f in (poll.loc[keep], journal) if len(f)]
    out = pd.concat(frames, ignore_index=True) if frames else poll.iloc[:0]
    out = out.sort_values(["vin", "start_ts"], kind="mergesort").reset_index(drop=True)
    return pd.DataFrame(out)
