"""The command API's rules over real HTTP on loopback, with a scripted in-process car.

What is under test here is the exporter's own logic (auth, validation, cooldown, idempotency, rate
limit, verification timing, audit, metrics, restart), which needs exact control over when a car
reports what. The end-to-end runs against the simulated clouds are in test_commands_sim.py.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from exporter.clock import ManualClock
from exporter.commands.web import SERVICE
from exporter.config import Config, PollConfig, Secret
from exporter.providers.base import (
    COMMANDS,
    Command,
    CommandReceipt,
    CommandRejected,
    PollResult,
    RateLimited,
    UpstreamTimeout,
)
from exporter.runtime import Runtime
from exporter.server import make_app
from exporter.signals import Value
from exporter.snapshot import Snapshot, VehicleInfo
from tests.fakes import FakeProvider

TOKEN = "full-access-token-0123456789"
READ = "read-only-token-abcdefghijkl"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RO = {"Authorization": f"Bearer {READ}"}
VIN = "FAKE0000000000001"
VIN2 = "FAKE0000000000002"


@dataclass
class FakeCar:
    """A car that does a command ``delay`` seconds after the cloud accepts it, and reports then."""

    state: dict[str, Value]
    report_time: float
    pending: list[tuple[float, dict[str, Value]]] = field(default_factory=list)


class FakeCloud(FakeProvider):
    """The shared fake provider with cars that act on commands after ``delay`` seconds."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock, account="fake")
        self.fleet = {
            v: FakeCar(
                {
                    "locked": False,
                    "climate_active": False,
                    "charging_state": "plugged",
                    "charge_limit": 0.8,
                    "window_open_front_left": True,
                    "window_open_front_right": False,
                },
                clock.now(),
            )
            for v in (VIN, VIN2)
        }
        self.sent: list[tuple[str, str, dict[str, object]]] = []
        self.snapshots = 0
        self.supported = frozenset({"lock", "unlock", "climate_start", "horn", "windows_close"})
        self.refuse: dict[str, Exception] = {}  # command -> what command() raises
        self.ignore: set[str] = set()  # accepted, but the car never does it
        self.unanswered: set[str] = set()  # the car does it, but the cloud's answer never comes
        self.delay = 3.0

    async def vehicles(self) -> list[VehicleInfo]:
        return [VehicleInfo(v, "smart", "smart", "#1", account="fake") for v in self.fleet]

    def supported_commands(self, vin: str) -> frozenset[str]:
        return self.supported

    async def command(self, vin: str, command: Command) -> CommandReceipt:
        self.sent.append((vin, command.name, dict(command.params)))
        if command.name in self.refuse:
            raise self.refuse[command.name]
        effect: dict[str, Value] = {
            "lock": {"locked": True},
            "unlock": {"locked": False},
            "climate_start": {"climate_active": True},
            "windows_close": {"window_open_front_left": False},
        }.get(command.name, {})
        if command.name not in self.ignore:
            self.fleet[vin].pending.append((self.clock.now() + self.delay, effect))
        if command.name in self.unanswered:
            raise UpstreamTimeout("no reply in 30 s")
        return CommandReceipt(True, f"{command.name} queued", cloud_id=f"c{len(self.sent)}")

    async def poll(self, vin: str) -> PollResult:
        self.snapshots += 1
        car = self.fleet[vin]
        now = self.clock.now()
        for due, effect in [p for p in car.pending if p[0] <= now]:
            car.state.update(effect)
            car.report_time = due
            car.pending.remove((due, effect))
        return PollResult(Snapshot.build(vin, "smart", car.report_time, now, car.state))


