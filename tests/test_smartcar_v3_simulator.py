"""The v3 Smartcar simulator over HTTP: iam, Connect, connections, signals, commands, limits.

Expected values come from the shared vehicle model (``Fleet.state``) converted with textbook
factors; the reference tags of each behaviour are in the simulator's comments.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest

from exporter.simulator.smartcar.errors import ApiFault
from exporter.simulator.smartcar.headless import consent
from tests.smartcar_v3_support import REDIRECT, V3Env, v3_env

SIM = "filter[vehicle.mode]=simulated"


@pytest.fixture
async def env() -> AsyncIterator[V3Env]:
    async with v3_env() as e:
        yield e


def _err(body: dict[str, object]) -> tuple[str, str, object]:
    (item,) = body["errors"]  # type: ignore[misc]
    return item["status"], item["type"], item["code"]


# --- iam ------------------------------------------------------------------------------------------


async def test_token_form_and_json_one_hour_no_refresh(env: V3Env) -> None:
    app = env.creds.app
    creds = {
        "grant_type": "client_credentials",
        "client_id": app.client_id,
        "client_secret": app.client_secret,
    }
    for kw in ({"data": creds}, {"json": creds}):
        async with env.http.post(f"{env.urls['iam']}/oauth2/token", **kw) as r:  # type: ignore[arg-type]
            body = await r.json()
            assert r.status == 200
        assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
        assert "refresh_token" not in body


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"client_id": "x", "client_secret": "y"}, 400, "invalid_request"),
        (
            {"grant_type": "authorization_code", "client_id": "x", "client_secret": "y"},
            400,
            "invalid_request",
        ),
        ({"grant_type": "client_credentials", "client_id": "x"}, 400, "invalid_request"),
        (
            {"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"},
            401,
            "invalid_client",
        ),
    ],
)
async def test_token_errors(env: V3Env, form: dict[str, str], status: int, error: str) -> None:
    async with env.http.post(f"{env.urls['iam']}/oauth2/token", data=form) as r:
        assert r.status == status
        assert (await r.json())["error"] == error


async def test_app_token_expires_after_an_hour_and_by_knob(env: V3Env) -> None:
    vid = env.vehicle_ids[0]
    tok = await env.token()
    assert (await env.call("GET", f"/vehicles/{vid}", tok))[0] == 200
    env.clock.advance(3601)
    status, body, _ = await env.call("GET", f"/vehicles/{vid}", tok)
    assert status == 401 and _err(body) == ("401", "AUTHENTICATION", "UNAUTHORIZED")
    tok = await env.token()
    assert env.v3.expire_tokens() >= 1
    assert (await env.call("GET", f"/vehicles/{vid}", tok))[0] == 401


# --- Connect --------------------------------------------------------------------------------------


def _authorize(env: V3Env, client_id: str) -> str:
    q = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": "read_battery read_odometer",
        "state": "st8",
        "mode": "simulated",
    }
    return f"{env.urls['connect']}/oauth/authorize?{urlencode(q)}"


async def test_connect_redirects_with_user_id_and_creates_connections(env: V3Env) -> None:
    loc = await consent(env.http, _authorize(env, env.creds.app.application_id), email="a@b.c")
    q = parse_qs(urlsplit(loc).query)
    assert q["state"] == ["st8"] and "code" in q
    (user,) = q["user_id"]
    tok = await env.token()
    status, body, _ = await env.call("GET", f"/connections?filter[userId]={user}&{SIM}", tok)
    assert status == 200
    vids = {c["relationships"]["vehicle"]["data"]["id"] for c in body["data"]}
    assert vids == set(env.vehicle_ids)  # the default login owns the fleet's cars
    assert {tuple(c["attributes"]["permissions"]) for c in body["data"]} == {
        ("read_battery", "read_odometer")
    }


async def test_connect_refuses_the_api_client_id(env: V3Env) -> None:
    with pytest.raises(ValueError, match="400"):
        await consent(env.http, _authorize(env, env.creds.app.client_id))


async def test_connect_error_outcomes_stay(env: V3Env) -> None:
    url = _authorize(env, env.creds.app.application_id)
    loc = await consent(env.http, url, approve=False)
    assert parse_qs(urlsplit(loc).query)["error"] == ["access_denied"]
    loc = await consent(env.http, url, email="0-vehicles@smartcar.com")
    assert parse_qs(urlsplit(loc).query)["error"] == ["no_vehicles"]


# --- connections ----------------------------------------------------------------------------------


async def test_connections_paging_filters_and_revocation(env: V3Env) -> None:
    tok = await env.token()
    status, live, _ = await env.call("GET", "/connections", tok)
    assert status == 200 and live["data"] == []  # the default is live; the demo is simulated
    status, body, _ = await env.call("GET", f"/connections?page[size]=1&{SIM}", tok)
    assert status == 200 and body["meta"]["totalCount"] == 2 and len(body["data"]) == 1
    assert body["links"]["prev"] is None and body["links"]["next"]
    status, page2, _ = await env.call("GET", body["links"]["next"], tok)
    assert page2["meta"]["pageNumber"] == 2 and page2["links"]["next"] is None
    assert page2["data"][0]["id"] != body["data"][0]["id"]
    vid = env.vehicle_ids[1]
    _, one, _ = await env.call("GET", f"/connections?filter[vehicleId]={vid}&{SIM}", tok)
    assert [c["relationships"]["vehicle"]["data"]["id"] for c in one["data"]] == [vid]
    assert (await env.call("GET", "/connections?page[size]=101", tok))[0] == 400
    cid = one["data"][0]["id"]
    assert (await env.call("DELETE", f"/connections/{cid}", tok))[0] == 204
    _, after, _ = await env.call("GET", f"/connections?{SIM}", tok)
    assert vid not in {c["relationships"]["vehicle"]["data"]["id"] for c in after["data"]}
    status, body, _ = await env.call("GET", f"/vehicles/{vid}/signals", tok, user=env.user)
    assert status == 403 and _err(body) == ("403", "AUTHENTICATION", "ACCESS_DENIED")


# --- vehicles and signals -------------------------------------------------------------------------


async def test_vehicle_needs_no_user(env: V3Env) -> None:
    tok = await env.token()
    vid = env.vehicle_ids[0]
    status, body, _ = await env.call("GET", f"/vehicles/{vid}", tok)
    assert status == 200 and body["data"]["id"] == vid
    assert body["data"]["attributes"]["make"] == "TESLA"
    assert body["data"]["attributes"]["powertrainType"] == "BEV"
    assert (await env.call("GET", "/vehicles/nope", tok))[0] == 404


async def test_signals_require_sc_user_id_and_ownership(env: V3Env) -> None:
    tok = await env.token()
    vid = env.vehicle_ids[0]
    status, body, _ = await env.call("GET", f"/vehicles/{vid}/signals", tok)
    assert status == 400 and _err(body) == ("400", "VALIDATION", "MISSING_PARAMETER")
    assert body["errors"][0]["detail"] == "missing userId"
    status, body, _ = await env.call("GET", f"/vehicles/{vid}/signals", tok, user="someone")
    assert status == 403 and _err(body)[2] == "ACCESS_DENIED"
    status, body, _ = await env.call(
        "POST", f"/vehicles/{vid}/commands/security/lock", tok, user="someone"
    )
    assert status == 403


def _by_code(body: dict[str, object]) -> dict[str, dict[str, object]]:
    return {s["id"]: s for s in body["data"]}  # type: ignore[attr-defined, index]


async def test_signals_match_the_vehicle_model(env: V3Env) -> None:
    tok = await env.token()
    vid = env.vehicle_ids[0]
    status, body, headers = await env.call("GET", f"/vehicles/{vid}/signals", tok, user=env.user)
    assert status == 200 and "SC-Request-Id" in headers
    s = env.fleet.state(env.vin(vid))
    sig = _by_code(body)
    soc = sig["tractionbattery-stateofcharge"]["attributes"]
    assert soc["status"] == {"value": "SUCCESS"}  # type: ignore[index]
    assert soc["body"]["value"] == pytest.approx(s.soc, abs=0.06)  # type: ignore[index]
    odo = sig["odometer-traveleddistance"]["attributes"]["body"]  # type: ignore[index]
    assert odo["value"] == pytest.approx(s.odometer_km, abs=0.06)
    assert sig["odometer-traveleddistance"]["meta"]["oemUpdatedAt"] == round(  # type: ignore[index]
        s.report_time * 1000
    )
    assert body["meta"]["totalCount"] == len(body["data"])
    assert body["included"]["vehicle"]["attributes"]["make"] == "TESLA"
    doors = sig["closure-doors"]["attributes"]["body"]  # type: ignore[index]
    assert doors["rowCount"] == 2 and len(doors["values"]) == 4
    # not charging: no time to complete
    if not s.charging:
        status_ttc = sig["charge-timetocomplete"]["attributes"]["status"]  # type: ignore[index]
        assert status_ttc == {"value": "UNAVAILABLE"}
    ice = sig["internalcombustionengine-fuellevel"]["attributes"]["status"]  # type: ignore[index]
    assert ice["value"] == "ERROR" and ice["error"]["code"] == "VEHICLE_NOT_CAPABLE"


async def test_capability_table_differs_by_make(env: V3Env) -> None:
    tok = await env.token()
    tesla, ford = env.vehicle_ids
    _, t, _ = await env.call("GET", f"/vehicles/{tesla}/signals", tok, user=env.user)
    _, f, _ = await env.call("GET", f"/vehicles/{ford}/signals", tok, user=env.user)
    t_win = _by_code(t)["closure-windows"]["attributes"]["status"]  # type: ignore[index]
    f_win = _by_code(f)["closure-windows"]["attributes"]["status"]  # type: ignore[index]
    assert t_win == {"value": "SUCCESS"}
    assert f_win["value"] == "ERROR" and f_win["error"]["type"] == "COMPATIBILITY"


async def test_permissions_drive_signal_status(env: V3Env) -> None:
    loc = await consent(env.http, _authorize(env, env.creds.app.application_id), email="x@y.z")
    user = parse_qs(urlsplit(loc).query)["user_id"][0]
    tok = await env.token()
    vid = env.vehicle_ids[0]
    _, body, _ = await env.call("GET", f"/vehicles/{vid}/signals", tok, user=user)
    sig = _by_code(body)
    assert sig["odometer-traveleddistance"]["attributes"]["status"] == {"value": "SUCCESS"}  # type: ignore[index]
    loc_status = sig["location-preciselocation"]["attributes"]["status"]  # type: ignore[index]
    assert loc_status["value"] == "ERROR" and loc_status["error"]["type"] == "PERMISSION"
    assert "body" not in sig["location-preciselocation"]["attributes"]  # type: ignore[operator]


async def test_single_signal_iso_timestamps_and_unknown_code(env: V3Env) -> None:
    tok = await env.token()
    vid = env.vehicle_ids[0]
    path = f"/vehicles/{vid}/signals/odometer-traveleddistance"
    status, body, _ = await env.call("GET", path, tok, user=env.user)
    assert status == 200 and body["data"]["attributes"]["code"] == "odometer-traveleddistance"
    assert isinstance(body["data"]["meta"]["oemUpdatedAt"], int)
    env.v3.knobs.iso_timestamps = True
    _, body, _ = await env.call("GET", path, tok, user=env.user)
    assert body["data"]["meta"]["oemUpdatedAt"].endswith("Z")
    assert "ingestedAt" in body["data"]["meta"]
    status, body, _ = await env.call("GET", f"/vehicles/{vid}/signals/vin", tok, user=env.user)
    assert status == 404 and _err(body)[2] == "SIGNAL_NOT_FOUND"


async def test_empty_store_until_subscribed(env: V3Env) -> None:
    env.v3.knobs.empty_until_subscribed = True
    tok = await env.token()
    vid = env.vehicle_ids[0]
    _, body, _ = await env.call("GET", f"/vehicles/{vid}/signals", tok, user=env.user)
    assert body["data"] == [] and body["meta"]["totalCount"] == 0
    path = f"/vehicles/{vid}/signals/odometer-traveleddistance"
    assert (await env.call("GET", path, tok, user=env.user))[0] == 404
    env.v3.subscribe(env.creds.webhook_id, env.user, env.vin(vid))
    _, body, _ = await env.call("GET", f"/vehicles/{vid}/signals", tok, user=env.user)
    assert body["meta"]["totalCount"] > 20


async def test_vehicle_fault_is_per_signal_and_server_fault_is_per_request(env: V3Env) -> None:
    tok = await env.token()
    vid = env.vehicle_ids[0]
    env.cloud.inject(env.vin(vid), ApiFault("VEHICLE_STATE", "ASLEEP"))
    status, body, _ = await env.call("GET", f"/vehicles/{vid}/signals", tok, user=env.user)
    assert status == 200
    sig = _by_code(body)
    assert sig["odometer-traveleddistance"]["attributes"]["status"]["error"]["code"] == "ASLEEP"  # type: ignore[index]
    assert sig["vehicleidentification-vin"]["attributes"]["status"] == {"value": "SUCCESS"}  # type: ignore[index]
    env.cloud.inject(env.vin(vid), ApiFault("SERVER", "INTERNAL"))
    status, body, _ = await env.call("GET", f"/vehicles/{vid}/signals", tok, user=env.user)
    assert status == 500 and _err(body) == ("500", "SERVER", "INTERNAL")


# --- commands -------------------------------------------------------------------------------------


async def test_lock_unlock_by_path(env: V3Env) -> None:
    tok = await env.token()
    vid = env.vehicle_ids[0]
    vin = env.vin(vid)
    status, body, _ = await env.call(
        "POST", f"/vehicles/{vid}/commands/security/unlock", tok, user=env.user
    )
    assert status == 200 and body["data"]["type"] == "command-execution"
    assert body["data"]["attributes"]["commandType"] == "security-unlock"
    assert body["data"]["attributes"]["status"] == {"value": "SUCCESS"}
    env.clock.advance(30)
    assert env.fleet.state(vin).locked is False
    await env.call("POST", f"/vehicles/{vid}/commands/security/lock", tok, user=env.user)
    env.clock.advance(30)
    assert env.fleet.state(vin).locked is True


async def test_charge_commands_follow_the_car_state(env: V3Env) -> None:
    tok = await env.token()
    vid = env.vehicle_ids[0]
    vin = env.vin(vid)
    assert not env.fleet.state(vin).plugged
    status, body, _ = await env.call(
        "POST", f"/vehicles/{vid}/commands/charge/start", tok, user=env.user
    )
    assert status == 409 and _err(body) == ("409", "VEHICLE_STATE", "CHARGING_PLUG_NOT_CONNECTED")
    path = f"/vehicles/{vid}/commands/charge/set-limit"
    for bad in (49, 101, "80", 80.5):
        payload = {"data": {"attributes": {"percent": bad}}}
        status, body, _ = await env.call("POST", path, tok, user=env.user, json=payload)
        assert status == 400 and _err(body)[1] == "VALIDATION", bad
    payload = {"data": {"attributes": {"percent": 70}}}
    status, body, _ = await env.call("POST", path, tok, user=env.user, json=payload)
    assert status == 200 and body["data"]["attributes"]["parameters"] == {"percent": 70}
    env.clock.advance(30)
    assert env.fleet.state(vin).charge_limit == 70


async def test_charge_port_only_where_the_make_supports_it(env: V3Env) -> None:
    tok = await env.token()
    tesla, ford = env.vehicle_ids
    ok = await env.call("POST", f"/vehicles/{tesla}/commands/charge-port/open", tok, user=env.user)
    assert ok[0] == 200
    _, body, _ = await env.call(
        "GET", f"/vehicles/{tesla}/signals/charge-ischargingportflapopen", tok, user=env.user
    )
    assert body["data"]["attributes"]["body"] == {"value": True}
    status, body, _ = await env.call(
        "POST", f"/vehicles/{ford}/commands/charge-port/open", tok, user=env.user
    )
    assert status == 501 and _err(body)[2] == "VEHICLE_NOT_CAPABLE"


async def test_slow_command_answers_202_then_streams_the_body(env: V3Env) -> None:
    env.v3.knobs.slow_commands = 200.0
    tok = await env.token()
    vid = env.vehicle_ids[0]
    url = f"{env.urls['vehicle_api']}/v3/vehicles/{vid}/commands/security/unlock"
    headers = {"Authorization": f"Bearer {tok}", "sc-user-id": env.user}
    async with env.http.post(url, headers=headers) as r:
        assert r.status == 202 and "Content-Length" not in r.headers
        first = await r.content.read(1)
        assert first == b" "
        await env.clock.run_until(env.clock.now() + 201)
        rest = await r.read()
    body = json.loads(first + rest)
    assert body["data"]["attributes"]["status"] == {"value": "SUCCESS"}


# --- limits ---------------------------------------------------------------------------------------


async def test_app_bucket_120_then_two_per_minute(env: V3Env) -> None:
    tok = await env.token()
    vid = env.vehicle_ids[0]
    for _ in range(120):
        assert (await env.call("GET", f"/vehicles/{vid}", tok))[0] == 200
    status, body, headers = await env.call("GET", f"/vehicles/{vid}", tok)
    assert status == 429 and _err(body) == ("429", "RATE_LIMIT", "SMARTCAR_API")
    assert "Retry-After" not in headers
    env.clock.advance(30)
    assert (await env.call("GET", f"/vehicles/{vid}", tok))[0] == 200


async def test_vehicle_429_with_retry_after_and_430_billing(env: V3Env) -> None:
    tok = await env.token()
    vid = env.vehicle_ids[0]
    env.cloud.inject(env.vin(vid), ApiFault("RATE_LIMIT", "VEHICLE", retry_after=42))
    status, body, headers = await env.call("GET", f"/vehicles/{vid}/signals", tok, user=env.user)
    assert status == 429 and headers["Retry-After"] == "42" and _err(body)[2] == "VEHICLE"
    env.cloud.apps[env.creds.app.application_id].requests_per_vehicle_month = 2
    results = [
        (await env.call("GET", f"/vehicles/{vid}/signals", tok, user=env.user))[0] for _ in range(2)
    ]
    assert results == [200, 430]


async def test_per_signal_billing_setting(env: V3Env) -> None:
    env.v3.knobs.signals_cost = "signal"
    tok = await env.token()
    vid = env.vehicle_ids[0]
    await env.call("GET", f"/vehicles/{vid}/signals", tok, user=env.user)
    assert env.cloud.calls_this_month(env.creds.app.application_id, env.vin(vid)) > 20


# --- `carmetrics simulate`'s JSON line ------------------------------------------------------------


async def test_info_line_carries_v3_urls_and_logins() -> None:
    from exporter.config import SimulatorConfig
    from tests.test_sim_support import running_sim

    cfg = SimulatorConfig(seed=11, smartcar_vehicles=("Tesla Model 3", "Ford Mustang Mach-E"))
    async with running_sim(cfg) as (handle, _clock, session):
        info = json.loads(json.dumps(handle.info()))
        urls = info["urls"]["smartcar_v3"]
        assert set(urls) == {"iam", "vehicle_api", "management_api", "connect"}
        assert set(info["urls"]["smartcar"]) == {"connect", "auth", "api"}
        login = info["logins"]["smartcar_v3"]
        assert login["client_id"].startswith("client_")
        (user,) = login["users"]
        assert len(user["vehicle_ids"]) == 2
        form = {
            "grant_type": "client_credentials",
            "client_id": login["client_id"],
            "client_secret": login["client_secret"],
        }
        async with session.post(f"{urls['iam']}/oauth2/token", json=form) as r:
            tok = (await r.json())["access_token"]
        headers = {"Authorization": f"Bearer {tok}", "sc-user-id": user["user_id"]}
        for vid in user["vehicle_ids"]:
            url = f"{urls['vehicle_api']}/v3/vehicles/{vid}/signals"
            async with session.get(url, headers=headers) as r:
                assert r.status == 200 and (await r.json())["meta"]["totalCount"] > 20
        assert isinstance(session, aiohttp.ClientSession)


async def test_the_per_vehicle_throttle_answers_429_with_retry_after(env: V3Env) -> None:
    tok = await env.token()
    vid = env.vehicle_ids[0]
    path = f"/vehicles/{vid}/signals/odometer-traveleddistance"
    statuses = [(await env.call("GET", path, tok, user=env.user))[0] for _ in range(30)]
    assert statuses == [200] * 30  # the bucket holds 30 (30 per hour refill)
    status, body, headers = await env.call("GET", path, tok, user=env.user)
    assert status == 429 and _err(body) == ("429", "RATE_LIMIT", "VEHICLE")
    wait = int(headers["Retry-After"])
    assert 100 <= wait <= 121  # one request per 120 s
    env.clock.advance(wait - 5)
    assert (await env.call("GET", path, tok, user=env.user))[0] == 429
    env.clock.advance(5)
    assert (await env.call("GET", path, tok, user=env.user))[0] == 200
    other = env.vehicle_ids[1]  # the throttle is per vehicle
    assert (await env.call("GET", f"/vehicles/{other}/signals", tok, user=env.user))[0] == 200
