"""Cloud codes and HTTP statuses of the smart cloud, mapped to the provider error types.

Each code gets its own type because each needs a different remedy (reference §4.1): collapsing them
into "log in again" is what wedged other integrations and tripped the login gateway's WAF. The
subclasses below are internal signals for the token ladder and vehicle selection; anything that
escapes the provider is still one of the base types of ``exporter.providers.base``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Final

from exporter.providers.base import (
    AuthError,
    BadReply,
    ProviderError,
    RateLimited,
    UpstreamUnavailable,
    VehicleNotLinked,
)

SUCCESS_CODES: Final = frozenset({"1000", "200", "0"})


class TokenExpired(AuthError):
    """1402 / HTTP 401: the API session token is dead; the ladder starts with a session re-POST."""


class MainTokenExpired(AuthError):
    """1501 / 8500: the OAuth token behind the session is dead; the ladder uses the PUT refresh."""


class VehicleNotSelected(VehicleNotLinked):
    """8006 / 4038 / 8160: the account's selected car is another one; re-select and retry once."""


class VehicleUnbound(VehicleNotLinked):
    """8040: no vehicle bound to VIN+UID. Usually a sub-second race after a refresh."""


class WrongHost(VehicleNotLinked):
    """8063 / 8060: the VIN lives on the other API host (a #5 asked on v1)."""


class SigningError(BadReply):
    """1445 (or 1443 twice): the server did not accept our signature. A bug on our side."""


class ClockSkew(SigningError):
    """1446 (the simulator's code; the real one is unknown): ``x-timestamp`` too far from the
    server's clock. A wrong system clock, or a request signed with the demo clock."""


class NonceRepeated(SigningError):
    """1443: the nonce was seen before; retried once with a fresh nonce and timestamp."""


class LoginSuppressed(RateLimited):
    """A full login was not attempted: the per-username circuit breaker is in its quiet window."""


_BY_CODE: Final[Mapping[str, type[ProviderError]]] = {
    "1402": TokenExpired,
    "1501": MainTokenExpired,
    "8500": MainTokenExpired,
    "8006": VehicleNotSelected,
    "4038": VehicleNotSelected,
    "8160": VehicleNotSelected,
    "8040": VehicleUnbound,
    "8063": WrongHost,
    "8060": WrongHost,
    "8153": UpstreamUnavailable,
    "1443": NonceRepeated,
    "1445": SigningError,
    "1446": ClockSkew,
    "1400": BadReply,
    "1405": BadReply,
}


def error_for_code(code: str, message: str) -> ProviderError:
    """The typed error for a non-success cloud ``code`` (HTTP 200 body)."""
    kind = _BY_CODE.get(code, UpstreamUnavailable)
    text = f"smart cloud refused the request: {message or 'no message'}"
    return kind(text, code=code)


_DIGITS: Final = re.compile(r"\d+")


def retry_after_seconds(headers: Mapping[str, str], message: str, now: float) -> float:
    """Seconds to wait: ``Retry-After`` (seconds or HTTP date), else twice the first number in the
    message (the rule pySmartHashtag uses on the smart cloud), else 2 x 2 s."""
    raw = headers.get("Retry-After", "").strip()
    if raw:
        if raw.isdigit():
            return float(raw)
        try:
            return max(0.0, parsedate_to_datetime(raw).timestamp() - now)
        except (TypeError, ValueError, IndexError):
            pass
    found = _DIGITS.search(message or "")
    return 2.0 * (int(found.group()) if found else 2)


def error_for_http(
    status: int, body: str, headers: Mapping[str, str], now: float, *, login_gateway: bool
) -> ProviderError | None:
    """The typed error for an HTTP status, or None when the status itself is not an error.

    A 403 from the login gateway is the WAF blocking us: a rate limit, so the login breaker
    widens.
    Elsewhere a 403 is a rate limit only when it says "quota".
    """
    if status < 400:
        return None
    code = str(status)
    message = _message_of(body)
    if status == 429 or (status == 403 and (login_gateway or "quota" in body.lower())):
        wait = retry_after_seconds(headers, message, now)
        return RateLimited(f"smart cloud rate limit (HTTP {status})", code=code, retry_after=wait)
    if status == 401:
        return TokenExpired("smart cloud answered HTTP 401", code=code)
    return UpstreamUnavailable(f"smart cloud answered HTTP {status}", code=code)


def _message_of(body: str) -> str:
    """The ``message`` of a JSON error body, or '' (an HTML page's digits mean nothing)."""
    found = re.search(r'"message"\s*:\s*"([^"]*)"', body)
    return found.group(1) if found else ""
