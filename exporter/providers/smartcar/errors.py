"""Smartcar error bodies (v2, v1 legacy, OAuth) parsed and mapped to the provider error types.

Each mapping is chosen by what fixes the problem: the owner (re-authenticate), time (retry later,
with Retry-After and backoff), money (the plan's monthly limit) or us (a malformed request).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from exporter.providers.base import (
    AuthError,
    BadReply,
    BudgetExhausted,
    CommandRejected,
    ProviderError,
    RateLimited,
    ReauthRequired,
    UpstreamUnavailable,
    VehicleNotLinked,
)

# CONNECTED_SERVICES_ACCOUNT codes only the owner can fix by going through Connect again.
REAUTH_CODES: Final = frozenset({"ACCOUNT_ISSUE", "AUTHENTICATION_FAILED", "PERMISSION"})
# Transient vehicle states: retry with growing delays (the docs' example: 1, 5, 15 min).
TRANSIENT_STATES: Final = frozenset({"ASLEEP", "UNREACHABLE"})
TRANSIENT_DELAYS: Final = (60.0, 300.0, 900.0)


@dataclass(frozen=True, slots=True)
class SmartcarError:
    """One error as Smartcar reported it (v2 body, v1 legacy body or HTTP status only)."""

    status: int
    type: str
    code: str | None = None
    description: str = ""
    request_id: str = ""
    resolution: str | None = None
    resolution_url: str | None = None
    retry_after: float | None = None
    user_message: str = ""

    @property
    def key(self) -> str:
        """``TYPE:CODE`` (the SDKs' message prefix), a bounded label value."""
        return f"{self.type}:{self.code}" if self.code else self.type

    @property
    def needs_reauth(self) -> bool:
        if self.type == "PERMISSION":
            return True
        return self.type == "CONNECTED_SERVICES_ACCOUNT" and self.code in REAUTH_CODES


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After is seconds per the docs; a huge number is a millisecond timestamp (javadoc)."""
    if not value:
        return None
    try:
        n = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(n) or n < 0:
        return None
    return n


_LEGACY: Final = {
    "authentication_error": ("AUTHENTICATION", 401),
    "permission_error": ("PERMISSION", 403),
    "vehicle_state_error": ("VEHICLE_STATE", 409),
    "rate_limit_error": ("RATE_LIMIT", 429),
    "monthly_limit_exceeded": ("BILLING", 430),
    "vehicle_not_capable_error": ("COMPATIBILITY", 501),
    "server_error": ("SERVER", 500),
    "validation_error": ("VALIDATION", 400),
    "resource_not_found": ("RESOURCE_NOT_FOUND", 404),
}


def parse_error(status: int, body: Any, headers: Mapping[str, str] | None = None) -> SmartcarError:
    """Parse a v2 body (``type``), a v1 legacy body (``error``) or anything else."""
    retry_after = parse_retry_after((headers or {}).get("Retry-After"))
    if isinstance(body, bytes | str):
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            body = None
    if isinstance(body, dict) and isinstance(body.get("type"), str):
        res = body.get("resolution")
        res_type: str | None
        res_url: str | None
        if isinstance(res, str):  # legacy: "REAUTHENTICATE"
            res_type, res_url = res, None
        elif isinstance(res, dict):
            res_type = res.get("type") if isinstance(res.get("type"), str) else None
            res_url = res.get("url") if isinstance(res.get("url"), str) else None
        else:
            res_type, res_url = None, None
        code = body.get("code")
        return SmartcarError(
            status=int(body.get("statusCode") or status),
            type=body["type"],
            code=code if isinstance(code, str) else None,
            description=str(body.get("description") or ""),
            request_id=str(body.get("requestId") or ""),
            resolution=res_type,
            resolution_url=res_url,
            retry_after=retry_after,
            user_message=str(body.get("suggestedUserMessage") or ""),
        )
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        type_, _ = _LEGACY.get(body["error"], ("SERVER", status))
        code = body.get("code")
        return SmartcarError(
            status=status,
            type=type_,
            code=code if isinstance(code, str) else None,
            description=str(body.get("message") or body.get("error_description") or ""),
            retry_after=retry_after,
        )
    fallback = {401: "AUTHENTICATION", 403: "PERMISSION", 429: "RATE_LIMIT", 430: "BILLING"}
    return SmartcarError(
        status=status,
        type=fallback.get(status, "SERVER" if status >= 500 else "SDK_ERROR"),
        description=f"HTTP {status} without a Smartcar error body",
        retry_after=retry_after,
    )


def to_provider_error(
    err: SmartcarError,
    *,
    command: bool = False,
    reauth_url: str = "",
    attempt: int = 1,
    backoff_base: float = 30.0,
    month_end_in: float = 0.0,
) -> ProviderError:
    """The provider error for ``err``. ``attempt`` counts consecutive failures of this kind, for
    exponential backoff on 429 (never sooner than Retry-After)."""
    msg = f"{err.key} - {err.description}".strip(" -")
    if err.needs_reauth:
        return ReauthRequired(msg, code=err.key, reauth_url=err.resolution_url or reauth_url)
    if err.type == "AUTHENTICATION":
        return AuthError(msg, code=err.key)
    if err.type == "RATE_LIMIT":
        backoff = backoff_base * 2 ** max(0, attempt - 1)
        wait = max(err.retry_after or 0.0, backoff)
        return RateLimited(msg, code=err.key, retry_after=wait)
    if err.type == "BILLING":
        if err.code == "VEHICLE_REQUEST_LIMIT":
            return BudgetExhausted(msg, code=err.key, retry_after=max(month_end_in, 3600.0))
        return ProviderError(msg, code=err.key, retry_after=max(month_end_in, 3600.0))
    if err.type == "CONNECTED_SERVICES_ACCOUNT":
        if err.code in ("NO_VEHICLES", "VEHICLE_MISSING"):
            return VehicleNotLinked(msg, code=err.key)
        # SUBSCRIPTION, VIRTUAL_KEY_REQUIRED: the owner must act in the maker's app, not in Connect
        return VehicleNotLinked(msg, code=err.key, retry_after=6 * 3600.0)
    if err.type == "VEHICLE_STATE":
        if command:
            return CommandRejected(msg, code=err.key)
        if err.code in TRANSIENT_STATES:
            delay = TRANSIENT_DELAYS[min(attempt, len(TRANSIENT_DELAYS)) - 1]
            return UpstreamUnavailable(msg, code=err.key, retry_after=delay)
        return UpstreamUnavailable(msg, code=err.key)
    if err.type == "COMPATIBILITY":
        if command:
            return CommandRejected(msg, code=err.key)
        return BadReply(msg, code=err.key)
    if err.type in ("SERVER", "UPSTREAM"):
        return UpstreamUnavailable(msg, code=err.key)
    if command and err.type == "VALIDATION":
        return CommandRejected(msg, code=err.key)
    return BadReply(msg, code=err.key)


def oauth_error(status: int, body: Any) -> ProviderError:
    """Token endpoint errors (``error`` / ``error_description``)."""
    error, desc = "", ""
    if isinstance(body, dict):
        error = str(body.get("error") or "")
        desc = str(body.get("error_description") or "")
    if status >= 500 or status == 429:
        return UpstreamUnavailable(f"token endpoint HTTP {status}", code=error or str(status))
    if error == "invalid_client" or status == 401:
        return AuthError(
            "Smartcar refused the client credentials (check client_id and client_secret)",
            code="invalid_client",
        )
    if error == "invalid_grant":
        # the description echoes the token; keep it out of messages and logs
        what = "authorization code" if "code" in desc.lower() else "refresh token"
        if "redirect_uri" in desc:
            what = "redirect_uri (it must equal the one registered and used for Connect)"
        return ReauthRequired(f"Smartcar refused the {what}", code="invalid_grant")
    return BadReply(f"token endpoint refused the request: {error or status}", code=error)
