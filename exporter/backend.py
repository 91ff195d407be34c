"""The boundary between carmetrics and where its history lives: SQLite (default) or PostgreSQL.

Everything that opens the history goes through :func:`backend`, which returns an object with the
:class:`Backend` methods; the callers (``carmetrics run`` and ``db ...``, the token vault, the
command audit, the analysis) never test which one it is. The PostgreSQL implementation lives in
``exporter.pg`` and is imported only for a ``postgresql://`` target, so SQLite users never load
psycopg.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from exporter.dbtarget import DbTarget, PgTarget

if TYPE_CHECKING:
    from exporter.commands.audit import AuditStore
    from exporter.history import HistoryWriter
    from exporter.history_info import TableInfo
    from exporter.tokens import TokenRows


@dataclass(frozen=True)
class DbInfo:
    """What ``carmetrics db info`` prints."""

    where: str
    version: int
    size: str | None  # on disk (with the WAL for SQLite), None when unknown
    vehicles: list[tuple[str, int, float, float]] = field(default_factory=list)
    tables: list[TableInfo] = field(default_factory=list)


class Backend(Protocol):
    """One history store. Every method is synchronous (run it in a thread from the event loop);
    every failure a person can act on is a ``HistoryError`` with one line."""

    target: DbTarget

    def preflight(self) -> None:
        """Open, check and migrate before anything else starts."""
        ...

    def migrate(self) -> int:
        """Create or upgrade the schema; returns its version (idempotent)."""
        ...

    def writer(
        self, *, batch_size: int = 500, flush_interval: float = 1.0, one_timeline: bool = False
    ) -> HistoryWriter:
        """The batched writer the runtime feeds from the hub."""
        ...

    def last_report_time(self) -> float | None:
        """The newest stored report (unix seconds), None when there is none."""
        ...

    def prune(self, older_than: float, *, now: float | None = None) -> int:
        """Delete raw samples older than ``older_than`` seconds; returns the rows deleted."""
        ...

    def backup(self, dest: Path) -> None:
        """A consistent copy (SQLite); PostgreSQL says to use pg_dump."""
        ...

    def info(self) -> DbInfo: ...

    def token_rows(self) -> TokenRows:
        """The vault's durable rows (created on first use)."""
        ...

    def stored_tokens(self) -> list[tuple[str, bytes]]:
        """The vault's rows, read without creating or changing anything; none if no vault."""
        ...

    def audit(self) -> AuditStore:
        """Where the command audit keeps its rows."""
        ...


def backend(target: DbTarget | str) -> Backend:
    """The backend for a target (a file path, or a PostgreSQL target or URL)."""
    if isinstance(target, str):
        from exporter.dbtarget import is_postgres

        target = PgTarget(target) if is_postgres(target) else Path(target)
    if isinstance(target, PgTarget):
        from exporter.pg.backend import PgBackend

        return PgBackend(target)
    from exporter.sqlite_backend import SqliteBackend

    return SqliteBackend(target)
