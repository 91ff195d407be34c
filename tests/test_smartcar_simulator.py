"""The Smartcar simulator, checked over HTTP and against the official ``smartcar`` SDK.

The SDK is the fidelity oracle: pointed at the simulator, it must run its Connect URL, code
exchange, refresh, vehicle reads, batch and commands unchanged, and parse every error body into the
same type/code the reference documents. Expected values come from the shared vehicle model,
converted here with textbook factors, never from the simulator's own rendering code.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import smartcar
import smartcar.config
from smartcar.exception import SmartcarException

from exporter.clock import ManualClock
from exporter.simulator.fleet import Fleet
from exporter.simulator.smartcar import catalog
from exporter.simulator.smartcar.errors import ApiFault
from exporter.simulator.smartcar.fleet_adapter import DemoApp, demo_cloud
from exporter.simulator.smartcar.headless import consent
from exporter.simulator.smartcar.server import SmartcarSimulator
from exporter.simulator.smartcar.state import SmartcarCloud

REDIRECT = "http://127.0.0.1:9/callback"
DAY = 86400.0
ALL_READ = (
    "required:read_vin read_vehicle_info read_battery read_charge read_odometer read_location "
    "read_security read_tires control_security control_charge"
)


@dataclass
class Env:
    clock: ManualClock
    fleet: Fleet
    cloud: SmartcarCloud
    creds: DemoApp
    sim: SmartcarSimulator
    http: aiohttp.ClientSession

    @property
    def urls(self) -> dict[str, str]:
        return self.sim.urls

    def authorize(self, scope: str = ALL_READ, **extra: str) -> str:
        q = {
            "response_type": "code",
            "client_id": self.creds.client_id,
            "redirect_uri": REDIRECT,
            "scope": scope,
            "state": "s1",
            "mode": "simulated",
            **extra,
        }
        from urllib.parse import urlencode

        return f"{self.urls['connect']}/oauth/authorize?{urlencode(q)}"

    async def code(self, email: str | None = None, **extra: str) -> str:
        loc = await consent(self.http, self.authorize(**extra), email=email)
        return parse_qs(urlsplit(loc).query)["code"][0]

    async def token_call(self, form: dict[str, str], secret: str | None = None) -> tuple[int, Any]:
        basic = base64.b64encode(
            f"{self.creds.client_id}:{secret or self.creds.client_secret}".encode()
        ).decode()
        async with self.http.post(
            f"{self.urls['auth']}/oauth/token",
            data=form,
            headers={"Authorization": f"Basic {basic}"},
        ) as r:
            return r.status, await r.json()

    async def tokens(self, email: str | None = None, **extra: str) -> dict[str, Any]:
        code = await self.code(email, **extra)
        status, body = await self.token_call(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
        )
        assert status == 200, body
        return body

    async def api(
        self, method: str, path: str, token: str, **kw: Any
    ) -> tuple[int, Any, dict[str, str]]:
        headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
        async with self.http.request(
            method, f"{self.urls['api']}/v2.0{path}", headers=headers, **kw
        ) as r:
            return r.status, await r.json(), dict(r.headers)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    clock = ManualClock()
    fleet = Fleet(["Tesla Model 3", "Volkswagen ID.4"], seed=3, clock=clock)
    cloud, creds = demo_cloud(fleet, clock, redirect_uris=(REDIRECT,))
    sim = SmartcarSimulator(cloud)
    await sim.start()
    async with aiohttp.ClientSession() as http:
        yield Env(clock, fleet, cloud, creds, sim, http)
    await sim.stop()


@pytest.fixture
def sdk(env: Env) -> Iterator[smartcar.AuthClient]:
    saved = (
        smartcar.config.API_ORIGIN,
        smartcar.config.AUTH_ORIGIN,
        smartcar.config.CONNECT_ORIGIN,
    )
    smartcar.config.API_ORIGIN = env.urls["api"]
    smartcar.config.AUTH_ORIGIN = env.urls["auth"] + "/oauth/token"
    smartcar.config.CONNECT_ORIGIN = env.urls["connect"]
    yield smartcar.AuthClient(
        env.creds.client_id, env.creds.client_secret, REDIRECT, mode="simulated"
    )
    smartcar.config.API_ORIGIN, smartcar.config.AUTH_ORIGIN, smartcar.config.CONNECT_ORIGIN = saved


# --- the official SDK as oracle ------------------------------------------------------------------


async def test_sdk_connect_exchange_and_reads_agree_with_the_vehicle_model(
    env: Env, sdk: smartcar.AuthClient
) -> None:
    scope = [*ALL_READ.replace("required:", "").split(), "read_fuel"]
    url = sdk.get_auth_url(scope, {"state": "abc"})
    loc = await consent(env.http, url)
    q = parse_qs(urlsplit(loc).query)
    assert loc.startswith(REDIRECT) and q["state"] == ["abc"]
    access = await asyncio.to_thread(sdk.exchange_code, q["code"][0])
    assert access.expires_in == 7200
    vehicles = await asyncio.to_thread(smartcar.get_vehicles, access.access_token)
    assert vehicles.paging.count == 2
    by_vin = {}
    for vid in vehicles.vehicles:
        v = smartcar.Vehicle(vid, access.access_token)
        by_vin[(await asyncio.to_thread(v.vin)).vin] = v
    assert set(by_vin) == set(env.fleet.vins_for("smartcar"))
    vin = env.fleet.vins_for("smartcar")[0]
    v = by_vin[vin]
    truth = env.fleet.state(vin)
    attrs = await asyncio.to_thread(v.attributes)
    assert (attrs.make, attrs.model, attrs.year) == ("TESLA", "Model 3", 2024)
    odo = await asyncio.to_thread(v.odometer)
    assert odo.distance == pytest.approx(truth.odometer_km, abs=0.01)
    assert odo.meta.unit_system == "metric"
    age = datetime.fromisoformat(odo.meta.data_age.replace("Z", "+00:00"))
    assert abs(age.timestamp() - truth.report_time) < 1
    bat = await asyncio.to_thread(v.battery)
    assert bat.percent_remaining == pytest.approx(truth.soc / 100, abs=1e-3)
    tires = await asyncio.to_thread(v.tire_pressure)
    assert tires.front_left == pytest.approx(truth.tyre_kpa[0], abs=0.06)
    lock = await asyncio.to_thread(v.lock_status)
    assert lock.is_locked is truth.locked
    # (the SDK's set_unit_system always raises; the constructor option works)
    vi = smartcar.Vehicle(v.vehicle_id, access.access_token, {"unit_system": "imperial"})
    odo_mi = await asyncio.to_thread(vi.odometer)
    assert odo_mi.distance == pytest.approx(truth.odometer_km / 1.609344, abs=0.01)
    assert odo_mi.meta.unit_system == "imperial"
    tires_psi = await asyncio.to_thread(vi.tire_pressure)
    assert tires_psi.front_left == pytest.approx(truth.tyre_kpa[0] * 0.145038, abs=0.06)
    batch = await asyncio.to_thread(v.batch, ["/odometer", "/battery", "/fuel"])
    assert batch.odometer().distance == pytest.approx(truth.odometer_km, abs=0.01)
    with pytest.raises(SmartcarException) as exc:
        batch.fuel()  # a BEV: this item fails alone
    assert (exc.value.type, exc.value.code) == ("COMPATIBILITY", "VEHICLE_NOT_CAPABLE")
    assert exc.value.status_code == 501


async def test_sdk_commands_act_on_the_shared_vehicle_model(
    env: Env, sdk: smartcar.AuthClient
) -> None:
    tok = await env.tokens()
    vin = env.fleet.vins_for("smartcar")[0]
    vid = env.cloud.vehicle_id(env.creds.client_id, vin)
    v = smartcar.Vehicle(vid, tok["access_token"])
    assert env.fleet.state(vin).locked
    res = await asyncio.to_thread(v.unlock)
    assert res.status == "success"
    env.clock.advance(60)
    assert not env.fleet.state(vin).locked
    await asyncio.to_thread(v.lock)
    env.clock.advance(60)
    assert env.fleet.state(vin).locked
    res = await asyncio.to_thread(v.set_charge_limit, "0.6")  # the node SDK sends a string too
    assert res.status == "success"
    env.clock.advance(60)
    assert env.fleet.state(vin).charge_limit == pytest.approx(60)
    state = env.fleet.state(vin)
    if not state.plugged:
        with pytest.raises(SmartcarException) as exc:
            await asyncio.to_thread(v.start_charge)
        assert exc.value.code == "CHARGING_PLUG_NOT_CONNECTED" and exc.value.status_code == 409
    with pytest.raises(SmartcarException) as exc:
        await asyncio.to_thread(v.set_charge_limit, 0.3)
    assert exc.value.type == "VALIDATION"


async def test_sdk_refresh_rotation_and_grace(env: Env, sdk: smartcar.AuthClient) -> None:
    tok = await env.tokens()
    first = await asyncio.to_thread(sdk.exchange_refresh_token, tok["refresh_token"])
    assert first.refresh_token != tok["refresh_token"]
    env.clock.advance(30)  # inside the one-minute grace: the old refresh token still works
    again = await asyncio.to_thread(sdk.exchange_refresh_token, tok["refresh_token"])
    assert again.access_token not in (first.access_token, tok["access_token"])
    env.clock.advance(31)
    with pytest.raises(SmartcarException) as exc:
        await asyncio.to_thread(sdk.exchange_refresh_token, tok["refresh_token"])
    assert exc.value.type == "invalid_grant"
    # the old access token lives until its own expiry; the new pair works
    status, _, _ = await env.api("GET", "/user", tok["access_token"])
    assert status == 200
    newer = await asyncio.to_thread(sdk.exchange_refresh_token, first.refresh_token)
    assert newer.access_token


async def test_sdk_parses_simulated_error_vins(env: Env, sdk: smartcar.AuthClient) -> None:
    for email, (type_, code) in [
        ("VEHICLE_STATE.ASLEEP@smartcar.com", ("VEHICLE_STATE", "ASLEEP")),
        (
            "CONNECTED_SERVICES_ACCOUNT.ACCOUNT_ISSUE@smartcar.com",
            ("CONNECTED_SERVICES_ACCOUNT", "ACCOUNT_ISSUE"),
        ),
        ("UPSTREAM.NO_RESPONSE@smartcar.com", ("UPSTREAM", "NO_RESPONSE")),
        (
            "COMPATIBILITY.VEHICLE_NOT_CAPABLE@smartcar.com",
            ("COMPATIBILITY", "VEHICLE_NOT_CAPABLE"),
        ),
    ]:
        tok = await env.tokens(email)
        vehicles = await asyncio.to_thread(smartcar.get_vehicles, tok["access_token"])
        v = smartcar.Vehicle(vehicles.vehicles[0], tok["access_token"])
        expected_vin = next(vin for vin, tc in catalog.ERROR_VINS.items() if tc == (type_, code))
        assert (await asyncio.to_thread(v.vin)).vin == expected_vin  # static paths are spared
        with pytest.raises(SmartcarException) as exc:
            await asyncio.to_thread(v.odometer)
        assert (exc.value.type, exc.value.code) == (type_, code)
        assert exc.value.request_id and exc.value.doc_url.startswith("https://smartcar.com/docs/")


async def test_authentication_failed_carries_a_reauthenticate_url(env: Env) -> None:
    tok = await env.tokens("CONNECTED_SERVICES_ACCOUNT.AUTHENTICATION_FAILED@smartcar.com")
    _, vehicles, _ = await env.api("GET", "/vehicles", tok["access_token"])
    vid = vehicles["vehicles"][0]
    status, body, _ = await env.api("GET", f"/vehicles/{vid}/odometer", tok["access_token"])
    assert status == 400 and body["resolution"]["type"] == "REAUTHENTICATE"
    url = body["resolution"]["url"]
    assert url.startswith(env.urls["connect"] + "/oauth/reauthenticate?")
    assert parse_qs(urlsplit(url).query)["vehicle_id"] == [vid]


# --- OAuth edge cases ----------------------------------------------------------------------------


async def test_code_is_single_use_expires_and_checks_the_redirect(env: Env) -> None:
    code = await env.code()
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    bad = dict(form, redirect_uri="http://127.0.0.1:9/other")
    status, body = await env.token_call(bad)
    assert status == 400 and body["error"] == "invalid_grant"
    assert "redirect_uri" in body["error_description"]
    assert (await env.token_call(form))[0] == 200
    status, body = await env.token_call(form)
    assert status == 400 and body["error"] == "invalid_grant"
    late = await env.code()
    env.clock.advance(601)
    status, body = await env.token_call(dict(form, code=late))
    assert status == 400 and body["error"] == "invalid_grant"


async def test_client_credentials_are_checked(env: Env) -> None:
    code = await env.code()
    status, body = await env.token_call(
        {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}, secret="wrong"
    )
    assert status == 401 and body["error"] == "invalid_client"
    async with env.http.post(f"{env.urls['auth']}/oauth/token", data={"grant_type": "x"}) as r:
        assert r.status == 401


async def test_access_expires_after_two_hours_and_refresh_after_sixty_days(env: Env) -> None:
    tok = await env.tokens()
    env.clock.advance(7199)
    assert (await env.api("GET", "/user", tok["access_token"]))[0] == 200
    env.clock.advance(2)
    status, body, _ = await env.api("GET", "/user", tok["access_token"])
    assert status == 401 and body["type"] == "AUTHENTICATION" and body["code"] is None
    env.clock.advance(59 * DAY)
    status, fresh = await env.token_call(
        {"grant_type": "refresh_token", "refresh_token": tok["refresh_token"]}
    )
    assert status == 200
    env.clock.advance(60 * DAY + 1)
    status, body = await env.token_call(
        {"grant_type": "refresh_token", "refresh_token": fresh["refresh_token"]}
    )
    assert status == 400 and body["error"] == "invalid_grant"


# --- Connect outcomes ----------------------------------------------------------------------------


def _error_of(location: str) -> dict[str, str]:
    q = parse_qs(urlsplit(location).query)
    return {k: v[0] for k, v in q.items()}


@pytest.mark.parametrize(
    ("email", "extra", "error"),
    [
        ("0-vehicles@smartcar.com", {}, "no_vehicles"),
        ("smartcar@invalid-subscription.com", {}, "invalid_subscription"),
        ("smartcar@vehicle-incompatible.com", {}, "vehicle_incompatible"),
        ("1HGCM82633A004352@incompatible.smartcar.com", {}, "vehicle_incompatible"),
        ("smartcar@server-error.com", {}, "server_error"),
        ("smartcar@successful-request.com", {"mode": "live"}, "configuration_error"),
        (None, {"single_select_vin": "X"}, "configuration_error"),
        (None, {"scope": "read_everything"}, "configuration_error"),
        (None, {"make": "RIVIAN"}, "no_vehicles"),
        (None, {"scope": "required:read_fuel read_vin"}, "vehicle_incompatible"),
    ],
)
async def test_every_connect_error(
    env: Env, email: str | None, extra: dict[str, str], error: str
) -> None:
    loc = await consent(env.http, env.authorize(**extra), email=email)
    q = _error_of(loc)
    assert loc.startswith(REDIRECT)
    assert q["error"] == error and q["state"] == "s1" and q["error_description"]
    if error == "vehicle_incompatible" and email and "@smartcar.com" not in email:
        assert q["vin"] and q["make"] and q["model"] and q["year"]
    if error == "configuration_error":
        assert q["status_code"] == "400" and q["error_message"]


async def test_deny_is_access_denied(env: Env) -> None:
    loc = await consent(env.http, env.authorize(), approve=False)
    assert _error_of(loc)["error"] == "access_denied"


async def test_unknown_client_or_redirect_is_not_redirected(env: Env) -> None:
    for url in (
        env.authorize().replace(env.creds.client_id, "nobody"),
        env.authorize().replace("127.0.0.1%3A9", "evil.example"),
    ):
        with pytest.raises(ValueError, match="400"):
            await consent(env.http, url)


async def test_test_logins_pick_vehicles(env: Env) -> None:
    tok = await env.tokens("3-vehicles@smartcar.com")
    _, body, _ = await env.api("GET", "/vehicles?limit=2", tok["access_token"])
    assert body["paging"]["count"] == 3 and len(body["vehicles"]) == 2
    tok = await env.tokens("0SCTEST0000000042@bev.smartcar.com")
    _, body, _ = await env.api("GET", "/vehicles", tok["access_token"])
    vid = body["vehicles"][0]
    _, vin, _ = await env.api("GET", f"/vehicles/{vid}/vin", tok["access_token"])
    assert vin["vin"] == "0SCTEST0000000042"
    single = await env.tokens(None, single_select="true")
    _, body, _ = await env.api("GET", "/vehicles", single["access_token"])
    assert body["paging"]["count"] == 1


# --- limits and errors ---------------------------------------------------------------------------


async def test_app_token_bucket_120_then_one_per_30_s(env: Env) -> None:
    tok = await env.tokens()
    statuses = [(await env.api("GET", "/user", tok["access_token"]))[0] for _ in range(121)]
    assert statuses[:120] == [200] * 120
    status, body, headers = await env.api("GET", "/user", tok["access_token"])
    assert status == 429 and (body["type"], body["code"]) == ("RATE_LIMIT", "SMARTCAR_API")
    assert "Retry-After" not in headers
    env.clock.advance(30)
    assert (await env.api("GET", "/user", tok["access_token"]))[0] == 200
    assert (await env.api("GET", "/user", tok["access_token"]))[0] == 429


async def test_vehicle_throttle_sends_retry_after(env: Env) -> None:
    tok = await env.tokens()
    vid = env.cloud.vehicle_id(env.creds.client_id, env.fleet.vins_for("smartcar")[0])
    for _ in range(30):
        assert (await env.api("GET", f"/vehicles/{vid}/odometer", tok["access_token"]))[0] == 200
    status, body, headers = await env.api("GET", f"/vehicles/{vid}/odometer", tok["access_token"])
    assert status == 429 and body["code"] == "VEHICLE"
    wait = int(headers["Retry-After"])
    assert 1 <= wait <= 3600
    env.clock.advance(wait)
    assert (await env.api("GET", f"/vehicles/{vid}/odometer", tok["access_token"]))[0] == 200


async def test_monthly_plan_counts_every_batch_path_then_430(env: Env) -> None:
    env.cloud.apps[env.creds.client_id].requests_per_vehicle_month = 10
    tok = await env.tokens()
    vid = env.cloud.vehicle_id(env.creds.client_id, env.fleet.vins_for("smartcar")[0])
    paths = {"requests": [{"path": p} for p in ("/odometer", "/battery", "/charge", "/security")]}
    assert (await env.api("POST", f"/vehicles/{vid}/batch", tok["access_token"], json=paths))[
        0
    ] == 200
    assert (await env.api("POST", f"/vehicles/{vid}/batch", tok["access_token"], json=paths))[
        0
    ] == 200
    status, body, _ = await env.api(
        "POST", f"/vehicles/{vid}/batch", tok["access_token"], json=paths
    )
    assert status == 430 and (body["type"], body["code"]) == ("BILLING", "VEHICLE_REQUEST_LIMIT")
    # two calls are left this month, and a new month starts from zero
    assert (await env.api("GET", f"/vehicles/{vid}/odometer", tok["access_token"]))[0] == 200
    env.clock.set(1_769_904_000.0 + 1)  # 2026-02-01T00:00:01Z
    fresh = await env.token_call(
        {"grant_type": "refresh_token", "refresh_token": tok["refresh_token"]}
    )
    token = fresh[1]["access_token"]
    assert (await env.api("POST", f"/vehicles/{vid}/batch", token, json=paths))[0] == 200


async def test_scripted_faults_and_batch_validation(env: Env) -> None:
    tok = await env.tokens()
    vin = env.fleet.vins_for("smartcar")[0]
    vid = env.cloud.vehicle_id(env.creds.client_id, vin)
    env.cloud.inject(vin, ApiFault("RATE_LIMIT", "VEHICLE", retry_after=42))
    status, _, headers = await env.api("GET", f"/vehicles/{vid}/odometer", tok["access_token"])
    assert status == 429 and headers["Retry-After"] == "42"
    env.cloud.inject(vin, ApiFault("VEHICLE_STATE", "ASLEEP"))
    paths = {"requests": [{"path": "/vin"}, {"path": "/odometer"}]}
    status, body, _ = await env.api(
        "POST", f"/vehicles/{vid}/batch", tok["access_token"], json=paths
    )
    items = {i["path"]: i for i in body["responses"]}
    assert status == 200 and items["/vin"]["code"] == 200 and items["/odometer"]["code"] == 409
    assert "headers" not in items["/odometer"]
    status, body, _ = await env.api("POST", f"/vehicles/{vid}/batch", tok["access_token"], json={})
    assert status == 400 and body["detail"][0]["field"] == ["requests"]
    status, body, _ = await env.api("GET", f"/vehicles/{vid}/odometer", "not-a-token")
    assert status == 401
