"""The PostgreSQL history writer: the same batching as SQLite's, batches written with COPY.

Rows are built on the event loop by the same codec as SQLite's (``exporter.history_layout``), so a
value is quantised to its signal's resolution exactly as SQLite stores it; the writer thread turns
each into the ``samples`` columns' values (what SQLite's view reads back) and streams the batch
with ``COPY ... FROM STDIN``. A batch is one transaction: vehicles upserted, vehicle ids resolved,
late reports marked for ``db derive`` (``vins.changed_since``, as SQLite's writer marks them), then
the COPY. COPY cannot skip a row already stored (a report seen again after a restart), so a batch
that hits the primary key is copied again, inside a savepoint, into a temporary table and moved
over with ``INSERT ... ON CONFLICT DO NOTHING``: the fast path costs nothing, the rare one is
correct. The month partitions a batch needs are created before it (``schema.create_months``).
"""

from __future__ import annotations

import time
from typing import Any, Final

from exporter import history_layout as layout
from exporter.dbtarget import PgTarget
from exporter.history import HistoryError, HistoryWriter
from exporter.pg import schema
from exporter.pg.connect import connect, describe
from exporter.signals import SIGNALS, Kind

COLUMNS: Final = ("vehicle", "ts", "received_at", "source", *(s.name for s in SIGNALS))
_COLS: Final = ", ".join(schema._q(c) for c in COLUMNS)
_BOOL: Final = frozenset(i for i, s in enumerate(SIGNALS, start=4) if s.kind is Kind.BOOL)

UPSERT_VEHICLES: Final = (
    "INSERT INTO vehicles VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (vin) DO UPDATE SET "
    "provider=excluded.provider, make=excluded.make, model=excluded.model, "
    "year=excluded.year, series=excluded.series, account=excluded.account, "
    "last_seen=excluded.last_seen"
)
# One statement per vehicle and batch: a report older than the newest stored one is "late"
# (db derive re-derives from the earliest such time); last_ts follows the newest row.
MARK: Final = (
    "UPDATE vins SET "
    "changed_since = CASE WHEN %(lo)s < last_ts "
    "THEN least(coalesce(changed_since, %(lo)s), %(lo)s) ELSE changed_since END, "
    "late_writes = late_writes + CASE WHEN %(lo)s < last_ts THEN 1 ELSE 0 END, "
    "last_ts = greatest(coalesce(last_ts, %(hi)s), %(hi)s) WHERE id = %(id)s"
)


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

    def _write(self, rows: list[list[Any]], vehicles: list[tuple[Any, ...]]) -> int:
        if self._conn is None or self._conn.closed:  # the server went away: connect again
            self._conn = connect(self.pg, autocommit=True)
        return self._write_batch(self._conn, rows, vehicles)

    def _write_batch(
        self, conn: Any, rows: list[list[Any]], vehicles: list[tuple[Any, ...]]
    ) -> int:
        import psycopg

        codec = layout.DEFAULT_CODEC
        months = {schema.month_of(r[1] / 1000.0) for r in rows} - self._months
        if months:
            schema.create_months(conn, sorted(months))
            self._months |= months
        with conn.transaction():
            if vehicles:
                with conn.cursor() as cur:
                    cur.executemany(UPSERT_VEHICLES, vehicles)
            ids = self._vehicle_ids(conn, [r[0] for r in rows])
            spans: dict[int, tuple[float, float]] = {}
            out = []
            for r in rows:
                decoded = codec.decode(r)
                vid = ids[r[0]]
                t = decoded[1]
                lo, hi = spans.get(vid, (t, t))
                spans[vid] = (min(lo, t), max(hi, t))
                out.append(pg_row(decoded, vid))
            if spans:
                with conn.cursor() as cur:
                    cur.executemany(
                        MARK, [{"id": v, "lo": lo, "hi": hi} for v, (lo, hi) in spans.items()]
                    )
            try:
                with conn.transaction(), conn.cursor() as cur:
                    _copy(cur, schema.TABLE, out)
                written = len(out)
            except psycopg.errors.UniqueViolation:
                self.copy_fallbacks += 1
                written = self._copy_new_only(conn, out)
        self._ids.update(ids)
        return written

    def _copy_new_only(self, conn: Any, out: list[tuple[Any, ...]]) -> int:
        with conn.cursor() as cur:
            cur.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS incoming (LIKE {schema.TABLE}) ON COMMIT DELETE ROWS"
            )
            _copy(cur, "incoming", out)
            cur.execute(
                f"INSERT INTO {schema.TABLE} ({_COLS}) SELECT {_COLS} FROM incoming "
                "ON CONFLICT DO NOTHING"
            )
            n = int(cur.rowcount)
            cur.execute("DELETE FROM incoming")
            return n

    def _vehicle_ids(self, conn: Any, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
        ids = self._ids
        new: dict[tuple[str, str], int] = {}
        for key in keys:
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


def _copy(cur: Any, table: str, rows: list[tuple[Any, ...]]) -> None:
    with cur.copy(f"COPY {table} ({_COLS}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _months_of(conn: Any) -> list[tuple[int, int]]:
    return [schema.month_of(lo) for _, lo, _ in schema.partitions(conn)]
