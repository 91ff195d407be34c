"""A running v3 Smartcar simulator on a ManualClock, plus a loopback webhook receiver, for tests.

Expected values in the tests come from the shared vehicle model (``Fleet.state``), never from the
simulator's rendering code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from exporter.clock import ManualClock
from exporter.simulator.fleet import Fleet
from exporter.simulator.smartcar.fleet_adapter import DemoApp, DemoV3, demo_cloud, demo_v3
from exporter.simulator.smartcar.server import SmartcarSimulator
from exporter.simulator.smartcar.state import SmartcarCloud
from exporter.simulator.smartcar.v3_state import V3Cloud

REDIRECT = "http://127.0.0.1:9/callback"
MODELS = ("Tesla Model 3", "Ford Mustang Mach-E")


@dataclass
class Receiver:
    """A webhook callback that answers VERIFY with the AMT and records everything."""

    amt: str
    answer_verify: bool = True
    status: int = 200
    bodies: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.bodies.append((request.path, raw, dict(request.headers)))
        doc = json.loads(raw)
        if doc.get("eventType") == "VERIFY":
            if not self.answer_verify:
                return web.Response(status=500)
            challenge = doc["data"]["challenge"]
            digest = hmac.new(self.amt.encode(), challenge.encode(), hashlib.sha256).hexdigest()
            return web.json_response({"challenge": digest})
        return web.Response(status=self.status)

    def events(self, kind: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        out = []
        for p, raw, _ in self.bodies:
            doc = json.loads(raw)
            if (kind is None or doc.get("eventType") == kind) and (path is None or p == path):
                out.append(doc)
        return out


@dataclass
class V3Env:
    clock: ManualClock
    fleet: Fleet
    cloud: SmartcarCloud
    v2creds: DemoApp
    v3: V3Cloud
    creds: DemoV3
    sim: SmartcarSimulator
    http: aiohttp.ClientSession
    receiver: Receiver

    @property
    def urls(self) -> dict[str, str]:
        return self.sim.urls

    @property
    def user(self) -> str:
        return self.creds.users[0][0]

    @property
    def vehicle_ids(self) -> tuple[str, ...]:
        return self.creds.users[0][1]

    def vin(self, vehicle_id: str) -> str:
        vin = self.v3.vin_of(self.creds.app.application_id, vehicle_id)
        assert vin is not None
        return vin

    async def token(self) -> str:
        async with self.http.post(
            f"{self.urls['iam']}/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self.creds.app.client_id,
                "client_secret": self.creds.app.client_secret,
            },
        ) as r:
            assert r.status == 200
            return str((await r.json())["access_token"])

    async def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        *,
        user: str | None = None,
        host: str = "vehicle_api",
        **kw: Any,
    ) -> tuple[int, Any, dict[str, str]]:
        headers: dict[str, str] = dict(kw.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if user is not None:
            headers["sc-user-id"] = user
        async with self.http.request(
            method, f"{self.urls[host]}/v3{path}", headers=headers, **kw
        ) as r:
            raw = await r.read()
            return r.status, json.loads(raw) if raw.strip() else None, dict(r.headers)


@asynccontextmanager
async def v3_env(
    models: tuple[str, ...] = MODELS, *, retry_delays: tuple[float, ...] = (25.0, 50.0, 100.0)
) -> AsyncIterator[V3Env]:
    clock = ManualClock()
    fleet = Fleet(list(models), seed=3, clock=clock)
    cloud, v2creds = demo_cloud(fleet, clock, redirect_uris=(REDIRECT,))
    v3, creds = demo_v3(cloud, redirect_uris=(REDIRECT,))
    sim = SmartcarSimulator(cloud, v3=v3, v3_retry_delays=retry_delays)
    receiver = Receiver(creds.app.management_token)
    hook_app = web.Application()
    hook_app.router.add_post("/{tail:.*}", receiver.handle)
    runner = web.AppRunner(hook_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    v3.webhooks[creds.webhook_id].callback_uri = receiver.url + "/hook"
    await sim.start()
    try:
        async with aiohttp.ClientSession() as http:
            yield V3Env(clock, fleet, cloud, v2creds, v3, creds, sim, http, receiver)
    finally:
        await sim.stop()
        await runner.cleanup()
