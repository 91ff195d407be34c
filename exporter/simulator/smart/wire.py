"""Reply shapes of the smart cloud: the JSON envelope, error codes, HTML error pages, fault replies.

Data endpoints answer HTTP 200 even for errors, with ``code`` as a *string*; the session exchange
uses an *integer* code. Gateways in front of the service answer rate limits, WAF blocks and outages
with plain HTTP statuses and HTML pages, which clients must survive without a JSON parser crash.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any, Final

from aiohttp import web

from exporter.simulator.faults import Fault, FaultKind, Faults

CONTENT_TYPE: Final = "application/json;responseformat=3"
SERVER: Final = "api-server"

MESSAGES: Final = {
    "1000": "operation succeed",
    "1400": "Illegal parameter",
    "1402": "Token expired",
    "1405": "resource not found",
    "1443": "request nonce repeated",
    "1445": "signature verification failed",
    # the simulator's own code for a stale x-timestamp: the real code is unknown (reference §2,
    # "Timestamp tolerance unknown"); distinct from 1445 so a clock bug is told from a signing bug
    "1446": "request timestamp out of range",
    "1501": "main token expired",
    "4038": "Current vehicle is not in use",
    "8006": "Human and vehicle relationship does not exist",
    "8040": "no vehicle information bound to this VIN and UID",
    "8060": "The vehicle corresponding to the VIN does not exist",
    "8063": "No vehicle information for this VIN! Please check the data",
    "8153": "data unavailable",
    "8160": "Currently no permission to operate",
}


def session_id() -> str:
    return secrets.token_hex(16)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return web.Response(
        text=text,
        status=status,
        headers={"Content-Type": CONTENT_TYPE, "Server": SERVER, **(headers or {})},
    )


def ok_body(
    data: Any, *, message: str = "operation succeed", hint: str | None = None
) -> dict[str, Any]:
    """The success envelope as a dict (so a fault can still tamper with it before sending)."""
    return {
        "code": "1000",
        "data": data,
        "success": True,
        "hint": hint,
        "httpStatus": "OK",
        "sessionId": session_id(),
        "message": message,
    }


def send(body: dict[str, Any]) -> web.Response:
    return _json(body)


def error(code: str, message: str | None = None) -> web.Response:
    return _json(
        {
            "code": code,
            "message": message if message is not None else MESSAGES.get(code, ""),
            "hint": None,
            "httpStatus": "OK",
            "sessionId": session_id(),
            "success": False,
        }
    )


def session_ok(data: dict[str, Any]) -> web.Response:
    """The session exchange reply: integer code, ``sessionId`` null (as captured)."""
    return _json(
        {
            "code": 1000,
            "data": data,
            "success": True,
            "hint": None,
            "sessionId": None,
            "message": "Successful.",
        }
    )


def session_error(code: int, message: str | None = None) -> web.Response:
    return _json(
        {
            "code": code,
            "data": None,
            "success": False,
            "hint": None,
            "sessionId": None,
            "message": message if message is not None else MESSAGES.get(str(code), ""),
        }
    )


def html(status: int, title: str, text: str, headers: dict[str, str] | None = None) -> web.Response:
    page = (
        f"<!DOCTYPE html><html><head><title>{status} {title}</title></head>"
        f"<body><h1>{title}</h1><p>{text}</p><hr><center>nginx</center></body></html>"
    )
    return web.Response(text=page, status=status, content_type="text/html", headers=headers or {})


def waf_block(retry_after: float) -> web.Response:
    """What the login gateway's web application firewall answers to a login storm."""
    return html(
        403,
        "403 Forbidden",
        "Request blocked. Too many login attempts from your network; try again later.",
        {"Retry-After": str(max(1, round(retry_after)))},
    )


async def transport_fault(faults: Faults, fault: Fault, *, login_host: bool) -> web.Response | None:
    """The reply for faults that a gateway produces before the service sees the request."""
    kind = fault.kind
    retry = {"Retry-After": str(max(1, round(fault.retry_after)))}
    if kind is FaultKind.TIMEOUT:
        await asyncio.sleep(faults.hang_for(fault))
        return html(504, "Gateway Time-out", "The upstream server did not answer in time.")
    if kind is FaultKind.RATE_LIMITED:
        wait = round(fault.retry_after)
        return _json(
            {
                "code": "429",
                "message": f"Too many requests, retry in {wait} seconds",
                "success": False,
            },
            status=429,
            headers=retry,
        )
    if kind is FaultKind.FORBIDDEN:
        if login_host:
            return waf_block(fault.retry_after)
        wait = round(fault.retry_after)
        return _json(
            {
                "code": "403",
                "message": f"API quota exceeded, retry in {wait} seconds",
                "success": False,
            },
            status=403,
            headers=retry,
        )
    if kind is FaultKind.SERVER_ERROR:
        status = fault.status if 500 <= fault.status <= 599 else 503
        return html(status, "Service Temporarily Unavailable", "Scheduled maintenance. Back soon.")
    return None


def malformed(body: dict[str, Any]) -> web.Response:
    """A success reply cut off mid-way (HTTP 200, invalid JSON)."""
    text = json.dumps(body, separators=(",", ":"))
    return web.Response(
        text=text[: max(10, len(text) // 2)],
        status=200,
        headers={"Content-Type": CONTENT_TYPE, "Server": SERVER},
    )
