"""The PostgreSQL schema: versioned migrations, the ``samples`` columns and monthly partitions.

Layout. ``sample_data`` holds one row per car report with the ``samples`` columns' values (SI units,
enum states as text, booleans as boolean), keyed by a small vehicle id from ``vins`` instead of the
VIN, and is partitioned by month on ``ts`` (unix seconds): ``carmetrics db prune`` drops whole
months instead of deleting row by row, and a vehicle-year read touches twelve small indexes. The
``samples`` view shows exactly SQLite's ``samples`` columns, in order, for SQL users and Grafana.
PostgreSQL does not pack small integers as SQLite does (a bigint and a double are both 8 bytes, a
NULL costs one bit), so SQLite's integer encoding (``exporter.history_layout``) would save nothing
here; the values stored are still the ones SQLite's view reads back (the writer quantises with the
same codec), so both backends give the analysis identical numbers.

Migrations are append-only ``(version, name, function)`` entries recorded in
``schema_migrations``; they run under a transaction-scoped advisory lock, so instances starting
together migrate one after the other. A database migrated by a newer carmetrics is refused.
Columns of signals added to ``exporter.signals`` since are added on every start (``sync``).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from exporter import tables
from exporter.history import HistoryError
from exporter.history_layout import (
    BASE_COLUMNS,
    JOURNAL_COLUMNS,
    JOURNAL_KEY,
    JOURNAL_TABLE,
)
from exporter.signals import SIGNALS

log = logging.getLogger(__name__)

TABLE: Final = "sample_data"
VIEW: Final = "samples"
# pg_advisory_xact_lock keys (one 64-bit namespace per database): arbitrary, fixed, documented
MIGRATE_LOCK: Final = 0x43_4D_4D_49_47  # "CMMIG"
PARTITION_LOCK: Final = 0x43_4D_50_41_52  # "CMPAR"

Conn = Any  # psycopg.Connection[Any]; psycopg is imported lazily


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def signal_columns() -> list[tables.Column]:
    return [tables.Column(s.name, tables.signal_type(s)) for s in SIGNALS]


_WIDTH = {"real": 0, "integer": 0, "bool": 1, "text": 2, "blob": 2}


def physical_order(columns: list[tables.Column]) -> list[tables.Column]:
    """8-byte columns first, then booleans, then text: PostgreSQL aligns a double to 8 bytes, so
    a boolean between two doubles would cost 7 bytes of padding per row (the ``samples`` view
    keeps the documented order)."""
    return sorted(columns, key=lambda c: _WIDTH[c.type])


def _v1(conn: Conn) -> None:
    conn.execute(
        """CREATE TABLE vins (
  id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  vin text NOT NULL,
  provider text NOT NULL,
  -- the earliest ts (unix s) of a report stored after a newer one: where db derive restarts
  changed_since double precision,
  late_writes bigint NOT NULL DEFAULT 0,
  last_ts double precision,
  UNIQUE (vin, provider)
)"""
    )
    cols = [c.ddl("postgres") for c in physical_order(signal_columns())]
    wide = [c for c in cols if c.split(" ", 1)[1].startswith("double")]
    rest = [c for c in cols if c not in wide]
    body = ",\n  ".join(
        [
            "ts double precision NOT NULL",
            "received_at double precision NOT NULL",
            *wide,
            "vehicle integer NOT NULL REFERENCES vins (id)",
            *rest,
            "source text NOT NULL DEFAULT 'poll'",
            "PRIMARY KEY (vehicle, ts)",
        ]
    )
    conn.execute(f"CREATE TABLE {TABLE} (\n  {body}\n) PARTITION BY RANGE (ts)")
    for table in tables.TABLES:
        for stmt in table.ddl("postgres"):
            conn.execute(stmt)


_JOURNAL_TYPES: Final[dict[str, tables.Type]] = {
    "TEXT": "text",
    "REAL": "real",
    "INTEGER": "integer",
}


def journal_table() -> tables.Table:
    """``journal_trips`` as SQLite declares it (``history_layout.JOURNAL_COLUMNS``, the one
    declaration), in PostgreSQL's types: floats ``double precision``, so a value reads back as the
    same Python float from either backend."""
    columns = []
    for name, decl in JOURNAL_COLUMNS:
        kind, _, rest = decl.partition(" ")
        columns.append(tables.Column(name, _JOURNAL_TYPES[kind], not_null=rest == "NOT NULL"))
    return tables.Table(
        JOURNAL_TABLE,
        tuple(columns),
        primary_key=JOURNAL_KEY,
        indexes=((f"{JOURNAL_TABLE}_start", ("vin", "start_ts")),),
    )


def _v2(conn: Conn) -> None:
    """The car's own trip journal, as SQLite's schema version 3 keeps it."""
    for stmt in journal_table().ddl("postgres"):
        conn.execute(stmt)


Migration = Callable[[Conn], None]
# Append-only: never edit a released entry; add a new one.
MIGRATIONS: Final[list[tuple[int, str, Migration]]] = [
    (1, "initial schema", _v1),
    (2, "journal_trips", _v2),
]
LATEST: Final = max(v for v, _, _ in MIGRATIONS)


def version(conn: Conn) -> int:
    """The schema version the database holds (0: none yet)."""
    exists = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0]
    if exists is None:
        return 0
    got = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
    return int(got or 0)


def migrate(conn: Conn, *, now: float | None = None) -> int:
    """Bring the schema up to date (idempotent, safe on every start); returns the version."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = version(conn)
        if current > LATEST:
            raise HistoryError(
                f"the PostgreSQL history has schema version {current}, newer than this carmetrics "
                f"knows ({LATEST}); upgrade carmetrics (or restore a backup made before the "
                "upgrade)"
            )
        for v, name, fn in MIGRATIONS:
            if v > current:
                fn(conn)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (v, name)
                )
                log.info("history schema migrated", extra={"version": v})
                current = v
        for change in sync(conn):
            log.info("history schema synced", extra={"change": change})
    ensure_partitions(conn, _now(now), ahead=2)
    return current


