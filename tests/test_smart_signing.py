"""Known-answer tests of the smart request signature: every worked vector of reference §2."""

from __future__ import annotations

import re

import pytest

from exporter.providers.smart.signing import (
    EMPTY_BODY_MD5,
    EU,
    EU_KEY,
    INTL,
    INTL_KEY,
    body_md5,
    canonical_query,
    signature,
    signed_headers,
    string_to_sign,
)

TS = "1706028240000"
NONCE = "0123456789abcdef"

# (key, nonce, method, path, query params as sent by the app, body bytes, expected query line,
#  expected body MD5, expected x-signature) - straight from the reference table.
VECTORS = [
    (
        EU_KEY,
        NONCE,
        "GET",
        "/remote-control/vehicle/status/TestVIN0000000001",
        [("latest", "True"), ("target", "basic,more"), ("userId", "112233")],
        None,
        "latest=True&target=basic%2Cmore&userId=112233",
        "1B2M2Y8AsgTpgAmY7PhCfg==",
        "6oi4ol/x+StcPgORL6dHW9nnvnQ=",
    ),
    (
        EU_KEY,
        NONCE,
        "GET",
        "/device-platform/user/vehicle/secure",
        [("userId", "112233"), ("needSharedCar", "1")],  # unsorted on purpose
        None,
        "needSharedCar=1&userId=112233",
        "1B2M2Y8AsgTpgAmY7PhCfg==",
        "H9eQP03UhkVRaG9PZaXapFFklU0=",
    ),
    (
        EU_KEY,
        NONCE,
        "POST",
        "/auth/account/session/secure",
        [("identity_type", "smart")],
        b'{"accessToken":"TESTTOKEN"}',
        "identity_type=smart",
        "mVbUEWWA/POGgE/NdBpYuA==",
        "yZrRMEZ15enKoZsKc/MmPECWaT4=",
    ),
    (
        EU_KEY,
        NONCE,
        "POST",
        "/device-platform/user/session/update",
        [],
        b'{"vin": "TestVIN0000000001", "sessionToken": "APITOKEN", "language": ""}',
        "",
        "f4ixkk32LV0ZXLRz7GiuXQ==",
        "aelpPtd14YG7hUSrgd00kBElW1g=",
    ),
    (
        INTL_KEY,
        "8F2C6A0E-1B2D-4C3E-9F00-123456789ABC",
        "POST",
        "/auth/account/session/secure",
        [("identity_type", "smart-israel")],
        b'{"authCode":"CODE-abc"}',
        "identity_type=smart-israel",
        "0m5Lh/wJIr0qQwBeHzABpA==",
        "rhhYDiPDWG2xukZH93942ZWtv5I=",
    ),
]


@pytest.mark.parametrize(
    ("key", "nonce", "method", "path", "params", "body", "query", "md5", "expected"), VECTORS
)
def test_reference_vectors(
    key: bytes,
    nonce: str,
    method: str,
    path: str,
    params: list[tuple[str, str]],
    body: bytes | None,
    query: str,
    md5: str,
    expected: str,
) -> None:
    assert canonical_query(params) == query
    assert body_md5(body) == md5
    sts = string_to_sign(
        nonce=nonce, query=query, md5=md5, timestamp_ms=TS, method=method, path=path
    )
    assert signature(key, sts) == expected


def test_eu_key_is_the_decoded_base64_constant() -> None:
    assert EU_KEY == b"74e7469aff5042bbbed7bbb1b36c15e9"
    assert len(INTL_KEY) == 32


def test_empty_body_hash_is_md5_of_nothing() -> None:
    assert body_md5(b"") == EMPTY_BODY_MD5 == body_md5(None)


def test_string_to_sign_has_nine_lines_and_no_trailing_newline() -> None:
    sts = string_to_sign(nonce="n", query="", md5="m", timestamp_ms="1", method="get", path="/p")
    lines = sts.split("\n")
    assert len(lines) == 9
    assert lines[3] == ""
    assert lines[7] == "GET"
    assert not sts.endswith("\n")


def test_canonical_query_accepts_a_mapping_and_encodes_reserved_characters() -> None:
    assert canonical_query({"b": "x y", "a": "1/2"}) == "a=1%2F2&b=x%20y"


def test_signed_headers_eu_verify_with_the_same_inputs() -> None:
    body = b'{"accessToken":"TESTTOKEN"}'
    h = signed_headers(
        EU,
        method="POST",
        path="/auth/account/session/secure",
        query="identity_type=smart",
        body=body,
        timestamp_ms=TS,
        nonce=NONCE,
        device_id="abcdef0123456789",
    )
    assert h["x-signature"] == "yZrRMEZ15enKoZsKc/MmPECWaT4="
    assert h["x-app-id"] == "SmartAPPEU"
    assert h["x-operator-code"] == "SMART"
    assert h["x-version"] == "smartNew"
    assert "authorization" not in h  # the session exchange carries no token


def test_signed_headers_intl_and_token() -> None:
    h = signed_headers(
        INTL,
        method="GET",
        path="/x",
        query="",
        body=None,
        timestamp_ms=TS,
        nonce="N",
        device_id="d" * 32,
        token="APITOKEN",
    )
    assert h["x-app-id"] == "SMARTAPP-ISRAEL"
    assert h["x-operator-code"] == "SMART-ISRAEL"
    assert h["platform"] == "NON-CMA"
    assert h["content-type"] == "application/json"
    assert h["authorization"] == "APITOKEN"  # raw, no "Bearer"


def test_nonce_and_device_id_formats() -> None:
    assert re.fullmatch(r"[0-9a-f]{16}", EU.new_nonce())
    assert re.fullmatch(
        r"[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[0-9A-F]{4}-[0-9A-F]{12}", INTL.new_nonce()
    )
    assert re.fullmatch(r"[0-9a-f]{16}", EU.new_device_id())
    assert re.fullmatch(r"[0-9a-f]{32}", INTL.new_device_id())
    assert EU.new_nonce() != EU.new_nonce()
