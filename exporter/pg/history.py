"""The PostgreSQL history writer: the same batching as SQLite's, batches written with COPY.

Rows are built on the event loop by the same codec as SQLite's (``exporter.history_layout``), so a
value is quantised to its signal's resolution exactly as SQLite stores it; the writer thread turns
each into the ``samples`` columns' values (what SQLite's view reads back) and streams the batch
with ``COPY ... FROM STDIN``. A batch is one transaction: vehicles upserted, vehicle ids resolved,
late reports marked for ``db derive`` (``vins.changed_since``, as SQLite's writer marks them), then
the COPY (binary). COPY cannot skip a row already stored (a report seen again after a restart), so
a batch that hits the primary key is rolled back and written again through a temporary table and
``INSERT ... ON CONFLICT DO NOTHING``: the fast path costs nothing, the rare one is correct. The
month partitions a batch needs are created before it (``schema.create_months``); a month dropped
by ``db prune`` meanwhile is noticed by the failed COPY and made again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Final

from exporter import history_layout as layout
from exporter.dbtarget import PgTarget
from exporter.history import HistoryError, HistoryWriter
from exporter.journal import JournalKnown
from exporter.pg import schema
from exporter.pg.connect import connect, describe
from exporter.signals import SIGNALS, Kind
from exporter.tables import signal_type

COLUMNS: Final = ("vehicle", "ts", "received_at", "source", *(s.name for s in SIGNALS))
_COLS: Final = ", ".join(schema._q(c) for c in COLUMNS)
_BOOL: Final = frozenset(i for i, s in enumerate(SIGNALS, start=4) if s.kind is Kind.BOOL)

UPSERT_VEHICLES: Final = (
    "INSERT INTO vehicles VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (vin) DO UPDATE SET "
    "provider=excluded.provider, make=excluded.make, model=excluded.model, "
    "year=excluded.year, series=excluded.series, account=excluded.account, "
    "last_seen=excluded.last_seen"
)
# One statement per batch (arrays of vehicle id, oldest and newest ts): a report older than the
# vehicle's newest stored one is "late" (db derive re-derives from the earliest such time);
# last_ts follows the newest row.
MARK: Final = (
    "UPDATE vins SET "
    "changed_since = CASE WHEN b.lo < vins.last_ts "
    "THEN least(coalesce(vins.changed_since, b.lo), b.lo) ELSE vins.changed_since END, "
    "late_writes = vins.late_writes + CASE WHEN b.lo < vins.last_ts THEN 1 ELSE 0 END, "
    "last_ts = greatest(coalesce(vins.last_ts, b.hi), b.hi) "
    "FROM unnest(%s::integer[], %s::float8[], %s::float8[]) AS b (id, lo, hi) "
    "WHERE vins.id = b.id"
)


LOCK_VINS: Final = "SELECT 1 FROM vins WHERE id = ANY(%s) ORDER BY id FOR UPDATE"
# the same upsert as SQLite's (a re-read updates the trip; a route once read is kept)
JOURNAL_UPSERT: Final = layout.journal_upsert_sql("%s", f"{layout.JOURNAL_TABLE}.")
_VIN, _TRIP = ([n for n, _ in layout.JOURNAL_COLUMNS].index(k) for k in layout.JOURNAL_KEY)


class RowBuilder:
    """Turns a codec row into ``sample_data``'s values in one pass: the same arithmetic as
    ``Codec.decode`` (so the same floats as SQLite's view), without its per-row dict; this is
    the writer's hot loop (``bench/pg_bench.py``)."""

    def __init__(self, codec: layout.Codec) -> None:
        at = {c: i for i, c in enumerate(COLUMNS)}
        plan = codec.plan()
        self.mul = [(at[n], i, f) for n, i, f in plan.mul]
        self.div = [(at[n], i, f) for n, i, f in plan.div]
        self.bools = [(col, [(at[n], p) for n, p in b]) for col, b in plan.bools.items()]
        self.enums = [(at[n], i, list(codes)) for n, i, codes in plan.enums]
        self.ts = [(at[n], i) for n, i in plan.timestamps]
        self.width = len(COLUMNS)

    def build(self, row: list[Any], vehicle: int) -> list[Any]:
        out: list[Any] = [None] * self.width
        ts = row[1]
        out[0] = vehicle
        out[1] = ts / 1000.0
        out[2] = (ts + row[2]) / 1000.0
        src = row[3]
        out[3] = layout.SOURCES[src] if type(src) is int and 0 <= src < len(layout.SOURCES) else src
        for j, i, f in self.mul:
            v = row[i]
            if v is not None:
                out[j] = v / f
        for j, i, f in self.div:
            v = row[i]
            if v is not None:
                out[j] = v * f
        for col, bools in self.bools:
            flags = row[col]
            if flags:
                for j, p in bools:
                    d = flags // p % 3
                    if d:
                        out[j] = d == 2
        for j, i, states in self.enums:
            v = row[i]
            if v is not None:
                out[j] = states[v] if type(v) is int and 0 <= v < len(states) else v
        for j, i in self.ts:
            v = row[i]
            if v is not None:
                out[j] = (ts + v) / 1000.0
        return out


def _pg(sql: str) -> str:
    """SQLite's ``?`` parameter marks as psycopg's (for statements both backends share)."""
    return sql.replace("?", "%s")


def pg_row(decoded: tuple[Any, ...], vehicle: int) -> tuple[Any, ...]:
    """A ``Codec.decode`` row (the ``samples`` columns) as ``sample_data``'s columns."""
    out: list[Any] = [vehicle, decoded[1], decoded[2], decoded[4], *decoded[5:]]
    for i in _BOOL:
        v = out[i]
        if v is not None:
            out[i] = bool(v)
    return tuple(out)


def last_report_ms(conn: Any, now: float | None = None) -> dict[str, int]:
    """The newest stored report time per VIN (ms), leaving out rows from beyond the hub's skew
    allowance (as ``exporter.history.last_report_ms``)."""
    from exporter.hub import MAX_SKEW

    limit = (time.time() if now is None else now) + MAX_SKEW
    out: dict[str, int] = {}
    rows = conn.execute(
        f"SELECT v.vin, (SELECT max(ts) FROM {schema.TABLE} WHERE vehicle = v.id AND ts <= %s) "
        "FROM vins AS v",
        (limit,),
    ).fetchall()
    for vin, last in rows:
        if last is not None:
            out[vin] = max(out.get(vin, 0), layout.ms(last))
    return out


class PgHistory(HistoryWriter):
    """The history in PostgreSQL (one connection, owned by the writer thread)."""

    def __init__(
        self,
        target: PgTarget,
        *,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        one_timeline: bool = False,
    ) -> None:
        super().__init__(
            target, batch_size=batch_size, flush_interval=flush_interval, one_timeline=one_timeline
        )
        self.pg = target
        self._conn: Any = None
        self._months: set[tuple[int, int]] = set()
        import psycopg

        self._errors = (psycopg.Error, HistoryError)
        self.copy_fallbacks = 0  # batches that met a stored row and went through a temp table
        self._builder = RowBuilder(layout.DEFAULT_CODEC)

    def _describe(self, exc: BaseException) -> HistoryError:
        if isinstance(exc, HistoryError):
            return exc
        return describe(self.pg, exc)

    def _connect(self) -> tuple[layout.Codec, dict[str, int]]:
        self._conn = connect(self.pg, autocommit=True)
        schema.migrate(self._conn)
        self._months = set(_months_of(self._conn))
        floor = last_report_ms(self._conn) if self.one_timeline else {}
        return layout.DEFAULT_CODEC, floor

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _live(self) -> Any:
        """The writer thread's connection, opened again if the server went away meanwhile."""
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.pg, autocommit=True)
        return self._conn

    def _write(self, rows: list[list[Any]], vehicles: list[tuple[Any, ...]]) -> int:
        conn = self._live()
        import psycopg

        try:
            try:
                return self._write_batch(conn, rows, vehicles, fast=True)
            except psycopg.errors.CheckViolation:  # "no partition for row": pruned meanwhile
                self._months = set(_months_of(conn))
                return self._write_batch(conn, rows, vehicles, fast=True)
            except psycopg.errors.DeadlockDetected:  # another instance's batch: once more
                return self._write_batch(conn, rows, vehicles, fast=True)
        except psycopg.errors.UniqueViolation:  # a report stored before: the careful path
            self.copy_fallbacks += 1
            return self._write_batch(conn, rows, vehicles, fast=False)

    def _write_batch(
        self, conn: Any, rows: list[list[Any]], vehicles: list[tuple[Any, ...]], *, fast: bool
    ) -> int:
        """One transaction: vehicles, ids, late marks, then COPY straight into the table
        (``fast``) or through a temporary table that skips rows stored already."""
        if rows:
            first = min(r[1] for r in rows) / 1000.0
            last = max(r[1] for r in rows) / 1000.0
            months = set(schema.months_between(first, last)) - self._months
            if months:
                schema.create_months(conn, sorted(months))
                self._months |= months
        with conn.transaction():
            if vehicles:
                with conn.cursor() as cur:
                    cur.executemany(UPSERT_VEHICLES, sorted(vehicles))
            ids = self._vehicle_ids(conn, [r[0] for r in rows])
            spans: dict[int, list[float]] = {}
            build = self._builder.build
            out = []
            for r in rows:
                vid = ids[r[0]]
                row = build(r, vid)
                t = row[1]
                span = spans.get(vid)
                if span is None:
                    spans[vid] = [t, t]
                elif t < span[0]:
                    span[0] = t
                elif t > span[1]:
                    span[1] = t
                out.append(row)
            if spans:
                order = sorted(spans)  # rows locked in one order by every writer: no deadlock
                conn.execute(LOCK_VINS, (order,))
                conn.execute(
                    MARK, (order, [spans[v][0] for v in order], [spans[v][1] for v in order])
                )
            with conn.cursor() as cur:
                if fast:
                    _copy(cur, schema.TABLE, out)
                    written = len(out)
                else:
                    written = _copy_new_only(cur, out)
        self._ids.update(ids)
        return written

    stores_journal = True

    def _write_journal(self, rows: list[tuple[Any, ...]]) -> None:
        conn = self._live()
        # in key order, so two instances upserting the same trips lock them in one order (a
        # stable sort: of one trip read twice, the later read still wins)
        ordered = sorted(rows, key=lambda r: (r[_VIN], r[_TRIP]))
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(JOURNAL_UPSERT, ordered)

    def _journal_known(self, vin: str, unrouted_since: float) -> JournalKnown:
        conn = self._live()
        newest, unrouted = conn.execute(
            _pg(layout.JOURNAL_KNOWN_SQL), (unrouted_since, vin)
        ).fetchone()
        routed = conn.execute(_pg(layout.JOURNAL_ROUTED_SQL), (vin,)).fetchall()
        return JournalKnown(newest, frozenset(r[0] for r in routed), unrouted)

    def _vehicle_ids(self, conn: Any, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
        ids = self._ids
        new: dict[tuple[str, str], int] = {}
        for key in sorted(set(keys)):  # one order for every writer (see MARK)
            if key in ids or key in new:
                continue
            got = conn.execute(
                "INSERT INTO vins (vin, provider) VALUES (%s, %s) ON CONFLICT DO NOTHING "
                "RETURNING id",
                key,
            ).fetchone()
            if got is None:  # another instance (or an earlier run) registered it
                got = conn.execute(
                    "SELECT id FROM vins WHERE vin = %s AND provider = %s", key
                ).fetchone()
            new[key] = int(got[0])
        return ids | new if new else ids


_PG_TYPES: Final = {"real": "float8", "integer": "int8", "bool": "bool", "text": "text"}
TYPES: Final = (
    "int4",
    "float8",
    "float8",
    "text",
    *(_PG_TYPES[signal_type(s)] for s in SIGNALS),
)


def _copy_new_only(cur: Any, out: Sequence[Sequence[Any]]) -> int:
    cur.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS incoming (LIKE {schema.TABLE}) ON COMMIT DELETE ROWS"
    )
    _copy(cur, "incoming", out)
    cur.execute(
        f"INSERT INTO {schema.TABLE} ({_COLS}) SELECT {_COLS} FROM incoming ON CONFLICT DO NOTHING"
    )
    return int(cur.rowcount)


def _copy(cur: Any, table: str, rows: Sequence[Sequence[Any]]) -> None:
    """Binary COPY: no float is turned into text and parsed back (twice as fast as text)."""
    with cur.copy(f"COPY {table} ({_COLS}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(TYPES)
        for row in rows:
            copy.write_row(row)


def _months_of(conn: Any) -> list[tuple[int, int]]:
    return [schema.month_of(lo) for _, lo, _ in schema.partitions(conn)]
