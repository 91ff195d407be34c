"""HMAC-SHA1 request signing of the smart vehicle API (reference §2).

The vehicle API hosts reject any request whose ``x-signature`` does not match a nine-line string
built from the nonce, the canonical query, the body MD5, the timestamp, the method and the path. The
server recomputes it from the bytes it receives, so this module also fixes *how* the query is
written on the wire: the caller sends exactly :func:`canonical_query`'s output, never a re-encoded
variant.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

ACCEPT: Final = "application/json;responseformat=3"
SIGNATURE_VERSION: Final = "1.0"
EMPTY_BODY_MD5: Final = "1B2M2Y8AsgTpgAmY7PhCfg=="  # base64(MD5(b""))

# Public app identifiers embedded in the official apps (every open-source client hard-codes them).
EU_KEY: Final = base64.b64decode("NzRlNzQ2OWFmZjUwNDJiYmJlZDdiYmIxYjM2YzE1ZTk=")
INTL_KEY: Final = b"30fb4a7b7fab4e2e8b52120d0087efdd"


@dataclass(frozen=True, slots=True)
class Region:
    """Everything that differs between the EU and the INTL flavour of the same API."""

    name: str
    key: bytes
    app_id: str
    operator_code: str
    identity_type: str
    content_type: str
    user_agent: str
    agent_version: str  # x-agent-version: the iOS version the user agent names
    device_id_hex: int  # length of the random x-device-identifier
    uuid_nonce: bool  # INTL uses an upper-case UUID4, EU 16 hex chars

    def new_nonce(self) -> str:
        return str(uuid.uuid4()).upper() if self.uuid_nonce else secrets.token_hex(8)

    def new_device_id(self) -> str:
        return secrets.token_hex(self.device_id_hex // 2)


EU: Final = Region(
    name="EU",
    key=EU_KEY,
    app_id="SmartAPPEU",
    operator_code="SMART",
    identity_type="smart",
    content_type="application/json; charset=utf-8",
    user_agent="Hello smart/1.4.0 (iPhone; iOS 17.1; Scale/3.00)",
    agent_version="17.1",
    device_id_hex=16,
    uuid_nonce=False,
)
INTL: Final = Region(
    name="INTL",
    key=INTL_KEY,
    app_id="SMARTAPP-ISRAEL",
    operator_code="SMART-ISRAEL",
    identity_type="smart-israel",
    content_type="application/json",
    user_agent="GlobalSmart/1.0.7 (iPhone; iOS 18.6.1; Scale/3.00)",
    agent_version="18.6.1",  # hello_smart's INTL headers (the only source)
    device_id_hex=32,
    uuid_nonce=True,
)
REGIONS: Final = {"EU": EU, "INTL": INTL}


def body_md5(body: bytes | None) -> str:
    """base64(MD5(body)); an absent body hashes like an empty one, as the server expects."""
    if not body:
        return EMPTY_BODY_MD5
    return base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode("ascii")


def canonical_query(params: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """``key=value`` pairs sorted by key, values percent-encoded (``basic,more`` ->
    ``basic%2Cmore``).

    This string is both signed and sent verbatim, which is the only way to be sure the server's
    recomputation from the raw query matches ours.
    """
    items = tuple(params.items()) if isinstance(params, Mapping) else tuple(params)
    try:
        return _canonical(items)  # a client sends the same few queries over and over
    except TypeError:  # an unhashable pair (a list): computed without the cache
        return _canonical.__wrapped__(items)


@functools.lru_cache(maxsize=1024)
def _canonical(items: tuple[tuple[str, str], ...]) -> str:
    ordered = sorted(items, key=lambda kv: kv[0])
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in ordered)


def string_to_sign(
    *, nonce: str, query: str, md5: str, timestamp_ms: str, method: str, path: str
) -> str:
    return "\n".join(
        (
            ACCEPT,
            f"x-api-signature-nonce:{nonce}",
            f"x-api-signature-version:{SIGNATURE_VERSION}",
            "",
            query,
            md5,
            timestamp_ms,
            method.upper(),
            path,
        )
    )


def signature(key: bytes, to_sign: str) -> str:
    digest = hmac.digest(key, to_sign.encode("utf-8"), "sha1")  # one-shot: no HMAC object
    return base64.b64encode(digest).decode("ascii")


@functools.lru_cache(maxsize=8)
def _header_template(region: Region) -> dict[str, str]:
    """The headers that never change for a region, in the order they are sent; the per-request
    ones are placeholders overwritten in place (so the order stays the same)."""
    headers = {
        "x-app-id": region.app_id,
        "accept": ACCEPT,
        "x-agent-type": "iOS",
        "x-agent-version": region.agent_version,
        "x-device-type": "mobile",
        "x-operator-code": region.operator_code,
        "x-device-identifier": "",
        "x-env-type": "production",
        "accept-language": "en_US",
        "x-api-signature-version": SIGNATURE_VERSION,
        "x-api-signature-nonce": "",
        "x-device-manufacture": "Apple",
        "x-device-brand": "Apple",
        "x-device-model": "iPhone",
        "content-type": region.content_type,
        "user-agent": region.user_agent,
        "x-timestamp": "",
        "x-signature": "",
    }
    if region.name == "EU":
        headers["x-version"] = "smartNew"
    else:
        headers["platform"] = "NON-CMA"
    return headers


def signed_headers(
    region: Region,
    *,
    method: str,
    path: str,
    query: str,
    body: bytes | None,
    timestamp_ms: str,
    nonce: str,
    device_id: str,
    token: str | None = None,
) -> dict[str, str]:
    """The full header set the official app sends; ``token`` goes raw into ``authorization``.

    ``path`` must be the path only (no host, no query) and ``query`` the exact canonical query sent.
    """
    sig = signature(
        region.key,
        string_to_sign(
            nonce=nonce,
            query=query,
            md5=body_md5(body),
            timestamp_ms=timestamp_ms,
            method=method,
            path=path,
        ),
    )
    headers = _header_template(region).copy()
    headers["x-device-identifier"] = device_id
    headers["x-api-signature-nonce"] = nonce
    headers["x-timestamp"] = timestamp_ms
    headers["x-signature"] = sig
    if token:
        headers["authorization"] = token
    return headers
