"""The simulator runner: hosts and ports, the cloud registry, the admin API, the ticker."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from exporter.clock import ManualClock, ScaledClock
from exporter.config import SimulatorConfig
from exporter.simulator import runner
from exporter.simulator.runner import CloudHandle, SimContext, start_simulator
from tests.test_sim_support import running_sim

SMART_HOSTS = {"awsapi", "socialize", "auth", "api_v1", "api_v2", "sg_app_api", "ota"}
STARTED: list[SimContext] = []


async def fake_cloud(ctx: SimContext) -> CloudHandle:
    """A registrable cloud for the registry test."""
    STARTED.append(ctx)

    async def close() -> None:
        STARTED.remove(ctx)

    return CloudHandle(
        "fake",
        {"api": "http://127.0.0.1:9"},
        {"fake_demo": {"username": "u"}},
        {"fake_demo": ctx.groups["smartcar"]},
        close,
    )


async def test_every_smart_host_on_its_own_port_and_info_line() -> None:
    async with running_sim() as (handle, _clock, session):
        urls = handle.urls["smart"]
        assert set(urls) == SMART_HOSTS
        ports = {u.rsplit(":", 1)[1] for u in urls.values()}
        assert len(ports) == len(SMART_HOSTS)
        assert all(u.startswith("http://127.0.0.1:") for u in urls.values())
        logins = handle.logins
        assert {"smart_eu", "smart_intl"} <= set(logins)
        assert all(
            logins[k]["username"] and logins[k]["password"] for k in ("smart_eu", "smart_intl")
        )
        info = json.loads(json.dumps(handle.info()))
        assert info["urls"]["smart"] == urls
        assert len(info["vins"]["smart_eu"]) == 3 and len(info["vins"]["smart_intl"]) == 1
        assert set(info["vins"]["smart_eu"]) | set(info["vins"]["smart_intl"]) == set(
            handle.fleet.vins_for("smart")
        )
        async with session.get(urls["api_v1"] + "/_sim/info") as r:
            assert (await r.json())["urls"] == urls
        async with session.get(urls["api_v1"] + "/no/such/path") as r:
            assert r.status == 404 and (await r.json())["code"] == "1405"
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as s, s.get(urls["api_v1"] + "/_sim/info") as r:
            pass


async def test_registry_starts_every_cloud(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(runner.CLOUDS, "fake", fake_cloud)
    cfg = SimulatorConfig(seed=5, smart_vehicles=("#1",), smartcar_vehicles=("Tesla Model 3",))
    handle = await start_simulator(cfg, ManualClock(), tick_every=None)
    try:
        assert {"smart", "smartcar", "fake"} <= set(handle.clouds)
        assert handle.urls["fake"] == {"api": "http://127.0.0.1:9"}
        sc = STARTED[0].groups["smartcar"]
        assert len(sc) == 1 and sc[0].startswith("0SC") and handle.fleet.vins_for("smartcar") == sc
        assert handle.info()["vins"]["fake_demo"] == sc
        assert handle.info()["vins"]["smart_eu"] == STARTED[0].groups["smart_eu"]
    finally:
        await handle.close()
    assert not STARTED


async def test_a_cloud_that_fails_to_start_is_an_error_not_a_skip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(ctx: SimContext) -> CloudHandle:
        raise ImportError("No module named 'tests.no_such_module'")

    monkeypatch.setitem(runner.CLOUDS, "fake", fake_cloud)
    monkeypatch.setitem(runner.CLOUDS, "broken", broken)
    cfg = SimulatorConfig(seed=5, smart_vehicles=("#1",), smartcar_vehicles=("Tesla Model 3",))
    with pytest.raises(ImportError, match="no_such_module"):
        await start_simulator(cfg, ManualClock(), tick_every=None)
    assert not STARTED  # the clouds started before the broken one were closed again


async def test_default_clock_is_scaled_and_the_demo_is_lively() -> None:
    handle = await start_simulator(SimulatorConfig(seed=1, speed=60.0), tick_every=None)
    try:
        assert isinstance(handle.clock, ScaledClock) and handle.clock.speed == 60.0
        handle.clock.advance(240)  # four simulated minutes in, something is happening
        states = [handle.fleet.live_state(v) for v in handle.fleet.vins]
        assert any(s.driving for s in states) and any(s.charging for s in states)
    finally:
        await handle.close()


async def test_admin_advance_truth_state_reports_select() -> None:
    async with running_sim() as (handle, clock, session):
        admin = handle.urls["smart"]["api_v1"] + "/_sim"
        vin = handle.info()["vins"]["smart_eu"][0]
        t0 = clock.now()
        async with session.post(admin + "/advance", json={"seconds": 2 * 86400}) as r:
            assert (await r.json())["now"] == t0 + 2 * 86400
        async with session.get(f"{admin}/ground_truth/{vin}") as r:
            truth = await r.json()
        assert truth == json.loads(json.dumps(handle.fleet.ground_truth(vin)))
        async with session.get(f"{admin}/state/{vin}") as r:
            st = await r.json()
        assert st["reported"]["report_time"] <= st["live"]["report_time"] == clock.now()
        async with session.get(f"{admin}/reports/{vin}") as r:
            assert (await r.json())["uploaded"] == handle.fleet.reports(vin)
        async with session.get(f"{admin}/state/NOPE") as r:
            assert r.status == 404
        other = handle.info()["vins"]["smart_eu"][1]
        body = {"username": handle.logins["smart_eu"]["username"], "vin": other}
        async with session.post(admin + "/select", json=body) as r:
            assert r.status == 200
        assert handle.smart.identity.account(body["username"]).selected == other
        async with session.post(admin + "/advance", json={"seconds": -1}) as r:
            assert r.status == 400
        async with session.post(admin + "/plug", json={"vin": "NOPE"}) as r:
            assert r.status == 404
        parked = next(
            v
            for v in handle.fleet.vins
            if not handle.fleet.live_state(v).plugged and not handle.fleet.live_state(v).driving
        )
        async with session.post(admin + "/plug", json={"vin": parked, "kind": "AC"}) as r:
            assert (await r.json())["ok"] is True
        clock.advance(20)
        assert handle.fleet.state(parked).plugged


async def test_background_ticker_feeds_listeners() -> None:
    clock = ManualClock()
    handle = await start_simulator(SimulatorConfig(seed=2), clock, tick_every=0.02)
    try:
        heard: list[str] = []
        handle.fleet.on_change(heard.append)
        clock.advance(86400)
        for _ in range(50):
            await asyncio.sleep(0.02)
            if heard:
                break
        assert set(heard) <= set(handle.fleet.vins) and heard
    finally:
        await handle.close()
