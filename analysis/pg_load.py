"""Reading a PostgreSQL history into the analysis frame (the SQLite reader's twin).

The rows come back exactly as ``analysis.load.read_samples`` reads them from SQLite (a float per
value, NULL as +inf, enum states as their index) and go through the same ``frame``, so the
analysis sees the same frame from either backend. One vehicle at a time, by the ``(vehicle, ts)``
key, in one repeatable-read snapshot of a live database.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from exporter.dbtarget import PgTarget
from exporter.pg.schema import TABLE
from exporter.signals import BY_NAME, Kind

from .load import ANALYSIS_SIGNALS, frame, pg_connect

_INF = "'Infinity'::float8"


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _expr(name: str) -> str:
    sig = BY_NAME[name]
    col = '"' + name.replace('"', '""') + '"'
    if sig.kind is Kind.ENUM:
        whens = " ".join(f"WHEN {_lit(s)} THEN {i}" for i, s in enumerate(sig.states))
        return f"CASE {col} {whens} ELSE {_INF} END"
    if sig.kind is Kind.BOOL:
        return f"CASE WHEN {col} THEN 1.0::float8 WHEN NOT {col} THEN 0.0::float8 ELSE {_INF} END"
    return f"coalesce({col}, {_INF})"


def read_samples(
    conn: Any,
    vin: str | Iterable[str] | None = None,
    *,
    since: float | None = None,
    until: float | None = None,
    columns: Iterable[str] = ANALYSIS_SIGNALS,
) -> pd.DataFrame:
    """``analysis.load.read_samples`` for a PostgreSQL connection."""
    wanted = [c for c in columns if c in BY_NAME]
    chosen = [vin] if isinstance(vin, str) else None if vin is None else list(vin)
    states = {c: BY_NAME[c].states for c in wanted if BY_NAME[c].kind is Kind.ENUM}
    where = ["vehicle = %s"]
    bounds: list[object] = []
    if since is not None:
        where.append("ts >= %s")
        bounds.append(since)
    if until is not None:
        where.append("ts <= %s")
        bounds.append(until)
    sql = (
        f"SELECT ts, {', '.join(_expr(c) for c in wanted) or 'NULL'} FROM {TABLE} "
        f"WHERE {' AND '.join(where)} ORDER BY ts"
    )
    if not wanted:
        sql = sql.replace(", NULL FROM", " FROM")
    names: list[str] = []
    reps: list[int] = []
    parts: list[np.ndarray] = []
    width = len(wanted) + 1
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        ids: dict[str, list[int]] = {}
        for vid, v in conn.execute("SELECT id, vin FROM vins ORDER BY vin, id").fetchall():
            if chosen is None or v in chosen:
                ids.setdefault(str(v), []).append(int(vid))
        with conn.cursor() as cur:
            for v, vids in ids.items():
                got = np.concatenate([_fetch(cur, sql, [vid, *bounds], width) for vid in vids])
                if len(vids) > 1:  # one VIN seen through two providers: interleave by time
                    got = got[np.argsort(got[:, 0], kind="stable")]
                if len(got):
                    names.append(v)
                    reps.append(len(got))
                    parts.append(got)
        veh = conn.execute("SELECT vin, model, series FROM vehicles").fetchall()
    rows = np.concatenate(parts) if parts else np.empty((0, width))
    return frame(names, reps, rows, wanted, states, veh, wanted)


_HEADER = 19  # PGCOPY signature (11), flags (4), header extension length (4, zero)


def _fetch(cur: Any, sql: str, params: list[object], width: int) -> np.ndarray:
    """The rows of ``sql`` (every column a non-NULL double) as a float array, through a binary
    COPY parsed by numpy in one call: fetching half a million rows as Python tuples would cost
    more than the query (the reason the SQLite reader fetches floats in bulk too)."""
    buf = bytearray()
    with cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT BINARY)", params) as copy:
        for chunk in copy:
            buf += chunk
    fields = [("n", ">i2")]
    for i in range(width):
        fields += [(f"l{i}", ">i4"), (f"v{i}", ">f8")]
    dtype = np.dtype(fields)
    body = memoryview(buf)[_HEADER : len(buf) - 2]  # the trailer is a field count of -1
    recs = np.frombuffer(body, dtype=dtype)
    if len(recs) and (np.any(recs["n"] != width) or np.any(recs["l0"] != 8)):
        raise ValueError("unexpected COPY layout")
    out = np.empty((len(recs), width), dtype=np.float64)
    for i in range(width):
        out[:, i] = recs[f"v{i}"]
    return out


def vins(target: PgTarget) -> list[str]:
    with pg_connect(target) as conn:
        return vins_of(conn)


def vins_of(conn: Any) -> list[str]:
    """Every VIN with samples, in order. A correlated ``LIMIT 1`` probe rather than ``EXISTS``:
    over a partitioned table the planner turned ``EXISTS`` into a semi-join that read every row
    (54 ms for a vehicle-month, most of a ``db derive`` with nothing new); the probe asks each
    vehicle's key once."""
    return [
        str(r[0])
        for r in conn.execute(
            "SELECT DISTINCT vin FROM vins AS v "
            f"WHERE (SELECT d.ts FROM {TABLE} AS d WHERE d.vehicle = v.id LIMIT 1) IS NOT NULL "
            "ORDER BY vin"
        )
    ]


def vehicles(target: PgTarget) -> pd.DataFrame:
    with pg_connect(target) as conn:
        cur = conn.execute("SELECT * FROM vehicles ORDER BY vin")
        cols = [d.name for d in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=cols)


def journal(target: PgTarget, sql: str, params: list[Any]) -> pd.DataFrame | None:
    """``journal_trips`` rows as ``pd.read_sql_query`` reads them from SQLite (the columns in
    table order, a float column with no value as NaN, ``route`` None); None when the database has
    no such table (migrated by a carmetrics from before it)."""
    from exporter.history_layout import JOURNAL_TABLE

    with pg_connect(target) as conn:
        if conn.execute("SELECT to_regclass(%s)", (JOURNAL_TABLE,)).fetchone()[0] is None:
            return None
        cur = conn.execute(sql, params)
        names = [d.name for d in cur.description]
        return pd.DataFrame.from_records(cur.fetchall(), columns=names, coerce_float=True)
