"""The simulator's webhook emitter against a real receiver on loopback: VERIFY before anything
else, signatures over the exact bytes, retries with the same eventId on the simulated clock, and
out-of-order / duplicate deliveries that the provider's receiver sorts out."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from exporter.clock import ManualClock
from exporter.config import AccountConfig, Secret
from exporter.providers.base import MemoryTokenStore
from exporter.providers.smartcar.provider import Connection, SmartcarProvider
from exporter.providers.smartcar.settings import from_account
from exporter.simulator.smartcar.car import StaticCar
from exporter.simulator.smartcar.state import SimApp, SmartcarCloud
from exporter.simulator.smartcar.webhooks import WebhookEmitter

AMT = "sim-management-token"
VIN = "0SCEMIT0000000001"


@dataclass
class Receiver:
    """Records what arrives; answers through the provider unless told to fail."""

    provider: SmartcarProvider
    got: list[tuple[dict[str, Any], bytes, str | None]] = field(default_factory=list)
    fail_next: int = 0
    wrong_challenge: bool = False
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        sig = request.headers.get("SC-Signature")
        self.got.append((json.loads(raw), raw, sig))
        self.arrived.set()
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=503)
        res = self.provider.handle_webhook(raw, sig)
        body = dict(res.body)
        if self.wrong_challenge and "challenge" in body:
            body["challenge"] = "0" * 64
        return web.json_response(body, status=res.status)

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc, _, _ in self.got if doc.get("eventType") == kind]


@dataclass
class Bench:
    clock: ManualClock
    cloud: SmartcarCloud
    car: StaticCar
    receiver: Receiver
    emitter: WebhookEmitter
    make_emitter: Callable[..., WebhookEmitter]


def _provider(clock: ManualClock, vehicle_id: str) -> SmartcarProvider:
    account = AccountConfig(
        name="sc",
        provider="smartcar",
        index=0,
        settings={
            "client_id": "cid",
            "redirect_uri": "https://cars.example.org/cb",
            "webhooks": True,
        },
        secrets={"client_secret": Secret("s"), "management_token": Secret(AMT)},
    )
    p = SmartcarProvider(from_account(account), None, clock, MemoryTokenStore())  # type: ignore[arg-type]
    conn = Connection("c", None)  # type: ignore[arg-type]
    p._conns["c"] = conn
    p._adopt(conn, [{"id": vehicle_id, "vin": VIN, "make": "AUDI", "permissions": []}])
    return p


@pytest.fixture
async def bench() -> AsyncIterator[Bench]:
    clock = ManualClock()
    cloud = SmartcarCloud(clock)
    car = StaticCar(VIN, clock.now, powertrain="BEV")
    cloud.add_car(car)
    receiver = Receiver(_provider(clock, cloud.vehicle_id("cid", VIN)))
    app = web.Application()
    app.router.add_post("/webhooks/smartcar", receiver.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    cloud.add_app(
        SimApp(
            "cid",
            "s",
            AMT,
            ("https://cars.example.org/cb",),
            webhook_url=str(server.make_url("/webhooks/smartcar")),
        )
    )
    cloud.subscriptions.add(("cid", VIN))
    made: list[WebhookEmitter] = []

    def make(**kw: Any) -> WebhookEmitter:
        for old in made:  # one emitter listens at a time
            if old.car_changed in cloud.listeners:
                cloud.listeners.remove(old.car_changed)
        e = WebhookEmitter(cloud, **kw)
        made.append(e)
        return e

    emitter = make()
    yield Bench(clock, cloud, car, receiver, emitter, make)
    for e in made:
        await e.close()
    await server.close()


async def sleeping(clock: ManualClock) -> None:
    """Wait (for loopback I/O) until the emitter sleeps on the simulated clock."""
    for _ in range(250):
        if clock.next_deadline is not None:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the emitter never went to sleep")


async def test_verify_comes_first_and_events_are_signed_as_sent(bench: Bench) -> None:
    bench.car.set(soc=0.5)
    await bench.emitter.idle()
    kinds = [doc["eventType"] for doc, _, _ in bench.receiver.got]
    assert kinds[0] == "VERIFY" and kinds[1:] == ["VEHICLE_STATE"]
    _, _, verify_sig = bench.receiver.got[0]
    assert verify_sig is None  # VERIFY arrives unsigned, as in real captures
    doc, raw, sig = bench.receiver.got[1]
    assert sig == hmac.new(AMT.encode(), raw, hashlib.sha256).hexdigest()
    assert raw != json.dumps(doc, separators=(",", ":")).encode()  # not compact: raw bytes matter
    assert doc["data"]["triggers"] == [{"code": "FIRST_DELIVERY"}]
    assert doc["meta"]["version"] == "4.0" and doc["meta"]["signalCount"] == len(
        doc["data"]["signals"]
    )
    snap_soc = [
        s["body"]["value"]
        for s in doc["data"]["signals"]
        if s["code"] == "tractionbattery-stateofcharge"
    ]
    assert snap_soc == [50.0]  # v3 reports percent
    assert bench.receiver.provider.webhook_events[("VEHICLE_STATE", "accepted")] == 1


async def test_failed_verify_means_no_events(bench: Bench) -> None:
    bench.receiver.wrong_challenge = True
    bench.car.set(soc=0.4)
    await bench.emitter.idle()
    assert bench.receiver.events("VEHICLE_STATE") == []
    assert bench.emitter.verify_results == [("cid", False)]
    bench.receiver.wrong_challenge = False
    bench.clock.advance(61)
    bench.car.set(soc=0.41)  # the next change tries VERIFY again, then delivers
    await bench.emitter.idle()
    assert bench.emitter.verify_results[-1] == ("cid", True)
    assert len(bench.receiver.events("VEHICLE_STATE")) == 1


async def test_retries_at_25_50_100_s_with_the_same_event_id(bench: Bench) -> None:
    bench.car.set(soc=0.5)
    await bench.emitter.idle()  # verified, first delivery done
    bench.receiver.got.clear()
    bench.receiver.fail_next = 3
    bench.clock.advance(61)
    t0 = bench.clock.now()
    bench.car.set(locked=False)
    for step in (25, 50, 100):
        await sleeping(bench.clock)
        assert bench.clock.next_deadline == pytest.approx(bench.clock.now() + step)
        bench.clock.advance(step)
    await bench.emitter.idle()
    attempts = bench.receiver.events("VEHICLE_STATE")
    assert len(attempts) == 4
    assert len({a["eventId"] for a in attempts}) == 1
    assert len({a["meta"]["deliveryId"] for a in attempts}) == 4
    at = [a["meta"]["deliveredAt"] / 1000 - t0 for a in attempts]
    assert at == pytest.approx([0, 25, 75, 175])
    assert [d.status for d in bench.emitter.deliveries[-4:]] == [503, 503, 503, 200]
    assert bench.receiver.provider.webhook_events[("VEHICLE_STATE", "accepted")] == 2


async def test_out_of_order_and_duplicates_end_with_the_newest_state(bench: Bench) -> None:
    emitter = bench.make_emitter(out_of_order=300.0, duplicate_rate=1.0, seed=4)
    bench.car.set(soc=0.30)
    for soc in (0.31, 0.32, 0.33, 0.34, 0.35):
        await asyncio.sleep(0)  # the delivery task starts and sleeps its random delay
        bench.clock.advance(61)
        bench.car.set(soc=soc)
    await asyncio.sleep(0)
    bench.clock.advance(400)  # every delayed first attempt is due now
    await bench.emitter.idle()
    await emitter.idle()
    states = bench.receiver.events("VEHICLE_STATE")
    order = [s["data"]["signals"][0]["meta"]["oemUpdatedAt"] for s in states]
    assert order != sorted(order)  # they really arrived out of order
    p = bench.receiver.provider
    assert p.webhook_events[("VEHICLE_STATE", "duplicate")] >= 1
    assert p.webhook_events[("VEHICLE_STATE", "stale")] >= 1
    # the newest report won: every accepted snapshot was newer than the one before
    newest = max(order) / 1000
    assert p._signal_times[VIN]["battery_soc"] == pytest.approx(newest)