def sync(conn: Conn) -> list[str]:
    """Give every signal added since the schema was created a column, and keep the ``samples``
    view equal to SQLite's columns. Runs in the caller's transaction."""
    have = {
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s",
            (TABLE,),
        )
    }
    changes: list[str] = []
    for col in signal_columns():
        if col.name not in have:
            conn.execute(f"ALTER TABLE {TABLE} ADD COLUMN {col.ddl('postgres')}")
            changes.append(f"added {col.name}")
    view = view_sql()
    digest = hashlib.sha256(view.encode()).hexdigest()[:16]
    comment = conn.execute("SELECT obj_description(to_regclass(%s), 'pg_class')", (VIEW,))
    if comment.fetchone()[0] != digest:
        conn.execute(f"DROP VIEW IF EXISTS {VIEW}")
        conn.execute(view)
        conn.execute(f"COMMENT ON VIEW {VIEW} IS '{digest}'")
        changes.append("view rebuilt")
    return changes


def view_sql() -> str:
    assert BASE_COLUMNS == ("vin", "ts", "received_at", "provider", "source")
    select = ["v.vin", "d.ts", "d.received_at", "v.provider", "d.source"]
    select += [f"d.{_q(s.name)}" for s in SIGNALS]
    return (
        f"CREATE VIEW {VIEW} AS SELECT {', '.join(select)} "
        f"FROM {TABLE} AS d JOIN vins AS v ON v.id = d.vehicle"
    )


# --- partitions ---------------------------------------------------------------------------------


def _now(now: float | None) -> float:
    import time

    return time.time() if now is None else now


def month_of(ts: float) -> tuple[int, int]:
    d = datetime.fromtimestamp(ts, UTC)
    return d.year, d.month


def month_bounds(year: int, month: int) -> tuple[float, float]:
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return start.timestamp(), end.timestamp()


def months_between(first: float, last: float) -> list[tuple[int, int]]:
    """Every month from the one holding ``first`` to the one holding ``last``."""
    out = [month_of(first)]
    end = month_of(last)
    while out[-1] < end:
        out.append(next_month(*out[-1]))
    return out


def partition_name(year: int, month: int) -> str:
    return f"{TABLE}_{year:04d}_{month:02d}"


def next_month(year: int, month: int) -> tuple[int, int]:
    return (year + month // 12, month % 12 + 1)


def partitions(conn: Conn) -> list[tuple[str, float, float]]:
    """(name, from, to) of every monthly partition, oldest first."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(%s)",
        (TABLE,),
    ).fetchall()
    out = []
    for (name,) in rows:
        got = re.fullmatch(rf"{TABLE}_(\d{{4}})_(\d{{2}})", str(name))
        if got is None:  # a partition carmetrics did not make (an operator's own): left alone
            continue
        out.append((str(name), *month_bounds(int(got[1]), int(got[2]))))
    return sorted(out, key=lambda p: p[1])


def ensure_partitions(conn: Conn, ts: float, ahead: int = 0) -> list[tuple[int, int]]:
    """Create the partition holding ``ts`` and ``ahead`` months after it, if missing (each in
    its own short transaction, under a lock, so concurrent writers never collide)."""
    y, m = month_of(ts)
    months = [(y, m)]
    for _ in range(ahead):
        months.append(next_month(*months[-1]))
    return create_months(conn, months)


def create_months(conn: Conn, months: list[tuple[int, int]]) -> list[tuple[int, int]]:
    made: list[tuple[int, int]] = []
    for y, m in months:
        name = partition_name(y, m)
        with conn.transaction():
            if conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0] is not None:
                continue
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
            lo, hi = month_bounds(y, m)
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {TABLE} "
                f"FOR VALUES FROM ({lo!r}) TO ({hi!r})"
            )
        made.append((y, m))
    return made
