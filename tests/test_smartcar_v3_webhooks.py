"""Receiving payload-4.0 webhooks (``V3WebhookReceiver``) from the simulator's emitter, and the
v3 body parser's unit table, timestamps and range checks on crafted bodies."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from exporter.clock import ManualClock
from exporter.config import Secret
from exporter.providers.smartcar.v3_parse import convert, parse_signals, signal_values
from exporter.providers.smartcar.v3_webhooks import V3WebhookReceiver
from tests.smartcar_v3_support import V3Env, v3_env

AMT = "amt-test"


def _signed(doc: dict[str, Any], amt: str = AMT) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(doc).encode()
    return raw, {"SC-Signature": hmac.new(amt.encode(), raw, hashlib.sha256).hexdigest()}


def _state(event_id: str, oem_ms: int, soc: float, triggers: Any = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "user": {"id": "u1"},
        "vehicle": {"id": "v1", "make": "TESLA", "model": "Model 3", "year": 2024},
        "signals": [
            {
                "code": "tractionbattery-stateofcharge",
                "name": "StateOfCharge",
                "group": "TractionBattery",
                "body": {"unit": "percent", "value": soc},
                "status": {"value": "SUCCESS"},
                "meta": {"oemUpdatedAt": oem_ms, "retrievedAt": oem_ms + 5},
            },
            {
                "code": "location-preciselocation",
                "name": "PreciseLocation",
                "group": "Location",
                "status": {"value": "ERROR", "error": {"type": "PERMISSION", "code": None}},
                "meta": {},
            },
        ],
    }
    doc: dict[str, Any] = {
        "eventId": event_id,
        "eventType": "VEHICLE_STATE",
        "data": data,
        "meta": {"version": "4.0", "deliveryId": "d", "deliveredAt": oem_ms, "mode": "LIVE"},
    }
    if triggers is None:
        data["triggers"] = [{"code": "tractionbattery-stateofcharge"}]
    else:
        doc["triggers"] = triggers
    return doc


def receiver() -> V3WebhookReceiver:
    return V3WebhookReceiver(Secret(AMT), ManualClock())


def test_verify_is_answered_unsigned_but_not_when_signed_wrongly() -> None:
    r = receiver()
    raw = json.dumps({"eventType": "VERIFY", "data": {"challenge": "abc-123"}}).encode()
    out = r.handle(raw, {})
    expected = hmac.new(AMT.encode(), b"abc-123", hashlib.sha256).hexdigest()
    assert out.status == 200 and out.reply == {"challenge": expected}
    assert r.handle(raw, {"SC-Signature": "00" * 32}).status == 401
    odd = json.dumps({"eventType": "VERIFY", "data": {"challenge": '{"forged": 1}'}}).encode()
    assert r.handle(odd, {}).status == 400  # never a signing oracle


def test_signature_dedupe_and_ordering() -> None:
    r = receiver()
    raw, headers = _signed(_state("e1", 1_767_225_600_000, 70))
    assert r.handle(raw, {}).status == 401  # unsigned
    assert r.handle(raw, {"SC-Signature": "ab" * 32}).status == 401
    out = r.handle(raw, {k.lower(): v for k, v in headers.items()})
    assert out.status == 200 and out.vehicle_id == "v1" and out.user_id == "u1"
    assert out.parsed is not None and out.parsed.values["battery_soc"] == pytest.approx(0.70)
    assert out.parsed.absent["location-preciselocation"] == "ERROR:PERMISSION"
    again = r.handle(raw, headers)
    assert again.duplicate and again.parsed is None
    older_raw, older_h = _signed(_state("e0", 1_767_225_500_000, 60))  # delivered late
    older = r.handle(older_raw, older_h)
    assert older.stale == ["tractionbattery-stateofcharge"]
    assert older.parsed is not None and "battery_soc" not in older.parsed.values
    newer_raw, newer_h = _signed(_state("e2", 1_767_225_700_000, 75))
    newer = r.handle(newer_raw, newer_h)
    assert newer.parsed is not None and newer.parsed.values["battery_soc"] == pytest.approx(0.75)


def test_both_trigger_shapes() -> None:
    r = receiver()
    observed = [
        {
            "type": "SIGNAL_UPDATED",
            "signal": {"name": "StateOfCharge", "code": "tractionbattery-stateofcharge"},
        }
    ]
    for i, triggers in enumerate((None, observed, [{"type": "FIRST_DELIVERY"}])):
        raw, headers = _signed(_state(f"t{i}", 1_767_225_600_000 + i, 50, triggers))
        out = r.handle(raw, headers)
        assert out.envelope is not None
        expected = "FIRST_DELIVERY" if i == 2 else "tractionbattery-stateofcharge"
        assert out.envelope.triggers == (expected,)


@pytest.mark.parametrize(
    ("code", "body", "name", "value"),
    [
        ("odometer-traveleddistance", {"unit": "KM", "value": 12.5}, "odometer", 12_500.0),
        ("odometer-traveleddistance", {"unit": "Kilometers", "value": 1}, "odometer", 1000.0),
        ("odometer-traveleddistance", {"unit": "miles", "value": 1}, "odometer", 1609.344),
        ("odometer-traveleddistance", {"unit": "parsecs", "value": 1}, "odometer", None),
        ("motion-currentspeed", {"unit": "kph", "value": 36}, "speed", 10.0),
        ("motion-currentspeed", {"unit": "MPH", "value": 10}, "speed", 4.4704),
        ("charge-wattage", {"unit": "kW", "value": 7.4}, "charging_power", 7400.0),
        ("charge-timetocomplete", {"value": 45}, "charging_time_to_full", 2700.0),
        ("tractionbattery-stateofcharge", {"unit": "Percentage", "value": 80}, "battery_soc", 0.8),
        ("tractionbattery-stateofcharge", {"unit": "percent", "value": 180}, "battery_soc", None),
        (
            "climate-internaltemperature",
            {"unit": "Celsius", "value": 21.5},
            "cabin_temperature",
            21.5,
        ),
        (
            "climate-externaltemperature",
            {"unit": "fahrenheit", "value": 50},
            "outside_temperature",
            10.0,
        ),
        (
            "lowvoltagebattery-stateofcharge",
            {"unit": "percent", "value": 82},
            "aux_battery_soc",
            0.82,
        ),
    ],
)
def test_units_are_compared_case_insensitively(
    code: str, body: dict[str, Any], name: str, value: float | None
) -> None:
    got = signal_values(code, body).get(name)
    if value is None:
        assert got is None
    else:
        assert got == pytest.approx(value)


def test_tyres_range_checked_with_the_live_kpa_as_bar_quirk() -> None:
    body = {
        "values": [
            {"row": 0, "column": 0, "tirePressure": 2.5},  # bar
            {"row": 0, "column": 1, "tirePressure": 699.9},  # sensor fault
            {"row": 1, "column": 0, "tirePressure": 258},  # kPa labelled bar (live)
            {"row": 1, "column": 1, "tirePressure": -1},
        ],
        "rowCount": 2,
        "columnCount": 2,
        "unit": "bar",
    }
    v = signal_values("wheel-tires", body)
    assert v == {"tyre_pressure_front_left": 250_000.0, "tyre_pressure_rear_left": 258_000.0}
    assert convert(36, "PSI", "pressure") == pytest.approx(248_211.25, rel=1e-6)


def test_charge_limits_prefer_active_limit_and_status_resolves_state() -> None:
    items = [
        {
            "code": "charge-chargelimits",
            "body": {
                "values": [{"type": "global", "limit": 90}],
                "activeLimit": None,
                "unit": "percent",
            },
        },
        {"code": "charge-detailedchargingstatus", "body": {"value": "FULLY_CHARGED"}},
        {"code": "charge-ischargingcableconnected", "body": {"value": True}},
        {"code": "charge-timetocomplete", "status": {"value": "UNAVAILABLE"}},
    ]
    p = parse_signals(items)
    assert p.values["charge_limit"] == pytest.approx(0.9)
    assert p.values["charging_state"] == "complete"
    assert p.absent == {"charge-timetocomplete": "UNAVAILABLE"}


# --- against the simulator's emitter -------------------------------------------------------------


@pytest.fixture
async def env() -> AsyncIterator[V3Env]:
    async with v3_env() as e:
        yield e


async def test_the_simulators_deliveries_are_accepted(env: V3Env) -> None:
    rec = V3WebhookReceiver(Secret(env.creds.app.management_token), env.clock)
    outcomes = []

    async def hook(request: web.Request) -> web.Response:
        out = rec.handle(await request.read(), request.headers)
        outcomes.append(out)
        return web.json_response(out.reply) if out.reply else web.Response(status=out.status)

    app = web.Application()
    app.router.add_post("/cb", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        env.v3.webhooks[
            env.creds.webhook_id
        ].callback_uri = f"http://127.0.0.1:{runner.addresses[0][1]}/cb"
        vid = env.vehicle_ids[0]
        env.v3.subscribe(env.creds.webhook_id, env.user, env.vin(vid))
        await env.sim.v3_emitter.idle()
        assert env.v3.webhooks[env.creds.webhook_id].verified
        state = [o for o in outcomes if o.parsed is not None]
        assert len(state) == 1 and state[0].envelope is not None
        assert state[0].envelope.triggers == ("FIRST_DELIVERY",)
        s = env.fleet.state(env.vin(vid))
        assert state[0].parsed is not None
        assert state[0].parsed.values["odometer"] == pytest.approx(s.odometer_km * 1000, abs=60)
        assert state[0].vehicle_id == vid and state[0].user_id == env.user
    finally:
        await runner.cleanup()
