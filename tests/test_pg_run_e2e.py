"""`carmetrics run --db postgresql://...` as an operator starts it: a real process, the embedded
simulator, a real PostgreSQL, then SIGTERM. History rows for every simulated car, the password in
no line the process wrote, and a restart that continues the same history."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg

from bench.postgres import PASSWORD, Cluster, free_port

ROOT = Path(__file__).resolve().parent.parent


def run_once(pg: Cluster, want_rows: int) -> str:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARMETRICS_")}
    env["CARMETRICS_DB_PASSWORD"] = PASSWORD
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exporter.cli",
            "run",
            "--port",
            str(port),
            "--db",
            pg.dsn_without_password,
            "--log-level",
            "INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        rows = 0
        while time.monotonic() < deadline and rows < want_rows:
            time.sleep(0.5)
            if proc.poll() is not None:
                break
            with psycopg.connect(pg.dsn) as c:
                if c.execute("SELECT to_regclass('samples')").fetchone()[0] is not None:
                    rows = c.execute("SELECT count(*) FROM samples").fetchone()[0]
        assert rows >= want_rows
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            assert b'"status": "ok"' in r.read()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    assert PASSWORD not in out
    return out


def test_run_records_into_postgresql_and_a_restart_continues(postgres: Cluster) -> None:
    out = run_once(postgres, want_rows=6)
    assert postgres.dsn_without_password in out  # the URL (no password) is named in the log
    with psycopg.connect(postgres.dsn) as c:
        n, cars, newest = c.execute(
            "SELECT count(*), count(DISTINCT vin), max(ts) FROM samples"
        ).fetchone()
        assert cars >= 3
        assert c.execute("SELECT count(*) FROM vehicles").fetchone()[0] >= 3
    run_once(postgres, want_rows=n + 3)
    with psycopg.connect(postgres.dsn) as c:
        n2, newest2 = c.execute("SELECT count(*), max(ts) FROM samples").fetchone()
        # the demo continued from the history's last report: nothing replayed, nothing doubled
        dup = c.execute(
            "SELECT count(*) FROM (SELECT vehicle, ts FROM sample_data GROUP BY 1, 2 "
            "HAVING count(*) > 1) AS d"
        ).fetchone()[0]
    assert n2 > n and newest2 > newest and dup == 0
