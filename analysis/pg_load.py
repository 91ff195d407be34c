"""Reading a PostgreSQL history into the analysis frame (the SQLite reader's twin).

The rows come back exactly as ``analysis.load.read_samples`` reads them from SQLite (a float per
value, NULL as +inf, enum states as their index) and go through the same ``frame``, so the
analysis sees the same frame from either backend. One vehicle at a time, by the ``(vehicle, ts)``
key, in one repeatable-read snapshot of a live database.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

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
    rows: list[tuple[float, ...]] = []
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        ids: dict[str, list[int]] = {}
        for vid, v in conn.execute("SELECT id, vin FROM vins ORDER BY vin, id").fetchall():
            if chosen is None or v in chosen:
                ids.setdefault(str(v), []).append(int(vid))
        with conn.cursor() as cur:
            for v, vids in ids.items():
                got: list[tuple[float, ...]] = []
                for vid in vids:
                    got += cur.execute(sql, [vid, *bounds]).fetchall()
                if len(vids) > 1:  # one VIN seen through two providers: interleave by time
                    got.sort(key=lambda r: r[0])
                if got:
                    names.append(v)
                    reps.append(len(got))
                    rows += got
        veh = conn.execute("SELECT vin, model, series FROM vehicles").fetchall()
    return frame(names, reps, rows, wanted, states, veh, wanted)


def vins(target: PgTarget) -> list[str]:
    with pg_connect(target) as conn:
        return [
            str(r[0])
            for r in conn.execute(
                "SELECT DISTINCT vin FROM vins AS v "
                f"WHERE EXISTS (SELECT 1 FROM {TABLE} WHERE vehicle = v.id) ORDER BY vin"
            )
        ]


def vehicles(target: PgTarget) -> pd.DataFrame:
    with pg_connect(target) as conn:
        cur = conn.execute("SELECT * FROM vehicles ORDER BY vin")
        cols = [d.name for d in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=cols)
