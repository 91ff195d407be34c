"""Connections to the PostgreSQL history, and what a failed one means in one line.

Every error that reaches a person goes through :func:`describe`: libpq's message is cut to its
reason, the URL is shown masked, and the password (which libpq never echoes, but a message could
quote a connection string) is replaced before anything is printed or logged.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from exporter.dbtarget import PASSWORD_ENV, PgTarget
from exporter.history import HistoryError

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

_INSTALL = "pip install 'carmetrics[postgres]'"


def require_psycopg() -> None:
    _psycopg()


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise HistoryError(
            f"the history is a PostgreSQL database but psycopg is not installed; {_INSTALL}"
        ) from None
    return psycopg


def connect(target: PgTarget, *, autocommit: bool = False) -> psycopg.Connection[Any]:
    """One connection; ``HistoryError`` (one line, no password) when it cannot be made."""
    pg = _psycopg()
    try:
        conn: psycopg.Connection[Any] = pg.connect(target.conninfo(), autocommit=autocommit)
    except pg.Error as exc:
        raise describe(target, exc) from None
    return conn


def pool(target: PgTarget, *, min_size: int = 1, max_size: int = 4) -> ConnectionPool:
    """A small pool for the writers that share one process (history, audit, vault)."""
    _psycopg()
    from psycopg_pool import ConnectionPool

    p = ConnectionPool(
        target.conninfo(), min_size=min_size, max_size=max_size, open=False, name="carmetrics"
    )
    try:
        p.open(wait=True, timeout=15.0)
    except Exception as exc:
        p.close()
        # the pool hides the reason; one direct attempt gives the line a person can act on
        connect(target).close()
        raise describe(target, exc) from None
    return p


def _reason(text: str) -> str:
    text = text.strip().splitlines()[0] if text.strip() else "unknown error"
    text = re.sub(r"^connection failed: ", "", text)
    text = re.sub(r'^connection to server at "[^"]*", port \d+ failed: ', "", text)
    return re.sub(r"^FATAL:\s+", "", text).strip()


def describe(target: PgTarget, exc: BaseException) -> HistoryError:
    """What PostgreSQL (or libpq) said, as a line a person can act on."""
    text = str(exc)
    if target.password is not None:
        text = text.replace(target.password.reveal(), "***")
    reason = _reason(text)
    where = str(target)
    low = reason.lower()
    if "password authentication failed" in low:
        return HistoryError(
            f"PostgreSQL {where} refused the password ({reason}); check {PASSWORD_ENV} or "
            "exporter.db_password_file"
        )
    if "no password supplied" in low:
        return HistoryError(
            f"PostgreSQL {where} asks for a password but none is configured; set "
            f"{PASSWORD_ENV} or point exporter.db_password_file at a file holding it"
        )
    if re.search(r'database ".*" does not exist', low):
        return HistoryError(
            f"PostgreSQL {where}: {reason}; create it (createdb -O <user> <name>) or point "
            "--db / [exporter] db at an existing database"
        )
    if "role" in low and "does not exist" in low:
        return HistoryError(f"PostgreSQL {where}: {reason}; create the role or fix the user name")
    if any(
        s in low
        for s in ("connection refused", "timeout expired", "could not translate", "resolve")
    ):
        return HistoryError(
            f"cannot reach PostgreSQL at {where} ({reason}); check that the server runs and "
            "that --db / [exporter] db names its host and port"
        )
    if "permission denied" in low:
        return HistoryError(
            f"PostgreSQL {where}: {reason}; grant the user CREATE on the database (carmetrics "
            "creates and migrates its own tables) or run `carmetrics db migrate` as its owner"
        )
    return HistoryError(f"PostgreSQL {where}: {reason}")
