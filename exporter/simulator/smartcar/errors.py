"""Smartcar's v2 error bodies, exactly as the API shapes them (reference §5.1-5.2).

A client is only as good as the errors it was tested against, so every body carries the real field
set: ``type``, ``code`` (JSON null where the API sends null), ``description``, ``docURL``,
``statusCode``, ``requestId``, ``resolution`` and ``suggestedUserMessage``.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

STATUS: Final = {
    "AUTHENTICATION": 401,
    "PERMISSION": 403,
    "VALIDATION": 400,
    "RESOURCE_NOT_FOUND": 404,
    "CONNECTED_SERVICES_ACCOUNT": 400,
    "VEHICLE_STATE": 409,
    "RATE_LIMIT": 429,
    "BILLING": 430,
    "COMPATIBILITY": 501,
    "SERVER": 500,
    "UPSTREAM": 502,
}

DESCRIPTIONS: Final = {
    ("AUTHENTICATION", None): "The authorization header is missing or malformed, or it contains "
    "invalid or expired authentication credentials. Please check for missing parameters, spelling "
    "and casing mistakes, and other syntax issues.",
    ("PERMISSION", None): "Your application has insufficient permissions to access the requested "
    "resource. Please prompt the user to re-authenticate using Smartcar Connect.",
    ("VALIDATION", None): "Request invalid or malformed. Please check for missing parameters, "
    "spelling and casing mistakes, and other syntax issues.",
    ("VALIDATION", "PARAMETER"): "Request invalid or malformed. Please check for missing "
    "parameters, spelling and casing mistakes, and other syntax issues.",
    ("RATE_LIMIT", "SMARTCAR_API"): "Your application has exceeded its rate limit. Please retry "
    "your request in a few minutes.",
    ("RATE_LIMIT", "VEHICLE"): "You have reached the throttling rate limit for this vehicle. "
    "Please see the retry-after header (seconds) for when to retry the request.",
    ("VEHICLE_STATE", "ASLEEP"): "The vehicle is in a sleep state and temporarily unable to "
    "perform your request.",
    ("VEHICLE_STATE", "CHARGING_IN_PROGRESS"): "The vehicle is currently charging and unable to "
    "perform your request.",
    ("VEHICLE_STATE", "CHARGING_PLUG_NOT_CONNECTED"): "The vehicle could not begin charging "
    "because it is not plugged in.",
    ("VEHICLE_STATE", "FULLY_CHARGED"): "The vehicle is fully charged and unable to perform your "
    "request.",
    ("COMPATIBILITY", "VEHICLE_NOT_CAPABLE"): "The vehicle is incapable of performing your "
    "request.",
    ("SERVER", "INTERNAL"): "An internal Smartcar error has occurred. Our team has been notified "
    "and is working to resolve this issue.",
    ("BILLING", "VEHICLE_REQUEST_LIMIT"): "You have reached the monthly request limit for this "
    "vehicle under your current plan.",
    ("BILLING", "VEHICLE_LIMIT"): "You have reached the limit of vehicles for your current plan.",
    ("CONNECTED_SERVICES_ACCOUNT", "ACCOUNT_ISSUE"): "Action required in the owner's connected "
    "services account. Please prompt the owner to log in to their connected services app.",
    ("CONNECTED_SERVICES_ACCOUNT", "AUTHENTICATION_FAILED"): "Smartcar was unable to "
    "authenticate with the owner's connected services account. Please prompt the user to "
    "re-authenticate.",
    ("RESOURCE_NOT_FOUND", "PATH"): "The requested resource does not exist. Please check the "
    "URL and try again.",
}

USER_MESSAGES: Final = {
    "AUTHENTICATION": "Please reconnect your car.",
    "PERMISSION": "Please reconnect your car and grant the requested permissions.",
    "RATE_LIMIT": "Your car is temporarily unable to process this request. Please try again later.",
    "VEHICLE_STATE": "Your car is unable to perform this request right now.",
    "CONNECTED_SERVICES_ACCOUNT": "Please log in to your car's connected services app.",
    "COMPATIBILITY": "Your car is unable to perform this request.",
    "BILLING": "This service is temporarily unavailable for your car.",
}

RESOLUTIONS: Final[dict[tuple[str, str | None], Any]] = {
    ("AUTHENTICATION", None): {"type": None},
    ("PERMISSION", None): {"type": "REAUTHENTICATE"},
    ("RATE_LIMIT", "SMARTCAR_API"): {"type": "RETRY_LATER"},
    ("RATE_LIMIT", "VEHICLE"): {"type": "RETRY_LATER"},
    ("SERVER", "INTERNAL"): {"type": "RETRY_LATER"},
    ("CONNECTED_SERVICES_ACCOUNT", "ACCOUNT_ISSUE"): {"type": "REAUTHENTICATE"},
    ("CONNECTED_SERVICES_ACCOUNT", "AUTHENTICATION_FAILED"): {"type": "REAUTHENTICATE"},
    ("CONNECTED_SERVICES_ACCOUNT", "PERMISSION"): {"type": "REAUTHENTICATE"},
    ("COMPATIBILITY", "VEHICLE_NOT_CAPABLE"): {"type": "CONTACT_SUPPORT"},
    ("UPSTREAM", "INVALID_DATA"): {"type": "RETRY_LATER"},
    ("UPSTREAM", "NO_RESPONSE"): {"type": "RETRY_LATER"},
    ("UPSTREAM", "KNOWN_ISSUE"): {"type": "RETRY_LATER"},
    ("UPSTREAM", "UNKNOWN_ISSUE"): {"type": "RETRY_LATER"},
    ("UPSTREAM", "RATE_LIMIT"): {"type": "RETRY_LATER"},
}

SLUG: Final = {
    "AUTHENTICATION": "authentication",
    "PERMISSION": "permission",
    "VALIDATION": "validation",
    "RESOURCE_NOT_FOUND": "resource-not-found",
    "CONNECTED_SERVICES_ACCOUNT": "connected-services-account",
    "VEHICLE_STATE": "vehicle-state",
    "RATE_LIMIT": "rate-limit",
    "BILLING": "billing",
    "COMPATIBILITY": "compatibility",
    "SERVER": "server",
    "UPSTREAM": "upstream",
}


@dataclass(frozen=True, slots=True)
class ApiFault:
    """One error the API should answer with; ``retry_after`` only for 429."""

    type: str
    code: str | None = None
    retry_after: float | None = None
    detail: tuple[dict[str, Any], ...] = ()
    resolution_url: str | None = None


def error_body(fault: ApiFault, request_id: str) -> dict[str, Any]:
    key = (fault.type, fault.code)
    desc = (
        DESCRIPTIONS.get(key)
        or DESCRIPTIONS.get((fault.type, None))
        or (f"{fault.type.replace('_', ' ').title()} error: {fault.code or 'unspecified'}.")
    )
    anchor = (fault.code or "null").lower().replace("_", "-")
    resolution = RESOLUTIONS.get(key, {"type": None})
    if fault.resolution_url:
        resolution = {**resolution, "url": fault.resolution_url}
    body: dict[str, Any] = {
        "type": fault.type,
        "code": fault.code,
        "description": desc,
        "docURL": f"https://smartcar.com/docs/errors/api-errors/{SLUG.get(fault.type, 'server')}"
        f"-errors#{anchor}",
        "statusCode": STATUS.get(fault.type, 500),
        "requestId": request_id,
        "resolution": resolution,
        "suggestedUserMessage": USER_MESSAGES.get(fault.type, "Please try again later."),
    }
    if fault.detail:
        body["detail"] = list(fault.detail)
    return body


def new_request_id() -> str:
    return str(uuid.uuid4())


def error_response(fault: ApiFault, request_id: str | None = None) -> web.Response:
    rid = request_id or new_request_id()
    headers = {"SC-Request-Id": rid}
    if fault.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(fault.retry_after)))
    return web.Response(
        status=STATUS.get(fault.type, 500),
        text=json.dumps(error_body(fault, rid)),
        content_type="application/json",
        headers=headers,
    )


def oauth_error(status: int, error: str, description: str) -> web.Response:
    """Token-endpoint errors are OAuth style, not v2 style (reference §1.3)."""
    return web.json_response({"error": error, "error_description": description}, status=status)
