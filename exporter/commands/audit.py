"""The audit trail: one row per command in the history (the SQLite file or the PostgreSQL
database, ``exporter.backend``), updated as the command progresses.

The row holds who asked (the token's *name*, never the token), what was asked, what the cloud
replied and what the car was later seen to do. It has its own connection and writer thread: commands
are rare, WAL lets it share the file with the history writer, and the event loop never waits on the
disk (writes are queued; reads run in the same thread, after every queued write).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

from exporter.commands.record import CommandRecord, Outcome, Status
from exporter.dbtarget import DbTarget, PgTarget
from exporter.history import connect
from exporter.tables import COMMAND_AUDIT

log = logging.getLogger(__name__)
T = TypeVar("T")

TABLE: Final = "command_audit"
COLUMNS: Final = (
    "id",
    "requested_at",
    "vin",
    "provider",
    "account",
    "command",
    "params",
    "caller",
    "idempotency_key",
    "fingerprint",
    "status",
    "expected",
    "sent_at",
    "cloud_accepted",
    "cloud_reply",
    "cloud_id",
    "outcome",
    "detail",
    "finished_at",
)
assert COMMAND_AUDIT.column_names == COLUMNS  # one description (exporter.tables) for both backends
_UPSERT: Final = (
    f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)}) "
    f"ON CONFLICT(id) DO UPDATE SET " + ", ".join(f"{c}=excluded.{c}" for c in COLUMNS if c != "id")
)
_SELECT: Final = f"SELECT {', '.join(COLUMNS)} FROM {TABLE}"


def _row(r: CommandRecord) -> tuple[Any, ...]:
    return (
        r.id,
        r.requested_at,
        r.vin,
        r.provider,
        r.account,
        r.command,
        json.dumps(r.params, sort_keys=True),
        r.caller,
        r.idempotency_key,
        r.fingerprint,
        str(r.status),
        r.expected,
        r.sent_at,
        None if r.cloud_accepted is None else int(r.cloud_accepted),
        r.cloud_reply,
        r.cloud_id,
        None if r.outcome is None else str(r.outcome),
        r.detail,
        r.finished_at,
    )


def _record(row: tuple[Any, ...]) -> CommandRecord:
    d = dict(zip(COLUMNS, row, strict=True))
    return CommandRecord(
        id=d["id"],
        vin=d["vin"],
        provider=d["provider"],
        account=d["account"],
        command=d["command"],
        params=json.loads(d["params"]),
        caller=d["caller"],
        requested_at=d["requested_at"],
        idempotency_key=d["idempotency_key"],
        status=Status(d["status"]),
        expected=d["expected"],
        sent_at=d["sent_at"],
        cloud_accepted=None if d["cloud_accepted"] is None else bool(d["cloud_accepted"]),
        cloud_reply=d["cloud_reply"],
        cloud_id=d["cloud_id"],
        outcome=None if d["outcome"] is None else Outcome(d["outcome"]),
        detail=d["detail"],
        finished_at=d["finished_at"],
        fingerprint=d["fingerprint"],
    )


class AuditStore(Protocol):
    """Where the audit rows live; every method runs on the audit's own thread."""

    errors: tuple[type[BaseException], ...]

    #: True when other exporter instances may write the same table (a fleet on PostgreSQL)
    shared: bool

    def open(self, now: float, since: float, unfinished_before: float) -> list[tuple[Any, ...]]:
        """Create the table, close out commands left unfinished that were requested before
        ``unfinished_before``, return the rows whose Idempotency-Key must still be honoured."""
        ...

    def write(self, row: tuple[Any, ...]) -> None: ...

    def get(self, command_id: str) -> tuple[Any, ...] | None: ...

    def recent(self, vin: str, limit: int) -> list[tuple[Any, ...]]: ...

    def close(self) -> None: ...


_CLOSE_OUT: Final = (
    (str(Outcome.TIMEOUT), "pending", "the exporter stopped while sending; state unknown"),
    (str(Outcome.NOT_VERIFIED), "sent", "the exporter stopped before the effect was seen"),
)


