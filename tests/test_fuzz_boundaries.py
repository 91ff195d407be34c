"""Property-based: whatever arrives at the command API, the Smartcar webhook receiver, the Connect
callback or the config loader, the answer is never a 5xx, the log never shows a traceback, and every
log line is a record of its own (nothing a request sends can forge one). Issue 15.

Each test starts one server in its own event loop and lets hypothesis drive it: servers are too
expensive to build per example, and hypothesis cannot drive pytest-asyncio tests."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import logging
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter import logs
from exporter.clock import ManualClock
from exporter.commands.spec import SPECS
from exporter.config import ConfigError, load
from exporter.runtime import Runtime
from exporter.server import make_app
from tests.test_commands_service import AUTH, RO, TOKEN, VIN, VIN2, FakeCloud, _config
from tests.test_smartcar_web import CONFIG as SC_CONFIG
from tests.test_smartcar_web import free_port

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL)\s")
FUZZ = settings(  # CARMETRICS_FUZZ_EXAMPLES=2000 for a long hunt; the default keeps the suite quick
    deadline=None,
    max_examples=int(os.environ.get("CARMETRICS_FUZZ_EXAMPLES", "60")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


class _Count(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def watched_log() -> Iterator[tuple[io.StringIO, _Count]]:
    buf = io.StringIO()
    logs.setup("INFO", "text", stream=buf)
    count = _Count()
    logging.getLogger().addHandler(count)
    yield buf, count
    logging.getLogger().removeHandler(count)


def assert_log_clean(buf: io.StringIO, count: _Count) -> None:
    text = buf.getvalue()
    assert "Traceback" not in text, text[-3000:]
    lines = text.splitlines()
    forged = [ln for ln in lines if not LINE.match(ln)]
    assert not forged, forged[:5]
    assert len(lines) == len(count.records)  # one line per record: none smuggled in
    bad = [r.getMessage() for r in count.records if r.levelno >= logging.ERROR]
    assert not bad, bad


# --- strategies ----------------------------------------------------------------------------------

NASTY_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40
) | st.sampled_from(["X\n2026-01-01T00:00:00 ERROR   forged", "\r\x1b[2J", "../../evil", "%0A"])
HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
NUMBERS = (
    st.integers()
    | st.sampled_from([10**400, -(10**400), 2**63, 2**64, 0, 50, 100])
    | st.floats(allow_nan=True, allow_infinity=True)
)
JSON = st.recursive(
    st.none() | st.booleans() | NUMBERS | NASTY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(NASTY_TEXT, inner, max_size=4),
    max_leaves=8,
)
PARAM_NAMES = sorted({p.name for s in SPECS.values() for p in s.params})
COMMAND_BODY = st.fixed_dictionaries(
    {"command": st.sampled_from(sorted(SPECS)) | NASTY_TEXT},
    optional={n: JSON for n in PARAM_NAMES},
)


def run_in(loop: asyncio.AbstractEventLoop, coro: Any) -> Any:
    return loop.run_until_complete(coro)


# --- the command API -----------------------------------------------------------------------------


def test_the_command_api_never_answers_5xx(
    tmp_path: Path, watched_log: tuple[io.StringIO, _Count]
) -> None:
    loop = asyncio.new_event_loop()
    clock = ManualClock()

    async def start() -> TestClient[Any, Any]:
        runtime = await Runtime.create(_config(tmp_path / "c.db", cooldown=0), clock)
        client: TestClient[Any, Any] = TestClient(TestServer(make_app(runtime)))
        await client.start_server()
        cloud = FakeCloud(clock)
        cloud.supported = frozenset(SPECS)
        for info in await cloud.vehicles():
            runtime.hub.register(info)
            runtime.scheduler.add(info.vin, cloud)
        return client

    client = run_in(loop, start())
    auths = st.sampled_from([AUTH, RO, {}]) | st.builds(
        lambda t: {"Authorization": t}, HEADER_TEXT | st.just(f"Bearer {TOKEN}x")
    )

    @FUZZ
    @given(
        vin=st.sampled_from([VIN, VIN2]) | NASTY_TEXT.filter(bool),
        body=COMMAND_BODY | JSON,
        raw=st.none() | st.binary(max_size=200),
        auth=auths,
        key=st.none() | HEADER_TEXT,
        query=st.dictionaries(st.sampled_from(["wait", "limit"]), HEADER_TEXT, max_size=2),
        cid=NASTY_TEXT.filter(bool),
    )
    def fuzz(
        vin: str,
        body: Any,
        raw: bytes | None,
        auth: dict[str, str],
        key: str | None,
        query: dict[str, str],
        cid: str,
    ) -> None:
        headers = dict(auth)
        if key is not None:
            headers["Idempotency-Key"] = key
        data = raw if raw is not None else json.dumps(body, allow_nan=True).encode()
        seg = quote(vin, safe="")

        async def go() -> list[int]:
            got = []
            async with client.post(
                f"/api/v1/vehicles/{seg}/commands", data=data, headers=headers
            ) as r:
                got.append(r.status)
            async with client.get(
                f"/api/v1/vehicles/{seg}/commands", params=query, headers=headers
            ) as r:
                got.append(r.status)
            wait = {"wait": query["wait"]} if "wait" in query else {}
            async with client.get(
                f"/api/v1/commands/{quote(cid, safe='')}", params=wait, headers=headers
            ) as r:
                got.append(r.status)
            return got

        statuses = run_in(loop, go())
        assert all(s < 500 for s in statuses), statuses
        # bounded waits must not leave work behind that the next example could trip over
        run_in(loop, clock.run_until(clock.now() + 120))

    try:
        fuzz()
    finally:
        run_in(loop, client.close())
        loop.close()
    assert_log_clean(*watched_log)


# --- the Smartcar webhook receiver and the Connect callback --------------------------------------


class _Served:
    def __init__(self, tmp_path: Path, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.port = free_port()
        cfg = tmp_path / "config.toml"
        cfg.write_text(SC_CONFIG.format(port=self.port, db=tmp_path / "h.db"))
        self.cfg = cfg
        self.base = f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.rt = await Runtime.create(load(self.cfg, env={}), ManualClock())
        self.server = TestServer(make_app(self.rt), host="127.0.0.1", port=self.port)
        await self.server.start_server()
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        for _ in range(500):
            if "sc" in self.rt.providers:
                break
            await asyncio.sleep(0.01)
        provider: Any = self.rt.providers["sc"]
        self.amt = provider.settings.management_token.reveal()

    async def stop(self) -> None:
        await self.http.close()
        await self.server.close()


@pytest.fixture
def smartcar_server(tmp_path: Path) -> Iterator[_Served]:
    loop = asyncio.new_event_loop()
    s = _Served(tmp_path, loop)
    run_in(loop, s.start())
    try:
        yield s
    finally:
        run_in(loop, s.stop())
        loop.close()


def _envelope(event: dict[str, Any], data: Any) -> dict[str, Any]:
    doc = {"eventId": "e", "eventType": "VEHICLE_STATE", "vehicleId": "veh", "data": data}
    doc.update(event)
    return doc


SIGNAL = st.fixed_dictionaries(
    {
        "code": st.sampled_from(
            ["tractionbattery-stateofcharge", "odometer-traveleddistance", "charge-ischarging"]
        )
        | NASTY_TEXT,
        "body": JSON,
        "meta": st.fixed_dictionaries({"oemUpdatedAt": JSON | NUMBERS}),
    }
)
WEBHOOK_DOC = st.builds(
    _envelope,
    st.fixed_dictionaries(
        {},
        optional={
            "eventId": NASTY_TEXT,
            "eventType": st.sampled_from(["VEHICLE_STATE", "VEHICLE_ERROR", "VERIFY"]) | JSON,
            "vehicleId": NASTY_TEXT,
            "meta": JSON,
        },
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "signals": st.lists(SIGNAL, max_size=3) | JSON,
            "errors": JSON,
            "challenge": JSON,
            "vehicle": JSON,
        },
    )
    | JSON,
)


def test_the_webhook_receiver_never_answers_5xx(
    smartcar_server: _Served, watched_log: tuple[io.StringIO, _Count]
) -> None:
    s = smartcar_server

    @FUZZ
    @given(
        doc=WEBHOOK_DOC,
        raw=st.none() | st.binary(max_size=200),
        sign=st.sampled_from(["right", "wrong", "none"]),
        path=st.sampled_from(["/webhooks/smartcar", "/webhooks/smartcar/sc"])
        | NASTY_TEXT.filter(bool).map(lambda t: "/webhooks/smartcar/" + quote(t, safe="")),
    )
    def fuzz(doc: Any, raw: bytes | None, sign: str, path: str) -> None:
        body = raw if raw is not None else json.dumps(doc, allow_nan=True).encode()
        headers = {}
        if sign == "right":
            headers["SC-Signature"] = hmac.new(s.amt.encode(), body, hashlib.sha256).hexdigest()
        elif sign == "wrong":
            headers["SC-Signature"] = "0" * 64

        async def go() -> int:
            async with s.http.post(s.base + path, data=body, headers=headers) as r:
                return r.status

        status = run_in(s.loop, go())
        assert status < 500, (status, body[:300])

    fuzz()
    assert_log_clean(*watched_log)


CALLBACK_KEYS = [
    "state",
    "code",
    "error",
    "error_description",
    "make",
    "model",
    "year",
    "vehicle_id",
    "virtual",
]


def test_the_connect_callback_never_answers_5xx_nor_forges_a_line(
    smartcar_server: _Served, watched_log: tuple[io.StringIO, _Count]
) -> None:
    s = smartcar_server

    @FUZZ
    @given(
        query=st.dictionaries(
            st.sampled_from(CALLBACK_KEYS),
            NASTY_TEXT | st.sampled_from(["vehicle_incompatible", "access_denied", "no_vehicles"]),
            max_size=6,
        ),
        issued=st.booleans(),
        with_cookie=st.booleans(),
        account=st.none() | NASTY_TEXT,
    )
    def fuzz(query: dict[str, str], issued: bool, with_cookie: bool, account: str | None) -> None:
        async def go() -> list[int]:
            got = []
            params = {} if account is None else {"account": account}
            async with s.http.get(
                s.base + "/connect/smartcar", params=params, allow_redirects=False
            ) as r:
                got.append(r.status)
                location = r.headers.get("Location", "")
            q = dict(query)
            if issued and "state=" in location:
                q["state"] = location.split("state=")[1].split("&")[0]
            if with_cookie:
                async with s.http.get(
                    s.base + "/connect/smartcar/callback", params=q, allow_redirects=False
                ) as r:
                    got.append(r.status)
            else:
                async with (
                    aiohttp.ClientSession() as stranger,
                    stranger.get(
                        s.base + "/connect/smartcar/callback", params=q, allow_redirects=False
                    ) as r,
                ):
                    got.append(r.status)
            return got

        statuses = run_in(s.loop, go())
        assert all(st_ < 500 for st_ in statuses), (statuses, query)

    fuzz()
    assert_log_clean(*watched_log)


# --- the config loader ---------------------------------------------------------------------------


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


SECTIONS: dict[str, list[str]] = {
    "exporter": ["listen", "port", "db", "max_data_age"],
    "log": ["level", "format"],
    "metrics": ["export_location"],
    "poll": ["driving", "charging", "parked", "asleep", "timeout", "jitter", "concurrency"],
    "simulator": ["enabled", "speed", "seed", "smart_vehicles", "smartcar_vehicles"],
    "commands": ["token", "cooldown", "clients", "verify_delay", "token_file"],
    "tokens": ["key", "key_file"],
}
ACCOUNT_KEYS = [
    "name",
    "provider",
    "region",
    "simulator",
    "vins",
    "username",
    "password",
    "client_id",
    "client_secret",
    "redirect_uri",
    "webhooks",
    "mode",
    "hosts",
]
TOML_SCALAR = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | NASTY_TEXT
    | st.sampled_from(["smart", "smartcar", "EU", "US", "127.0.0.1", "live", "simulated"])
)
TOML_VALUE = st.recursive(
    TOML_SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NASTY_TEXT, inner, max_size=3),
    max_leaves=5,
)


@st.composite
def config_text(draw: st.DrawFn) -> str:
    out = []
    for section, keys in SECTIONS.items():
        if draw(st.booleans()):
            continue
        out.append(f"[{section}]")
        for key in draw(st.lists(st.sampled_from([*keys, "typo"]), max_size=3, unique=True)):
            out.append(f"{key} = {_toml_value(draw(TOML_VALUE))}")
    for _ in range(draw(st.integers(0, 2))):
        out.append("[[accounts]]")
        for key in draw(st.lists(st.sampled_from(ACCOUNT_KEYS), max_size=5, unique=True)):
            out.append(f"{key} = {_toml_value(draw(TOML_VALUE))}")
    if draw(st.booleans()):
        out.append(f"accounts = {_toml_value(draw(TOML_VALUE))}")
    return "\n".join(out) + "\n"


def test_the_config_loader_answers_every_file_with_a_config_or_one_config_error(
    tmp_path: Path,
) -> None:
    from exporter.preflight import preflight
    from exporter.providers.smart.settings import read_settings
    from exporter.providers.smartcar.settings import from_account

    path = tmp_path / "config.toml"

    @FUZZ
    @given(text=config_text(), raw=st.none() | st.binary(max_size=120))
    def fuzz(text: str, raw: bytes | None) -> None:
        if raw is not None:
            path.write_bytes(raw)
        else:
            path.write_text(text)
        try:
            cfg = load(path, env={})
            preflight(cfg, env={})
            for a in cfg.accounts:
                if a.provider == "smart":
                    read_settings(a, sim_urls={"EU": "http://127.0.0.1:1", "INTL": ""})
                else:
                    from_account(a, sim_urls={}, default_redirect="http://127.0.0.1:1/cb")
        except ConfigError as exc:
            assert "\n" not in str(exc) and str(exc)

    fuzz()
