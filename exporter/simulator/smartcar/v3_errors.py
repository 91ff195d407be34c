"""Smartcar v3 error bodies: the JSON:API ``errors[]`` array with a *string* ``status``.

Shape per smartcar-v3.md §5.1 [DOC errors/api-errors/v3]: ``status`` (string), ``type``, ``code``,
``title``, ``detail``, ``links.about``, ``resolution.type``, ``suggestedUserMessage``, ``meta``. The
type -> HTTP status table and the descriptions are the v2 ones (smartcar-api.md §5.2), which v3
keeps; v3 adds AUTHENTICATION ``UNAUTHORIZED``/``ACCESS_DENIED`` and VALIDATION
``MISSING_PARAMETER`` (smartcar-v3.md §1.3, §5.1 [3P-LIVE]).
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

from aiohttp import web

from exporter.simulator.smartcar.errors import (
    DESCRIPTIONS,
    RESOLUTIONS,
    SLUG,
    STATUS,
    USER_MESSAGES,
    ApiFault,
    new_request_id,
)

TITLES: Final = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Access Denied",
    404: "Not Found",
    409: "Conflict",
    429: "Too Many Requests",
    430: "Billing",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
}
# v3-only details (smartcar-v3.md §5.1 [DOC v3/authentication-errors], §1.3 [3P-LIVE]).
V3_DETAILS: Final[dict[tuple[str, str | None], str]] = {
    ("AUTHENTICATION", "UNAUTHORIZED"): "The Authorization token is missing or invalid.",
    ("AUTHENTICATION", "ACCESS_DENIED"): "The given token does not provide access to the "
    "requested resource.",
    ("VALIDATION", "MISSING_PARAMETER"): "missing userId",
    ("RESOURCE_NOT_FOUND", "SIGNAL_NOT_FOUND"): "The requested signal was not found.",
}


def status_of(fault: ApiFault, status: int | None = None) -> int:
    if status is not None:
        return status
    if fault.type == "AUTHENTICATION" and fault.code == "ACCESS_DENIED":
        return 403
    return STATUS.get(fault.type, 500)


def error_item(fault: ApiFault, request_id: str, status: int | None = None) -> dict[str, Any]:
    """One ``errors[]`` member."""
    code = status_of(fault, status)
    key = (fault.type, fault.code)
    detail = (
        V3_DETAILS.get(key)
        or DESCRIPTIONS.get(key)
        or DESCRIPTIONS.get((fault.type, None))
        or f"{fault.type.replace('_', ' ').title()} error: {fault.code or 'unspecified'}."
    )
    anchor = (fault.code or "null").lower().replace("_", "-")
    item: dict[str, Any] = {
        "status": str(code),  # a string in v3 [DOC]
        "type": fault.type,
        "code": fault.code,
        "title": TITLES.get(code, "Error"),
        "detail": detail,
        "links": {
            "about": "https://smartcar.com/docs/errors/api-errors/"
            f"{SLUG.get(fault.type, 'server')}-errors#{anchor}"
        },
        "resolution": RESOLUTIONS.get(key, {"type": None}),
        "suggestedUserMessage": USER_MESSAGES.get(fault.type, "Please try again later."),
        "meta": {"requestId": request_id},
    }
    if fault.detail:
        item["meta"]["detail"] = list(fault.detail)
    return item


def error_body(fault: ApiFault, request_id: str, status: int | None = None) -> dict[str, Any]:
    return {"errors": [error_item(fault, request_id, status)]}


def error_response(
    fault: ApiFault, request_id: str | None = None, status: int | None = None
) -> web.Response:
    rid = request_id or new_request_id()
    headers = {"SC-Request-Id": rid}
    if fault.retry_after is not None:  # per-vehicle 429 only [DOC api-limits]
        headers["Retry-After"] = str(max(1, math.ceil(fault.retry_after)))
    return web.Response(
        status=status_of(fault, status),
        text=json.dumps(error_body(fault, rid, status)),
        content_type="application/json",
        headers=headers,
    )
