"""What is in a history file, table by table: rows and bytes on disk (``carmetrics db info``).

Plain SQL rather than sqlite-utils: importing sqlite-utils imports pandas and numpy whenever they
are installed (to map their types), about 1.4 s before the first line is printed, for two queries.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class TableInfo:
    name: str
    rows: int
    bytes: int | None  # pages of the table and its indexes; None when SQLite lacks dbstat


def tables(conn: sqlite3.Connection) -> list[TableInfo]:
    """Every table of the file, in creation order (views such as ``samples`` store nothing)."""
    names = [
        str(r[0])
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY rowid"
        )
    ]
    sizes = _sizes(conn)
    return [
        TableInfo(
            name,
            int(conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]),
            None if sizes is None else sizes.get(name, 0),
        )
        for name in names
    ]


def _sizes(conn: sqlite3.Connection) -> dict[str, int] | None:
    try:
        rows = conn.execute(
            "SELECT coalesce(m.tbl_name, s.name), sum(s.pgsize) FROM dbstat AS s "
            "LEFT JOIN sqlite_master AS m ON m.name = s.name GROUP BY 1"
        ).fetchall()
    except sqlite3.OperationalError:  # built without SQLITE_ENABLE_DBSTAT_VTAB
        return None
    return {str(name): int(size) for name, size in rows}
