"""Fidelity oracle: the public PyPI client ``pysmarthashtag`` against the simulated smart cloud.

An independent, widely used client that was written against the real service logs in through the
whole EU chain, lists the vehicles, selects each one, reads status, SoC setting, OTA, journal and state,
and sends commands, with only its base URLs pointed at the simulator. What it reads must equal the
vehicle model's last report. Its wheel also ships anonymised real replies; our replies must have the
same keys and the same JSON types.

Pointing it at the simulator: the login/OTA/API hosts go through its ``EndpointUrls``; the per-vehicle
API host is chosen from the module constants ``API_BASE_URL``/``API_BASE_URL_V2`` imported into
``pysmarthashtag.vehicle.vehicle``, which are monkeypatched. TLS is off (``ssl_context = False``)
because the simulator speaks plain HTTP on loopback. Its request timestamps read the simulator's
ManualClock (``pysmarthashtag.api.utils.time`` is patched), as a real client's wall clock agrees
with the real cloud's: the strict simulator refuses an ``x-timestamp`` 5 minutes off.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pysmarthashtag.api.authentication as pauth
import pysmarthashtag.api.utils as putils
import pysmarthashtag.vehicle.vehicle as pvehicle
import pytest
from pysmarthashtag.account import SmartAccount
from pysmarthashtag.const import API_KEY, EndpointUrls

from exporter.clock import ManualClock
from exporter.config import SimulatorConfig
from exporter.simulator.runner import SimulatorHandle, start_simulator
from exporter.simulator.smart import render

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "smart"  # recorded real replies


@pytest.fixture
async def sim(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[SimulatorHandle, ManualClock]]:
    clock = ManualClock()
    handle = await start_simulator(SimulatorConfig(seed=21), clock, tick_every=None)
    urls = handle.urls["smart"]
    monkeypatch.setattr(pvehicle, "API_BASE_URL", urls["api_v1"])
    monkeypatch.setattr(pvehicle, "API_BASE_URL_V2", urls["api_v2"])
    monkeypatch.setattr(pauth, "_BACKOFF_REGISTRY", {})  # its login breaker is process-global
    monkeypatch.setattr(putils, "time", SimpleNamespace(time=clock.now))  # signs with sim time
    try:
        yield handle, clock
    finally:
        await handle.close()


def _account(handle: SimulatorHandle) -> SmartAccount:
    u = handle.urls["smart"]
    endpoints = EndpointUrls(
        server_url=u["awsapi"] + "/login-app/api/v1/authorize?uiLocales=de-DE",
        auth_url=f"{u['auth']}/oidc/op/v1.0/{API_KEY}/authorize/continue",
        login_url=u["auth"] + "/accounts.login",
        api_base_url=u["api_v1"],
        api_base_url_v2=u["api_v2"],
        ota_server_url=u["ota"] + "/",
        gigya_socialize_url=u["socialize"],
    )
    login = handle.logins["smart_eu"]
    account = SmartAccount(login["username"], login["password"], endpoint_urls=endpoints)
    account.config.ssl_context = False  # type: ignore[assignment]  # plain HTTP on loopback
    return account


def _check_vehicle(handle: SimulatorHandle, vin: str, car: Any) -> None:
    """What pysmarthashtag read equals the model's last report (in its units and rounding)."""
    model = handle.fleet.state(vin)
    battery = car.battery
    assert battery.remaining_battery_percent.value == round(model.soc)
    assert battery.remaining_range.value == round(model.range_km)
    assert battery.charging_target_soc.value == pytest.approx(model.charge_limit)
    assert car.odometer.value == int(model.odometer_km)
    assert car.last_update.timestamp() == pytest.approx(model.report_time)
    assert battery.is_charger_connected == model.plugged
    expected = (
        "DC_CHARGING"
        if model.charging and model.dc
        else ("CHARGING" if model.charging else "NOT_CHARGING")
    )
    assert battery.charging_status == expected
    if model.charging and not model.dc:
        assert battery.charging_power.value == pytest.approx(model.charge_power_kw * 1000, rel=1e-3)
    if model.gps_fix:
        assert car.position.latitude == round(model.lat * 3_600_000)
        assert car.position.longitude == round(model.lon * 3_600_000)
    pressures = [p.value for p in car.tires.tire_pressure]
    # pysmarthashtag lists driver, driver rear, passenger, passenger rear
    fl, fr, rl, rr = model.tyre_kpa
    assert pressures == pytest.approx([fl, rl, fr, rr], abs=1e-3)
    assert car.climate.exterior_temperature.value == pytest.approx(model.outside_temp_c, abs=1e-3)
    assert car.safety.central_locking_status == (2 if model.locked else 0)
    assert car.engine_state == ("engine_running" if model.driving else "engine_off")
    series = handle.fleet.vehicle(vin).spec.series
    assert car.data["seriesCodeVs"] == series
    host = handle.urls["smart"]["api_v2" if series.startswith("HY") else "api_v1"]
    assert car.base_url == host


