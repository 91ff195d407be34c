"""The command API end to end: the real runtime with its embedded smart and Smartcar simulators, served
on loopback, on a ManualClock shared by the exporter and the simulated cars.

Every command each provider supports is sent through ``POST /api/v1/vehicles/{vin}/commands``; the
test then checks three independent things agree: the simulated car (the model's own state and its
log of executed commands), the outcome the API reports, and the audit row in SQLite.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from exporter.clock import ManualClock
from exporter.commands.service import CommandService
from exporter.commands.web import SERVICE
from exporter.config import load
from exporter.runtime import Runtime
from exporter.server import make_app
from exporter.simulator.smartcar.headless import consent

TOKEN = "sim-test-command-token-0123456789"
READ = "sim-test-read-token-abcdefghijk"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

CONFIG = """
[exporter]
port = {port}
db = "{db}"
[poll]
jitter = 0
timeout = 2
[simulator]
enabled = true
seed = 42
smart_vehicles = ["#1", "#3", "#5"]
smartcar_vehicles = ["Tesla Model 3"]
[[accounts]]
name = "eu"
provider = "smart"
region = "EU"
simulator = true
[[accounts]]
name = "sc"
provider = "smartcar"
simulator = true
commands = true
[commands]
cooldown = 5
verify_delay = 8
verify_interval = 10
verify_timeout = 90
[commands.clients.viewer]
access = "read"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    rt: Runtime
    base: str
    http: aiohttp.ClientSession
    clock: ManualClock
    db: Path
    service: CommandService

    @property
    def fleet(self) -> Any:
        return self.rt.simulator.fleet

    async def post(
        self, vin: str, body: object, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        async with self.http.post(
            f"{self.base}/api/v1/vehicles/{vin}/commands", json=body, headers=headers or AUTH
        ) as r:
            return r.status, await r.json()

    async def outcome(self, cid: str, horizon: float = 300.0) -> dict[str, Any]:
        """The final record, moving the shared clock in 2 s steps while the exporter checks."""

        async def fetch() -> dict[str, Any]:
            async with self.http.get(
                f"{self.base}/api/v1/commands/{cid}?wait=60", headers=AUTH
            ) as r:
                assert r.status == 200
                got: dict[str, Any] = await r.json()
                return got

        end = self.clock.now() + horizon
        while True:
            task = asyncio.create_task(fetch())
            while not task.done() and self.clock.now() < end:
                await self.clock.run_until(self.clock.now() + 2.0)
                await asyncio.sleep(0.005)
            rec = await task
            if rec["status"] == "done" or self.clock.now() >= end:
                return rec

    async def send(self, vin: str, body: dict[str, Any]) -> dict[str, Any]:
        self.clock.advance(6)  # past the per-vehicle cooldown
        status, rec = await self.post(vin, body)
        assert status == 202, rec
        return await self.outcome(rec["id"])

    async def audit(self, cid: str) -> dict[str, Any]:
        await self.service.audit.flush()
        conn = sqlite3.connect(self.db)
        conn.row_factory = sqlite3.Row
        try:
            row = conn.execute("SELECT * FROM command_audit WHERE id = ?", (cid,)).fetchone()
            return dict(row) if row else {}
        finally:
            conn.close()

    def executed(self, vin: str) -> list[dict[str, Any]]:
        """The simulated car's own log of commands it received (done or refused)."""
        return list(self.fleet.ground_truth(vin)["commands"])


async def until(cond: Any, what: str, tries: int = 300) -> None:
    for _ in range(tries):
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    cfg_path = tmp_path / "config.toml"
    db = tmp_path / "h.db"
    env = {
        "CARMETRICS_COMMANDS__TOKEN": TOKEN,
        "CARMETRICS_COMMANDS__CLIENTS__VIEWER__TOKEN": READ,
    }
    clock = ManualClock()
    for attempt in range(5):  # the config must name the port, so pick one and retry if taken
        port = free_port()
        cfg_path.write_text(CONFIG.format(port=port, db=db))
        rt = await Runtime.create(load(cfg_path, env=env), clock)
        app = make_app(rt)
        server = TestServer(app, host="127.0.0.1", port=port)
        try:
            await server.start_server()
            break
        except OSError:
            await rt.session.close()
            if attempt == 4:
                raise
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            s = Served(rt, f"http://127.0.0.1:{port}", http, clock, db, app[SERVICE])
            await until(lambda: len(rt.scheduler.vins) >= 3, "the smart cars")
            # Smartcar: the owner's consent, as a browser would give it (headless helper)
            await until(lambda: "sc" in rt.providers, "the Smartcar provider")
            async with http.get(s.base + "/connect/smartcar", allow_redirects=False) as r:
                url = r.headers["Location"]
            loc = await consent(http, url)
            assert "code" in parse_qs(urlsplit(loc).query)
            async with http.get(loc, allow_redirects=False) as r:
                assert r.status == 200, await r.text()
            await until(lambda: len(rt.scheduler.vins) >= 4, "the Smartcar vehicle")
            yield s
    finally:
        await server.close()


def vin_of(s: Served, provider: str, model: str | None = None) -> str:
    for vin, info in s.rt.hub.vehicles.items():
        if info.provider == provider and (model is None or info.model == model):
            return vin
    raise AssertionError(f"no {provider} {model} vehicle")


async def plugged(s: Served, vin: str, days: float = 3.0) -> None:
    """Move time (an hour at a time) until the car is parked with its cable in, as it is most
    evenings: charge commands need that."""
    end = s.clock.now() + days * 86400
    while s.clock.now() < end:
        live = s.fleet.live_state(vin)
        if live.plugged and not live.driving:
            return
        await s.clock.run_until(s.clock.now() + 3600)
        await asyncio.sleep(0.02)
    raise AssertionError("the car never plugged in")


# what the simulated car must show after each command (its live state, not what the cloud says)
CAR_SHOWS: dict[str, Any] = {
    "unlock": lambda st: st.locked is False,
    "lock": lambda st: st.locked is True,
    "climate_start": lambda st: st.climate_on and st.climate_target_c == 21.5,
    "climate_stop": lambda st: not st.climate_on,
    "charge_limit": lambda st: st.charge_limit == 100,
    "charge_stop": lambda st: st.plugged and not st.charging,
    "charge_start": lambda st: st.charging,
    "windows_close": lambda st: max(st.window_open) == 0,
    "seat_heating": lambda st: st.seat_heating[0] == 2,
}


async def check_sequence(s: Served, vin: str, sequence: list[dict[str, Any]]) -> None:
    for body in sequence:
        name = body["command"]
        seen_before = len(s.executed(vin))
        rec = await s.send(vin, body)
        observable = name not in {"horn", "flash", "find", "seat_heating"}
        assert rec["outcome"] == ("verified" if observable else "accepted"), rec
        assert rec["cloud"]["accepted"] is True
        if not observable:  # the API answered at once; give the car its few seconds to act
            await s.clock.run_until(s.clock.now() + 20)
        # the simulated car executed exactly this command, successfully
        new = s.executed(vin)[seen_before:]
        assert [(c["name"], c["ok"]) for c in new] == [(name, True)], new
        if name in CAR_SHOWS:
            assert CAR_SHOWS[name](s.fleet.live_state(vin)), (name, s.fleet.live_state(vin))
        # the audit row says the same as the API, names the caller, never the token
        row = await s.audit(rec["id"])
        assert (row["vin"], row["command"], row["caller"]) == (vin, name, "admin")
        assert row["outcome"] == rec["outcome"] and row["status"] == "done"
        assert json.loads(row["params"]) == rec["parameters"]
        assert row["cloud_reply"] == rec["cloud"]["reply"] and row["cloud_accepted"] == 1
        assert TOKEN not in json.dumps(row)
        expected_params = {k: v for k, v in body.items() if k != "command"}
        assert {k: rec["parameters"][k] for k in expected_params} == expected_params


async def test_every_command_on_a_smart_car(served: Served) -> None:
    s = served
    vin = vin_of(s, "smart", "#1")
    r = await s.http.get(f"{s.base}/api/v1/vehicles", headers={"Authorization": f"Bearer {READ}"})
    listed = {v["vin"]: v["supported_commands"] for v in (await r.json())["vehicles"]}
    assert set(listed[vin]) == {
        "lock",
        "unlock",
        "climate_start",
        "climate_stop",
        "charge_start",
        "charge_stop",
        "charge_limit",
        "horn",
        "flash",
        "find",
        "windows_close",
        "seat_heating",
    }
    await plugged(s, vin)
    await check_sequence(
        s,
        vin,
        [
            {"command": "unlock"},
            {"command": "lock"},
            {"command": "climate_start", "temperature": 21.5},
            {"command": "climate_stop"},
            {"command": "charge_limit", "percent": 100},  # plugged, below 100 %: charging starts
            {"command": "charge_stop"},
            {"command": "charge_start"},
            {"command": "windows_close"},
            {"command": "horn"},
            {"command": "flash"},
            {"command": "find"},
            {"command": "seat_heating", "seat": "front_left", "level": 2},
        ],
    )
    metrics = await (await s.http.get(f"{s.base}/metrics")).text()
    assert (
        f'carmetrics_commands_total{{command="charge_start",outcome="verified",vin="{vin}"}}'
        in (metrics)
    )


async def test_every_command_on_a_smartcar_vehicle(served: Served) -> None:
    s = served
    vin = vin_of(s, "smartcar")
    r = await s.http.get(f"{s.base}/api/v1/vehicles", headers=AUTH)
    listed = {v["vin"]: v["supported_commands"] for v in (await r.json())["vehicles"]}
    assert listed[vin] == ["lock", "unlock", "charge_start", "charge_stop", "charge_limit"]
    # a command Smartcar cannot send: 422 naming what it can, and nothing reaches the car
    before = len(s.executed(vin))
    status, err = await s.post(vin, {"command": "climate_start", "temperature": 21})
    assert status == 422 and err["error"] == "unsupported_command"
    assert err["supported"] == listed[vin]
    await plugged(s, vin)
    assert len(s.executed(vin)) == before
    await check_sequence(
        s,
        vin,
        [
            {"command": "unlock"},
            {"command": "lock"},
            {"command": "charge_limit", "percent": 100},
            {"command": "charge_stop"},
            {"command": "charge_start"},
        ],
    )


async def test_refused_requests_never_reach_the_car(served: Served) -> None:
    s = served
    vin = vin_of(s, "smart", "#3")
    before = len(s.executed(vin))
    cases = [
        ({}, {"command": "lock"}, 401),
        ({"Authorization": "Bearer wrong-token-wrong-token"}, {"command": "lock"}, 401),
        ({"Authorization": f"Bearer {READ}"}, {"command": "lock"}, 403),
        (AUTH, {"command": "lock", "force": True}, 422),
        (AUTH, {"command": "climate_start", "temperature": 31}, 422),
        (AUTH, {"command": "charge_limit", "percent": 82}, 422),  # smart takes steps of 5
        (AUTH, {"command": "teleport"}, 422),
    ]
    for headers, body, want in cases:
        async with s.http.post(
            f"{s.base}/api/v1/vehicles/{vin}/commands", json=body, headers=headers
        ) as r:
            got = await r.json()
            assert r.status == want, (body, got)
            assert got["message"]
    status, _ = await s.post("WRONGVIN000000000", {"command": "lock"})
    assert status == 404
    await s.clock.run_until(s.clock.now() + 60)
    assert len(s.executed(vin)) == before

    # cooldown and Idempotency-Key on a real car: one command reaches it, however often it is asked
    key = {**AUTH, "Idempotency-Key": "evening-lock"}
    status, first = await s.post(vin, {"command": "lock"}, headers=key)
    assert status == 202
    status, again = await s.post(vin, {"command": "lock"}, headers=key)
    assert status == 202 and again["id"] == first["id"]
    async with s.http.post(
        f"{s.base}/api/v1/vehicles/{vin}/commands", json={"command": "unlock"}, headers=AUTH
    ) as r:
        assert r.status == 429 and 1 <= int(r.headers["Retry-After"]) <= 5
    assert (await s.outcome(first["id"]))["outcome"] == "verified"
    assert [c["name"] for c in s.executed(vin)[before:]] == ["lock"]


async def test_a_refusal_after_acceptance_is_not_claimed_as_success(served: Served) -> None:
    """The cloud only queues a command; the car refuses it later (no cable): the outcome says
    what the car reported after the send, never "verified"."""
    s = served
    vin = vin_of(s, "smart", "#5")
    live = s.fleet.live_state(vin)
    assert not live.plugged  # a parked car without its cable cannot start charging
    rec = await s.send(vin, {"command": "charge_start"})
    assert rec["cloud"]["accepted"] is True
    assert rec["outcome"] == "not_verified", rec
    assert "charging_state in (charging, dc_charging) not seen" in rec["detail"]
    assert "the last report after sending showed charging_state = " in rec["detail"]
    row = await s.audit(rec["id"])
    assert row["outcome"] == "not_verified" and row["cloud_accepted"] == 1
    late = s.fleet.ground_truth(vin)["commands"][-1]
    assert late["name"] == "charge_start" and late["ok"] is False
    assert not s.fleet.live_state(vin).charging


async def test_an_effect_that_comes_late_is_still_verified(served: Served) -> None:
    """Accepted now, applied by the car 45 s later: the first checks see the old state and the
    check goes on until the car's report shows the new one."""
    s = served
    vin = vin_of(s, "smart", "#3")
    s.fleet.vehicle(vin).command_delay = 45
    was_locked = s.fleet.live_state(vin).locked
    rec = await s.send(vin, {"command": "unlock" if was_locked else "lock"})
    assert rec["outcome"] == "verified", rec
    seconds = float(rec["detail"].split(", ")[-1].split(" s after")[0])
    assert 45 <= seconds < 90
    assert s.fleet.live_state(vin).locked is not was_locked


async def test_an_effect_that_never_shows_is_not_verified(served: Served) -> None:
    s = served
    vin = vin_of(s, "smart", "#3")
    car = s.fleet.vehicle(vin)
    car.command_delay = 6 * 3600  # the car is out of coverage: it acts hours later
    was_locked = s.fleet.live_state(vin).locked
    rec = await s.send(vin, {"command": "unlock" if was_locked else "lock"})
    assert rec["outcome"] == "not_verified", rec
    assert "not seen within 90 s" in rec["detail"]
    # a sleeping car out of coverage uploads nothing; the detail says so and what it last showed
    assert "no car report arrived after the command was sent" in rec["detail"]
    assert f"showed locked = {'true' if was_locked else 'false'}" in rec["detail"]
    assert (await s.audit(rec["id"]))["outcome"] == "not_verified"
    assert s.fleet.live_state(vin).locked is was_locked

    # and while the cloud cannot be read at all, the outcome says why it could not be checked
    car.command_delay = 5.0
    s.rt.simulator.faults.script("data_unavailable", 50, endpoint="status", vin=vin)
    rec = await s.send(vin, {"command": "climate_start", "temperature": 22})
    assert rec["outcome"] == "not_verified", rec
    assert "8153" in rec["detail"]
    assert s.fleet.live_state(vin).climate_on  # the car did it; the exporter could not see it
