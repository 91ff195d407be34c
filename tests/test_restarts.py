"""Restarts as a newcomer meets them: a restarted demo continues rather than replaying weeks into
the history, and the command cooldown protects the car in wall time (issue 15)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from exporter.clock import ScaledClock
from exporter.config import Config, SimulatorConfig
from exporter.history import History
from exporter.runtime import Runtime
from exporter.server import make_app
from exporter.snapshot import Snapshot
from tests.test_commands_service import AUTH, VIN, FakeCloud, _config

T0 = 1_767_225_600.0


def _snap(t: float, vin: str = VIN) -> Snapshot:
    return Snapshot.build(vin, "smart", t, t + 1, {"battery_soc": 0.5})


def test_a_demo_history_refuses_reports_older_than_its_last_row(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    first = History(db, one_timeline=True)
    first.open()
    first.write_now([_snap(T0 + 60 * i) for i in range(10)])
    first.close()
    # a fresh simulator starts its timeline again, weeks back
    again = History(db, one_timeline=True)
    again.open()
    again.write_now([_snap(T0 - 86400), _snap(T0 + 60 * 9), _snap(T0 + 3600)])
    times = [r[0] for r in again.query("SELECT ts FROM samples ORDER BY ts")]
    assert times == [T0 + 60 * i for i in range(10)] + [T0 + 3600]
    assert again.skipped_older == 1  # the report at T0 + 540 is the one the file already holds
    again.close()


def test_a_resumed_demo_serving_its_last_report_again_is_no_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A demo resumed from its saved state first serves each car's last report, which the file
    already holds: a duplicate, not a report from another timeline."""
    db = tmp_path / "h.db"
    first = History(db, one_timeline=True)
    first.open()
    first.write_now([_snap(T0), _snap(T0 + 60)])
    first.close()
    again = History(db, one_timeline=True)
    again.open()
    with caplog.at_level(logging.WARNING):
        assert again.write_now([_snap(T0 + 60), _snap(T0 + 120)]) == 1
    assert again.skipped_older == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    again.close()


def test_real_cars_late_reports_are_still_stored_after_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    first = History(db)
    first.open()
    first.write_now([_snap(T0 + 600)])
    first.close()
    again = History(db)  # a webhook retried across the restart: late, but genuine
    again.open()
    assert again.write_now([_snap(T0 + 300)]) == 1
    again.close()


async def test_a_restarted_demo_continues_where_its_history_stopped(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    last = time.time() - 2 * 86400  # the demo ran until two days ago
    h = History(db)
    h.open()
    h.write_now([_snap(last - 600), _snap(last)])
    h.close()
    cfg = Config(db=db, simulator=SimulatorConfig(enabled=True, history_days=14))
    rt = await Runtime.create(cfg)
    try:
        assert rt.clock.now() >= last - 1  # not 14 days back, between the old rows
        assert rt.history.one_timeline
    finally:
        await rt.session.close()


async def test_the_command_cooldown_counts_wall_time_in_the_demo(tmp_path: Path) -> None:
    clock = ScaledClock(speed=60)
    runtime = await Runtime.create(_config(tmp_path / "c.db", cooldown=5), clock)
    async with TestClient(TestServer(make_app(runtime))) as client:
        cloud = FakeCloud(clock)  # type: ignore[arg-type]
        for info in await cloud.vehicles():
            runtime.hub.register(info)
            runtime.scheduler.add(info.vin, cloud)
        url = f"/api/v1/vehicles/{VIN}/commands"
        async with client.post(url, json={"command": "lock"}, headers=AUTH) as r:
            assert r.status == 202
        clock.advance(3600)  # an hour of demo time, a moment of the car's
        async with client.post(url, json={"command": "unlock"}, headers=AUTH) as r:
            assert r.status == 429
            assert (await r.json())["error"] == "cooldown"