@dataclass
class World:
    client: TestClient[web.Request, web.Application]
    clock: ManualClock
    cloud: FakeCloud
    runtime: Runtime
    db: Path

    async def post(
        self, body: object, vin: str = VIN, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any], Any]:
        r = await self.client.post(
            f"/api/v1/vehicles/{vin}/commands", json=body, headers=headers or AUTH
        )
        return r.status, await r.json(), r.headers

    async def outcome(self, cid: str, horizon: float = 400.0) -> dict[str, Any]:
        """Wait for the outcome while moving the shared clock one second at a time."""
        task = asyncio.create_task(self.client.get(f"/api/v1/commands/{cid}?wait=100", headers=RO))
        end = self.clock.now() + horizon
        while not task.done() and self.clock.now() < end:
            await self.clock.run_until(self.clock.now() + 1.0)
            await asyncio.sleep(0)
        resp = await task
        assert resp.status == 200
        got: dict[str, Any] = await resp.json()
        return got

    async def audit(self, cid: str) -> dict[str, Any]:
        await self.client.server.app[SERVICE].audit.flush()
        conn = sqlite3.connect(self.db)
        conn.row_factory = sqlite3.Row
        try:
            row = conn.execute("SELECT * FROM command_audit WHERE id = ?", (cid,)).fetchone()
            return dict(row) if row else {}
        finally:
            conn.close()

    async def audit_count(self) -> int:
        await self.client.server.app[SERVICE].audit.flush()
        conn = sqlite3.connect(self.db)
        try:
            return int(conn.execute("SELECT count(*) FROM command_audit").fetchone()[0])
        finally:
            conn.close()


def _config(db: Path, **commands: object) -> Config:
    table: dict[str, object] = {
        "token": Secret(TOKEN),  # as the loader gives it from the environment
        "clients": {"viewer": {"access": "read", "token": Secret(READ)}},
        "verify_delay": 8,
        "verify_interval": 10,
        "verify_timeout": 60,
        **commands,
    }
    return Config(db=db, poll=PollConfig(jitter=0), extra={"commands": table})


Factory = Callable[..., Awaitable[World]]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[Factory]:
    made: list[TestClient[web.Request, web.Application]] = []

    async def make(**commands: object) -> World:
        clock = ManualClock()
        db = tmp_path / "carmetrics.db"
        runtime = await Runtime.create(_config(db, **commands), clock)
        client = TestClient(TestServer(make_app(runtime)))
        await client.start_server()
        made.append(client)
        cloud = FakeCloud(clock)
        for info in await cloud.vehicles():
            runtime.hub.register(info)
            runtime.scheduler.add(info.vin, cloud)
        return World(client, clock, cloud, runtime, db)

    yield make
    for c in made:
        await c.close()


# --- the happy path ------------------------------------------------------------------------------


async def test_lock_is_sent_verified_audited_and_counted(world: Factory) -> None:
    w = await world()
    status, rec, headers = await w.post({"command": "lock"})
    assert status == 202
    assert headers["Location"] == f"/api/v1/commands/{rec['id']}"
    assert rec["status"] == "pending" and rec["outcome"] is None
    done = await w.outcome(rec["id"])
    assert done["outcome"] == "verified", done
    assert done["cloud"]["accepted"] is True
    assert w.cloud.sent == [(VIN, "lock", {})]
    # the effect came 3 s after sending; the check starts after verify_delay = 8 s
    assert done["finished_at"] - done["sent_at"] == pytest.approx(8, abs=1)
    assert w.runtime.hub.latest(VIN).values["locked"] is True  # type: ignore[union-attr]

    row = await w.audit(rec["id"])
    assert row["vin"] == VIN and row["command"] == "lock" and row["caller"] == "admin"
    assert row["outcome"] == "verified" and row["status"] == "done"
    assert row["cloud_reply"] == "lock queued" and row["cloud_id"] == "c1"
    assert row["params"] == "{}"
    assert TOKEN not in str(row) and READ not in str(row)

    metrics = await (await w.client.get("/metrics")).text()
    assert f'carmetrics_commands_total{{command="lock",outcome="verified",vin="{VIN}"}} 1.0' in (
        metrics
    )


async def test_unobservable_command_is_accepted_and_says_so(world: Factory) -> None:
    w = await world()
    await w.clock.run_until(w.clock.now() + 1)  # the scheduler's first polls
    before = w.cloud.snapshots
    _, rec, _ = await w.post({"command": "horn"})
    done = await w.outcome(rec["id"], horizon=5)
    assert done["outcome"] == "accepted"
    assert "most that can be observed" in done["detail"]
    assert w.cloud.snapshots == before  # nothing to verify: no extra polls spent