class SqliteAudit:
    """The audit table in the SQLite history file (WAL lets it share the file with the writer)."""

    errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
    shared = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def open(self, now: float, since: float, unfinished_before: float) -> list[tuple[Any, ...]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._conn = connect(self.path)
        with conn:
            for stmt in COMMAND_AUDIT.ddl("sqlite"):
                conn.execute(stmt)
            for outcome, status, detail in _CLOSE_OUT:
                conn.execute(
                    f"UPDATE {TABLE} SET status='done', outcome=?, finished_at=?, detail=? "
                    "WHERE status=? AND requested_at < ?",
                    (outcome, now, detail, status, unfinished_before),
                )
        return list(
            conn.execute(
                f"{_SELECT} WHERE idempotency_key IS NOT NULL AND requested_at >= ? "
                "ORDER BY requested_at",
                (since,),
            )
        )

    def write(self, row: tuple[Any, ...]) -> None:
        if self._conn is None:
            raise sqlite3.OperationalError("audit log is not open")
        with self._conn:
            self._conn.execute(_UPSERT, row)

    def get(self, command_id: str) -> tuple[Any, ...] | None:
        if self._conn is None:
            return None
        row: tuple[Any, ...] | None = self._conn.execute(
            f"{_SELECT} WHERE id = ?", (command_id,)
        ).fetchone()
        return row

    def recent(self, vin: str, limit: int) -> list[tuple[Any, ...]]:
        if self._conn is None:
            return []
        return list(
            self._conn.execute(
                f"{_SELECT} WHERE vin = ? ORDER BY requested_at DESC, rowid DESC LIMIT ?",
                (vin, limit),
            )
        )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class AuditLog:
    def __init__(self, where: DbTarget | AuditStore) -> None:
        if isinstance(where, Path | PgTarget):
            from exporter.backend import backend

            where = backend(where).audit()
        self.store: AuditStore = where
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit")
        self._open = False
        self.write_errors = 0

    # --- lifecycle --------------------------------------------------------------------------------
    def open(self, now: float, keep_keys_since: float, in_flight_for: float) -> list[CommandRecord]:
        """Create the table, close out commands a previous run left unfinished, and return the
        records whose Idempotency-Key must still be honoured (requested after the given time).

        A file of our own holds no command in flight at start-up, so every unfinished one is
        closed. A table other instances share may hold theirs: only commands older than the
        longest a command can stay in flight (``in_flight_for`` s) are closed."""
        before = now - in_flight_for if self.store.shared else math.inf
        rows = self._executor.submit(self.store.open, now, keep_keys_since, before).result()
        self._open = True
        return [_record(r) for r in rows]

    async def flush(self) -> None:
        """Return once every queued write has reached the file."""
        await asyncio.get_running_loop().run_in_executor(self._executor, lambda: None)

    def close(self) -> None:
        self._executor.submit(self.store.close).result()
        self._executor.shutdown(wait=True)

    # --- writing ----------------------------------------------------------------------------------
    def write(self, record: CommandRecord) -> None:
        """Queue the record's current state (copied now, so later changes cannot tear the row)."""
        self._executor.submit(self._write, _row(record))

    def _write(self, row: tuple[Any, ...]) -> None:
        if not self._open:
            log.error("audit log is not open; command row lost", extra={"command_id": row[0]})
            self.write_errors += 1
            return
        try:
            self.store.write(row)
        except self.store.errors:
            self.write_errors += 1
            log.exception("audit write failed", extra={"command_id": row[0]})

    # --- reading ----------------------------------------------------------------------------------
    async def get(self, command_id: str) -> CommandRecord | None:
        row = await self._run(lambda: self.store.get(command_id))
        return None if row is None else _record(row)

    async def recent(self, vin: str, limit: int) -> list[CommandRecord]:
        rows = await self._run(lambda: self.store.recent(vin, limit))
        return [_record(r) for r in rows]

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)
