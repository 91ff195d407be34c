"""`carmetrics run --simulator-url` against `carmetrics simulate` in another process: the exporter
finds every host through the simulator's info URL, follows its accelerated clock (or the hub's bound
on reports from the future would refuse every report), and its cars reach /metrics (issue 15)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from exporter.clock import FollowedClock, ScaledClock
from exporter.config import ConfigError
from exporter.remote_simulator import connect
from exporter.simulator.info import InfoHost
from exporter.simulator.runner import start_simulator
from tests.test_run_e2e import ROOT, fetch, free_port

SIM_CONFIG = """
[simulator]
enabled = true
speed = 1200  # 20 simulated minutes per real second: far ahead of the wall clock at once
smart_vehicles = ["#1", "#3"]
smartcar_vehicles = ["Tesla Model 3"]
"""
RUN_CONFIG = """
[exporter]
port = {port}
db = "{db}"
[simulator]
url = "{url}"
[[accounts]]
name = "eu"
provider = "smart"
region = "EU"
simulator = true
[[accounts]]
name = "sc"
provider = "smartcar"
simulator = true
"""


def _soc_vins(body: str) -> set[str]:
    return {
        line.split('vin="')[1].split('"')[0]
        for line in body.splitlines()
        if line.startswith("carmetrics_battery_soc_ratio{")
    }


def test_run_against_a_standalone_simulator_process(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARMETRICS_")}
    (tmp_path / "sim.toml").write_text(SIM_CONFIG)
    # logs go to files: a pipe nobody reads fills up and blocks the child mid-log, and a blocked
    # child never gets to its signal handler
    sim_log = (tmp_path / "sim.log").open("w")
    sim = subprocess.Popen(
        [sys.executable, "-m", "exporter.cli", "simulate", "--config", str(tmp_path / "sim.toml")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=sim_log,
        text=True,
    )
    run = None
    try:
        assert sim.stdout is not None
        line = json.loads(sim.stdout.readline())
        info_url = line["info"]
        assert json.loads(fetch(info_url))["urls"] == line["urls"]
        wanted = set(line["vins"]["smart_eu"]) | set(line["vins"]["smartcar"])
        port = free_port()
        db = tmp_path / "h.db"
        (tmp_path / "run.toml").write_text(RUN_CONFIG.format(port=port, db=db, url=""))
        run = subprocess.Popen(
            [
                *(sys.executable, "-m", "exporter.cli", "run"),
                *("--config", str(tmp_path / "run.toml"), "--simulator-url", info_url),
            ],
            cwd=ROOT,
            env=env,
            stdout=(tmp_path / "run.log").open("w"),
            stderr=subprocess.STDOUT,
            text=True,
        )
        body, vins = "", set()
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not wanted <= vins:
            time.sleep(0.5)
            try:
                body = fetch(f"http://127.0.0.1:{port}/metrics")
            except OSError:
                continue
            vins = _soc_vins(body)
        assert wanted <= vins, body[-2000:]
        assert "carmetrics_reports_refused_total{" not in body  # none judged from the future
    finally:
        if run is not None:
            run.send_signal(signal.SIGTERM)
            run.wait(timeout=60)
        sim.send_signal(signal.SIGINT)
        sim.wait(timeout=60)
        sim_log.close()
    out = (tmp_path / "run.log").read_text()
    assert run.returncode == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    # the history is in the simulator's time, which runs far ahead of the wall clock
    newest = sqlite3.connect(db).execute("SELECT max(ts) FROM samples").fetchone()[0]
    assert newest is not None and newest > time.time() + 300


async def test_the_exporter_follows_the_simulators_clock(tmp_path: Path) -> None:
    from exporter.config import SimulatorConfig

    handle = await start_simulator(
        SimulatorConfig(enabled=True, smart_vehicles=("#1",)), tick_every=None
    )
    host = InfoHost(handle.info(), handle.clock)
    try:
        url = await host.start()
        remote, now, speed = await connect(url)
        assert isinstance(handle.clock, ScaledClock)
        handle.clock.advance(3 * 86400.0)  # the simulator jumps three days ahead
        assert abs(now - handle.clock.now()) > 86400  # read before the jump
        assert speed == 60.0 and remote.link.urls["smart"] == handle.urls["smart"]
        clock = FollowedClock(now, speed)
        import aiohttp

        from exporter.remote_simulator import read_clock

        async with aiohttp.ClientSession() as session:
            clock.sync(*await read_clock(session, remote.clock_url))
        assert abs(clock.now() - handle.clock.now()) < 60  # within a real second at 60x
        # and from a file holding the line (what a proxy setup gives)
        line = tmp_path / "sim.json"
        line.write_text(json.dumps(host.info) + "\n")
        again, _, _ = await connect(str(line))
        assert again.link.logins == remote.link.logins
    finally:
        await host.close()
        await handle.close()


@pytest.mark.parametrize("what", ["nothing there", "not the line"])
async def test_an_unusable_simulator_url_is_one_config_error(tmp_path: Path, what: str) -> None:
    if what == "nothing there":
        url = f"http://127.0.0.1:{free_port()}/info"
    else:
        (tmp_path / "x.json").write_text('{"hello": 1}\n')
        url = str(tmp_path / "x.json")
    with pytest.raises(ConfigError) as err:
        await connect(url)
    assert str(err.value).startswith("simulator.url = ") and "\n" not in str(err.value)


def test_the_info_url_is_what_simulate_prints(tmp_path: Path) -> None:
    # the documented pairing: the line's "info" answers the same line, "clock" a clock reading
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter.cli", "simulate"],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("CARMETRICS_")},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())
        with urllib.request.urlopen(line["clock"], timeout=5) as r:
            reading = json.loads(r.read())
        assert set(reading) == {"now", "speed"} and reading["speed"] > 0
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_simulate_stops_on_a_signal_even_if_started_with_sigint_ignored(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """``docker stop`` sends SIGTERM; a parent that ignores SIGINT passes that on to its children,
    where Python then raises no KeyboardInterrupt: both must still end the simulator cleanly."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter.cli", "simulate"],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("CARMETRICS_")},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["info"]
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