async def test_vehicles_list_shows_supported_commands_for_read_tokens(world: Factory) -> None:
    w = await world()
    r = await w.client.get("/api/v1/vehicles", headers=RO)
    assert r.status == 200
    got = {v["vin"]: v for v in (await r.json())["vehicles"]}
    assert set(got) == {VIN, VIN2}
    assert got[VIN]["supported_commands"] == [
        "lock",
        "unlock",
        "climate_start",
        "horn",
        "windows_close",
    ]


# --- auth -----------------------------------------------------------------------------------------


async def test_auth_401_without_or_with_a_wrong_token_and_403_for_read_only(
    world: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    w = await world()
    for headers in ({}, {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": TOKEN}):
        r = await w.client.post(
            f"/api/v1/vehicles/{VIN}/commands", json={"command": "lock"}, headers=headers
        )
        assert r.status == 401
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await r.json())["error"] == "unauthorized"
    r = await w.client.get("/api/v1/vehicles")
    assert r.status == 401
    status, body, _ = await w.post({"command": "lock"}, headers=RO)
    assert status == 403 and "viewer" in body["message"]
    assert w.cloud.sent == []
    assert await w.audit_count() == 0
    assert all(TOKEN not in r.getMessage() and READ not in r.getMessage() for r in caplog.records)


async def test_no_token_configured_disables_the_api(tmp_path: Path) -> None:
    runtime = await Runtime.create(Config(db=tmp_path / "x.db"), ManualClock())
    async with TestClient(TestServer(make_app(runtime))) as client:
        r = await client.post(
            f"/api/v1/vehicles/{VIN}/commands", json={"command": "lock"}, headers=AUTH
        )
        assert r.status == 404
        assert "no token is configured" in (await r.json())["message"]
        assert (await client.get("/api/v1/vehicles", headers=AUTH)).status == 404
        assert (await client.get("/api/v1/openapi.json")).status == 200


# --- validation: nothing reaches the car ---------------------------------------------------------


@pytest.mark.parametrize(
    ("vin", "body", "status", "error", "mentions"),
    [
        (VIN, {"command": "self_destruct"}, 422, "unknown_command", "climate_start"),
        (VIN, {"command": "climate_start", "temperature": 35}, 422, "invalid_parameter", "16..30"),
        (VIN, {"command": "lock", "when": "now"}, 422, "invalid_parameter", "when"),
        (VIN, {"command": "charge_start"}, 422, "unsupported_command", "windows_close"),
        (VIN, ["lock"], 400, "invalid_request", "JSON object"),
        ("NOSUCHVIN", {"command": "lock"}, 404, "unknown_vehicle", "NOSUCHVIN"),
    ],
)
async def test_validation_errors_say_what_is_wrong_and_send_nothing(
    world: Factory, vin: str, body: object, status: int, error: str, mentions: str
) -> None:
    w = await world()
    got, reply, _ = await w.post(body, vin=vin)
    assert got == status
    assert reply["error"] == error
    assert mentions in reply["message"]
    if error == "unsupported_command":
        assert set(reply["supported"]) == w.cloud.supported
        assert reply["supported"] == [c for c in COMMANDS if c in w.cloud.supported]
    assert w.cloud.sent == []
    assert await w.audit_count() == 0


async def test_malformed_json_is_400(world: Factory) -> None:
    w = await world()
    r = await w.client.post(f"/api/v1/vehicles/{VIN}/commands", data=b"{lock", headers=AUTH)
    assert r.status == 400
    assert w.cloud.sent == []


# --- safety ---------------------------------------------------------------------------------------


async def test_cooldown_429_with_retry_after_then_accepted(world: Factory) -> None:
    w = await world(cooldown=5)
    assert (await w.post({"command": "lock"}))[0] == 202
    w.clock.advance(2)
    status, body, headers = await w.post({"command": "unlock"})
    assert status == 429 and body["error"] == "cooldown"
    assert int(headers["Retry-After"]) == 3 == body["retry_after"]
    # another vehicle is not held up by this one's cooldown
    assert (await w.post({"command": "lock"}, vin=VIN2))[0] == 202
    w.clock.advance(3)
    assert (await w.post({"command": "unlock"}))[0] == 202
    assert [c[1] for c in w.cloud.sent if c[0] == VIN] == ["lock", "unlock"]


async def test_idempotency_key_replays_without_sending_again(world: Factory) -> None:
    w = await world()
    key = {"Idempotency-Key": "morning-2026-01-01", **AUTH}
    s1, first, h1 = await w.post({"command": "climate_start", "temperature": 21}, headers=key)
    w.clock.advance(1)  # inside the cooldown: a retry must still get its answer, not 429
    s2, second, h2 = await w.post({"command": "climate_start", "temperature": 21}, headers=key)
    assert (s1, s2) == (202, 202)
    assert second["id"] == first["id"]
    assert (h1["Idempotent-Replayed"], h2["Idempotent-Replayed"]) == ("false", "true")
    s3, third, _ = await w.post({"command": "climate_start", "temperature": 22}, headers=key)
    assert s3 == 422 and third["error"] == "idempotency_key_reused"
    await asyncio.sleep(0)
    assert w.cloud.sent == [(VIN, "climate_start", {"temperature": 21.0})]
    assert await w.audit_count() == 1
    bad = {"Idempotency-Key": "caf\u00e9\u2603", **AUTH}
    r = await w.client.post(
        f"/api/v1/vehicles/{VIN2}/commands",
        json={"command": "lock"},
        headers={k: v.encode().decode("latin-1") for k, v in bad.items()},
    )
    assert r.status == 400


async def test_global_rate_limit(world: Factory) -> None:
    w = await world(rate_limit=2, rate_window=60, cooldown=0)
    assert (await w.post({"command": "lock"}))[0] == 202
    w.clock.advance(10)
    assert (await w.post({"command": "lock"}, vin=VIN2))[0] == 202
    w.clock.advance(10)
    status, body, headers = await w.post({"command": "horn"})
    assert status == 429 and body["error"] == "rate_limited"
    assert int(headers["Retry-After"]) == 40  # the first command leaves the window at t0 + 60
    w.clock.advance(40)
    assert (await w.post({"command": "horn"}))[0] == 202
    assert len(w.cloud.sent) == 3


# --- outcomes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raised", "outcome", "detail"),
    [
        (CommandRejected("the car refused lock", code="8153"), "rejected", "refused"),
        (RateLimited("slow down", retry_after=60), "failed", "rate_limited"),
    ],
)
async def test_send_failures_become_outcomes(
    world: Factory, raised: Exception, outcome: str, detail: str
) -> None:
    w = await world()
    w.cloud.refuse["lock"] = raised
    await w.clock.run_until(w.clock.now() + 1)  # the scheduler's first polls
    polls = w.cloud.snapshots
    _, rec, _ = await w.post({"command": "lock"})
    done = await w.outcome(rec["id"], horizon=5)
    assert done["outcome"] == outcome and detail in done["detail"]
    assert (await w.audit(rec["id"]))["outcome"] == outcome
    assert w.cloud.snapshots == polls  # nothing to verify after a failed send


async def test_a_send_that_timed_out_is_read_back_never_sent_again(world: Factory) -> None:
    """The cloud's answer never came, but the car locked: its reports say so."""
    w = await world(verify_delay=8, verify_interval=10, verify_timeout=60)
    w.cloud.unanswered.add("lock")
    _, rec, _ = await w.post({"command": "lock"})
    done = await w.outcome(rec["id"])
    assert done["outcome"] == "verified"
    assert "did not answer" in done["detail"] and "locked" in done["detail"]
    assert [c[1] for c in w.cloud.sent] == ["lock"]  # one send: never retried blindly


async def test_a_timed_out_send_the_car_never_did_stays_a_timeout(world: Factory) -> None:
    w = await world(verify_delay=8, verify_interval=10, verify_timeout=60)
    w.cloud.refuse["lock"] = UpstreamTimeout("no reply in 30 s")
    await w.clock.run_until(w.clock.now() + 1)
    polls = w.cloud.snapshots
    _, rec, _ = await w.post({"command": "lock"})
    done = await w.outcome(rec["id"])
    assert done["outcome"] == "timeout"
    assert "may or may not" in done["detail"] and "not seen within 60 s" in done["detail"]
    assert w.cloud.snapshots > polls  # the car was read to find out
    assert [c[1] for c in w.cloud.sent] == ["lock"]
    assert (await w.audit(rec["id"]))["outcome"] == "timeout"


async def test_an_effect_that_never_shows_is_not_verified(world: Factory) -> None:
    w = await world(verify_delay=8, verify_interval=10, verify_timeout=60)
    w.cloud.ignore.add("windows_close")
    _, rec, _ = await w.post({"command": "windows_close"})
    before = w.cloud.snapshots
    t0 = w.clock.now()
    done = await w.outcome(rec["id"])
    assert done["outcome"] == "not_verified"
    assert done["finished_at"] - t0 == pytest.approx(60, abs=1)
    assert "not seen within 60 s" in done["detail"]
    # checks at 8, 18, ..., 58 and at the deadline: a bounded number of polls, not a hot loop
    assert 6 <= w.cloud.snapshots - before <= 9
    assert (await w.audit(rec["id"]))["detail"] == done["detail"]
    metrics = await (await w.client.get("/metrics")).text()
    assert 'outcome="not_verified"' in metrics


async def test_wait_returns_the_record_as_it_stands_when_the_wait_ends(world: Factory) -> None:
    w = await world()
    _, rec, _ = await w.post({"command": "lock"})
    task = asyncio.create_task(w.client.get(f"/api/v1/commands/{rec['id']}?wait=2", headers=RO))
    await asyncio.sleep(0.05)
    assert not task.done()  # it really blocks ...
    await w.clock.run_until(w.clock.now() + 2.5)
    r = await task  # ... until the wait ends on the clock
    got = await r.json()
    assert got["status"] == "sent" and got["outcome"] is None
    for bad in ("-1", "abc", "1e9", "nan"):
        r = await w.client.get(f"/api/v1/commands/{rec['id']}?wait={bad}", headers=RO)
        assert r.status == 400
    r = await w.client.get("/api/v1/commands/nope", headers=RO)
    assert r.status == 404


async def test_a_later_command_supersedes_an_unverified_one(world: Factory) -> None:
    w = await world(cooldown=1)
    w.cloud.ignore.add("lock")
    _, first, _ = await w.post({"command": "lock"})
    w.clock.advance(2)
    _, second, _ = await w.post({"command": "unlock"})
    done = await w.outcome(first["id"])
    assert done["outcome"] == "not_verified"
    assert second["id"] in done["detail"]
    assert (await w.outcome(second["id"]))["outcome"] == "verified"


async def test_history_endpoint_and_restart_keep_the_audit(tmp_path: Path, world: Factory) -> None:
    w = await world()
    key = {"Idempotency-Key": "k1", **AUTH}
    _, rec, _ = await w.post({"command": "lock"}, headers=key)
    done = await w.outcome(rec["id"])
    r = await w.client.get(f"/api/v1/vehicles/{VIN}/commands?limit=5", headers=RO)
    listed = (await r.json())["commands"]
    assert [c["id"] for c in listed] == [rec["id"]]
    assert listed[0]["outcome"] == "verified"
    await w.client.close()

    w2 = await world()  # a new process on the same database file
    r = await w2.client.get(f"/api/v1/commands/{rec['id']}", headers=RO)
    assert (await r.json())["outcome"] == done["outcome"]
    status, again, headers = await w2.post({"command": "lock"}, headers=key)
    assert status == 202 and again["id"] == rec["id"]
    assert headers["Idempotent-Replayed"] == "true"
    assert w2.cloud.sent == []
