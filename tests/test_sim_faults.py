"""Every fault knob of the simulator produces the documented reply, over real HTTP."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from exporter.config import SimulatorConfig
from exporter.simulator.faults import DEFAULT_MIX, FaultKind, Faults
from tests.test_sim_support import WEBVIEW_UA, SignedClient, logged_in, running_sim


async def _ready(handle, session) -> tuple[SignedClient, str]:  # type: ignore[no-untyped-def]
    client = await logged_in(handle, session)
    vin = handle.info()["vins"]["smart_eu"][0]
    assert (await client.select(vin)).code == "1000"
    return client, vin


async def test_token_expired_kills_the_token_until_renewed() -> None:
    async with running_sim() as (handle, _clock, session):
        client, vin = await _ready(handle, session)
        handle.faults.script("token_expired", endpoint="status", vin=vin)
        assert (await client.status(vin)).code == "1402"
        assert (await client.status(vin)).code == "1402"  # really dead, not a one-off reply
        assert (await client.session_post()).json()["code"] == 1000
        assert (await client.status(vin)).code == "1000"
        assert [e.kind for e in handle.faults.log] == ["token_expired"]


async def test_main_token_expired_needs_the_put_refresh() -> None:
    async with running_sim() as (handle, _clock, session):
        client, vin = await _ready(handle, session)
        handle.faults.script(FaultKind.MAIN_TOKEN_EXPIRED, endpoint="status")
        assert (await client.status(vin)).code == "1402"
        assert (await client.session_post()).json()["code"] == 1501
        # straight on the session endpoint, too
        handle.faults.script(FaultKind.MAIN_TOKEN_EXPIRED, endpoint="session")
        fresh = SignedClient(session, handle.urls["smart"], clock=handle.clock)
        login = handle.logins["smart_eu"]
        await fresh.eu_oauth(login["username"], login["password"])
        assert (await fresh.session_post()).json()["code"] == 1501


async def test_data_unavailable_once() -> None:
    async with running_sim() as (handle, _clock, session):
        client, vin = await _ready(handle, session)
        handle.faults.script("data_unavailable", 2, endpoint="status", vin=vin)
        assert [(await client.status(vin)).code for _ in range(3)] == ["8153", "8153", "1000"]
        other = handle.info()["vins"]["smart_eu"][1]
        handle.faults.script("data_unavailable", endpoint="status", vin=other)
        assert (await client.status(vin)).code == "1000"  # scoped to the other VIN


async def test_other_client_selects_a_different_car() -> None:
    async with running_sim() as (handle, _clock, session):
        client, vin = await _ready(handle, session)
        handle.faults.script("other_client_selected", endpoint="status")
        assert (await client.status(vin)).code == "8006"
        acc = handle.smart.identity.account(handle.logins["smart_eu"]["username"])
        assert acc.selected != vin
        bound = await client.status(vin, headers={"X-Vehicle-IDENTIFIER": vin})
        assert bound.code == "1000"  # the binding header is immune to other clients
        await client.select(vin)
        assert (await client.status(vin)).code == "1000"


@pytest.mark.parametrize(("kind", "status"), [("rate_limited", 429), ("forbidden", 403)])
async def test_rate_limits_carry_retry_after(kind: str, status: int) -> None:
    async with running_sim() as (handle, _clock, session):
        client, vin = await _ready(handle, session)
        handle.faults.script(kind, endpoint="status", retry_after=42)
        reply = await client.status(vin)
        assert reply.status == status and reply.headers["Retry-After"] == "42"
        if kind == "forbidden":
            assert "quota" in reply.json()["message"]
        assert (await client.status(vin)).code == "1000"


async def test_login_gateway_403_is_an_html_waf_page() -> None:
    async with running_sim() as (handle, _clock, session):
        handle.faults.script("forbidden", endpoint="login", retry_after=600)
        url = handle.urls["smart"]["awsapi"] + "/login-app/api/v1/authorize"
        async with session.get(url, headers={"user-agent": WEBVIEW_UA}, allow_redirects=False) as r:
            assert r.status == 403 and r.headers["Retry-After"] == "600"
            assert (await r.text()).lstrip().startswith("<!DOCTYPE html>")


async def test_server_error_has_an_html_body() -> None:
    async with running_sim() as (handle, _clock, session):
        client, vin = await _ready(handle, session)
        handle.faults.script("server_error", endpoint="soc", status=502)
        reply = await client.soc(vin)
        assert reply.status == 502 and "<html>" in reply.text
        with pytest.raises(json.JSONDecodeError):
            reply.json()
        handle.faults.script("server_error", endpoint="login")
        async with session.get(
            handle.urls["smart"]["awsapi"] + "/login-app/api/v1/authorize",
            headers={"user-agent": WEBVIEW_UA},
        ) as r:
            assert r.status == 503


async def test_timeout_hangs_longer_than_the_client_waits() -> None:
    async with running_sim() as (handle, _clock, session):
        client, vin = await _ready(handle, session)
        handle.faults.script("timeout", endpoint="status", hang=0.4)
        with pytest.raises(asyncio.TimeoutError):
            await client.status(vin, timeout=0.2)
        handle.faults.hang_seconds = 0.05
        handle.faults.script("timeout", endpoint="status")
        late = await client.status(vin, timeout=5)
        assert late.status == 504


async def test_malformed_json_and_garbage_fields() -> None:
    async with running_sim() as (handle, _clock, session):
        client, vin = await _ready(handle, session)
        clean = (await client.status(vin)).json()
        handle.faults.script("malformed_json", endpoint="status")
        broken = await client.status(vin)
        assert broken.status == 200 and broken.text.startswith('{"code":"1000"')
        with pytest.raises(json.JSONDecodeError):
            broken.json()

        path = "vehicleStatus.additionalVehicleStatus.electricVehicleStatus.chargeLevel"
        handle.faults.script("garbage_fields", endpoint="status", fields=(path,), value="")
        blank = (await client.status(vin)).json()
        assert (
            blank["data"]["vehicleStatus"]["additionalVehicleStatus"]["electricVehicleStatus"][
                "chargeLevel"
            ]
            == ""
        )
        handle.faults.script("garbage_fields", endpoint="status", fields=(path,), value=None)
        null = (await client.status(vin)).json()
        assert (
            null["data"]["vehicleStatus"]["additionalVehicleStatus"]["electricVehicleStatus"][
                "chargeLevel"
            ]
            is None
        )
        handle.faults.script("garbage_fields", endpoint="status")
        mixed = (await client.status(vin)).json()
        assert mixed["code"] == "1000" and mixed["data"] != clean["data"]


async def test_rates_reset_log_and_admin_api() -> None:
    async with running_sim() as (handle, _clock, session):
        client, vin = await _ready(handle, session)
        handle.faults.set_rate("data_unavailable", 1.0, endpoint="soc")
        assert {(await client.soc(vin)).code for _ in range(5)} == {"8153"}
        handle.faults.reset()
        assert (await client.soc(vin)).code == "1000"
        assert len(handle.faults.log) == 5 and not any(e.scripted for e in handle.faults.log)

        admin = handle.urls["smart"]["api_v1"] + "/_sim"
        spec = {"kind": "data_unavailable", "count": 1, "endpoint": "status", "vin": vin}
        async with session.post(admin + "/faults", json=spec) as r:
            assert r.status == 200 and (await r.json())["rules"][0]["remaining"] == 1
        assert (await client.status(vin)).code == "8153"
        async with session.get(admin + "/faults/log") as r:
            assert (await r.json())[-1]["kind"] == "data_unavailable"
        async with session.post(admin + "/faults", json={"kind": "nonsense"}) as r:
            assert r.status == 400
        async with session.post(admin + "/faults", json={"kind": "server_error", "rate": 1}) as r:
            assert r.status == 200
        async with session.post(admin + "/faults/reset") as r:
            assert (await r.json())["rules"] == []
        assert (await client.status(vin)).code == "1000"


def test_rates_are_reproducible_and_global_rate_spreads() -> None:
    def draws(seed: int) -> list[bool]:
        f = Faults(seed=seed)
        f.set_rate("server_error", 0.3)
        return [f.pick("smart", "status") is not None for _ in range(200)]

    assert draws(1) == draws(1) and draws(1) != draws(2)
    assert 30 < sum(draws(1)) < 90
    f = Faults(seed=1)
    f.set_global_rate(0.6)
    assert {r["kind"] for r in f.describe()["rules"]} == {k.value for k in DEFAULT_MIX}
    f.set_rate("server_error", 0.0)
    assert "server_error" not in {r["kind"] for r in f.describe()["rules"]}


async def test_config_fault_rate_reaches_the_cloud() -> None:
    async with running_sim(SimulatorConfig(seed=3, fault_rate=0.9)) as (handle, _clock, session):
        client = SignedClient(session, handle.urls["smart"], clock=handle.clock)
        login = handle.logins["smart_eu"]
        for _ in range(20):
            try:  # most attempts fail somewhere along the chain: that is the point
                await client.login_eu(login["username"], login["password"])
                await client.vehicles()
            except (AssertionError, KeyError, aiohttp.ContentTypeError, json.JSONDecodeError):
                pass
        assert handle.faults.log, "faults were injected"
        assert len({e.kind for e in handle.faults.log}) >= 2
