"""The base-URL allowlist every cloud client passes before it may send a password or a token.

A provider client carries passwords, client secrets and long-lived tokens, so a config value must
never talk it into sending them to an arbitrary host. One rule for every provider (each keeps its
own host list next to its code):

- ``https://`` to a host on the provider's list, matched exactly (no suffix, no trailing dot, no
  IDN look-alike, no percent-encoding), on the default port;
- or, only for an account marked ``simulator = true``, ``http://`` or ``https://`` to loopback
  (``127.0.0.1``, ``[::1]``, ``localhost``) with an explicit port: the embedded simulator;
- never credentials, a query or a fragment, and nothing but printable ASCII (``urlsplit`` silently
  drops tabs and newlines, which would let ``api.sm\\nartcar.com`` pass as ``api.smartcar.com``).

``check_base_url`` raises ``ValueError`` with the reason only; callers put the config key in front.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final
from urllib.parse import urlsplit

LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "::1", "localhost"})


def origin(url: str) -> str:
    """``scheme://host[:port]`` in lower case: the unit requests are allowed or refused by."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def is_loopback(host: str) -> bool:
    return host.lower() in LOOPBACK_HOSTS


def check_base_url(value: object, allowed_hosts: Collection[str], *, simulator: bool) -> str:
    """The URL without a trailing slash, or ``ValueError`` saying what is wrong and what is expected."""
    want = f"https:// and one of {', '.join(sorted(allowed_hosts))}"
    if simulator:
        want += " (or http://127.0.0.1:PORT for this simulator account)"
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a base URL, {want}")
    if not value.isascii() or not value.isprintable() or " " in value:
        raise ValueError(f"a base URL must be plain printable ASCII; expected {want}")
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        port = parts.port  # raises ValueError on a garbage or out-of-range port
    except ValueError:
        raise ValueError(f"not a valid URL; expected {want}") from None
    if "@" in parts.netloc or parts.query or parts.fragment or "?" in value or "#" in value:
        raise ValueError("a base URL may not carry credentials, a query or a fragment")
    if is_loopback(host):
        if not simulator:
            raise ValueError(
                "loopback URLs are accepted only for a simulator account "
                f"(set simulator = true); expected {want}"
            )
        if parts.scheme not in {"http", "https"} or port is None or port == 0:
            raise ValueError("expected http://127.0.0.1:PORT")
    elif parts.scheme != "https" or host not in allowed_hosts or port not in (None, 443):
        raise ValueError(f"expected {want}")
    return value.rstrip("/")
