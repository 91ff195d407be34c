"""A command sent to any instance of a fleet reaches the instance holding the car, and its answer
comes back to the caller; the fleet's car list is the same at every instance.

Two runtimes with their HTTP servers in this process, a real PostgreSQL, and the toy provider
taught one command (horn) by a subclass here: the cloud records each horn it was asked for, so the
test sees which account's cloud the command reached.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bench.postgres import Cluster, free_port
from exporter.clock import RealClock
from exporter.config import AccountConfig, Config, PollConfig
from exporter.fleet import settings as fleet_settings
from exporter.fleet.forward import FORWARDED_BY
from exporter.providers import registry
from exporter.providers.base import Command, CommandReceipt, ProviderContext
from exporter.providers.entry import ProviderEntry
from exporter.runtime import Runtime
from exporter.server import make_app
from exporter.settings import EnvValue
from tests.toy_provider.cloud import ToyCloud
from tests.toy_provider.provider import ToyProvider, ToySettings, account_settings

TOKEN = "fleet-routing-token-0123456789"
ACCOUNTS = 4


class HornCloud(ToyCloud):
    """The toy cloud plus ``POST /cars/{vin}/horn``."""

    def __init__(self) -> None:
        super().__init__(RealClock())
        self.horns: list[str] = []

    async def _horn(self, request: web.Request) -> web.Response:
        self.horns.append(request.match_info["vin"])
        return web.json_response({"ok": True})

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/cars", self._list)
        app.router.add_get("/cars/{vin}", self._read)
        app.router.add_post("/cars/{vin}/horn", self._horn)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self.url


class HornToy(ToyProvider):
    name = "horntoy"
    webhooks: list[bytes]

    def supported_commands(self, vin: str) -> frozenset[str]:
        return frozenset({"horn"})

    async def command(self, vin: str, command: Command) -> CommandReceipt:
        async with self.ctx.session.post(f"{self.settings.url}/cars/{vin}/horn") as resp:
            return CommandReceipt(resp.status == 200, f"http {resp.status}")


def _build(settings: ToySettings, ctx: ProviderContext) -> HornToy:
    provider = HornToy(settings, ctx)
    provider.webhooks = []
    return provider


def _web(app: web.Application, wctx: registry.WebContext) -> None:
    """A webhook route at the path the Smartcar one uses, so the fleet routes it the same way."""

    async def webhook(request: web.Request) -> web.Response:
        name = request.match_info["account"]
        provider = next((p for p in wctx.providers() if p.account == name), None)
        if not isinstance(provider, HornToy):
            return web.json_response({"error": "not here"}, status=404)
        provider.webhooks.append(await request.read())
        return web.json_response({"stored": len(provider.webhooks)}, status=202)

    app.router.add_post("/webhooks/smartcar/{account}", webhook)


ENTRY = ProviderEntry("horntoy", account_settings, _build, web=_web)


@pytest.fixture
async def clouds() -> AsyncIterator[list[HornCloud]]:
    registry.register(ENTRY)
    out = []
    for a in range(ACCOUNTS):
        cloud = HornCloud()
        cloud.cars = {f"TOYROUTE{a:02d}CAR{c:04d}": 60.0 for c in range(2)}
        await cloud.start()
        out.append(cloud)
    try:
        yield out
    finally:
        for cloud in out:
            await cloud.close()
        registry.unregister(ENTRY.name)


def config(tmp_path: Path, name: str, port: int, clouds: list[HornCloud]) -> Config:
    return Config(
        listen="127.0.0.1",
        port=port,
        db=tmp_path / f"{name}.db",
        poll=PollConfig(jitter=0, timeout=2.0, parked=5, asleep=5, after_command=1),
        accounts=tuple(
            AccountConfig(f"acct{i}", "horntoy", i, simulator=True, settings={"url": c.url})
            for i, c in enumerate(clouds)
        ),
        extra={
            "shard": {"mode": "auto", "lease": 2.0, "heartbeat": 0.25},
            "commands": {"token": EnvValue(TOKEN)},
        },
    )


async def until(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        await asyncio.sleep(0.05)


@pytest.fixture
async def fleet(
    postgres: Cluster, monkeypatch: pytest.MonkeyPatch, clouds: list[HornCloud], tmp_path: Path
) -> AsyncIterator[list[tuple[Runtime, str]]]:
    monkeypatch.setattr(fleet_settings, "dsn_of", lambda _config: postgres.dsn)
    out: list[tuple[Runtime, str]] = []
    runners = []
    for name in ("a", "b"):
        port = free_port()
        rt = await Runtime.create(config(tmp_path, name, port, clouds), RealClock())
        runner = web.AppRunner(make_app(rt), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        out.append((rt, f"http://127.0.0.1:{port}"))
    try:
        yield out
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


async def listed(url: str, n: int) -> dict[str, Any]:
    """The fleet's car list at ``url`` once it holds ``n`` cars (the holders write theirs to the
    database within a second)."""
    end = time.monotonic() + 30
    while True:
        status, body = await call("GET", f"{url}/api/v1/vehicles")
        cars = {v["vin"]: v for v in body.get("vehicles", [])}
        if status == 200 and len(cars) == n:
            return cars
        assert time.monotonic() < end, (status, body)
        await asyncio.sleep(0.1)


def held(rt: Runtime) -> list[str]:
    assert rt.fleet is not None
    return rt.fleet.held_accounts()


async def call(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.request(
            method,
            url,
            json=body,
            headers={"Authorization": f"Bearer {TOKEN}", **(headers or {})},
        ) as r,
    ):
        return r.status, json.loads(await r.read())


async def test_a_command_at_any_instance_reaches_the_cars_holder_and_answers_the_caller(
    fleet: list[tuple[Runtime, str]], clouds: list[HornCloud]
) -> None:
    (a, url_a), (b, url_b) = fleet
    await until(lambda: len(held(a)) == 2 and len(held(b)) == 2)
    await until(lambda: len(a.scheduler.vins) == 4 and len(b.scheduler.vins) == 4)
    vin = sorted(a.scheduler.vins)[0]  # held by a, asked of b
    cloud = clouds[int(vin[8:10])]
    await listed(url_b, 8)
    status, rec = await call("POST", f"{url_b}/api/v1/vehicles/{vin}/commands", {"command": "horn"})
    assert status == 202, rec
    # the outcome, asked of the instance that did not send it
    status, done = await call("GET", f"{url_b}/api/v1/commands/{rec['id']}?wait=10")
    assert status == 200 and done["id"] == rec["id"] and done["outcome"] == "accepted", done
    assert cloud.horns == [vin]  # sent once, by the holder's provider
    # the holder answers the same about its own command
    status, same = await call("GET", f"{url_a}/api/v1/commands/{rec['id']}")
    assert status == 200 and same["outcome"] == "accepted"
    assert b.fleet is not None and b.fleet.forwarder.counts["forwarded"] == 2

    # a request that was already forwarded once is not passed on again
    status, refused = await call(
        "POST",
        f"{url_b}/api/v1/vehicles/{vin}/commands",
        {"command": "horn"},
        {FORWARDED_BY: "someone"},
    )
    assert status == 503 and refused["error"] == "owner_moved"
    assert cloud.horns == [vin]


async def test_every_instance_lists_the_whole_fleet(fleet: list[tuple[Runtime, str]]) -> None:
    (a, url_a), (b, url_b) = fleet
    await until(lambda: len(a.scheduler.vins) == 4 and len(b.scheduler.vins) == 4)
    for url in (url_a, url_b):
        cars = await listed(url, 8)
        assert set(cars) == set(a.scheduler.vins) | set(b.scheduler.vins)
        assert all(v["supported_commands"] == ["horn"] for v in cars.values()), [
            (v["vin"], v["supported_commands"], v["instance"]) for v in cars.values()
        ]
        assert {v["instance"] for v in cars.values()} == {a.fleet.id, b.fleet.id}  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as s, s.get(f"{url_a}/api/v1/vehicles") as r:
        assert r.status == 401  # the fleet list needs the token like the local one
    async with aiohttp.ClientSession() as s, s.get(f"{url_b}/metrics") as r:
        metrics = await r.text()
    for name in (  # what the fleet's alerts (prometheus/alerts.yml) read
        "carmetrics_shard_accounts_configured 4.0",
        "carmetrics_shard_accounts_held 2.0",
        "carmetrics_shard_database_up 1.0",
        "carmetrics_shard_takeovers_total 0.0",
        'carmetrics_shard_account_held{account="' + held(b)[0] + '"} 1.0',
    ):
        assert name in metrics, name
    async with aiohttp.ClientSession() as s, s.get(f"{url_b}/healthz") as r:
        health = await r.json()
    assert health["shard"]["accounts"] == held(b) and health["shard"]["live_instances"] == 2


async def test_a_webhook_at_any_instance_reaches_the_accounts_holder(
    fleet: list[tuple[Runtime, str]],
) -> None:
    (a, _), (b, url_b) = fleet
    await until(lambda: len(held(a)) == 2 and len(held(b)) == 2)
    account = held(a)[0]
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{url_b}/webhooks/smartcar/{account}", data=b'{"event": "signals"}') as r,
    ):
        # the holder's answer, passed back as it was
        assert r.status == 202 and await r.json() == {"stored": 1}
    provider = a.providers[account]
    assert isinstance(provider, HornToy) and provider.webhooks == [b'{"event": "signals"}']
    assert not any(isinstance(p, HornToy) and p.webhooks for p in b.providers.values())
