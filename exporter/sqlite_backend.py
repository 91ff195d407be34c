"""The SQLite backend (the default): the history file with its WAL, as ``exporter.history``
keeps it. A thin adapter: every method is the function SQLite users have always run."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from exporter import history
from exporter.backend import DbInfo
from exporter.dbtarget import DbTarget

if TYPE_CHECKING:
    from exporter.commands.audit import AuditStore
    from exporter.tokens import TokenRows


def human_size(n: float) -> str:
    for unit in ("bytes", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


class SqliteBackend:
    def __init__(self, path: Path) -> None:
        self.target: DbTarget = path
        self.path = path

    def preflight(self) -> None:
        history.preflight(self.path)

    def migrate(self) -> int:
        try:
            conn = history.connect(self.path)
        except (OSError, sqlite3.Error) as exc:
            raise history.describe(self.path, exc) from None
        try:
            return history.migrate(conn)
        finally:
            conn.close()

    def writer(
        self, *, batch_size: int = 500, flush_interval: float = 1.0, one_timeline: bool = False
    ) -> history.History:
        return history.History(
            self.path,
            batch_size=batch_size,
            flush_interval=flush_interval,
            one_timeline=one_timeline,
        )

    def last_report_time(self) -> float | None:
        return history.last_report_time(self.path)

    def prune(self, older_than: float, *, now: float | None = None) -> int:
        return history.prune(self.path, older_than, now=now)

    def backup(self, dest: Path) -> None:
        history.backup(self.path, dest)

    def info(self) -> DbInfo:
        from exporter.history_info import tables

        if not self.path.exists():
            raise history.HistoryError(f"{self.path} does not exist")
        wal = Path(f"{self.path}-wal")
        wal_size = wal.stat().st_size if wal.exists() else 0
        conn = history.connect(self.path, readonly=True)  # reads through the WAL
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            size = human_size(self.path.stat().st_size)
            if wal_size:
                size += f" + {human_size(wal_size)} write-ahead log"
            vehicles = [
                (str(v), int(n), float(t0), float(t1))
                for v, n, t0, t1 in conn.execute(
                    "SELECT vin, count(*), min(ts), max(ts) FROM samples GROUP BY vin"
                )
            ]
            return DbInfo(str(self.path), version, size, vehicles, tables(conn))
        finally:
            conn.close()

    def token_rows(self) -> TokenRows:
        from exporter.tokens import SqliteTokenRows

        return SqliteTokenRows(self.path)

    def stored_tokens(self) -> list[tuple[str, bytes]]:
        from exporter.tokens import sqlite_stored

        return sqlite_stored(self.path)

    def audit(self) -> AuditStore:
        from exporter.commands.audit import SqliteAudit

        return SqliteAudit(self.path)
