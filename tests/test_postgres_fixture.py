"""The PostgreSQL fixture the backend tests stand on: a real server, password auth, a clean database."""

from __future__ import annotations

import os
import shutil
import subprocess

from bench.postgres import PASSWORD, Cluster


def _psql(cluster: Cluster, sql: str, password: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if password is not None:
        env["PGPASSWORD"] = password
    psql = shutil.which("psql") or str(cluster.bindir / "psql")
    return subprocess.run(
        [psql, "-X", "-tA", "-w", cluster.dsn_without_password, "-c", sql],
        capture_output=True,
        text=True,
        env=env,
    )


def test_server_answers_on_loopback_with_password(postgres: Cluster) -> None:
    ok = _psql(postgres, "select current_user, current_database()", PASSWORD)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "carmetrics|carmetrics"


def test_wrong_or_missing_password_is_refused(postgres: Cluster) -> None:
    assert _psql(postgres, "select 1", "wrong").returncode != 0
    assert _psql(postgres, "select 1", None).returncode != 0


def test_each_test_gets_an_empty_database(postgres: Cluster) -> None:
    made = _psql(postgres, "create table t (x int); insert into t values (1)", PASSWORD)
    assert made.returncode == 0, made.stderr
    postgres.reset()
    gone = _psql(postgres, "select count(*) from pg_tables where tablename = 't'", PASSWORD)
    assert gone.stdout.strip() == "0"
