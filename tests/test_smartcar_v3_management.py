"""The v3 management API and the payload-4.0 webhook emitter of the simulator."""

from __future__ import annotations

import gc
import hashlib
import hmac
import json
from collections.abc import AsyncIterator

import pytest

from tests.smartcar_v3_support import V3Env, v3_env


@pytest.fixture
async def env() -> AsyncIterator[V3Env]:
    async with v3_env(retry_delays=(25.0, 50.0)) as e:
        yield e


def _sub_body(env: V3Env, vehicle_id: str) -> dict[str, object]:
    attrs = {"webhookId": env.creds.webhook_id, "userId": env.user, "vehicleId": vehicle_id}
    return {"data": {"type": "subscription", "attributes": attrs}}


async def _subscribe(env: V3Env, tok: str, vehicle_id: str) -> int:
    status, _, _ = await env.call(
        "POST", "/subscriptions", tok, host="management_api", json=_sub_body(env, vehicle_id)
    )
    await env.sim.v3_emitter.idle()
    return status


async def test_webhooks_are_listed(env: V3Env) -> None:
    tok = await env.token()
    status, body, _ = await env.call("GET", "/webhooks", tok, host="management_api")
    assert status == 200
    (hook,) = body["data"]
    assert hook["id"] == env.creds.webhook_id and hook["attributes"]["isEnabled"] is True
    status, one, _ = await env.call(
        "GET", f"/webhooks/{env.creds.webhook_id}", tok, host="management_api"
    )
    assert one["data"]["attributes"]["callbackUri"] == env.receiver.url + "/hook"
    assert (await env.call("GET", "/webhooks", None, host="management_api"))[0] == 401


async def test_subscribe_verifies_once_then_first_delivery_with_all_data(env: V3Env) -> None:
    tok = await env.token()
    first, second = env.vehicle_ids
    assert await _subscribe(env, tok, first) == 202
    assert await _subscribe(env, tok, first) == 409
    assert await _subscribe(env, tok, second) == 202
    assert len(env.receiver.events("VERIFY")) == 1  # once per webhook
    states = env.receiver.events("VEHICLE_STATE")
    assert {s["data"]["vehicle"]["id"] for s in states} == {first, second}
    hook = env.v3.webhooks[env.creds.webhook_id]
    for s in states:
        assert s["data"]["triggers"] == [{"code": "FIRST_DELIVERY"}]
        assert s["data"]["user"]["id"] == env.user
        assert s["meta"]["version"] == "4.0"
        assert s["meta"]["signalCount"] == len(hook.data) == len(s["data"]["signals"])
    # every delivery is signed over the exact bytes sent
    amt = env.creds.app.management_token.encode()
    for _path, raw, headers in env.receiver.bodies:
        doc = json.loads(raw)
        if doc["eventType"] == "VERIFY":
            assert "SC-Signature" not in headers  # as captured live (reference §4.3)
            continue
        assert headers["SC-Signature"] == hmac.new(amt, raw, hashlib.sha256).hexdigest()
    _, subs, _ = await env.call("GET", "/subscriptions", tok, host="management_api")
    assert subs["meta"]["totalCount"] == 2


async def test_a_trigger_change_delivers_again_in_both_shapes(env: V3Env) -> None:
    tok = await env.token()
    vid = env.vehicle_ids[0]
    await _subscribe(env, tok, vid)
    for shape, new_lock in (("documented", False), ("observed", True)):
        env.v3.knobs.trigger_shape = shape
        cmd = "unlock" if not new_lock else "lock"
        await env.call("POST", f"/vehicles/{vid}/commands/security/{cmd}", tok, user=env.user)
        env.clock.advance(30)
        env.fleet.tick()
        await env.sim.v3_emitter.idle()
        last = env.receiver.events("VEHICLE_STATE")[-1]
        if shape == "documented":
            codes = [t["code"] for t in last["data"]["triggers"]]
        else:
            assert "triggers" not in last["data"]
            codes = [t["signal"]["code"] for t in last["triggers"] if t["type"] == "SIGNAL_UPDATED"]
        assert "closure-islocked" in codes
        locked = next(s for s in last["data"]["signals"] if s["code"] == "closure-islocked")
        assert locked["body"] == {"value": new_lock}


