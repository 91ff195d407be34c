"""One description of the plain tables (``exporter.tables``): what SQLite and PostgreSQL create
from it has the same columns, in the same order, as the description says."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg

from bench.postgres import PASSWORD, Cluster
from exporter.backend import backend
from exporter.commands.audit import AuditLog
from exporter.dbtarget import PgTarget
from exporter.settings import Secret
from exporter.tables import TABLES
from exporter.tokens import EncryptedTokenStore, generate_key, parse_keys


def test_both_backends_create_the_described_columns(tmp_path: Path, postgres: Cluster) -> None:
    keys = parse_keys(generate_key(), "k")
    db = tmp_path / "h.db"
    pg = PgTarget(postgres.dsn_without_password, Secret(PASSWORD))
    for target in (db, pg):
        backend(target).preflight()
        EncryptedTokenStore(backend(target).token_rows(), keys).close()
        audit = AuditLog(target)
        audit.open(now=0.0, keep_keys_since=0.0, in_flight_for=720.0)
        audit.close()
    with sqlite3.connect(db) as lite, psycopg.connect(postgres.dsn) as post:
        for table in TABLES:
            in_sqlite = [r[1] for r in lite.execute(f"PRAGMA table_info({table.name})")]
            in_pg = [
                r[0]
                for r in post.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = %s ORDER BY ordinal_position",
                    (table.name,),
                )
            ]
            assert in_sqlite == list(table.column_names) == in_pg, table.name
