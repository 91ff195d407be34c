"""Reading the history file into a pandas frame.

The analysis talks to the SQLite file, never to the exporter's objects, so it can run beside a live
exporter (read-only, WAL lets readers and the writer work at once) or on a copied backup. Only the
columns the analysis uses are read: a year of one-minute samples is half a million rows, and the
other forty signal columns would triple the load time for nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from exporter import history_layout as layout
from exporter.dbtarget import PgTarget
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
    "parked_since",
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


def pg_connect(target: PgTarget) -> Any:
    """A connection to a PostgreSQL history; a ``FileNotFoundError`` (the analysis commands'
    "no history here" line) when its schema was never created."""
    from exporter.pg import schema
    from exporter.pg.connect import connect

    conn = connect(target, autocommit=True)
    if schema.version(conn) == 0:
        conn.close()
        raise FileNotFoundError(f"history database {target} holds no carmetrics history yet")
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


def columns_of(conn: sqlite3.Connection, table: str) -> set[str]:
    """Column names of ``table`` (or view); empty when there is none."""
    return {row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')}


def vehicles(db_path: Path | str | PgTarget) -> pd.DataFrame:
    """The ``vehicles`` table (vin, provider, make, model, year, series, ...), empty when absent."""
    if isinstance(db_path, PgTarget):
        from .pg_load import vehicles as pg_vehicles

        return pg_vehicles(db_path)
    with connect_readonly(db_path) as conn:
        if "vin" not in columns_of(conn, "vehicles"):
            return pd.DataFrame(columns=["vin", "model", "series"])
        return pd.read_sql_query("SELECT * FROM vehicles ORDER BY vin", conn)


def vins(db_path: Path | str | PgTarget) -> list[str]:
    """Every VIN with samples, in order."""
    if isinstance(db_path, PgTarget):
        from .pg_load import vins as pg_vins

        return pg_vins(db_path)
    with connect_readonly(db_path) as conn:
        if columns_of(conn, layout.TABLE):  # the view would decode every row to say this
            sql = (
                "SELECT DISTINCT vin FROM vins AS v "
                f"WHERE EXISTS (SELECT 1 FROM {layout.TABLE} WHERE vehicle = v.id) ORDER BY vin"
            )
        else:
            sql = "SELECT DISTINCT vin FROM samples ORDER BY vin"
        return [r[0] for r in conn.execute(sql)]


def load(
    db_path: Path | str | PgTarget,
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
    lo, hi = to_unix(since, tz), to_unix(until, tz)
    if isinstance(db_path, PgTarget):
        from .pg_load import read_samples as pg_read

        with pg_connect(db_path) as pg:
            df = pg_read(pg, vin, since=lo, until=hi, columns=columns)
        return df if raw else clean(df)
    with connect_readonly(db_path) as conn:
        df = read_samples(conn, vin, since=lo, until=hi, columns=columns)
    return df if raw else clean(df)


_MISSING: Final = "9e999"  # SQLite reads this as +inf: it stands in for NULL, rows stay floats


def read_samples(
    conn: sqlite3.Connection,
    vin: str | Iterable[str] | None = None,
    *,
    since: float | None = None,
    until: float | None = None,
    columns: Iterable[str] = ANALYSIS_SIGNALS,
) -> pd.DataFrame:
    """The raw frame of ``vin`` (one, several or all) with ``since <= ts <= until``, read in one
    snapshot, vectorised.

    Python's sqlite3 makes an object per value, which dominates at half a million rows; so every
    column is fetched as a float (NULL as +inf, enum states as their index in the signal's state
    list, an unknown state as +inf too), the rows go into numpy in one C call, and the VIN column
    is rebuilt from per-vehicle counts instead of being fetched row by row. A compact (version 2)
    file is read from ``sample_data`` itself: its (vehicle, ts_ms) key serves the time range, which
    the ``samples`` view's computed ``ts`` cannot.
    """
    wanted = [c for c in columns if c in BY_NAME]
    chosen = [vin] if isinstance(vin, str) else None if vin is None else list(vin)
    conn.execute("BEGIN")  # every statement below reads the same snapshot of a live database
    try:
        if columns_of(conn, layout.TABLE):
            names, reps, rows, present, states = _read_compact(conn, chosen, since, until, wanted)
        else:
            names, reps, rows, present, states = _read_v1(conn, chosen, since, until, wanted)
        veh = (
            conn.execute("SELECT vin, model, series FROM vehicles").fetchall()
            if {"vin", "model", "series"} <= columns_of(conn, "vehicles")
            else []
        )
    finally:
        conn.execute("ROLLBACK")
    return frame(names, reps, rows, present, states, veh, wanted)


def frame(
    names: list[str],
    reps: list[int],
    rows: list[tuple[float, ...]] | np.ndarray,
    present: list[str],
    states: dict[str, tuple[str, ...]],
    veh: list[tuple[str, str | None, str | None]],
    wanted: list[str],
) -> pd.DataFrame:
    """The analysis frame from rows read by either backend (one float per value, +inf for
    NULL, enum states as their index), so both give the same frame for the same history."""
    data = np.array(rows, dtype=np.float64).reshape(len(rows), len(present) + 1)
    data[np.isinf(data)] = np.nan
    info = {str(v): (m, sr) for v, m, sr in veh}
    out: dict[str, object] = {
        "vin": np.repeat(np.array(names, dtype=object), reps),
        "ts": data[:, 0],
    }
    for i, c in enumerate(present, start=1):
        if c in states:
            lookup = np.array([*states[c], None], dtype=object)
            codes = np.where(np.isnan(data[:, i]), len(states[c]), data[:, i]).astype(np.int64)
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


_Read = tuple[list[str], list[int], list[tuple[float, ...]], list[str], dict[str, tuple[str, ...]]]


def _read_compact(
    conn: sqlite3.Connection,
    vins: list[str] | None,
    since: float | None,
    until: float | None,
    wanted: list[str],
) -> _Read:
    """(vins, rows per vin, rows, columns read, enum states) from ``sample_data``, decoded in SQL
    exactly as the view decodes it, one vehicle at a time in (vin, ts) order."""
    encs = layout.encodings(conn)
    present = [c for c in wanted if c in encs]
    states: dict[str, tuple[str, ...]] = {}
    exprs = ["d.ts_ms / 1000.0"]
    for c in present:
        enc = encs[c]
        col = "d." + _quote(enc.column or c)
        if enc.kind == "enum":
            states[c] = enc.states or ()
            exprs.append(f"CASE WHEN typeof({col}) = 'integer' THEN {col} ELSE {_MISSING} END")
        else:
            exprs.append(f"COALESCE({layout.decode_sql(enc, col, 'd.ts_ms')}, {_MISSING})")
    where = ["d.vehicle = ?"]
    bounds: list[object] = []
    if since is not None:
        where.append("d.ts_ms >= ?")
        bounds.append(layout.first_ms(since))
    if until is not None:
        where.append("d.ts_ms <= ?")
        bounds.append(layout.last_ms(until))
    sql = f"SELECT {', '.join(exprs)} FROM {layout.TABLE} AS d WHERE {' AND '.join(where)}"
    ids: dict[str, list[int]] = {}
    for vid, v in conn.execute("SELECT id, vin FROM vins ORDER BY vin, id"):
        if vins is None or v in vins:
            ids.setdefault(str(v), []).append(int(vid))
    names: list[str] = []
    reps: list[int] = []
    rows: list[tuple[float, ...]] = []
    for v, vids in ids.items():
        got: list[tuple[float, ...]] = []
        for vid in vids:
            got += conn.execute(sql + " ORDER BY d.ts_ms", [vid, *bounds]).fetchall()
        if len(vids) > 1:  # one VIN seen through two providers: interleave by time
            got.sort(key=lambda r: r[0])
        if got:
            names.append(v)
            reps.append(len(got))
            rows += got
    return names, reps, rows, present, states


def _read_v1(
    conn: sqlite3.Connection,
    vins: list[str] | None,
    since: float | None,
    until: float | None,
    wanted: list[str],
) -> _Read:
    """The same from a version-1 ``samples`` table (a file the exporter has not upgraded yet)."""
    have = columns_of(conn, "samples")
    if not have:
        raise ValueError("no samples table (is this a carmetrics history?)")
    present = [c for c in wanted if c in have]
    states: dict[str, tuple[str, ...]] = {}
    exprs = ["ts"]
    for c in present:
        sig = BY_NAME[c]
        if sig.kind is Kind.ENUM:
            states[c] = sig.states
            cases = "".join(f" WHEN '{st}' THEN {i}" for i, st in enumerate(sig.states))
            exprs.append(f'CASE "{c}"{cases} ELSE {_MISSING} END')
        else:
            exprs.append(f'COALESCE("{c}", {_MISSING})')
    where: list[str] = []
    params: list[object] = []
    if vins is not None:
        where.append(f"vin IN ({', '.join('?' for _ in vins)})")
        params.extend(vins)
    if since is not None:
        where.append("ts >= ?")
        params.append(since)
    if until is not None:
        where.append("ts <= ?")
        params.append(until)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    counts = conn.execute(
        f"SELECT vin, count(*) FROM samples{clause} GROUP BY vin ORDER BY vin", params
    ).fetchall()
    rows = conn.execute(
        f"SELECT {', '.join(exprs)} FROM samples{clause} ORDER BY vin, ts", params
    ).fetchall()
    return [str(v) for v, _ in counts], [int(n) for _, n in counts], rows, present, states


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
