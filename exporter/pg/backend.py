"""The PostgreSQL implementation of ``exporter.backend.Backend``."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Final

from exporter.backend import DbInfo
from exporter.commands.audit import _CLOSE_OUT, _SELECT, COLUMNS, TABLE
from exporter.dbtarget import DbTarget, PgTarget
from exporter.history import HistoryError
from exporter.history_info import TableInfo
from exporter.pg import schema
from exporter.pg.connect import connect, describe, pool, require_psycopg
from exporter.pg.history import PgHistory, last_report_ms
from exporter.tables import COMMAND_AUDIT, OAUTH_TOKENS

log = logging.getLogger(__name__)


class PgBackend:
    def __init__(self, target: PgTarget) -> None:
        require_psycopg()  # one line with the install hint, not an ImportError
        self.target: DbTarget = target
        self.pg = target

    @contextlib.contextmanager
    def connection(self, *, migrate: bool = False) -> Iterator[Any]:
        """An autocommit connection whose errors read as one ``HistoryError`` line."""
        import psycopg

        conn = connect(self.pg, autocommit=True)
        try:
            if migrate:
                schema.migrate(conn)
            yield conn
        except psycopg.Error as exc:
            raise describe(self.pg, exc) from None
        finally:
            conn.close()

    def preflight(self) -> None:
        with self.connection(migrate=True):
            pass

    def migrate(self) -> int:
        with self.connection() as conn:
            return schema.migrate(conn)

    def writer(
        self, *, batch_size: int = 500, flush_interval: float = 1.0, one_timeline: bool = False
    ) -> PgHistory:
        return PgHistory(
            self.pg,
            batch_size=batch_size,
            flush_interval=flush_interval,
            one_timeline=one_timeline,
        )

    def last_report_time(self) -> float | None:
        with self.connection() as conn:
            if schema.version(conn) == 0:
                return None
            last = last_report_ms(conn)
        return max(last.values()) / 1000.0 if last else None

    def prune(self, older_than: float, *, now: float | None = None) -> int:
        """Drop every monthly partition wholly older than the cut (no row by row deletes, no
        bloat) and delete the older rows of the month the cut falls in."""
        cut = (time.time() if now is None else now) - older_than
        n = 0
        with self.connection(migrate=True) as conn:
            for name, _lo, hi in schema.partitions(conn):
                if hi <= cut:
                    with conn.transaction():
                        (rows,) = conn.execute(f"SELECT count(*) FROM {name}").fetchone()
                        conn.execute(f"ALTER TABLE {schema.TABLE} DETACH PARTITION {name}")
                        conn.execute(f"DROP TABLE {name}")
                    log.info("history partition dropped", extra={"partition": name, "rows": rows})
                    n += int(rows)
            cur = conn.execute(f"DELETE FROM {schema.TABLE} WHERE ts < %s", (cut,))
            n += int(cur.rowcount)
        return n

    def backup(self, dest: Path) -> None:
        raise HistoryError(
            f"the history is in PostgreSQL ({self.target}); back it up with pg_dump "
            f"(e.g. `pg_dump -Fc -f {dest} <database>`) or your server's backup tooling"
        )

    def info(self) -> DbInfo:
        with self.connection() as conn:
            version = schema.version(conn)
            if version == 0:
                return DbInfo(str(self.target), 0, None)
            (size,) = conn.execute("SELECT pg_database_size(current_database())").fetchone()
            from exporter.sqlite_backend import human_size

            vehicles = [
                (str(v), int(n), float(t0), float(t1))
                for v, n, t0, t1 in conn.execute(
                    f"SELECT v.vin, count(*), min(d.ts), max(d.ts) FROM {schema.TABLE} AS d "
                    "JOIN vins AS v ON v.id = d.vehicle GROUP BY v.vin ORDER BY v.vin"
                )
            ]
            tables = []
            for (name,) in conn.execute(
                "SELECT c.relname FROM pg_class AS c JOIN pg_namespace AS n "
                "ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
                "AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY c.oid"
            ).fetchall():
                (rows,) = conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()
                (nbytes,) = conn.execute(
                    "SELECT greatest(pg_total_relation_size(%s), coalesce(("
                    "SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree(%s)), 0))",
                    (name, name),
                ).fetchone()
                tables.append(TableInfo(str(name), int(rows), int(nbytes)))
            parts = len(schema.partitions(conn))
            where = f"{self.target} ({parts} monthly partitions)"
            return DbInfo(where, version, human_size(size), vehicles, tables)

    def token_rows(self) -> PgTokenRows:
        return PgTokenRows(self.pg)

    def stored_tokens(self) -> list[tuple[str, bytes]]:
        with self.connection() as conn:
            if conn.execute("SELECT to_regclass('oauth_tokens')").fetchone()[0] is None:
                return []
            rows = conn.execute("SELECT name, blob FROM oauth_tokens").fetchall()
        return [(str(n), bytes(b)) for n, b in rows]

    def audit(self) -> PgAudit:
        return PgAudit(self.pg)


# --- the token vault ----------------------------------------------------------------------------

TOKEN_LOCK_SPACE: Final = 0x434D544B  # "CMTK": the first key of the two-int advisory locks
LOCK_POLL: Final = 0.05  # seconds between attempts while another instance holds a token lock


def token_lock_key(name: str) -> int:
    """The second advisory-lock key of a token name (a stable signed 32-bit hash)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big", signed=True)


