"""Smartcar v3 error bodies (JSON:API ``errors[]``) parsed into ``SmartcarError``, and what they
mean for carmetrics.

The official Python SDK does not parse this shape (smartcar-v3.md §5.1 "SDK caveat"), so this is
ours. ``errors[0]`` decides; ``status`` is a string and may differ from the HTTP status for
long-running commands [3P-LIVE citing DOC], so the HTTP status is kept as well. A body that is v2
or OAuth shaped falls back to the v2 parser.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from exporter.providers.base import (
    AuthError,
    BadReply,
    ProviderError,
    VehicleNotLinked,
)
from exporter.providers.smartcar.errors import (
    SmartcarError,
    parse_error,
    parse_retry_after,
    to_provider_error,
)


def parse_v3_error(
    status: int, body: Any, headers: Mapping[str, str] | None = None
) -> SmartcarError:
    if isinstance(body, bytes | str):
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            body = None
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return parse_error(status, body, headers)
    first: dict[str, Any] = errors[0]
    res = first.get("resolution")
    res_type = res.get("type") if isinstance(res, dict) else (res if isinstance(res, str) else None)
    res_url = res.get("url") if isinstance(res, dict) else None
    meta = first.get("meta") if isinstance(first.get("meta"), dict) else {}
    code = first.get("code")
    try:
        inner = int(str(first.get("status") or status))
    except ValueError:
        inner = status
    fallback = {401: "AUTHENTICATION", 403: "AUTHENTICATION", 429: "RATE_LIMIT", 430: "BILLING"}
    return SmartcarError(
        status=inner,
        type=str(first.get("type") or fallback.get(inner, "SERVER")),
        code=code if isinstance(code, str) else None,
        description=str(first.get("detail") or first.get("title") or ""),
        request_id=str((meta or {}).get("requestId") or ""),
        resolution=res_type if isinstance(res_type, str) else None,
        resolution_url=res_url if isinstance(res_url, str) else None,
        retry_after=parse_retry_after((headers or {}).get("Retry-After")),
        user_message=str(first.get("suggestedUserMessage") or ""),
    )


def v3_provider_error(
    err: SmartcarError, *, command: bool = False, attempt: int = 1, month_end_in: float = 0.0
) -> ProviderError:
    """The provider error for a v3 error: v3 moves a few codes (§5.1 taxonomy) that the v2 mapping
    would misread."""
    msg = f"{err.key} - {err.description}".strip(" -")
    if err.type == "AUTHENTICATION" and err.code == "ACCESS_DENIED":
        # the user has no (more) connection to this car: revoked, re-list connections
        return VehicleNotLinked(msg, code=err.key)
    if err.type == "AUTHENTICATION":
        return AuthError(msg, code=err.key)
    if err.type == "VALIDATION" and err.code == "MISSING_PARAMETER" and not command:
        return BadReply(msg, code=err.key)  # our bug: a request without sc-user-id
    if err.type == "RESOURCE_NOT_FOUND" and err.code in ("PATH", "SIGNAL_NOT_FOUND"):
        return BadReply(msg, code=err.key)
    return to_provider_error(err, command=command, attempt=attempt, month_end_in=month_end_in)
