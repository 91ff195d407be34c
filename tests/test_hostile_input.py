"""Hostile input gets a 4xx and at most one short, honest log line; never a 500, a traceback or a
forged line (issue 15)."""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from exporter import logs
from exporter.clock import ManualClock
from exporter.commands.spec import InvalidCommand, validate
from exporter.config import Config
from exporter.runtime import Runtime
from exporter.server import make_app
from tests.test_commands_service import AUTH, VIN, Factory, world  # noqa: F401 (fixture)
from tests.test_smartcar_web import Served, served  # noqa: F401 (fixture)

HUGE = 10**400


@pytest.fixture
def log_text() -> io.StringIO:
    buf = io.StringIO()
    logs.setup("INFO", "text", stream=buf)
    return buf


@pytest.mark.parametrize(
    "body",
    [
        {"command": "charge_limit", "percent": HUGE},
        {"command": "charge_limit", "percent": -HUGE},
        {"command": "seat_heating", "seat": "front_left", "level": HUGE},
        {"command": "climate_start", "temperature": HUGE},
    ],
)
def test_huge_integers_are_an_invalid_parameter_with_a_short_message(
    body: dict[str, object],
) -> None:
    with pytest.raises(InvalidCommand) as exc:
        validate(body)
    assert exc.value.code == "invalid_parameter"
    assert len(str(exc.value)) < 120


async def test_huge_integers_over_http_are_422_not_500(world: Factory) -> None:  # noqa: F811
    w = await world()
    for body in (
        {"command": "charge_limit", "percent": HUGE},
        {"command": "seat_heating", "seat": "front_left", "level": HUGE},
    ):
        status, reply, _ = await w.post(body, vin=VIN)
        assert status == 422, reply
        assert reply["error"] == "invalid_parameter"
    raw = b'{"command": "charge_limit", "percent": ' + b"9" * 5000 + b"}"
    r = await w.client.post(f"/api/v1/vehicles/{VIN}/commands", data=raw, headers=AUTH)
    assert r.status == 400
    assert w.cloud.sent == []


async def _raw(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    reply = await reader.read(200)
    writer.close()
    return reply


async def test_oversized_header_or_path_is_a_400_and_one_short_log_line(
    tmp_path: Path, log_text: io.StringIO
) -> None:
    runtime = await Runtime.create(Config(db=tmp_path / "x.db"), ManualClock())
    server = TestServer(make_app(runtime), host="127.0.0.1")
    await server.start_server()
    try:
        assert server.port is not None
        before = log_text.getvalue()
        big_auth = b"GET /api/v1/vehicles HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        big_auth += b"a" * 100_000 + b"\r\n\r\n"
        long_path = b"GET /" + b"p" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        for request in (big_auth, long_path):
            assert (await _raw(server.port, request)).startswith(b"HTTP/1.0 400")
    finally:
        await server.close()
    lines = [ln for ln in log_text.getvalue()[len(before) :].splitlines() if ln.strip()]
    refused = [ln for ln in lines if "malformed HTTP request" in ln]
    assert len(refused) == 2
    assert all(len(ln) < 200 for ln in refused)
    assert "Traceback" not in log_text.getvalue()
    assert not any(" ERROR " in ln for ln in lines)


def test_control_characters_in_logged_values_are_escaped(log_text: io.StringIO) -> None:
    log = logging.getLogger("carmetrics.test")
    forged = "X\n2026-01-01T00:00:00 ERROR   exporter: forged\r\x1b[31m"
    log.warning("connect failed: %s", forged, extra={"make": forged})
    lines = log_text.getvalue().splitlines()
    assert len(lines) == 1
    assert "\\n2026-01-01T00:00:00 ERROR" in lines[0] and "\\x1b" in lines[0]


async def _state(s: Served) -> str:
    async with s.http.get(s.base + "/connect/smartcar", allow_redirects=False) as r:
        assert r.status == 302
        return parse_qs(urlsplit(r.headers["Location"]).query)["state"][0]


def _callback(s: Served, state: str, tail: str) -> str:
    return f"{s.base}/connect/smartcar/callback?state={state}&{tail}"


async def test_a_forged_line_in_the_connect_callback_make_stays_on_one_line(
    served: Served,  # noqa: F811
    log_text: io.StringIO,
) -> None:
    state = await _state(served)
    make = quote("X\n2026-01-01T00:00:00 ERROR   exporter.runtime: database wiped", safe="")
    async with served.http.get(
        _callback(served, state, f"error=vehicle_incompatible&make={make}")
    ) as r:
        assert r.status == 200
    lines = log_text.getvalue().splitlines()
    assert not any(ln.startswith("2026-01-01T00:00:00 ERROR") for ln in lines)
    assert any("smartcar connect failed" in ln and "\\n2026-01-01" in ln for ln in lines)


async def test_a_callback_without_the_cookie_does_not_use_up_the_state(
    served: Served,  # noqa: F811
) -> None:
    state = await _state(served)
    async with (
        aiohttp.ClientSession() as stranger,  # right state, no cookie
        stranger.get(_callback(served, state, "error=access_denied")) as r,
    ):
        assert r.status == 400
    async with served.http.get(_callback(served, state, "error=access_denied")) as r:
        assert r.status == 200
        assert "You declined access" in (await r.text()).replace("&#x27;", "'")


async def test_connect_for_an_unknown_account_is_404(served: Served) -> None:  # noqa: F811
    status, _ = await served.get("/connect/smartcar?account=../../evil")
    assert status == 404
    status, _ = await served.get("/connect/smartcar?account=sc")
    assert status == 302


def test_a_signed_webhook_with_huge_numbers_is_answered_not_crashed() -> None:
    import hashlib
    import hmac
    import json

    from tests.test_smartcar_webhooks import AMT
    from tests.test_smartcar_webhooks import _provider as webhook_provider

    p = webhook_provider(ManualClock())
    for i, (value, when) in enumerate([(HUGE, 1_767_225_600_000), (50, HUGE), (HUGE, -HUGE)]):
        doc = {
            "eventId": f"e{i}",
            "eventType": "VEHICLE_STATE",
            "vehicleId": "veh-1",
            "data": {
                "signals": [
                    {
                        "code": "tractionbattery-stateofcharge",
                        "body": {"value": value, "unit": "percent"},
                        "meta": {"oemUpdatedAt": when},
                    }
                ]
            },
            "meta": {"deliveredAt": when},
        }
        body = json.dumps(doc).encode()
        res = p.handle_webhook(body, hmac.new(AMT.encode(), body, hashlib.sha256).hexdigest())
        assert res.status == 200
