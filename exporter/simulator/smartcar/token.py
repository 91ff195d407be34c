"""``POST /oauth/token``: Basic client auth, the authorization-code and refresh-token grants."""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

from exporter.simulator.smartcar.connect import CLOUD
from exporter.simulator.smartcar.errors import oauth_error
from exporter.simulator.smartcar.state import TokenError


def _basic(request: web.Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


async def token(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    creds = _basic(request)
    if creds is None:
        return oauth_error(401, "invalid_client", "Invalid client credentials.")
    if not request.content_type.startswith("application/x-www-form-urlencoded"):
        return oauth_error(400, "invalid_request", "Content-Type must be form encoded.")
    form = await request.post()
    grant_type = str(form.get("grant_type", ""))
    try:
        app = cloud.check_client(*creds)
        if grant_type == "authorization_code":
            code = str(form.get("code", ""))
            if not code:
                return oauth_error(400, "invalid_request", "Missing code.")
            body = cloud.exchange_code(app, code, str(form.get("redirect_uri", "")))
        elif grant_type == "refresh_token":
            rt = str(form.get("refresh_token", ""))
            if not rt:
                return oauth_error(400, "invalid_request", "Missing refresh_token.")
            body = cloud.refresh_grant(app, rt)
        else:
            return oauth_error(
                400, "unsupported_grant_type", f"Unsupported grant_type: {grant_type}."
            )
    except TokenError as exc:
        return oauth_error(exc.status, exc.error, exc.description)
    return web.json_response(body, headers={"Cache-Control": "no-store"})


def routes(app: web.Application) -> None:
    app.router.add_post("/oauth/token", token)
