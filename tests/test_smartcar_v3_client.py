"""carmetrics' Smartcar v3 client against the v3 simulator over loopback HTTP, on a ManualClock.

Expected values come from the shared vehicle model (``Fleet.state``) with textbook factors.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from exporter.config import Secret
from exporter.providers.base import (
    AuthError,
    BadReply,
    BudgetExhausted,
    CommandRejected,
    RateLimited,
    UpstreamUnavailable,
    VehicleNotLinked,
)
from exporter.providers.smartcar.v3_client import (
    CommandOutcomeUnknown,
    SmartcarV3Client,
    SmartcarV3Error,
    V3Urls,
)
from exporter.providers.smartcar.v3_token import AppTokenSource
from exporter.signals import check_value
from exporter.simulator.smartcar.errors import ApiFault
from tests.smartcar_v3_support import V3Env, v3_env

KM = 1000.0


@pytest.fixture
async def env() -> AsyncIterator[V3Env]:
    async with v3_env() as e:
        yield e


def client(env: V3Env, secret: str | None = None, **kw: Any) -> SmartcarV3Client:
    tokens = AppTokenSource(
        env.http,
        env.urls["iam"] + "/oauth2/token",
        env.creds.app.client_id,
        Secret(secret or env.creds.app.client_secret),
        env.clock,
    )
    urls = V3Urls(
        iam=env.urls["iam"],
        vehicle_api=env.urls["vehicle_api"],
        management_api=env.urls["management_api"],
    )
    return SmartcarV3Client(env.http, urls, tokens, **{"mode": "simulated", **kw})


# --- the application token ------------------------------------------------------------------------


async def test_one_token_single_flight_renewed_before_expiry(env: V3Env) -> None:
    c = client(env)
    got = await asyncio.gather(*(c.tokens.get() for _ in range(8)))
    assert len(set(got)) == 1 and c.tokens.fetches == 1 == env.v3.token_calls
    env.clock.advance(3600 - 400)
    assert await c.tokens.get() == got[0]
    env.clock.advance(200)  # inside the 5-minute renewal window
    assert await c.tokens.get() != got[0] and c.tokens.fetches == 2


async def test_a_401_drops_the_token_and_retries_once(env: V3Env) -> None:
    c = client(env)
    vid = env.vehicle_ids[0]
    await c.vehicle(vid)
    env.v3.expire_tokens()
    attrs = await c.vehicle(vid)
    assert attrs["make"] == "TESLA" and c.tokens.fetches == 2


async def test_bad_credentials_are_an_auth_error(env: V3Env) -> None:
    with pytest.raises(AuthError, match="client credentials"):
        await client(env, secret="wrong").vehicle(env.vehicle_ids[0])


# --- connections ----------------------------------------------------------------------------------


async def test_connections_are_paged_and_revoked_ones_disappear(env: V3Env) -> None:
    app_id = env.creds.app.application_id
    other = env.cloud.user_id("second@example.com")
    env.v3.connect(
        app_id, other, [env.vin(env.vehicle_ids[1])], ["read_odometer"], mode="simulated"
    )
    live_only = client(env, mode="live")
    assert await live_only.connections() == []  # Smartcar lists live connections by default
    c = client(env, page_size=1)
    conns = await c.connections()
    assert len(conns) == 3 and c.requests == 3  # one page per connection
    assert {(x.user_id, x.vehicle_id) for x in conns} == {
        (env.user, env.vehicle_ids[0]),
        (env.user, env.vehicle_ids[1]),
        (other, env.vehicle_ids[1]),
    }
    assert {x.make for x in conns} == {"TESLA", "FORD"}
    mine = await c.connections(user_id=other)
    assert [x.permissions for x in mine] == [("read_odometer",)]
    env.v3.disconnect(mine[0].connection_id)
    assert other not in {x.user_id for x in await c.connections()}
    with pytest.raises(VehicleNotLinked):
        await c.read(other, env.vehicle_ids[1])


# --- one GET /signals per poll --------------------------------------------------------------------


async def test_a_poll_is_one_request_mapped_onto_canonical_signals(env: V3Env) -> None:
    c = client(env)
    vid = env.vehicle_ids[0]
    vin = env.vin(vid)
    await c.tokens.get()
    before = env.cloud.calls_this_month(env.creds.app.application_id, vin)
    parsed = await c.read(env.user, vid)
    assert c.requests == 1
    assert env.cloud.calls_this_month(env.creds.app.application_id, vin) == before + 1
    s = env.fleet.state(vin)
    v = parsed.values
    for name, value in v.items():
        check_value(name, value)  # every value fits the signal table
    assert v["battery_soc"] == pytest.approx(round(s.soc) / 100, abs=1e-9)  # whole percent
    assert v["odometer"] == pytest.approx(s.odometer_km * KM, abs=60)
    assert v["electric_range"] == pytest.approx(s.range_km * KM, abs=60)
    assert v["charge_limit"] == pytest.approx(s.charge_limit / 100)
    assert v["locked"] is s.locked
    assert v["door_open_front_left"] is s.door_open[0]
    assert v["door_locked_rear_right"] is s.door_locked[3]
    assert v["window_open_rear_left"] is (s.window_open[2] > 0)
    assert v["cabin_temperature"] == pytest.approx(s.cabin_temp_c, abs=0.06)
    assert v["outside_temperature"] == pytest.approx(s.outside_temp_c, abs=0.06)
    assert v["climate_active"] is s.climate_on
    assert v["tyre_pressure_front_left"] == pytest.approx(s.tyre_kpa[0] * 1000, abs=600)
    assert v["aux_battery_soc"] == pytest.approx(s.battery_12v_pct / 100, abs=0.006)
    assert v["speed"] == pytest.approx(s.speed_kmh / 3.6, abs=0.03)
    assert v["charger_connected"] is s.plugged
    assert v["charging_state"] == (
        "charging" if s.charging else "plugged" if s.plugged else "disconnected"
    )
    assert v["last_update"] == pytest.approx(s.report_time, abs=0.001)
    if s.gps_fix:
        assert v["latitude"] == pytest.approx(s.lat, abs=1e-6)
    # the BEV's combustion signals are ERRORs: absent and counted, the poll did not fail
    assert parsed.absent["internalcombustionengine-fuellevel"].startswith("ERROR:COMPATIBILITY")
    assert c.absent_total["ERROR"] >= 3


async def test_charging_values_while_charging(env: V3Env) -> None:
    c = client(env)
    vid = env.vehicle_ids[0]
    vin = env.vin(vid)
    assert env.fleet.plug_in(vin)
    env.clock.advance(120)
    s = env.fleet.state(vin)
    assert s.charging
    v = (await c.read(env.user, vid)).values
    assert v["charging_state"] == "charging" and v["charger_connected"] is True
    assert v["charging_power"] == pytest.approx(s.charge_power_kw * 1000, abs=1)
    assert v["charging_voltage_ac"] == pytest.approx(s.charge_voltage_v, abs=0.01)
    assert v["charging_current_ac"] == pytest.approx(s.charge_current_a, abs=0.06)
    assert s.time_to_full_min is not None
    assert v["charging_time_to_full"] == pytest.approx(s.time_to_full_min * 60, abs=31)
    assert v["charge_limit"] == pytest.approx(s.charge_limit / 100)


async def test_a_make_without_a_signal_still_polls(env: V3Env) -> None:
    c = client(env)
    parsed = await c.read(env.user, env.vehicle_ids[1])  # the Ford: no windows in its table
    assert "window_open_front_left" not in parsed.values
    assert parsed.absent["closure-windows"] == "ERROR:COMPATIBILITY:VEHICLE_NOT_CAPABLE"
    assert "odometer" in parsed.values


async def test_iso_timestamps_are_read_like_epoch_ms(env: V3Env) -> None:
    c = client(env)
    vid = env.vehicle_ids[0]
    epoch = (await c.read(env.user, vid)).values["last_update"]
    env.v3.knobs.iso_timestamps = True
    iso = (await c.read(env.user, vid)).values["last_update"]
    assert iso == pytest.approx(epoch, abs=1.0)  # ISO carries whole seconds


# --- errors, one per type -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (ApiFault("RATE_LIMIT", "VEHICLE", retry_after=90), RateLimited),
        (ApiFault("RATE_LIMIT", "SMARTCAR_API"), RateLimited),
        (ApiFault("BILLING", "VEHICLE_REQUEST_LIMIT"), BudgetExhausted),
        (ApiFault("SERVER", "INTERNAL"), UpstreamUnavailable),
        (ApiFault("AUTHENTICATION", "UNAUTHORIZED"), AuthError),
    ],
)
async def test_request_level_errors_map_to_provider_errors(
    env: V3Env, fault: ApiFault, expected: type[Exception]
) -> None:
    c = client(env)
    vid = env.vehicle_ids[0]
    env.cloud.inject(env.vin(vid), fault, times=2)  # a 401 is retried once
    with pytest.raises(expected) as err:
        await c.read(env.user, vid)
    if fault.retry_after:
        assert err.value.retry_after is not None and err.value.retry_after >= 90  # type: ignore[attr-defined]


async def test_vehicle_state_error_is_per_signal(env: V3Env) -> None:
    c = client(env)
    vid = env.vehicle_ids[0]
    env.cloud.inject(env.vin(vid), ApiFault("VEHICLE_STATE", "ASLEEP"))
    parsed = await c.read(env.user, vid)
    assert parsed.absent["odometer-traveleddistance"] == "ERROR:VEHICLE_STATE:ASLEEP"
    assert "odometer" not in parsed.values


async def test_real_billing_and_app_bucket(env: V3Env) -> None:
    c = client(env)
    vid = env.vehicle_ids[0]
    env.cloud.apps[env.creds.app.application_id].requests_per_vehicle_month = 1
    await c.read(env.user, vid)
    with pytest.raises(BudgetExhausted):
        await c.read(env.user, vid)


async def test_missing_user_is_our_bug_not_the_owners(env: V3Env) -> None:
    c = client(env)
    with pytest.raises(SmartcarV3Error) as err:
        await c.request("GET", f"/vehicles/{env.vehicle_ids[0]}/signals")
    assert err.value.error.code == "MISSING_PARAMETER" and err.value.error.status == 400
    with pytest.raises(BadReply):
        await c.read("", env.vehicle_ids[0])


# --- commands -------------------------------------------------------------------------------------


async def test_commands_by_path_and_verification(env: V3Env) -> None:
    c = client(env)
    vid = env.vehicle_ids[0]
    receipt = await c.command(env.user, vid, "unlock")
    assert receipt.accepted and receipt.cloud_id.startswith("exec_")
    env.clock.advance(30)
    assert await c.verify_command(env.user, vid, "unlock") is True
    assert await c.verify_command(env.user, vid, "lock") is False
    assert (await c.command(env.user, vid, "charge_limit", 65)).accepted
    env.clock.advance(30)
    assert await c.verify_command(env.user, vid, "charge_limit", 65) is True
    with pytest.raises(CommandRejected) as err:
        await c.command(env.user, vid, "charge_start")  # not plugged in: 409
    assert err.value.code == "VEHICLE_STATE:CHARGING_PLUG_NOT_CONNECTED"
    with pytest.raises(CommandRejected):
        await c.command(env.user, env.vehicle_ids[1], "charge_port_open")  # 501 on the Ford
    with pytest.raises(BadReply):
        await c.command(env.user, vid, "charge_limit", 40)  # refused before sending


async def test_slow_command_is_awaited_on_the_same_connection(env: V3Env) -> None:
    env.v3.knobs.slow_commands = 200.0
    c = client(env)
    vid = env.vehicle_ids[0]
    task = asyncio.create_task(c.command(env.user, vid, "unlock"))
    await env.clock.run_until(env.clock.now() + 201)
    receipt = await task
    assert receipt.accepted


async def test_client_timeout_is_an_unknown_outcome_never_resent(env: V3Env) -> None:
    env.v3.knobs.slow_commands = 200.0
    c = client(env, command_timeout=0.2)  # our patience ends before Smartcar's answer
    vid = env.vehicle_ids[0]
    vin = env.vin(vid)
    await c.tokens.get()
    before = env.cloud.calls_this_month(env.creds.app.application_id, vin)
    with pytest.raises(CommandOutcomeUnknown) as err:
        await c.command(env.user, vid, "unlock")
    assert err.value.reason == "timeout" and err.value.code == "unknown_outcome"
    assert env.cloud.calls_this_month(env.creds.app.application_id, vin) == before + 1
    await env.clock.run_until(env.clock.now() + 230)  # the car acts anyway
    env.v3.knobs.slow_commands = 0.0
    assert await c.verify_command(env.user, vid, "unlock") is True


# --- management -----------------------------------------------------------------------------------


async def test_subscribe_once_then_409_is_not_an_error(env: V3Env) -> None:
    c = client(env)
    (hook,) = await c.webhooks()
    vid = env.vehicle_ids[0]
    assert await c.subscribe(hook["id"], env.user, vid) is True
    assert await c.subscribe(hook["id"], env.user, vid) is False
    subs = await c.subscriptions(vid)
    assert len(subs) == 1
    await c.unsubscribe(subs[0]["id"])
    assert await c.subscriptions(vid) == []
    await env.sim.v3_emitter.idle()


async def test_the_runners_shared_faults_reach_v3_requests(env: V3Env) -> None:
    from exporter.simulator.faults import Faults

    faults = Faults(clock=env.clock, seed=1)
    env.cloud.shared_faults = faults
    c = client(env)
    vid = env.vehicle_ids[0]
    faults.script("malformed_json", cloud="smartcar", endpoint="signals")
    with pytest.raises(BadReply):
        await c.read(env.user, vid)
    faults.script("token_expired", cloud="smartcar", endpoint="signals")
    assert "odometer" in (await c.read(env.user, vid)).values  # a new token, one retry
    assert c.tokens.fetches == 2
    faults.script("garbage_fields", cloud="smartcar", endpoint="signals")
    garbled = await c.read(env.user, vid)  # garbage values: dropped or counted, never a crash
    for name, value in garbled.values.items():
        check_value(name, value)
    faults.script("rate_limited", cloud="smartcar", endpoint="signals", retry_after=77)
    with pytest.raises(RateLimited) as err:
        await c.read(env.user, vid)
    assert err.value.retry_after is not None and err.value.retry_after >= 77
