"""Webhook crypto and parsing: the reference's known-answer vectors, agreement with the official
SDK on random inputs, and the receiver's rules (VERIFY, signature, dedupe, ordering, errors)."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import string
from pathlib import Path
from typing import Any

import pytest
import smartcar

from exporter.clock import ManualClock
from exporter.config import AccountConfig, Secret
from exporter.providers.base import MemoryTokenStore
from exporter.providers.smartcar.provider import SmartcarProvider
from exporter.providers.smartcar.settings import from_account
from exporter.providers.smartcar.webhooks import (
    Dedupe,
    hash_challenge,
    parse_envelope,
    verify_answer,
    verify_signature,
)
from exporter.snapshot import Snapshot
from tests.fakes import FakeSink

AMT = "amt-0123456789"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "smartcar"

# --- known answers (reference §4.6) --------------------------------------------------------------


def test_known_answer_challenge() -> None:
    assert (
        hash_challenge("amt", "challenge")
        == "9baf5a7464bd86740ad5a06e439dcf535a075022ed2c92d74efacf646d79328e"
    )
    assert (
        hash_challenge("abc123abc123", "9c9c9c9c")
        == "2a596ed34b8c6f069492d952aa51f076fee7b1c662b6498e0217a0d41fd9b936"
    )


def test_known_answer_payload_over_the_raw_bytes() -> None:
    sig = "4c05a8da471f05156ad717baa4017acd13a3a809850b9ca7d3301dcaaa854f70"
    assert verify_signature("amt", b'{"pizza":"pasta"}', sig)
    # the same JSON with a space is another byte string: re-serialising before verifying breaks it
    assert not verify_signature("amt", b'{"pizza": "pasta"}', sig)
    # java's vector: the payload "challenge" signed like the challenge
    assert verify_signature(
        "amt", b"challenge", "9baf5a7464bd86740ad5a06e439dcf535a075022ed2c92d74efacf646d79328e"
    )
    assert verify_signature("amt", b'{"pizza":"pasta"}', sig.upper())  # hex case is not identity
    assert not verify_signature("amt", b'{"pizza":"pasta"}', None)
    assert not verify_signature("amt", b'{"pizza":"pasta"}', "")


def test_agrees_with_the_official_sdk_on_random_inputs() -> None:
    rng = random.Random(20260101)
    alphabet = string.printable + "äöü€漢"
    for _ in range(300):
        amt = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 64)))
        msg = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 400)))
        ours = hash_challenge(amt, msg)
        assert ours == smartcar.hash_challenge(amt, msg)
        assert verify_signature(amt, msg.encode(), ours) is smartcar.verify_payload(amt, ours, msg)
        wrong = ours[:-1] + ("0" if ours[-1] != "0" else "1")
        assert verify_signature(amt, msg.encode(), wrong) is smartcar.verify_payload(
            amt, wrong, msg
        )
        assert not verify_signature(amt, msg.encode(), wrong)


# --- parsing variants ----------------------------------------------------------------------------


def test_verify_answer_and_the_signing_oracle_guard() -> None:
    body = json.dumps({"eventType": "VERIFY", "data": {"challenge": "any-abcd"}}).encode()
    assert verify_answer(AMT, body) == {"challenge": hash_challenge(AMT, "any-abcd")}
    legacy = json.dumps({"version": "2.0", "eventName": "verify", "payload": {"challenge": "c1"}})
    assert verify_answer(AMT, legacy.encode()) == {"challenge": hash_challenge(AMT, "c1")}
    assert verify_answer(AMT, b'{"eventType":"VEHICLE_STATE"}') is None
    forged = json.dumps({"eventId": "x", "eventType": "VEHICLE_STATE"})
    evil = json.dumps({"eventType": "VERIFY", "data": {"challenge": forged}}).encode()
    from exporter.providers.smartcar.webhooks import WebhookRejected

    with pytest.raises(WebhookRejected):
        verify_answer(AMT, evil)  # would hand out a valid SC-Signature for the forged body


def test_envelope_variants_are_accepted() -> None:
    raw = (FIXTURES / "webhooks_v4" / "vehicle_state-ford-older_variant.json").read_bytes()
    older = json.loads(raw)
    env = parse_envelope(raw)
    assert env.vehicle_id == older["data"]["vehicle"]["id"]
    assert env.triggers == ("Odometer.TraveledDistance",)
    assert env.signals[0].oem_updated_at == pytest.approx(1731940328.0)
    assert env.signals[1].body is None
    assert env.signals[1].error == ("COMPATIBILITY", "VEHICLE_NOT_CAPABLE")
    assert env.delivered_at == pytest.approx(1735689600.0)  # 2025-01-01T00:00:00Z


def test_dedupe_window() -> None:
    d = Dedupe(ttl=100)
    assert not d.seen("a", 0) and d.seen("a", 50)
    assert not d.seen("a", 151)  # forgotten after the window, as the docs allow


# --- the receiver in the provider ----------------------------------------------------------------


def _provider(clock: ManualClock) -> SmartcarProvider:
    account = AccountConfig(
        name="sc",
        provider="smartcar",
        index=0,
        settings={
            "client_id": "cid",
            "redirect_uri": "https://cars.example.org/connect/smartcar/callback",
            "webhooks": True,
        },
        secrets={"client_secret": Secret("s"), "management_token": Secret(AMT)},
    )
    p = SmartcarProvider(from_account(account), None, clock, MemoryTokenStore())  # type: ignore[arg-type]
    p._adopt(  # a connected car, as after Connect
        p._conns.setdefault("c", _conn()),
        [{"id": "veh-1", "vin": "0SCTEST0000000001", "make": "TESLA", "permissions": []}],
    )
    return p


def _conn() -> Any:
    from exporter.providers.smartcar.provider import Connection

    return Connection("c", None)  # type: ignore[arg-type]


def _state(event_id: str, oem_ms: int, soc: float, **more: Any) -> bytes:
    doc = {
        "eventId": event_id,
        "eventType": "VEHICLE_STATE",
        "vehicleId": "veh-1",
        "data": {
            "user": {"id": "u"},
            "vehicle": {"id": "veh-1", "make": "TESLA", "model": "Model 3", "year": 2020},
            "triggers": [{"code": "tractionbattery-stateofcharge"}],
            "signals": [
                {
                    "code": "tractionbattery-stateofcharge",
                    "name": "StateOfCharge",
                    "group": "TractionBattery",
                    "body": {"unit": "percent", "value": soc},
                    "meta": {"oemUpdatedAt": oem_ms},
                },
                *more.get("signals", []),
            ],
        },
        "meta": {"version": "4.0", "deliveryId": "d", "deliveredAt": oem_ms + 1000},
    }
    return json.dumps(doc, indent=2).encode()


def _sign(body: bytes) -> str:
    return hmac.new(AMT.encode(), body, hashlib.sha256).hexdigest()


def test_receiver_verify_signature_dedupe_and_ordering() -> None:
    clock = ManualClock()
    p = _provider(clock)
    verify = json.dumps({"eventType": "VERIFY", "data": {"challenge": "c-1"}}).encode()
    res = p.handle_webhook(verify, None)
    assert res.status == 200 and res.body == {"challenge": smartcar.hash_challenge(AMT, "c-1")}

    body = _state("e1", 1_767_225_600_000, 78)
    assert p.handle_webhook(body, None).status == 401
    assert p.handle_webhook(body, _sign(body + b" ")).status == 401
    tampered = body.replace(b"78", b"18")
    assert p.handle_webhook(tampered, _sign(body)).status == 401

    res = p.handle_webhook(body, _sign(body))
    assert res.status == 200 and res.snapshot is not None
    assert res.snapshot.values["battery_soc"] == pytest.approx(0.78)
    assert res.snapshot.car_time == pytest.approx(1_767_225_600.0)
    assert res.snapshot.source == "webhook"

    again = p.handle_webhook(body, _sign(body))  # a retry: same eventId
    assert again.status == 200 and again.snapshot is None and again.outcome == "duplicate"

    newer = _state("e3", 1_767_225_700_000, 80)
    older = _state("e2", 1_767_225_650_000, 79)  # delivered after e3: out of order
    assert p.handle_webhook(newer, _sign(newer)).snapshot is not None
    late = p.handle_webhook(older, _sign(older))
    assert late.status == 200 and late.snapshot is None and late.outcome == "stale"
    assert p.webhook_events[("VEHICLE_STATE", "accepted")] == 2
    assert p.webhook_events[("VEHICLE_STATE", "duplicate")] == 1
    assert p.webhook_events[("VEHICLE_STATE", "stale")] == 1
    assert p.webhook_events[("unknown", "bad_signature")] == 3


def test_partial_delivery_keeps_the_fresh_signals_only() -> None:
    clock = ManualClock(2_000_000_100.0)  # the events lie in the past, as real ones do
    p = _provider(clock)
    first = _state("a", 2_000_000_000_000, 50)
    p.handle_webhook(first, _sign(first))
    odo = {
        "code": "odometer-traveleddistance",
        "body": {"unit": "km", "value": 100.0},
        "meta": {"oemUpdatedAt": 1_999_000_000_000},
    }
    mixed = _state("b", 1_999_000_000_000, 40, signals=[odo])
    res = p.handle_webhook(mixed, _sign(mixed))
    assert res.snapshot is not None
    assert "battery_soc" not in res.snapshot.values  # older than what we have
    assert res.snapshot.values["odometer"] == pytest.approx(100_000.0)


def _error_event(event_id: str, state: str, type_: str, code: str | None) -> bytes:
    doc = {
        "eventId": event_id,
        "eventType": "VEHICLE_ERROR",
        "vehicleId": "veh-1",
        "data": {
            "errors": [
                {
                    "type": type_,
                    "code": code,
                    "state": state,
                    "description": "d",
                    "suggestedUserMessage": "Open the maker's app and accept the new terms.",
                    "resolution": {"type": "REAUTHENTICATE"},
                }
            ]
        },
        "meta": {"version": "4.0", "deliveredAt": 1},
    }
    return json.dumps(doc).encode()


def test_vehicle_error_is_flagged_and_cleared_by_resolved(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    p = _provider(clock)
    vin = "0SCTEST0000000001"
    err = _error_event("x1", "ERROR", "VEHICLE_STATE", "REMOTE_ACCESS_DISABLED")
    with caplog.at_level("WARNING"):
        assert p.handle_webhook(err, _sign(err)).status == 200
    assert p.error_states(vin) == {"VEHICLE_STATE:REMOTE_ACCESS_DISABLED": True}
    assert "accept the new terms" in caplog.text
    ok = _error_event("x2", "RESOLVED", "VEHICLE_STATE", "REMOTE_ACCESS_DISABLED")
    p.handle_webhook(ok, _sign(ok))
    assert p.error_states(vin) == {"VEHICLE_STATE:REMOTE_ACCESS_DISABLED": False}


def test_account_issue_event_requires_reauth_until_resolved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    p = _provider(clock)
    vin = "0SCTEST0000000001"
    err = _error_event("y1", "ERROR", "CONNECTED_SERVICES_ACCOUNT", "ACCOUNT_ISSUE")
    with caplog.at_level("WARNING"):
        p.handle_webhook(err, _sign(err))
    assert vin in p.reauth
    assert "https://cars.example.org/connect/smartcar/reconnect?" in caplog.text
    ok = _error_event("y2", "RESOLVED", "CONNECTED_SERVICES_ACCOUNT", "ACCOUNT_ISSUE")
    p.handle_webhook(ok, _sign(ok))
    assert vin not in p.reauth


def test_unknown_vehicle_and_garbage() -> None:
    p = _provider(ManualClock())
    other = _state("z", 1, 50).replace(b"veh-1", b"veh-2")
    res = p.handle_webhook(other, _sign(other))
    assert res.status == 200 and res.snapshot is None and res.outcome == "unknown_vehicle"
    junk = b"not json"
    assert p.handle_webhook(junk, _sign(junk)).status == 400


def test_an_accepted_webhook_report_reaches_the_sink_and_an_older_than_poll_one_is_counted() -> (
    None
):
    clock = ManualClock()
    p = _provider(clock)
    sink = FakeSink()
    p.sink = sink
    vin = "0SCTEST0000000001"
    body = _state("e1", 1_767_225_600_000, 78)
    assert p.handle_webhook(body, _sign(body)).status == 200
    assert [(s.vin, str(o)) for s, o in sink.published] == [(vin, "new")]
    assert sink.hub.latest(vin) is not None
    # a poll already brought a later report; the webhook's signal is newer than what the
    # provider saw, but older than the hub's latest report: the hub drops it and it is counted
    polled = Snapshot.build(vin, "smartcar", 1_767_225_900.0, 1_767_225_900.0, {"odometer": 1.0})
    sink.hub.publish(polled)
    late = _state("e2", 1_767_225_700_000, 79)
    assert p.handle_webhook(late, _sign(late)).status == 200
    assert str(sink.published[-1][1]) == "stale"
    assert p.webhook_events[("VEHICLE_STATE", "older_than_poll")] == 1
