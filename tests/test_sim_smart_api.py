"""Vehicle endpoints of the simulated smart cloud: shapes, selection rules, hosts, commands."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from exporter.clock import ManualClock
from exporter.simulator.smart import SmartCloudConfig
from tests.test_sim_support import SignedClient, command_body, logged_in, running_sim

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "smart"


def _fixture(name: str) -> Any:
    """A recorded real reply (tests/fixtures/smart/README.md)."""
    return json.loads((FIXTURES / name).read_text())


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


def _by_series(items: list[dict[str, Any]], prefix: str) -> str:
    return next(i["vin"] for i in items if i["seriesCodeVs"].startswith(prefix))


async def test_vehicle_list_and_status_have_the_real_shapes() -> None:
    async with running_sim() as (handle, _clock, session):
        client = await logged_in(handle, session)
        listing = (await client.vehicles()).json()
        items = listing["data"]["list"]
        assert {i["seriesCodeVs"] for i in items} == {"HX11", "HC11", "HY11"}
        for item in items:
            assert not _shape_mismatches(_fixture("eu/api_v1/vehicle_list_item-hx11.json"), item)
            assert item["proprietaryPlatform"] == (1 if item["seriesCodeVs"] == "HY11" else 0)
            assert item["matCode"][:3] == item["seriesCodeVs"][:2] + "1"
        vin = _by_series(items, "HX")
        selected = (await client.select(vin)).json()
        assert (selected["code"], selected["data"], selected["success"]) == (
            "1000",
            {"result": 1},
            True,
        )
        status = (await client.status(vin)).json()
        assert status["code"] == "1000" and status["success"] is True
        for name in ("eu/api_v1/status-hx11-parked.json", "eu/api_v2/status-hy11-dc_charging.json"):
            assert not _shape_mismatches(_fixture(name)["data"], status["data"])
        soc = (await client.soc(vin)).json()
        assert not _shape_mismatches(_fixture("eu/api_v1/soc-80.json"), soc)


async def test_status_values_are_the_models_last_report() -> None:
    async with running_sim() as (handle, clock, session):
        client = await logged_in(handle, session)
        vin = handle.info()["vins"]["smart_eu"][0]
        await client.select(vin)
        clock.advance(3 * 3600)
        data = (await client.status(vin)).json()["data"]["vehicleStatus"]
        model = handle.fleet.state(vin)
        ev = data["additionalVehicleStatus"]["electricVehicleStatus"]
        maint = data["additionalVehicleStatus"]["maintenanceStatus"]
        pos = data["basicVehicleStatus"]["position"]
        assert int(data["updateTime"]) == round(model.report_time * 1000)
        assert int(ev["chargeLevel"]) == round(model.soc)
        assert float(maint["odometer"]) == math.floor(
            model.odometer_km
        )  # whole km, as real replies
        assert maint["odometer"].endswith(".000")
        if model.gps_fix:
            assert int(pos["latitude"]) / 3_600_000 == pytest.approx(model.lat, abs=1e-6)
            assert int(pos["longitude"]) / 3_600_000 == pytest.approx(model.lon, abs=1e-6)
        else:
            assert pos["latitude"] == ""
        safety = data["additionalVehicleStatus"]["drivingSafetyStatus"]
        assert safety["centralLockingStatus"] == ("2" if model.locked else "0")
        assert ev["timeToFullyCharged"] == "2047" or model.charging
        roof = data["additionalVehicleStatus"]["climateStatus"]["sunroofPos"]
        assert roof == "101"  # the #1 has no sunroof
        soc_setting = (await client.soc(vin)).json()["data"]
        assert int(soc_setting["soc"]) == round(model.charge_limit * 10)


async def test_selection_rules_and_binding_header() -> None:
    async with running_sim() as (handle, _clock, session):
        client = await logged_in(handle, session)
        items = (await client.vehicles()).json()["data"]["list"]
        one, three = _by_series(items, "HX"), _by_series(items, "HC")
        assert (await client.status(one)).code == "8006"  # nothing selected yet
        await client.select(one)
        assert (await client.status(one)).code == "1000"
        assert (await client.status(three)).code == "8006"
        assert (await client.soc(three)).code == "4038"
        bound = await client.status(three, headers={"X-Vehicle-IDENTIFIER": three})
        assert bound.code == "1000"
        # another app on the same account selects the #3: our #1 calls fail until we re-select
        handle.smart.select(handle.logins["smart_eu"]["username"], three)
        assert (await client.status(one)).code == "8006"
        lock = await client.command(one, command_body("RDL_2", {"door": "all"}))
        assert lock.code == "8160"
        await client.select(one)
        assert (await client.status(one)).code == "1000"
        listing = (await client.vehicles()).json()["data"]["list"]
        assert [i["current"] for i in listing if i["vin"] == one] == [True]
        # a VIN of another account is no relationship at all
        stranger = handle.info()["vins"]["smart_intl"][0]
        assert (await client.select(stranger)).code == "8006"


async def test_smart5_only_on_v2() -> None:
    async with running_sim() as (handle, _clock, session):
        client = await logged_in(handle, session)
        items = (await client.vehicles()).json()["data"]["list"]
        five = _by_series(items, "HY")
        assert (await client.select(five, "api_v1")).code == "8063"
        assert (await client.select(five, "api_v2")).code == "1000"
        assert (await client.status(five, "api_v1")).code == "8063"
        assert (await client.status(five, "api_v2")).code == "1000"
        body = command_body("RHL", {"rhl": "light-flash"})
        assert (await client.command(five, body, "api_v1")).code == "8060"
        assert (await client.command(five, body, "api_v2")).code == "1000"
        qrvs = await client.call(
            "GET", "api_v2", f"/geelyTCAccess/tcservices/vehicle/status/qrvs/{five}"
        )
        assert set(qrvs.json()["data"]) == {"chargeI", "chargeU"}


async def test_commands_change_the_model() -> None:
    async with running_sim() as (handle, clock, session):
        client = await logged_in(handle, session)
        vin = handle.info()["vins"]["smart_eu"][0]
        await client.select(vin)
        reply = await client.command(vin, command_body("RDU_2", {"door": "all"}))
        data = reply.json()["data"]
        assert reply.code == "1000" and data["serviceResult"]["operationResult"] == 1
        assert data["serviceId"] == "RDU_2" and data["vin"] == vin
        clock.advance(20)
        assert not handle.fleet.state(vin).locked
        status = (await client.status(vin)).json()["data"]["vehicleStatus"]
        assert (
            status["additionalVehicleStatus"]["drivingSafetyStatus"]["centralLockingStatus"] == "0"
        )

        climate = command_body("RCE_2", {"rce.conditioner": "1", "rce.temp": "23.0"})
        assert (await client.command(vin, climate)).code == "1000"
        clock.advance(20)
        assert handle.fleet.state(vin).climate_on
        limit = command_body("rcs", {"soc": "700", "operation": "4", "rcs.setting": "1"})
        assert (await client.command(vin, limit)).code == "1000"
        clock.advance(20)
        assert (await client.soc(vin)).json()["data"]["soc"] == "700"

        # rcs without its quirks is an illegal parameter
        plain = command_body("rcs", {"operation": "1", "rcs.restart": "1"})
        plain["timestamp"] = plain.pop("timeStamp")
        assert (await client.command(vin, plain)).code == "1400"
        assert (await client.command(vin, command_body("XYZ", {}))).code == "1400"

        # the car refuses to charge without a cable - after the cloud accepted the command
        state = handle.fleet.state(vin)
        if not state.plugged:
            start = command_body("rcs", {"operation": "1", "rcs.restart": "1"})
            accepted = (await client.command(vin, start)).json()["data"]["serviceResult"]
            assert accepted == {"error": None, "operationResult": 1}
            clock.advance(20)
            handle.fleet.state(vin)
            late = handle.fleet.ground_truth(vin)["commands"][-1]
            assert late["name"] == "charge_start" and late["ok"] is False
            assert "plugged" in late["reason"] and not handle.fleet.state(vin).charging


async def test_old_seed_payloads_are_refused_in_strict_mode() -> None:
    """The bodies carmetrics sent before it followed pysmarthashtag: each one a 1400 now."""
    async with running_sim() as (handle, _clock, session):
        client = await logged_in(handle, session)
        vin = handle.info()["vins"]["smart_eu"][0]
        await client.select(vin)
        old = [
            command_body("RDL_2", {}),  # lock without door=all
            command_body("RHL", {"rhl.horn": "1"}),  # horn as rhl.horn=1
            command_body("RHL", {"rhl.flash": "1"}),  # flash as rhl.flash=1
            command_body("RWS_2", {"rws.close": "1"}),  # windows as rws.close=1
            command_body("RSH", {"rsh.seat": "front-left", "rsh.level": "2"}),  # seat heating
            command_body("RCE_2", {"rce.conditioner": "1", "rce.temp": "22.0"}, duration=30),
            command_body("RCE_2", {"rce.conditioner": "1"}, "stop", duration=30),  # no rce.temp
        ]
        charging = command_body("rcs", {"operation": "1", "rcs.restart": "1"})
        del charging["operationScheduling"]["scheduledTime"]  # rcs without scheduledTime: null
        old.append(charging)
        for body in old:
            reply = await client.command(vin, body)
            assert reply.code == "1400", (body, reply.text)
            assert "Illegal parameter" in reply.json()["message"]
        # the same services in the app's format are accepted
        new = [
            command_body("RDL_2", {"door": "all"}),
            command_body("RHL", {"rhl": "horn"}),
            command_body("RWS_2", {"target": "ventilate"}, "stop"),
            command_body("RCE_2", {"rce.heat": "front-left", "rce.level": "2"}),
        ]
        for body in new:
            assert (await client.command(vin, body)).code == "1000", body


async def test_served_reports_are_counted_once_per_update_time() -> None:
    async with running_sim() as (handle, clock, session):
        client = await logged_in(handle, session)
        vin = handle.info()["vins"]["smart_eu"][0]
        await client.select(vin)
        times = set()
        for _ in range(30):
            for _ in range(2):  # a second poll of the same report does not count
                times.add((await client.status(vin)).json()["data"]["vehicleStatus"]["updateTime"])
            clock.advance(1800)
        assert handle.smart.served_count(vin) == len(times) > 3


async def test_state_tbox_ota_journal() -> None:
    async with running_sim() as (handle, clock, session):
        client: SignedClient = await logged_in(handle, session)
        vin = handle.info()["vins"]["smart_eu"][0]
        await client.select(vin)
        state = await client.call("GET", "api_v1", f"/remote-control/vehicle/status/state/{vin}")
        assert state.json()["data"]["vin"] == vin and state.json()["data"]["powerMode"] in "0123"
        tbox = await client.call("GET", "api_v1", f"/remote-control/vehicle/telematics/{vin}")
        assert tbox.json()["data"]["connectivityStatus"] == "connected"

        ota_url = f"{handle.urls['smart']['ota']}/app/info/{vin}"
        async with session.get(ota_url, headers={"access_token": client.oauth or ""}) as r:
            ota = await r.json()
        assert "code" not in ota and ota["currentVersion"].startswith("smart OS")
        async with session.get(ota_url, headers={"access_token": "nope"}) as r:
            assert r.status == 401

        clock.advance(3 * 86400)
        await client.session_post()  # the API token lives a day; the OAuth token a week
        now_ms = int(clock.now() * 1000)
        q = f"endTime={now_ms}&pageIndex=1&pageSize=20&startTime={now_ms - 14 * 86400000}"
        path = f"/geelyTCAccess/tcservices/vehicle/status/journalLogV4/{vin}"
        assert (
            await client.call("GET", "api_v1", path, q + f"&userId={client.user_id}")
        ).code == "8153"
        grant = await client.call(
            "POST",
            "api_v1",
            "/remote-control/user/authorization/insert",
            "",
            {"serviceCode": "travelLogBusiCode", "authStatus": 1, "vin": vin},
        )
        assert grant.code == "1000"
        # the grant rotates the session token, as observed on the real service
        assert (await client.call("GET", "api_v1", path, q)).code == "1402"
        await client.session_post()
        journal = (await client.call("GET", "api_v1", path, q)).json()
        trips = handle.fleet.ground_truth(vin)["trips"]
        assert journal["data"]["pagination"]["totleSize"] == len(trips) > 0
        newest = journal["data"]["list"][0]
        # string-encoded, one decimal (seed 004 "Data Types")
        assert float(newest["traveledDistance"]) == pytest.approx(
            trips[-1]["distance_km"], abs=0.05
        )


async def test_a_stale_timestamp_is_refused_with_its_own_code() -> None:
    """More than 5 minutes off the simulator's clock: 1446, not the signature's 1445."""
    async with running_sim() as (handle, clock, session):
        client = await logged_in(handle, session)
        assert (await client.vehicles()).code == "1000"
        for offset in (-301.0, 301.0):
            skewed = replace(client, clock=ManualClock(clock.now() + offset))
            reply = await skewed.vehicles()
            assert reply.code == "1446", reply.text
            assert reply.json()["message"] == "request timestamp out of range"
        assert (await replace(client, clock=ManualClock(clock.now() - 299)).vehicles()).code == (
            "1000"
        )


async def test_the_timestamp_window_is_configurable() -> None:
    options = {"smart": SmartCloudConfig(timestamp_tolerance=30.0)}
    async with running_sim(options=options) as (handle, clock, session):
        client = await logged_in(handle, session)
        assert (await replace(client, clock=ManualClock(clock.now() - 29)).vehicles()).code == (
            "1000"
        )
        assert (await replace(client, clock=ManualClock(clock.now() - 31)).vehicles()).code == (
            "1446"
        )


async def test_required_app_headers_are_checked() -> None:
    async with running_sim() as (handle, _clock, session):
        client = await logged_in(handle, session)
        for name in ("accept", "x-app-id", "x-operator-code", "x-device-identifier"):
            reply = await client.vehicles(headers={name: ""})
            assert reply.code == "1400", (name, reply.text)
            assert name in reply.json()["message"]
        wrong_region = await client.vehicles(headers={"x-operator-code": "SMART-ISRAEL"})
        assert wrong_region.code == "1400"


async def test_lenient_mode_still_takes_the_seed_dialect() -> None:
    options = {"smart": SmartCloudConfig(strict=False)}
    async with running_sim(options=options) as (handle, _clock, session):
        client = await logged_in(handle, session)
        vin = handle.info()["vins"]["smart_eu"][0]
        await client.select(vin)
        assert (await client.command(vin, command_body("RHL", {"rhl.horn": "1"}))).code == "1000"
        skewed = replace(client, clock=ManualClock(1_000_000_000.0))
        assert (await skewed.vehicles()).code == "1000"
