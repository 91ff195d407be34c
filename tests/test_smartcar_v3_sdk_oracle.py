"""The official ``smartcar`` SDK as the v3 oracle: ``get_vehicle``, ``Vehicle.get_signals`` and
``Vehicle.get_signal``, pointed at the simulator through the SDK's documented origin override
(env ``SMARTCAR_VEHICLE_API_V3_ORIGIN``, read by ``smartcar/config.py``).

SDK 6.19.1 sends no ``sc-user-id`` and uses whatever bearer it is given (smartcar-v3.md §1.4). In
the default (strict) mode the simulator refuses that as the live API does; with the
``legacy_tokens`` knob it serves a v2 per-vehicle token on the v3 reads, which the SDK parses.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import smartcar
import smartcar.config
import smartcar.smartcar
from smartcar.exception import SmartcarException

from exporter.simulator.smartcar.headless import consent
from tests.smartcar_v3_support import REDIRECT, V3Env, v3_env


@pytest.fixture
async def env() -> AsyncIterator[V3Env]:
    async with v3_env() as e:
        yield e


@pytest.fixture
def sdk_origin(env: V3Env, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    saved = {k: getattr(smartcar.config, k) for k in ("API_ORIGIN", "AUTH_ORIGIN")}
    monkeypatch.setenv("SMARTCAR_VEHICLE_API_V3_ORIGIN", env.urls["vehicle_api"])
    importlib.reload(smartcar.config)
    assert env.urls["vehicle_api"] == smartcar.config.VEHICLE_API_ORIGIN
    smartcar.config.API_ORIGIN = env.urls["api"]
    smartcar.config.AUTH_ORIGIN = env.urls["auth"] + "/oauth/token"
    yield
    monkeypatch.delenv("SMARTCAR_VEHICLE_API_V3_ORIGIN")
    importlib.reload(smartcar.config)
    for k, v in saved.items():
        setattr(smartcar.config, k, v)


async def test_sdk_get_vehicle_parses_with_an_app_token(env: V3Env, sdk_origin: None) -> None:
    tok = await env.token()
    vid = env.vehicle_ids[1]
    reply = await asyncio.to_thread(smartcar.smartcar.get_vehicle, tok, vid)
    attrs = reply["body"]["data"]["attributes"]
    vin = env.vin(vid)
    spec = env.fleet.vehicle(vin).spec
    assert (attrs["make"], attrs["model"], attrs["year"]) == (
        spec.make.upper(),
        spec.model,
        spec.year,
    )


async def test_strict_mode_refuses_the_sdk_like_the_live_api(env: V3Env, sdk_origin: None) -> None:
    tok = await env.token()
    vehicle = smartcar.Vehicle(env.vehicle_ids[0], tok)
    with pytest.raises(SmartcarException) as err:
        await asyncio.to_thread(vehicle.get_signals)
    # a v3 errors[] body matches neither of the SDK's parsers: SDK_ERROR with the raw body
    assert err.value.status_code == 400
    assert err.value.type == "SDK_ERROR"
    body = json.loads(err.value.message)
    assert body["errors"][0]["code"] == "MISSING_PARAMETER"


async def _legacy_token(env: V3Env) -> str:
    """A v2 per-vehicle token of the same application (Connect with the Application ID, the
    legacy client id, then the v2 code exchange), as a 2025 SDK integration holds."""
    app_id = env.creds.app.application_id
    auth = smartcar.AuthClient(
        app_id, env.cloud.apps[app_id].client_secret, REDIRECT, mode="simulated"
    )
    smartcar.config.CONNECT_ORIGIN = env.urls["connect"]
    url = auth.get_auth_url(["read_battery", "read_odometer", "read_vehicle_info"])
    loc = await consent(env.http, url)
    code = parse_qs(urlsplit(loc).query)["code"][0]
    access = await asyncio.to_thread(auth.exchange_code, code)
    return str(access.access_token)


async def test_legacy_mode_serves_the_sdk_and_it_parses(env: V3Env, sdk_origin: None) -> None:
    saved_connect = smartcar.config.CONNECT_ORIGIN
    try:
        legacy = await _legacy_token(env)
    finally:
        smartcar.config.CONNECT_ORIGIN = saved_connect
    vid = env.vehicle_ids[0]
    vehicle = smartcar.Vehicle(vid, legacy)
    with pytest.raises(SmartcarException) as err:  # strict: v3 takes app tokens only
        await asyncio.to_thread(vehicle.get_signals)
    assert err.value.status_code == 401
    env.v3.knobs.legacy_tokens = True
    reply = await asyncio.to_thread(vehicle.get_signals)
    by_code = {s["id"]: s["attributes"] for s in reply["body"]["data"]}
    s = env.fleet.state(env.vin(vid))
    soc = by_code["tractionbattery-stateofcharge"]
    assert soc["status"]["value"] == "SUCCESS"
    assert soc["body"]["value"] == pytest.approx(s.soc, abs=0.06)
    # the grant decides: location was not granted
    assert by_code["location-preciselocation"]["status"]["error"]["type"] == "PERMISSION"
    one = await asyncio.to_thread(vehicle.get_signal, "odometer-traveleddistance")
    assert one["body"]["data"]["attributes"]["body"]["value"] == pytest.approx(
        s.odometer_km, abs=0.06
    )
    assert one["headers"]["SC-Request-Id"]
    info = await asyncio.to_thread(smartcar.smartcar.get_vehicle, legacy, vid)
    assert info["body"]["data"]["id"] == vid
