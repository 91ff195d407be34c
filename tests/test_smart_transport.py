"""Signed calls over real loopback HTTP, and how every code/status becomes a typed error.

A tiny aiohttp app plays the vehicle API: it recomputes the signature from the raw query it receives
(so "what we signed" must equal "what we sent"), and answers whatever the test scripted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.clock import ManualClock
from exporter.providers.base import (
    BadReply,
    ProviderError,
    RateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
    VehicleNotLinked,
)
from exporter.providers.smart.errors import (
    MainTokenExpired,
    SigningError,
    TokenExpired,
    VehicleNotSelected,
    VehicleUnbound,
    WrongHost,
    retry_after_seconds,
)
from exporter.providers.smart.hosts import SmartHosts
from exporter.providers.smart.signing import EU, body_md5, signature, string_to_sign
from exporter.providers.smart.transport import SignedApi, Transport, decode_json, mask_path


@dataclass
class FakeApi:
    """Scripted answers, one per request (the last one repeats)."""

    answers: list[Callable[[web.Request], web.StreamResponse]] = field(default_factory=list)
    seen: list[dict[str, Any]] = field(default_factory=list)
    nonces: set[str] = field(default_factory=set)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        qs = request.raw_path.partition("?")[2]
        expected = signature(
            EU.key,
            string_to_sign(
                nonce=request.headers.get("x-api-signature-nonce", ""),
                query="&".join(sorted(qs.split("&"), key=lambda kv: kv.split("=")[0]))
                if qs
                else "",
                md5=body_md5(body),
                timestamp_ms=request.headers.get("x-timestamp", ""),
                method=request.method,
                path=request.path,
            ),
        )
        self.seen.append(
            {
                "signature_ok": request.headers.get("x-signature") == expected,
                "nonce": request.headers.get("x-api-signature-nonce"),
                "query": qs,
                "body": body,
                "headers": request.headers.copy(),  # case-insensitive
            }
        )
        answer = self.answers[min(len(self.seen) - 1, len(self.answers) - 1)]
        result = answer(request)
        if isinstance(result, web.StreamResponse):
            return result
        return await result  # type: ignore[unreachable]


def envelope(code: str | int, data: Any = None, message: str = "") -> Callable[..., web.Response]:
    def _answer(_: web.Request) -> web.Response:
        return web.json_response(
            {"code": code, "data": data, "message": message, "success": str(code) == "1000"}
        )

    return _answer


def raw(status: int, text: str, ctype: str = "application/json", **headers: str) -> Any:
    def _answer(_: web.Request) -> web.Response:
        return web.Response(status=status, text=text, content_type=ctype, headers=headers)

    return _answer


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeApi, SignedApi, ManualClock]]:
    api = FakeApi()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", api.handle)
    server = TestServer(app, host="127.0.0.1")
    gateway = TestServer(app, host="127.0.0.1")  # a second origin playing the login gateway
    await server.start_server()
    await gateway.start_server()
    base = f"http://127.0.0.1:{server.port}"
    login = f"http://127.0.0.1:{gateway.port}"
    hosts = SmartHosts(
        awsapi=login,
        socialize=login,
        auth=login,
        sg_app_api=login,
        api_v1=base,
        api_v2=base,
        ota=base,
        simulator=True,
    )
    clock = ManualClock()
    async with aiohttp.ClientSession() as session:
        transport = Transport(session, hosts, clock, timeout=0.5)
        yield api, SignedApi(transport, EU, "0123456789abcdef"), clock
    api.release.set()
    await server.close()
    await gateway.close()


async def test_success_unwraps_the_envelope_and_the_signature_verifies(
    fake: tuple[FakeApi, SignedApi, ManualClock],
) -> None:
    api, signed, clock = fake
    api.answers = [envelope("1000", {"list": []})]
    reply = await signed.call(
        "GET",
        signed.transport.hosts.api_v1,
        "/remote-control/vehicle/status/VIN123456789",
        query=[("userId", "1"), ("target", "basic,more"), ("latest", "True")],
        token="TOKEN",
    )
    assert reply.data == {"list": []}
    seen = api.seen[0]
    assert seen["signature_ok"]
    assert seen["query"] == "latest=True&target=basic%2Cmore&userId=1"
    assert seen["headers"]["authorization"] == "TOKEN"
    assert seen["headers"]["x-timestamp"] == str(int(clock.now() * 1000))


async def test_post_body_is_compact_json_and_signed(
    fake: tuple[FakeApi, SignedApi, ManualClock],
) -> None:
    api, signed, _ = fake
    api.answers = [envelope(1000, {"accessToken": "A"})]  # integer code, as session/secure sends
    reply = await signed.call(
        "POST", signed.transport.hosts.api_v1, "/auth/account/session/secure", body={"a": "b c"}
    )
    assert reply.data == {"accessToken": "A"}
    assert api.seen[0]["body"] == b'{"a":"b c"}'
    assert api.seen[0]["signature_ok"]
    assert "authorization" not in api.seen[0]["headers"]


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("1402", TokenExpired),
        ("1501", MainTokenExpired),
        ("8500", MainTokenExpired),
        ("8006", VehicleNotSelected),
        ("4038", VehicleNotSelected),
        ("8160", VehicleNotSelected),
        ("8040", VehicleUnbound),
        ("8063", WrongHost),
        ("8060", WrongHost),
        ("8153", UpstreamUnavailable),
        ("1445", SigningError),
        ("1400", BadReply),
        ("7777", UpstreamUnavailable),
    ],
)
async def test_cloud_codes_map_to_typed_errors(
    fake: tuple[FakeApi, SignedApi, ManualClock], code: str, kind: type[ProviderError]
) -> None:
    api, signed, _ = fake
    api.answers = [envelope(code, None, "refused")]
    with pytest.raises(kind) as info:
        await signed.call("GET", signed.transport.hosts.api_v1, "/x")
    assert info.value.code == code
    assert type(info.value) is kind
    if kind in (VehicleNotSelected, VehicleUnbound, WrongHost):
        assert isinstance(info.value, VehicleNotLinked)


async def test_repeated_nonce_is_retried_once_with_a_fresh_nonce(
    fake: tuple[FakeApi, SignedApi, ManualClock],
) -> None:
    api, signed, _ = fake
    api.answers = [envelope("1443", None, "request nonce repeated"), envelope("1000", {"ok": 1})]
    reply = await signed.call("GET", signed.transport.hosts.api_v1, "/x")
    assert reply.data == {"ok": 1}
    assert len(api.seen) == 2
    assert api.seen[0]["nonce"] != api.seen[1]["nonce"]


async def test_nonce_rejected_twice_is_a_signing_error(
    fake: tuple[FakeApi, SignedApi, ManualClock],
) -> None:
    api, signed, _ = fake
    api.answers = [envelope("1443")]
    with pytest.raises(SigningError) as info:
        await signed.call("GET", signed.transport.hosts.api_v1, "/x")
    assert info.value.code == "1443"
    assert len(api.seen) == 2


@pytest.mark.parametrize(
    ("answer", "kind", "code", "retry_after"),
    [
        (raw(429, '{"message":"slow down"}', **{"Retry-After": "30"}), RateLimited, "429", 30.0),
        (raw(429, '{"message":"wait 5 seconds"}'), RateLimited, "429", 10.0),
        (raw(403, '{"message":"quota exceeded"}'), RateLimited, "403", 4.0),
        (raw(403, '{"message":"forbidden"}'), UpstreamUnavailable, "403", None),
        (raw(401, "{}"), TokenExpired, "401", None),
        (raw(503, "<html>maintenance</html>", "text/html"), UpstreamUnavailable, "503", None),
        (raw(200, "<html>WAF</html>", "text/html"), UpstreamUnavailable, "200", None),
        (raw(200, '{"code":"1000","data":{'), BadReply, "", None),
        (raw(200, "[1, 2]"), BadReply, "", None),
        (raw(200, '{"data":{}}'), BadReply, "", None),
    ],
)
async def test_http_level_failures(
    fake: tuple[FakeApi, SignedApi, ManualClock],
    answer: Any,
    kind: type[ProviderError],
    code: str,
    retry_after: float | None,
) -> None:
    api, signed, _ = fake
    api.answers = [answer]
    with pytest.raises(kind) as info:
        await signed.call("GET", signed.transport.hosts.api_v1, "/x")
    assert info.value.code == code
    assert info.value.retry_after == retry_after


async def test_403_from_the_login_gateway_is_a_rate_limit(
    fake: tuple[FakeApi, SignedApi, ManualClock],
) -> None:
    api, signed, _ = fake
    api.answers = [raw(403, "<html>Request blocked</html>", "text/html")]
    with pytest.raises(RateLimited) as info:
        await signed.transport.send("GET", f"{signed.transport.hosts.awsapi}/login", headers={})
    assert info.value.code == "403"


async def test_a_silent_server_is_a_timeout(fake: tuple[FakeApi, SignedApi, ManualClock]) -> None:
    api, signed, _ = fake

    async def hang(_: web.Request) -> web.Response:
        await api.release.wait()  # never set during the call: the client must give up
        return web.Response()

    api.answers = [hang]  # type: ignore[list-item]
    with pytest.raises(UpstreamTimeout):
        await signed.call("GET", signed.transport.hosts.api_v1, "/x")


async def test_a_body_that_stops_halfway_is_a_timeout(
    fake: tuple[FakeApi, SignedApi, ManualClock],
) -> None:
    """The request timeout covers reading the body, not only the status line and headers."""
    api, signed, _ = fake

    async def stall(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.content_length = 100
        await resp.prepare(request)
        await resp.write(b'{"code": "1000", ')
        await api.release.wait()
        return resp

    api.answers = [stall]  # type: ignore[list-item]
    with pytest.raises(UpstreamTimeout, match="no answer within 0 s"):
        await signed.call("GET", signed.transport.hosts.api_v1, "/x")


async def test_the_request_timeout_caps_a_longer_session_timeout(
    fake: tuple[FakeApi, SignedApi, ManualClock],
) -> None:
    api, signed, _ = fake
    hosts = signed.transport.hosts

    async def hang(_: web.Request) -> web.Response:
        await api.release.wait()
        return web.Response()

    api.answers = [hang]  # type: ignore[list-item]
    session_timeout = aiohttp.ClientTimeout(total=600, sock_connect=30)
    async with aiohttp.ClientSession(timeout=session_timeout) as session:
        capped = SignedApi(Transport(session, hosts, ManualClock(), timeout=0.3), EU, "d")
        with pytest.raises(UpstreamTimeout):  # a TimeoutError of wait_for if the 600 s applied
            await asyncio.wait_for(capped.call("GET", hosts.api_v1, "/x"), 30)


async def test_connection_refused_is_upstream_unavailable() -> None:
    hosts = SmartHosts(api_v1="http://127.0.0.1:9", simulator=True)  # discard port: nothing listens
    async with aiohttp.ClientSession() as session:
        signed = SignedApi(Transport(session, hosts, ManualClock(), timeout=2), EU, "d")
        with pytest.raises(UpstreamUnavailable) as info:
            await signed.call("GET", hosts.api_v1, "/x")
    assert not isinstance(info.value, UpstreamTimeout)


async def test_unlisted_url_is_refused_without_a_request(
    fake: tuple[FakeApi, SignedApi, ManualClock],
) -> None:
    api, signed, _ = fake
    with pytest.raises(BadReply, match="not one of the configured smart hosts"):
        await signed.transport.send("GET", "http://127.0.0.1:1/steal", headers={})
    assert api.seen == []


async def test_a_signed_call_to_an_unlisted_base_is_refused_every_time(
    fake: tuple[FakeApi, SignedApi, ManualClock],
) -> None:
    """The signed calls' host check is remembered per base URL; what it remembers is the verdict's
    input (the origin), never a pass: an unlisted base is refused on the first and every later
    call, and a path that would move the host ("@evil") is checked in full."""
    api, signed, _ = fake
    for _ in range(3):
        with pytest.raises(BadReply, match="not one of the configured smart hosts"):
            await signed.call("GET", "http://127.0.0.1:1", "/steal")
    listed = signed.transport.hosts.api_v1
    api.answers = [envelope("1000", {})]
    await signed.call("GET", listed, "/ok")  # the listed base's origin is now remembered
    seen = len(api.seen)
    with pytest.raises(BadReply, match="not one of the configured smart hosts"):
        await signed.transport.send(
            "GET", "http://127.0.0.1:1/x", headers={}, base=listed
        )  # a base that does not start the URL is not trusted for it
    assert len(api.seen) == seen


def test_retry_after_rules() -> None:
    assert retry_after_seconds({"Retry-After": "12"}, "", 0) == 12
    assert retry_after_seconds({}, "try again in 3 minutes", 0) == 6
    assert retry_after_seconds({}, "", 0) == 4
    when = retry_after_seconds({"Retry-After": "Thu, 01 Jan 2026 00:01:00 GMT"}, "", 1_767_225_600)
    assert when == pytest.approx(60)


def test_log_paths_never_hold_a_vin() -> None:
    masked = mask_path("/remote-control/vehicle/status/soc/HESXR1C47PS082239")
    assert "HESXR1C47PS08" not in masked
    assert masked.endswith("2239")
    assert mask_path("/device-platform/user/session/update") == (
        "/device-platform/user/session/update"
    )


def test_json_reply_fixture_roundtrip() -> None:
    # The envelope helper used above must look like the real thing (reference §3.1).
    doc = json.loads(envelope("1402", None, "Token expired")(None).text)  # type: ignore[arg-type]
    assert doc["code"] == "1402"
    assert doc["success"] is False


# -- decoding: msgspec where it agrees with json.loads, json.loads for the rest ------------------

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_JSON, st.sampled_from(["", " ", "\n\t "]))
def test_decoding_equals_json_loads(doc: Any, pad: str) -> None:
    text = pad + json.dumps(doc, ensure_ascii=False) + pad
    assert repr(decode_json(text)) == repr(json.loads(text))  # 1 vs 1.0 vs True counts


@pytest.mark.parametrize(
    "text",
    [
        '{"a": NaN, "b": Infinity, "c": -Infinity}',  # accepted by json.loads: kept as before
        '{"a": 1e400}',
        '{"code": 123456789012345678901234567890}',  # beyond 64 bits: still an int
        '{"a": "\\ud800"}',  # a lone surrogate escape
        '{"a": 1, "a": 2}',
        "[1E5, 1e-400, -0, -0.0, 0.1e1]",
    ],
)
def test_decoding_the_odd_cases_equals_json_loads(text: str) -> None:
    assert repr(decode_json(text)) == repr(json.loads(text))


@pytest.mark.parametrize("text", ["", "{", '{"a": 1} x', "\ufeff{}", "{'a': 1}", "[1,]", "nul"])
def test_invalid_json_is_a_bad_reply(text: str) -> None:
    with pytest.raises(BadReply, match="not valid JSON"):
        decode_json(text)
