"""A restarted demo continues where it stopped: the embedded simulator's clock, cars, issued tokens
and Smartcar connections are saved beside the history and taken back at the next start; a bad
state file costs one warning line and a fresh simulator, never the start (issue 15)."""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from exporter.clock import ManualClock
from exporter.config import Config, SimulatorConfig, load
from exporter.runtime import Runtime
from exporter.server import make_app
from exporter.simulator.persist import state_path
from tests.test_smartcar_web import Served, free_port, until

CONFIG = """
[exporter]
port = {port}
db = "{db}"
[simulator]
enabled = true
smart_vehicles = ["#1"]
smartcar_vehicles = ["Tesla Model 3"]
[[accounts]]
name = "eu"
provider = "smart"
region = "EU"
simulator = true
[[accounts]]
name = "intl"
provider = "smart"
region = "INTL"
simulator = true
[[accounts]]
name = "sc"
provider = "smartcar"
simulator = true
"""
T0 = 1_767_225_600.0


@asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[Served]:
    """A runtime with its embedded simulator on a fresh ManualClock at T0, served on loopback."""
    port = free_port()
    cfg_path = tmp_path / "config.toml"
    cfg_path.write_text(CONFIG.format(port=port, db=tmp_path / "h.db"))
    rt = await Runtime.create(load(cfg_path, env={}), ManualClock(T0))
    server = TestServer(make_app(rt), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            s = Served(rt, f"http://127.0.0.1:{port}", http, rt.clock)  # type: ignore[arg-type]
            await until(lambda: {"eu", "intl", "sc"} <= set(rt.providers), "the providers")
            yield s
    finally:
        await server.close()  # stops the runtime: the simulator state is written


def _polled(s: Served, vins: list[str]) -> Callable[[], bool]:
    return lambda: all(s.rt.hub.latest(v) is not None for v in vins)


async def test_a_restarted_demo_continues_with_the_same_cars_tokens_and_connections(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path) as first:
        fleet = first.rt.simulator.fleet
        vins = fleet.vins
        await until(_polled(first, vins), "the first polls", tries=500)
        status, page, _ = await first.connect(email="2-vehicles@smartcar.com")
        assert status == 200 and "id='connected'" in page, page
        added = sorted(v for v in first.rt.scheduler.vins if v.startswith("0SCN002"))
        assert len(added) == 2
        smart_car = fleet.vins_for("smart")[0]
        assert fleet.apply_command(smart_car, "charge_limit", {"percent": 70}) == (
            True,
            "accepted",
        )
        first.clock.advance(2 * 86400.0)  # two simulated days pass, then the demo is stopped
        stopped_at = first.clock.now()
        truth = {v: fleet.live_state(v) for v in vins}
        issued = list(first.sim.v3.tokens) + list(first.sim.cloud.access)
        issued += [t.value for t in first.rt.simulator.smart.identity._tokens.values()]
    path = state_path(tmp_path / "h.db")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert issued and not any(value in text for value in issued)  # digests only

    async with serving(tmp_path) as again:
        fleet = again.rt.simulator.fleet
        assert again.clock.now() == stopped_at  # the clock continues
        assert fleet.vins == vins  # the same cars ...
        for vin in vins:  # ... exactly where they were, not reborn two days earlier
            live = fleet.live_state(vin)
            assert live.odometer_km == pytest.approx(truth[vin].odometer_km, abs=1e-9)
            assert live.soc == pytest.approx(truth[vin].soc, abs=1e-9)
            assert (live.lat, live.lon) == pytest.approx((truth[vin].lat, truth[vin].lon))
        assert fleet.state(smart_car).charge_limit == 70  # the command before the restart
        # the Smartcar cars connected through Connect are still there and polled, no new Connect
        await until(_polled(again, vins + added), "polls after the restart", tries=500)
        assert again.sim.cloud.token_calls == 0  # not one v2 code exchange either
        assert sorted(v for v in again.rt.scheduler.vins if v.startswith("0SCN002")) == added
        # the odometer moves on from where it stopped
        again.clock.advance(86400.0)
        later = {v: fleet.live_state(v).odometer_km for v in vins}
        assert all(later[v] >= truth[v].odometer_km for v in vins)
        assert any(later[v] > truth[v].odometer_km for v in vins)


def _sim_config(db: Path, seed: int = 42) -> Config:
    return Config(
        db=db,
        simulator=SimulatorConfig(
            enabled=True, seed=seed, smart_vehicles=("#1",), smartcar_vehicles=()
        ),
    )


async def _run_once(cfg: Config, clock: ManualClock) -> list[str]:
    rt = await Runtime.create(cfg, clock)
    await rt.start()
    try:
        vins: list[str] = rt.simulator.fleet.vins
        return vins
    finally:
        await rt.stop()


def _tampered_odometer(data: dict[str, Any]) -> None:
    car = next(iter(data["cars"].values()))
    car["odometer_km"] += 12.5


def _other_fleet(data: dict[str, Any]) -> None:
    data["recipe"]["seed"] = 7


def _bad_event(data: dict[str, Any]) -> None:
    data["events"] = [["yesterday", "x", "command"]]


def _bad_cloud(data: dict[str, Any]) -> None:
    data["clouds"]["smart"]["tokens"] = {"sha256:00": {"kind": "api_access"}}


@pytest.mark.parametrize(
    "spoil",
    [
        lambda p: p.write_bytes(b"\x00\xffnot json"),
        lambda p: p.write_text('{"format": "something-else", "version": 1}'),
        lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "version": 99})),
        _tampered_odometer,
        _other_fleet,
        _bad_event,
        _bad_cloud,
    ],
    ids=["binary", "foreign", "version", "odometer", "fleet", "event", "cloud"],
)
async def test_a_bad_state_file_is_one_warning_and_a_fresh_simulator(
    tmp_path: Path, spoil: Callable[[Any], None], caplog: pytest.LogCaptureFixture
) -> None:
    cfg = _sim_config(tmp_path / "h.db")
    clock = ManualClock(T0)
    vins = await _run_once(cfg, clock)
    path = state_path(cfg.db)
    if spoil in (_tampered_odometer, _other_fleet, _bad_event, _bad_cloud):
        data = json.loads(path.read_text())
        spoil(data)
        path.write_text(json.dumps(data))
    else:
        spoil(path)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        again = await _run_once(cfg, ManualClock(T0 + 60))
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "simulator state not used; starting a fresh simulator"
    ]
    assert str(path) in str(warnings[0].__dict__.get("file"))
    assert again == vins  # a fresh simulator of the same config: the same cars, started anew
    assert json.loads(path.read_text())["format"] == "carmetrics-simulator-state"  # rewritten