class PgTokenRows:
    """The vault's table in PostgreSQL, through a small connection pool (autocommit: each
    ``put`` is committed when it returns), and ``exclusive``: the single flight of one token's
    rotation across every instance sharing the database."""

    def __init__(self, target: PgTarget) -> None:
        self.target = target
        self._pool = pool(target, min_size=1, max_size=4)
        self.locks_waited = 0  # times another instance held a token's lock (tests, logs)
        self._run(OAUTH_TOKENS.ddl("postgres")[0], ())

    def _run(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        import psycopg

        try:
            with self._pool.connection() as conn:
                cur = conn.execute(sql, params)
                return cur.fetchall() if cur.description else []
        except psycopg.Error as exc:
            raise describe(self.target, exc) from None

    def get(self, name: str) -> bytes | None:
        rows = self._run("SELECT blob FROM oauth_tokens WHERE name = %s", (name,))
        return bytes(rows[0][0]) if rows else None

    def put(self, name: str, blob: bytes) -> None:
        self._run(
            "INSERT INTO oauth_tokens (name, blob, updated_at) VALUES (%s, %s, %s) "
            "ON CONFLICT (name) DO UPDATE SET blob = excluded.blob, "
            "updated_at = excluded.updated_at",
            (name, blob, time.time()),
        )

    def delete(self, name: str) -> None:
        self._run("DELETE FROM oauth_tokens WHERE name = %s", (name,))

    def names(self) -> list[str]:
        return [str(r[0]) for r in self._run("SELECT name FROM oauth_tokens ORDER BY name", ())]

    @contextlib.asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[None]:
        """Hold ``name``'s advisory lock (a session lock on one pooled connection) until the
        block ends. Polled with ``pg_try_advisory_lock`` rather than waited for in a thread, so a
        cancelled caller never leaves a thread that takes the lock later and keeps it; the lock
        is released before the connection goes back (and closing it, on any error, releases it
        too)."""
        key = (TOKEN_LOCK_SPACE, token_lock_key(name))
        conn = await asyncio.to_thread(self._pool.getconn)
        held = False
        try:
            while not held:
                row = await asyncio.to_thread(
                    lambda: conn.execute("SELECT pg_try_advisory_lock(%s, %s)", key).fetchone()
                )
                held = row is not None and bool(row[0])
                if not held:
                    self.locks_waited += 1
                    await asyncio.sleep(LOCK_POLL)
            yield
        except BaseException:
            conn.close()  # releases the lock, whatever state the connection is in
            raise
        finally:
            if not conn.closed:
                with contextlib.suppress(Exception):
                    conn.execute("SELECT pg_advisory_unlock(%s, %s)", key)
            self._pool.putconn(conn)

    def close(self) -> None:
        self._pool.close()


# --- the command audit ----------------------------------------------------------------------------

_UPSERT: Final = (
    f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join('%s' for _ in COLUMNS)}) "
    "ON CONFLICT (id) DO UPDATE SET " + ", ".join(f"{c}=excluded.{c}" for c in COLUMNS if c != "id")
)


class PgAudit:
    shared = True  # a fleet's instances share it

    def __init__(self, target: PgTarget) -> None:
        import psycopg

        self.target = target
        self.errors: tuple[type[BaseException], ...] = (psycopg.Error, HistoryError)
        self._conn: Any = None

    def _c(self) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.target, autocommit=True)
        return self._conn

    def open(self, now: float, since: float, unfinished_before: float) -> list[tuple[Any, ...]]:
        conn = self._c()
        with conn.transaction():
            for stmt in COMMAND_AUDIT.ddl("postgres"):
                conn.execute(stmt)
            for outcome, status, detail in _CLOSE_OUT:
                conn.execute(
                    f"UPDATE {TABLE} SET status='done', outcome=%s, finished_at=%s, detail=%s "
                    "WHERE status=%s AND requested_at < %s",
                    (outcome, now, detail, status, unfinished_before),
                )
        return list(
            conn.execute(
                f"{_SELECT} WHERE idempotency_key IS NOT NULL AND requested_at >= %s "
                "ORDER BY requested_at",
                (since,),
            )
        )

    def write(self, row: tuple[Any, ...]) -> None:
        self._c().execute(_UPSERT, row)

    def get(self, command_id: str) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = (
            self._c().execute(f"{_SELECT} WHERE id = %s", (command_id,)).fetchone()
        )
        return row

    def recent(self, vin: str, limit: int) -> list[tuple[Any, ...]]:
        return list(
            self._c().execute(
                f"{_SELECT} WHERE vin = %s ORDER BY requested_at DESC, id DESC LIMIT %s",
                (vin, limit),
            )
        )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