async def test_pysmarthashtag_logs_in_lists_and_reads(sim) -> None:  # type: ignore[no-untyped-def]
    handle, clock = sim
    account = _account(handle)
    await account.get_vehicles()
    eu_vins = handle.info()["vins"]["smart_eu"]
    assert sorted(account.vehicles) == sorted(eu_vins)
    for vin, car in account.vehicles.items():
        _check_vehicle(handle, vin, car)
        assert car.data["ota"]["current_version"].startswith("smart OS")
        assert car.state is not None and car.state.vin == vin
    assert all(handle.smart.served_count(v) >= 1 for v in eu_vins)

    # time passes; the same client, same session ladder, reads the new reports
    charging_seen = False
    for _ in range(12):
        clock.advance(4 * 3600)
        await account.get_vehicles()
        for vin, car in account.vehicles.items():
            _check_vehicle(handle, vin, car)
            charging_seen = charging_seen or handle.fleet.state(vin).charging
    assert charging_seen, "48 simulated hours include a charging report"


async def test_pysmarthashtag_commands_move_the_model(sim) -> None:  # type: ignore[no-untyped-def]
    handle, clock = sim
    account = _account(handle)
    await account.get_vehicles()
    one = next(v for v, c in account.vehicles.items() if c.data["seriesCodeVs"] == "HX11")
    car = account.vehicles[one]
    assert await car.door_lock_control.unlock()
    clock.advance(30)
    assert not handle.fleet.state(one).locked
    assert await car.charging_control.set_charging_limit(70)
    clock.advance(30)
    assert handle.fleet.state(one).charge_limit == 70
    assert await car.climate_control.set_climate_conditioning(22.0, True)
    clock.advance(30)
    assert handle.fleet.state(one).climate_on
    assert await car.horn_light_control.flash_lights()
    await account.get_vehicles()
    assert account.vehicles[one].battery.charging_target_soc.value == 70
    assert account.vehicles[one].safety.central_locking_status == 0


def _shape_mismatches(real: Any, ours: Any, path: str = "") -> list[str]:
    """Keys the real reply has that ours lacks, and leaves whose JSON type differs."""
    out: list[str] = []
    if isinstance(real, dict):
        if not isinstance(ours, dict):
            return [f"{path}: object expected"]
        for key, value in real.items():
            if key not in ours:
                out.append(f"{path}/{key}: missing")
            else:
                out += _shape_mismatches(value, ours[key], f"{path}/{key}")
    elif real is not None and type(real) is not type(ours):
        out.append(f"{path}: {type(real).__name__} expected, got {type(ours).__name__}")
    return out


def _string_leaves(node: Any) -> tuple[int, int]:
    """(string leaves, all non-null leaves)."""
    if isinstance(node, dict):
        pairs = [_string_leaves(v) for v in node.values()]
        return sum(p[0] for p in pairs), sum(p[1] for p in pairs)
    if node is None:
        return 0, 0
    return (1 if isinstance(node, str) else 0), 1


@pytest.mark.parametrize("model", ["#1", "#3", "#5"])
def test_reply_shapes_match_the_recorded_real_replies(model: str) -> None:
    from exporter.simulator.fleet import Fleet

    clock = ManualClock()
    fleet = Fleet([model], seed=4, clock=clock)
    vin = fleet.vins[0]
    spec = fleet.vehicle(vin).spec
    for hours in (0, 9, 30, 55):  # parked, driving or charging: the shape never changes
        clock.advance(hours * 3600)
        ours = render.vehicle_status(vin, spec, fleet.state(vin))
        for name in (
            "eu/api_v1/status-hx11-parked.json",
            "eu/api_v1/status-hx11-engine_running.json",
            "eu/api_v2/status-hy11-dc_charging.json",
        ):
            real = json.loads((FIXTURES / name).read_text())["data"]
            assert _shape_mismatches(real, ours) == []
        strings, leaves = _string_leaves(ours["vehicleStatus"])
        assert strings >= leaves - 2  # only fragActive / preClimateActive are JSON booleans
        assert math.isclose(
            int(ours["vehicleStatus"]["updateTime"]) / 1000, fleet.state(vin).report_time
        )
    item = render.vehicle_list_item(vin, spec, current=True, intl=False, created_ms=0)
    assert (
        _shape_mismatches(
            json.loads((FIXTURES / "eu/api_v1/vehicle_list_item-hx11.json").read_text()), item
        )
        == []
    )
    soc = {"code": "1000", "data": render.soc_setting(fleet.state(vin), 0.0)}
    assert (
        _shape_mismatches(
            json.loads((FIXTURES / "eu/api_v1/soc-80.json").read_text()),
            {
                **soc,
                "success": True,
                "hint": None,
                "httpStatus": "OK",
                "sessionId": "x",
                "message": "m",
            },
        )
        == []
    )
    dc = json.loads((FIXTURES / "eu/api_v2/dc_charge_info-hy11.json").read_text())["data"]
    assert _shape_mismatches(dc, render.dc_charge_info(fleet.state(vin))) == []