async def test_vehicle_error_goes_to_the_error_callback(env: V3Env) -> None:
    tok = await env.token()
    vid = env.vehicle_ids[0]
    env.v3.webhooks[env.creds.webhook_id].error_callback_uri = env.receiver.url + "/errors"
    await _subscribe(env, tok, vid)
    env.sim.v3_emitter.vehicle_error(
        env.vin(vid), "COMPATIBILITY", "VEHICLE_NOT_CAPABLE", signals=("location-preciselocation",)
    )
    await env.sim.v3_emitter.idle()
    (err,) = env.receiver.events("VEHICLE_ERROR", path="/errors")
    assert err["data"]["errors"][0]["state"] == "ERROR"
    assert err["data"]["errors"][0]["signals"][0]["code"] == "location-preciselocation"
    assert env.receiver.events("VEHICLE_ERROR", path="/hook") == []


async def test_failed_delivery_is_retried_with_the_same_event_id(env: V3Env) -> None:
    tok = await env.token()
    env.receiver.status = 500
    status, _, _ = await env.call(
        "POST",
        "/subscriptions",
        tok,
        host="management_api",
        json=_sub_body(env, env.vehicle_ids[0]),
    )
    assert status == 202
    await env.clock.run_until(env.clock.now() + 100)
    await env.sim.v3_emitter.idle()
    attempts = env.receiver.events("VEHICLE_STATE")
    assert len(attempts) == 3  # t = 0, +25, +50
    assert len({a["eventId"] for a in attempts}) == 1
    assert len({a["meta"]["deliveryId"] for a in attempts}) == 3


async def test_unverified_webhook_gets_no_events_and_delete_unsubscribes(env: V3Env) -> None:
    tok = await env.token()
    env.receiver.answer_verify = False
    await _subscribe(env, tok, env.vehicle_ids[0])
    assert env.receiver.events("VEHICLE_STATE") == []
    _, subs, _ = await env.call("GET", "/subscriptions", tok, host="management_api")
    sid = subs["data"][0]["id"]
    assert (await env.call("DELETE", f"/subscriptions/{sid}", tok, host="management_api"))[0] == 204
    _, subs, _ = await env.call("GET", "/subscriptions", tok, host="management_api")
    assert subs["data"] == []


def _reachable(root: object, skip: tuple[object, ...]) -> list[object]:
    """Every object reachable from ``root`` without passing through ``skip``."""
    seen: set[int] = {id(s) for s in skip}
    out, stack = [], [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type):
            continue
        seen.add(id(obj))
        out.append(obj)
        stack.extend(gc.get_referents(obj))
    return out


async def test_the_emitter_keeps_no_delivered_body_and_no_state_of_deleted_subscriptions(
    env: V3Env,
) -> None:
    """A demo runs this simulator in the exporter's process for weeks: what it keeps per delivery
    must be a few fields, never the envelope (the 30-day soak grew 250 MB when it was)."""
    tok = await env.token()
    vid = env.vehicle_ids[0]
    await _subscribe(env, tok, vid)
    for cmd in ("unlock", "lock", "unlock"):
        await env.call("POST", f"/vehicles/{vid}/commands/security/{cmd}", tok, user=env.user)
        env.clock.advance(30)
        env.fleet.tick()
        await env.sim.v3_emitter.idle()
    delivered = {e["eventId"] for e in env.receiver.events("VEHICLE_STATE")}
    assert len(delivered) >= 3
    emitter = env.sim.v3_emitter
    kept = _reachable(emitter, skip=(emitter.v3, emitter._http()))
    envelopes = [o for o in kept if isinstance(o, dict) and o.get("eventId") in delivered]
    assert envelopes == []
    assert {s.event_id for s in emitter.sent} >= delivered  # the log still says what went out

    _, subs, _ = await env.call("GET", "/subscriptions", tok, host="management_api")
    sid = subs["data"][0]["id"]
    await env.call("DELETE", f"/subscriptions/{sid}", tok, host="management_api")
    await _subscribe(env, tok, env.vehicle_ids[1])
    assert sid not in emitter._last
