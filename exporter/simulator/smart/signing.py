"""Server side of the smart API request signature (HMAC-SHA1, reference §2).

The simulator recomputes the signature from what actually arrived on the wire: the raw (still
percent-encoded) query split on ``&`` and sorted by key, the MD5 of the exact body bytes, the path
without host or query. A client that signs anything else (decoded values, another key order, a
re-serialised body) is told ``1445``, exactly the bug the real service would punish.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Final
from urllib.parse import quote, unquote

EU_KEY: Final = base64.b64decode("NzRlNzQ2OWFmZjUwNDJiYmJlZDdiYmIxYjM2YzE1ZTk=")
INTL_KEY: Final = b"30fb4a7b7fab4e2e8b52120d0087efdd"
ACCEPT: Final = "application/json;responseformat=3"
EMPTY_BODY_MD5: Final = "1B2M2Y8AsgTpgAmY7PhCfg=="


def body_md5(body: bytes) -> str:
    """base64(MD5(body)); the well-known constant for an empty body."""
    if not body:
        return EMPTY_BODY_MD5
    return base64.b64encode(hashlib.md5(body).digest()).decode()  # protocol-defined, not security


def string_to_sign(nonce: str, query: str, md5: str, timestamp: str, method: str, path: str) -> str:
    """The nine lines of reference §2, joined by newlines, no trailing newline."""
    return "\n".join(
        (
            ACCEPT,
            f"x-api-signature-nonce:{nonce}",
            "x-api-signature-version:1.0",
            "",
            query,
            md5,
            timestamp,
            method.upper(),
            path,
        )
    )


def sign(key: bytes, text: str) -> str:
    return base64.b64encode(hmac.new(key, text.encode(), hashlib.sha1).digest()).decode()


def _pairs(raw_query: str) -> list[tuple[str, str]]:
    out = []
    for part in raw_query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        out.append((key, value))
    return out


def canonical_queries(raw_query: str) -> list[str]:
    """Canonical query strings the server accepts for one raw query, preferred form first.

    1. the raw pairs as received, sorted by key (what working clients produce);
    2. the same with every value fully percent-encoded (the documented Ecarx form).
    """
    pairs = sorted(_pairs(raw_query), key=lambda kv: kv[0])
    raw = "&".join(f"{k}={v}" for k, v in pairs)
    encoded = "&".join(f"{k}={quote(unquote(v), safe='')}" for k, v in pairs)
    return [raw] if encoded == raw else [raw, encoded]


def verify(
    key: bytes,
    headers: Mapping[str, str],
    method: str,
    path: str,
    raw_query: str,
    body: bytes,
) -> bool:
    """True when ``x-signature`` matches one accepted canonical form of this request."""
    given = headers.get("x-signature", "")
    nonce = headers.get("x-api-signature-nonce", "")
    timestamp = headers.get("x-timestamp", "")
    if not given or not nonce or not timestamp:
        return False
    md5 = body_md5(body)
    for query in canonical_queries(raw_query):
        expected = sign(key, string_to_sign(nonce, query, md5, timestamp, method, path))
        if hmac.compare_digest(expected, given):
            return True
    return False
