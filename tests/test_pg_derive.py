"""``db derive`` on PostgreSQL keeps its tables in the shape SQLite's derive gives them: an older
shape (a column missing, one no longer described) is brought in line and re-derived."""

from __future__ import annotations

import psycopg

import analysis
from analysis.pg_derive import derived_tables
from analysis.testing import commuter, write_history
from bench.postgres import PASSWORD, Cluster
from exporter.dbtarget import PgTarget
from exporter.settings import Secret


def test_an_older_shape_is_reshaped_and_rederived(postgres: Cluster) -> None:
    pg = PgTarget(postgres.dsn_without_password, Secret(PASSWORD))
    write_history(pg, [commuter(days=7, every=300, seed=3, vin="HESXR1C4RESHAPE01").frame()])
    settings = analysis.Settings(timezone="UTC")
    first = analysis.derive(pg, settings)
    assert first[0].rebuilt and first[0].trips_written > 0
    assert not analysis.derive(pg, settings)[0].rebuilt  # nothing new: nothing redone
    with psycopg.connect(postgres.dsn) as c:
        c.execute("ALTER TABLE trips DROP COLUMN end_place")
        c.execute("ALTER TABLE trips ADD COLUMN legacy bigint")
    again = analysis.derive(pg, settings)
    assert again[0].rebuilt and again[0].trips_written == first[0].trips_written
    with psycopg.connect(postgres.dsn) as c:
        for table in derived_tables():
            cols = [
                r[0]
                for r in c.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = %s ORDER BY ordinal_position",
                    (table.name,),
                )
            ]
            assert sorted(cols) == sorted(table.column_names), table.name
    assert not analysis.derive(pg, settings)[0].rebuilt  # in shape now (column order aside)