async def test_without_a_state_file_the_simulator_starts_fresh_and_saves_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = _sim_config(tmp_path / "h.db")
    with caplog.at_level(logging.WARNING):
        await _run_once(cfg, ManualClock(T0))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    saved = json.loads(state_path(cfg.db).read_text())
    assert saved["clock"] == T0 and saved["recipe"]["seed"] == 42


async def test_the_state_is_also_saved_while_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A killed process (no clean stop) still leaves a recent state behind."""
    from exporter import runtime

    monkeypatch.setattr(runtime, "SIMULATOR_SAVE_EVERY", 0.01)
    cfg = _sim_config(tmp_path / "h.db")
    clock = ManualClock(T0)
    rt = await Runtime.create(cfg, clock)
    await rt.start()
    try:
        clock.advance(3600.0)
        path = state_path(cfg.db)

        def saved_after_the_hour() -> bool:
            try:
                return bool(json.loads(path.read_text())["clock"] == T0 + 3600.0)
            except (OSError, ValueError):
                return False

        await until(saved_after_the_hour, "a save while running")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert not list(tmp_path.glob("*.tmp"))  # no temporary file left behind
    finally:
        await rt.stop()


V2_CONFIG = """
[exporter]
port = {port}
db = "{db}"
[simulator]
enabled = true
smart_vehicles = ["#1"]
smartcar_vehicles = ["Tesla Model 3"]
[[accounts]]
name = "eu"
provider = "smart"
region = "EU"
simulator = true
[[accounts]]
name = "sc"
provider = "smartcar"
api_version = 2
simulator = true
"""


@asynccontextmanager
async def serving_v2(tmp_path: Path) -> AsyncIterator[Served]:
    port = free_port()
    cfg_path = tmp_path / "config.toml"
    cfg_path.write_text(V2_CONFIG.format(port=port, db=tmp_path / "h.db"))
    rt = await Runtime.create(load(cfg_path, env={}), ManualClock(T0))
    server = TestServer(make_app(rt), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            s = Served(rt, f"http://127.0.0.1:{port}", http, rt.clock)  # type: ignore[arg-type]
            await until(lambda: {"eu", "sc"} <= set(rt.providers), "the providers")
            yield s
    finally:
        await server.close()


async def test_tokens_kept_in_the_vault_still_open_the_restarted_simulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a vault key the exporter keeps its smart session and its Smartcar v2 tokens across a
    restart; the restarted simulator knows them (by digest), so neither a new login nor a new
    Connect is needed."""
    from exporter.tokens import KEY_ENV, generate_key

    monkeypatch.setenv(KEY_ENV, generate_key())
    async with serving_v2(tmp_path) as first:
        smart_vin = first.rt.simulator.fleet.vins_for("smart")[0]
        sc_vin = first.rt.simulator.fleet.vins_for("smartcar")[0]
        status, page, _ = await first.connect()
        assert status == 200 and "id='connected'" in page, page
        await until(_polled(first, [smart_vin, sc_vin]), "the first polls", tries=500)
        assert first.rt.providers["eu"].auth.stats.full_logins == 1  # type: ignore[attr-defined]
        exchanges = first.sim.cloud.token_calls
        assert exchanges >= 1  # Connect's code exchange
    async with serving_v2(tmp_path) as again:
        await until(_polled(again, [smart_vin, sc_vin]), "polls after the restart", tries=500)
        assert again.rt.providers["eu"].auth.stats.full_logins == 0  # type: ignore[attr-defined]
        assert sc_vin in again.rt.scheduler.vins  # the Smartcar car stayed, no new Connect
        # past the v2 access token's 2 h: the stored refresh token must be accepted
        polls = again.rt.health.vehicle(sc_vin).polls
        again.clock.advance(3 * 3600.0)
        again.rt.scheduler.request_poll(sc_vin)
        await until(lambda: again.rt.health.vehicle(sc_vin).polls > polls, "a poll after 3 h")
        assert again.sim.cloud.token_calls >= 1
        assert again.rt.health.vehicle(sc_vin).consecutive_failures == 0
