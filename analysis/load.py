"""Reading the history file into a pandas frame.

The analysis talks to the SQLite file, never to the exporter's objects, so it can run beside a live
exporter (read-only, WAL lets readers and the writer work at once) or on a copied backup. Only the
columns the analysis uses are read: a year of one-minute samples is half a million rows, and the
other forty signal columns would triple the load time for nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from exporter.signals import BY_NAME, Kind

from .clean import clean

# The signals the analysis reads; everything else in the table is left on disk.
ANALYSIS_SIGNALS: Final = (
    "battery_soc",
    "electric_range",
    "electric_range_at_full",
    "odometer",
    "speed",
    "power_state",
    "latitude",
    "longitude",
    "charging_state",
    "charger_connected",
    "charging_power",
    "charging_voltage_dc",
    "charging_current_dc",
    "outside_temperature",
)

TimeLike = float | int | str | datetime | pd.Timestamp | None


def connect_readonly(db_path: Path | str) -> sqlite3.Connection:
    """A read-only connection; fails clearly when the file does not exist instead of creating it."""
    path = Path(db_path)
    if not path.exists():
        raise FileNotFoundError(f"history database {path} does not exist")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def to_unix(value: TimeLike, tz: str = "UTC") -> float | None:
    """Unix seconds from a number, an ISO string/datetime (naive = in ``tz``) or None."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward")
    return float(ts.timestamp())


def _existing_columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')}


def vehicles(db_path: Path | str) -> pd.DataFrame:
    """The ``vehicles`` table (vin, provider, make, model, year, series, ...), empty when absent."""
    with connect_readonly(db_path) as conn:
        if "vin" not in _existing_columns(conn, "vehicles"):
            return pd.DataFrame(columns=["vin", "model", "series"])
        return pd.read_sql_query("SELECT * FROM vehicles ORDER BY vin", conn)


def vins(db_path: Path | str) -> list[str]:
    """Every VIN with samples, in order."""
    with connect_readonly(db_path) as conn:
        return [r[0] for r in conn.execute("SELECT DISTINCT vin FROM samples ORDER BY vin")]


def load(
    db_path: Path | str,
    vin: str | Iterable[str] | None = None,
    since: TimeLike = None,
    until: TimeLike = None,
    *,
    columns: Iterable[str] = ANALYSIS_SIGNALS,
    tz: str = "UTC",
    raw: bool = False,
) -> pd.DataFrame:
    """Samples of one, several or all vehicles between ``since`` and ``until`` (inclusive).

    Returns one row per car report, sorted by (vin, ts), with ``ts`` in unix seconds (UTC), the
    requested signal columns in SI units, and ``model``/``series`` from the vehicles table (used to
    pick the usable battery capacity). Naive ``since``/``until`` are read in ``tz``. Unless
    ``raw``, bad rows are cleaned (see ``analysis.clean``).
    """
    where: list[str] = []
    params: list[object] = []
    if isinstance(vin, str):
        where.append("vin = ?")
        params.append(vin)
    elif vin is not None:
        chosen = list(vin)
        where.append(f"vin IN ({', '.join('?' for _ in chosen)})")
        params.extend(chosen)
    lo, hi = to_unix(since, tz), to_unix(until, tz)
    if lo is not None:
        where.append("ts >= ?")
        params.append(lo)
    if hi is not None:
        where.append("ts <= ?")
        params.append(hi)
    with connect_readonly(db_path) as conn:
        df = read_samples(conn, " AND ".join(where), params, columns)
    return df if raw else clean(df)


_MISSING: Final = "9e999"  # SQLite reads this as +inf: it stands in for NULL, rows stay floats


def read_samples(
    conn: sqlite3.Connection,
    where: str = "",
    params: Sequence[object] = (),
    columns: Iterable[str] = ANALYSIS_SIGNALS,
) -> pd.DataFrame:
    """The raw frame for ``WHERE <where>``, read in one snapshot, vectorised.

    Python's sqlite3 makes an object per value, which dominates at half a million rows; so every
    column is fetched as a float (NULL as +inf, enum states as their index in the signal's state
    list, an unknown state as +inf too), the rows go into numpy in one C call, and the VIN column
    is rebuilt from per-vehicle counts instead of being fetched row by row.
    """
    have = _existing_columns(conn, "samples")
    if not have:
        raise ValueError("no samples table (is this a carmetrics history?)")
    wanted = [c for c in columns if c in BY_NAME]
    present = [c for c in wanted if c in have]
    exprs = ["ts"]
    for c in present:
        sig = BY_NAME[c]
        if sig.kind is Kind.ENUM:
            cases = "".join(f" WHEN '{st}' THEN {i}" for i, st in enumerate(sig.states))
            exprs.append(f'CASE "{c}"{cases} ELSE {_MISSING} END')
        else:
            exprs.append(f'COALESCE("{c}", {_MISSING})')
    clause = f" WHERE {where}" if where else ""
    conn.execute("BEGIN")  # both statements below read the same snapshot of a live database
    try:
        counts = conn.execute(
            f"SELECT vin, count(*) FROM samples{clause} GROUP BY vin ORDER BY vin", params
        ).fetchall()
        rows = conn.execute(
            f"SELECT {', '.join(exprs)} FROM samples{clause} ORDER BY vin, ts", params
        ).fetchall()
        veh = (
            conn.execute("SELECT vin, model, series FROM vehicles").fetchall()
            if {"vin", "model", "series"} <= _existing_columns(conn, "vehicles")
            else []
        )
    finally:
        conn.execute("ROLLBACK")
    data = np.array(rows, dtype=np.float64).reshape(len(rows), len(exprs))
    data[np.isinf(data)] = np.nan
    names = [str(v) for v, _ in counts]
    reps = [int(n) for _, n in counts]
    info = {str(v): (m, sr) for v, m, sr in veh}
    out: dict[str, object] = {
        "vin": np.repeat(np.array(names, dtype=object), reps),
        "ts": data[:, 0],
    }
    for i, c in enumerate(present, start=1):
        sig = BY_NAME[c]
        if sig.kind is Kind.ENUM:
            lookup = np.array([*sig.states, None], dtype=object)
            codes = np.where(np.isnan(data[:, i]), len(sig.states), data[:, i]).astype(np.int64)
            out[c] = lookup[codes]
        else:
            out[c] = data[:, i]
    for c in wanted:
        if c not in out:  # a signal this (older) file has no column for yet
            enum = BY_NAME[c].kind is Kind.ENUM
            out[c] = np.full(len(rows), None, dtype=object) if enum else np.full(len(rows), np.nan)
    out["model"] = np.repeat(np.array([info.get(v, (None, None))[0] for v in names], object), reps)
    out["series"] = np.repeat(np.array([info.get(v, (None, None))[1] for v in names], object), reps)
    # Explicit object Series: left to itself pandas 3 would convert the strings to Arrow and back.
    return pd.DataFrame(
        {
            k: pd.Series(v, dtype="object") if getattr(v, "dtype", None) == np.dtype("O") else v
            for k, v in out.items()
        }
    )
