"""One description of the history's plain tables, rendered as SQLite or PostgreSQL DDL.

The ``samples`` columns come from the signal table (``exporter.signals``); the other tables the
exporter keeps (``vehicles``, ``command_audit``, ``oauth_tokens``) are described here once, so a
column added for one backend cannot be forgotten in the other. A new table (or column) is one
entry here: both backends create it from the same line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from exporter.signals import Kind, Signal

Type = Literal["text", "real", "integer", "blob", "bool"]

_SQLITE: Final[dict[str, str]] = {
    "text": "TEXT",
    "real": "REAL",
    "integer": "INTEGER",
    "blob": "BLOB",
    "bool": "INTEGER",
}
_POSTGRES: Final[dict[str, str]] = {
    "text": "text",
    "real": "double precision",
    "integer": "bigint",
    "blob": "bytea",
    "bool": "boolean",
}


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Column:
    name: str
    type: Type
    not_null: bool = False
    default: str | None = None  # an SQL literal both dialects read alike ('poll', 0)

    def ddl(self, dialect: Literal["sqlite", "postgres"]) -> str:
        types = _SQLITE if dialect == "sqlite" else _POSTGRES
        out = f"{_q(self.name)} {types[self.type]}"
        if self.not_null:
            out += " NOT NULL"
        if self.default is not None:
            out += f" DEFAULT {self.default}"
        return out


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    indexes: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (index name, columns)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def ddl(self, dialect: Literal["sqlite", "postgres"]) -> list[str]:
        """CREATE TABLE/INDEX IF NOT EXISTS statements (an existing table is left as it is)."""
        body = ",\n  ".join(
            [c.ddl(dialect) for c in self.columns]
            + [f"PRIMARY KEY ({', '.join(_q(c) for c in self.primary_key)})"]
        )
        tail = " STRICT" if dialect == "sqlite" else ""
        out = [f"CREATE TABLE IF NOT EXISTS {_q(self.name)} (\n  {body}\n){tail}"]
        out += [
            f"CREATE INDEX IF NOT EXISTS {_q(name)} ON {_q(self.name)} "
            f"({', '.join(_q(c) for c in cols)})"
            for name, cols in self.indexes
        ]
        return out


def text(name: str, not_null: bool = False) -> Column:
    return Column(name, "text", not_null)


def real(name: str, not_null: bool = False) -> Column:
    return Column(name, "real", not_null)


VEHICLES: Final = Table(
    "vehicles",
    (
        text("vin", True),
        text("provider", True),
        text("make"),
        text("model"),
        text("year"),
        text("series"),
        text("account"),
        real("first_seen", True),
        real("last_seen", True),
    ),
    primary_key=("vin",),
)

COMMAND_AUDIT: Final = Table(
    "command_audit",
    (
        text("id", True),
        real("requested_at", True),  # unix seconds
        text("vin", True),
        text("provider", True),
        text("account", True),
        text("command", True),
        text("params", True),  # JSON object
        text("caller", True),  # the token's configured name, never the token
        text("idempotency_key"),
        text("fingerprint", True),
        text("status", True),  # pending | sent | done
        text("expected", True),
        real("sent_at"),
        Column("cloud_accepted", "integer"),
        text("cloud_reply", True),  # short, secret-free summary
        text("cloud_id", True),
        text("outcome"),  # verified | accepted | not_verified | rejected | failed | timeout
        text("detail", True),
        real("finished_at"),
    ),
    primary_key=("id",),
    indexes=(("command_audit_vin", ("vin", "requested_at")),),
)

OAUTH_TOKENS: Final = Table(
    "oauth_tokens",
    (text("name", True), Column("blob", "blob", True), real("updated_at", True)),
    primary_key=("name",),
)

# The tables every backend creates at start-up (the derived session tables belong to
# ``carmetrics db derive``, which creates them itself).
TABLES: Final = (VEHICLES, COMMAND_AUDIT, OAUTH_TOKENS)


def signal_type(sig: Signal) -> Type:
    """A signal's column type in the ``samples`` columns (SI units, enums as their state)."""
    return {
        Kind.NUMBER: "real",
        Kind.BOOL: "bool",
        Kind.ENUM: "text",
        Kind.TIMESTAMP: "real",
    }[sig.kind]  # type: ignore[return-value]
