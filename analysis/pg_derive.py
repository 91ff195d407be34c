"""``carmetrics db derive`` on a PostgreSQL history: the same derive, another ``Store``.

Everything that decides what is re-derived (windows, late marks, fingerprints) is
``analysis.derive``'s; this module answers its questions from ``sample_data``/``vins`` and writes
the derived tables, created from the same column description SQLite's are (``derived_tables``).
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from typing import Any

import pandas as pd

from exporter import history_layout as layout
from exporter.dbtarget import PgTarget
from exporter.pg.schema import TABLE
from exporter.tables import Column, Table

from .derive import _KEY, _NOT_NULL, STATE_COLUMNS, TABLES, Store, _Changes, _types
from .load import pg_connect
from .pg_load import read_samples, vins_of

log = logging.getLogger(__name__)


def _column(name: str, kind: type, not_null: bool) -> Column:
    t = "text" if kind is str else "integer" if kind is int else "real"
    return Column(name, t, not_null)  # type: ignore[arg-type]


def derived_tables() -> list[Table]:
    """``trips``, ``charging_sessions`` and ``derive_state`` as SQLite's derive creates them."""
    out = [
        Table(
            name,
            tuple(_column(c, k, c in _NOT_NULL) for c, k in _types(cols).items()),
            primary_key=_KEY,
            indexes=((f"{name}_vin_end", ("vin", "end_ts")),),
        )
        for name, cols in TABLES.items()
    ]
    out.append(
        Table(
            "derive_state",
            tuple(_column(c, k, True) for c, k in STATE_COLUMNS.items()),
            primary_key=("vin",),
        )
    )
    return out


class PgStore(Store):
    def __init__(self, target: PgTarget) -> None:
        self.target = target
        self.conn = pg_connect(target)  # autocommit; derive's writes are explicit transactions

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def transaction(self) -> AbstractContextManager[Any]:
        tx: AbstractContextManager[Any] = self.conn.transaction()
        return tx

    def ensure_schema(self) -> None:
        """Create the derived tables, or bring an older shape to the described one (columns
        added or dropped; every vehicle is then re-derived, as SQLite's reshape does). One
        query when all is in shape already: ``db derive`` runs every few minutes."""
        wanted = derived_tables()
        have = {
            str(name): list(cols)
            for name, cols in self.conn.execute(
                "SELECT table_name, array_agg(column_name::text ORDER BY ordinal_position) "
                "FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND table_name = ANY(%s) GROUP BY table_name",
                ([t.name for t in wanted],),
            )
        }
        # order does not matter here (every insert names its columns), only the set does
        if all(set(have.get(t.name, ())) == set(t.column_names) for t in wanted):
            return
        reshaped = False
        with self.conn.transaction():
            for table in wanted:
                cols = have.get(table.name, [])
                for stmt in table.ddl("postgres"):
                    self.conn.execute(stmt)
                if not cols or set(cols) == set(table.column_names):
                    continue
                reshaped = reshaped or table.name != "derive_state"
                for col in table.columns:
                    if col.name not in cols:
                        self.conn.execute(
                            f"ALTER TABLE {table.name} ADD COLUMN {col.ddl('postgres')}"
                        )
                for name in cols:
                    if name not in table.column_names:
                        self.conn.execute(f'ALTER TABLE {table.name} DROP COLUMN "{name}"')
            if reshaped:
                self.conn.execute("DELETE FROM derive_state")

    def vins(self) -> list[str]:
        return vins_of(self.conn)

    def _ids(self, vin: str) -> list[int]:
        return [int(r[0]) for r in self.all("SELECT id FROM vins WHERE vin = ?", (vin,))]

    def _agg(self, agg: str, vin: str, below: float | None = None) -> float | None:
        # one query per vehicle id: answered from the (vehicle, ts) key of each partition
        where = "vehicle = ?" + (" AND ts < ?" if below is not None else "")
        got = []
        for vid in self._ids(vin):
            params = (vid,) if below is None else (vid, below)
            (v,) = self.one(f"SELECT {agg}(ts) FROM {TABLE} WHERE {where}", params)
            if v is not None:
                got.append(float(v))
        if not got:
            return None
        return min(got) if agg == "min" else max(got)

    def first(self, vin: str) -> float | None:
        return self._agg("min", vin)

    def last(self, vin: str) -> float | None:
        return self._agg("max", vin)

    def last_before(self, vin: str, t: float) -> float | None:
        return self._agg("max", vin, below=t)

    def changes(self, vin: str) -> _Changes:
        marks = self.all("SELECT id, changed_since, late_writes FROM vins WHERE vin = ?", (vin,))
        since = [layout.ms(c) for _, c, _ in marks if c is not None]
        return _Changes(
            token=sum(int(w) for _, _, w in marks),
            late_ms=min(since) if since else None,
            marks=[(int(i), int(w)) for i, _, w in marks],
        )

    def late(self, vin: str, ch: _Changes, last_token: int, last_ts: float) -> float | None:
        if ch.late_ms is None or ch.late_ms / 1000.0 > last_ts:
            return None
        return ch.late_ms / 1000.0

    def handled(self, ch: _Changes) -> None:
        if ch.marks:
            self.many(
                "UPDATE vins SET changed_since = NULL WHERE id = ? AND late_writes = ?", ch.marks
            )

    def read(self, vin: str, since: float | None) -> pd.DataFrame:
        # derive's writes run in a transaction of their own, after this read's snapshot ended
        return read_samples(self.conn, vin, since=since)

    def insert(self, table: str, cols: list[str], records: list[tuple[object, ...]]) -> None:
        names = ", ".join(f'"{c}"' for c in cols)
        sets = ", ".join(f'"{c}" = excluded."{c}"' for c in cols if c not in _KEY)
        self.many(
            f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' for _ in cols)}) "
            f"ON CONFLICT (vin, start_ts) DO UPDATE SET {sets}",
            records,
        )

    def many(self, sql: str, rows: Any) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(self._sql(sql), rows)
