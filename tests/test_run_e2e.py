"""`carmetrics run` on the shipped config, as a newcomer starts it: a real process, the embedded
simulator, real HTTP, then SIGTERM. Live metrics for every simulated car, promtool-clean, history rows,
and a clean shutdown that flushed everything."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from exporter.logs import mask_vin
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return str(r.read().decode())


def test_run_serves_metrics_and_history_then_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "history.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARMETRICS_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter.cli", "run", "--port", str(port), "--db", str(db)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    body = ""
    try:
        deadline = time.monotonic() + 90  # a condition polled: only a failure waits this long
        vins: set[str] = set()
        while time.monotonic() < deadline and len(vins) < 3:
            time.sleep(0.5)
            try:
                body = fetch(f"http://127.0.0.1:{port}/metrics")
            except OSError:
                continue
            vins = {
                line.split('vin="')[1].split('"')[0]
                for line in body.splitlines()
                if line.startswith("carmetrics_battery_soc_ratio{")
            }
        assert len(vins) >= 3, body[-2000:]
        landing = fetch(f"http://127.0.0.1:{port}/")
        assert all(mask_vin(v) in landing and v not in landing for v in vins)
        assert '"status": "ok"' in fetch(f"http://127.0.0.1:{port}/healthz")
        promtool = require_tool("promtool")
        lint = subprocess.run(
            [promtool, "check", "metrics"], input=body, capture_output=True, text=True, check=False
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT count(*), count(DISTINCT vin) FROM samples").fetchone()
    assert rows[0] >= 3 and rows[1] >= 3
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
