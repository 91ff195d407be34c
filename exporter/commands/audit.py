"""The audit trail: one SQLite row per command, in the history file, updated as the command
progresses.

The row holds who asked (the token's *name*, never the token), what was asked, what the cloud
replied and what the car was later seen to do. It has its own connection and writer thread: commands
are rare, WAL lets it share the file with the history writer, and the event loop never waits on the
disk (writes are queued; reads run in the same thread, after every queued write).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

from exporter.commands.record import CommandRecord, Outcome, Status
from exporter.history import connect

log = logging.getLogger(__name__)

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
SCHEMA: Final = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
  id TEXT PRIMARY KEY,
  requested_at REAL NOT NULL,   -- unix seconds
  vin TEXT NOT NULL,
  provider TEXT NOT NULL,
  account TEXT NOT NULL,
  command TEXT NOT NULL,
  params TEXT NOT NULL,         -- JSON object
  caller TEXT NOT NULL,         -- the token's configured name
  idempotency_key TEXT,
  fingerprint TEXT NOT NULL,
  status TEXT NOT NULL,         -- pending | sent | done
  expected TEXT NOT NULL,
  sent_at REAL,
  cloud_accepted INTEGER,
  cloud_reply TEXT NOT NULL,    -- short, secret-free summary
  cloud_id TEXT NOT NULL,
  outcome TEXT,                 -- verified | accepted | not_verified | rejected | failed | timeout
  detail TEXT NOT NULL,
  finished_at REAL
) STRICT"""
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


class AuditLog:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit")
        self._conn: sqlite3.Connection | None = None
        self.write_errors = 0

    # --- lifecycle --------------------------------------------------------------------------------
    def open(self, now: float, keep_keys_since: float) -> list[CommandRecord]:
        """Create the table, close out commands a previous run left unfinished, and return the
        records whose Idempotency-Key must still be honoured (requested after the given time)."""
        return self._executor.submit(self._open, now, keep_keys_since).result()

    def _open(self, now: float, since: float) -> list[CommandRecord]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._conn = connect(self.path)
        with conn:
            conn.execute(SCHEMA)
            conn.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_vin ON {TABLE} (vin, requested_at)")
            conn.execute(
                f"UPDATE {TABLE} SET status='done', outcome=?, finished_at=?, detail=? "
                "WHERE status='pending'",
                (str(Outcome.TIMEOUT), now, "the exporter stopped while sending; state unknown"),
            )
            conn.execute(
                f"UPDATE {TABLE} SET status='done', outcome=?, finished_at=?, detail=? "
                "WHERE status='sent'",
                (str(Outcome.NOT_VERIFIED), now, "the exporter stopped before the effect was seen"),
            )
        rows = conn.execute(
            f"{_SELECT} WHERE idempotency_key IS NOT NULL AND requested_at >= ? "
            "ORDER BY requested_at",
            (since,),
        )
        return [_record(r) for r in rows]

    async def flush(self) -> None:
        """Return once every queued write has reached the file."""
        await asyncio.get_running_loop().run_in_executor(self._executor, lambda: None)

    def close(self) -> None:
        self._executor.submit(self._close).result()
        self._executor.shutdown(wait=True)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # --- writing ----------------------------------------------------------------------------------
    def write(self, record: CommandRecord) -> None:
        """Queue the record's current state (copied now, so later changes cannot tear the row)."""
        self._executor.submit(self._write, _row(record))

    def _write(self, row: tuple[Any, ...]) -> None:
        if self._conn is None:
            log.error("audit log is not open; command row lost", extra={"command_id": row[0]})
            self.write_errors += 1
            return
        try:
            with self._conn:
                self._conn.execute(_UPSERT, row)
        except sqlite3.Error:
            self.write_errors += 1
            log.exception("audit write failed", extra={"command_id": row[0]})

    # --- reading ----------------------------------------------------------------------------------
    async def get(self, command_id: str) -> CommandRecord | None:
        rows = await self._query(f"{_SELECT} WHERE id = ?", (command_id,))
        return _record(rows[0]) if rows else None

    async def recent(self, vin: str, limit: int) -> list[CommandRecord]:
        rows = await self._query(
            f"{_SELECT} WHERE vin = ? ORDER BY requested_at DESC, rowid DESC LIMIT ?", (vin, limit)
        )
        return [_record(r) for r in rows]

    async def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        def run() -> list[tuple[Any, ...]]:
            if self._conn is None:
                return []
            return list(self._conn.execute(sql, params))

        return await asyncio.get_running_loop().run_in_executor(self._executor, run)
