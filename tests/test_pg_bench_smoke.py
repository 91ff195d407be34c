"""bench/pg_bench.py runs end to end on tiny sizes against a real server, and each side of its
comparisons really stored its rows (no timing asserted: the figures live in docs/BENCHMARKS.md)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from bench import pg_bench
from bench.postgres import PASSWORD, Cluster
from bench.samples import clone, real_snapshots
from exporter.dbtarget import PgTarget
from exporter.settings import Secret


def test_every_side_stores_the_rows(postgres: Cluster, tmp_path: Path) -> None:
    target = PgTarget(postgres.dsn_without_password, Secret(PASSWORD))
    base = asyncio.run(real_snapshots())
    snaps = []
    for car in clone(base, 10, t0=1.7e9):
        snaps += [replace(car, car_time=1.7e9 + 60 * j) for j in range(20)]
    for rate in (pg_bench.writer_rate, pg_bench.raw_rate, pg_bench.asyncpg_rate):
        assert rate(snaps, target, 50) > 0
        with psycopg.connect(postgres.dsn) as c:
            assert c.execute("SELECT count(*) FROM samples").fetchone()[0] == len(snaps), rate
    assert pg_bench.sqlite_rate(snaps, tmp_path / "s.db", 50) > 0
    heap, index = pg_bench.bytes_per_row(target)
    assert heap > 50 and index > 5


def test_the_whole_script_on_tiny_sizes(
    capsys: pytest.CaptureFixture[str], postgres_cluster: Cluster
) -> None:
    """(Its own throw-away cluster; ``postgres_cluster`` only brings the skip-or-fail rule.)"""
    pg_bench.main(["--rows", "400", "--days", "2", "--runs", "1"])
    out = capsys.readouterr().out
    assert "writer ÷ COPY" in out and "PG ÷ SQLite" in out and "db derive, nothing new" in out
