"""The simulator's request-signature verifier: reference vectors, and the 1445/1443/1402 replies."""

from __future__ import annotations

import json

import pytest

from exporter.simulator.smart import signing
from tests.test_sim_support import EU_KEY, INTL_KEY, logged_in, running_sim, signature

TS = "1706028240000"
NONCE = "0123456789abcdef"

# Reference §2 worked examples: (key, nonce, method, path, raw query, body, expected x-signature)
VECTORS = [
    (
        EU_KEY,
        NONCE,
        "GET",
        "/remote-control/vehicle/status/TestVIN0000000001",
        "latest=True&target=basic%2Cmore&userId=112233",
        b"",
        "6oi4ol/x+StcPgORL6dHW9nnvnQ=",
    ),
    (
        EU_KEY,
        NONCE,
        "GET",
        "/device-platform/user/vehicle/secure",
        "needSharedCar=1&userId=112233",
        b"",
        "H9eQP03UhkVRaG9PZaXapFFklU0=",
    ),
    (
        EU_KEY,
        NONCE,
        "POST",
        "/auth/account/session/secure",
        "identity_type=smart",
        b'{"accessToken":"TESTTOKEN"}',
        "yZrRMEZ15enKoZsKc/MmPECWaT4=",
    ),
    (
        EU_KEY,
        NONCE,
        "POST",
        "/device-platform/user/session/update",
        "",
        b'{"vin": "TestVIN0000000001", "sessionToken": "APITOKEN", "language": ""}',
        "aelpPtd14YG7hUSrgd00kBElW1g=",
    ),
    (
        INTL_KEY,
        "8F2C6A0E-1B2D-4C3E-9F00-123456789ABC",
        "POST",
        "/auth/account/session/secure",
        "identity_type=smart-israel",
        b'{"authCode":"CODE-abc"}',
        "rhhYDiPDWG2xukZH93942ZWtv5I=",
    ),
]


def _headers(nonce: str, sig: str) -> dict[str, str]:
    return {"x-api-signature-nonce": nonce, "x-timestamp": TS, "x-signature": sig}


@pytest.mark.parametrize(("key", "nonce", "method", "path", "query", "body", "expected"), VECTORS)
def test_reference_vectors_verify(
    key: bytes, nonce: str, method: str, path: str, query: str, body: bytes, expected: str
) -> None:
    assert signing.verify(key, _headers(nonce, expected), method, path, query, body)
    other = INTL_KEY if key == EU_KEY else EU_KEY
    assert not signing.verify(other, _headers(nonce, expected), method, path, query, body)


@pytest.mark.parametrize("field", ["path", "query", "body", "method", "nonce"])
def test_one_altered_byte_fails(field: str) -> None:
    key, nonce, method, path, query, body, expected = VECTORS[2]
    args = {"nonce": nonce, "method": method, "path": path, "query": query, "body": body}
    value = args[field]
    if isinstance(value, bytes):
        args[field] = value[:-2] + bytes([value[-2] ^ 1]) + value[-1:]
    elif field == "method":
        args[field] = "PUT"
    else:
        args[field] = value[:-1] + chr(ord(value[-1]) ^ 1)
    assert not signing.verify(
        key,
        _headers(str(args["nonce"]), expected),
        str(args["method"]),
        str(args["path"]),
        str(args["query"]),
        bytes(args["body"]),  # type: ignore[arg-type]
    )


def test_empty_body_md5_constant_and_query_order() -> None:
    assert signing.body_md5(b"") == "1B2M2Y8AsgTpgAmY7PhCfg=="
    # the server sorts the pairs as received, so a client that sends them out of order but signs
    # the sorted form is accepted; a client that signs decoded values is not (unless fully encoded)
    key, nonce, method, path, _, body, expected = VECTORS[0]
    shuffled = "userId=112233&latest=True&target=basic%2Cmore"
    assert signing.verify(key, _headers(nonce, expected), method, path, shuffled, body)
    sig_raw_comma = signature(
        key, nonce, "latest=True&target=basic,more&userId=112233", body, TS, method, path
    )
    assert signing.verify(
        key,
        _headers(nonce, sig_raw_comma),
        method,
        path,
        "latest=True&target=basic,more&userId=112233",
        body,
    )
    assert not signing.verify(
        key, _headers(nonce, sig_raw_comma), method, path, VECTORS[0][4], body
    )


async def test_http_signed_accepted_altered_rejected_replayed_nonce() -> None:
    async with running_sim() as (handle, _clock, session):
        client = await logged_in(handle, session)
        ok = await client.vehicles()
        assert ok.status == 200 and ok.code == "1000"

        query = f"needSharedCar=1&userId={client.user_id}"
        path = "/device-platform/user/vehicle/secure"
        # one byte of the query differs from what was signed
        bad = await client.call("GET", "api_v1", path, query, sign_query=query[:-1] + "4")
        assert bad.status == 200 and bad.code == "1445"
        assert bad.json()["success"] is False and isinstance(bad.json()["code"], str)

        body = {"vin": handle.info()["vins"]["smart_eu"][0], "sessionToken": client.token}
        raw = json.dumps(body).encode()
        tampered = await client.call(
            "POST", "api_v1", "/device-platform/user/session/update", "", raw, sign_body=raw + b" "
        )
        assert tampered.code == "1445"

        first = await client.call("GET", "api_v1", path, query, nonce="feedfacecafebeef")
        again = await client.call("GET", "api_v1", path, query, nonce="feedfacecafebeef")
        assert first.code == "1000"
        assert again.code == "1443"

        eu_ids = {"x-app-id": "SmartAPPEU", "x-operator-code": "SMART"}
        wrong_key = await client.call("GET", "api_v1", path, query, key=INTL_KEY, headers=eu_ids)
        assert wrong_key.code == "1445"


async def test_http_missing_or_unknown_token_is_1402() -> None:
    async with running_sim() as (handle, _clock, session):
        client = await logged_in(handle, session)
        query = f"needSharedCar=1&userId={client.user_id}"
        path = "/device-platform/user/vehicle/secure"
        missing = await client.call("GET", "api_v1", path, query, token=None)
        unknown = await client.call("GET", "api_v1", path, query, token="eyJhbGciOi.bogus.token")
        assert missing.code == "1402" and unknown.code == "1402"
