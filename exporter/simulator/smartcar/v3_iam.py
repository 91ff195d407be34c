"""``POST /oauth2/token`` on the iam host: the v3 ``client_credentials`` grant.

smartcar-v3.md §1.2: form encoding in the docs' curl, a JSON body in the embedded spec and in a
live 2026 client [3P-LIVE], so both are accepted; 1 h tokens without a refresh token [DOC][BLOG];
400 ``invalid_request`` for a missing or wrong grant, 401 ``invalid_client`` for bad credentials
[DOC]; bodies are OAuth style ``{"error", "error_description"}`` [INF].
"""

from __future__ import annotations

import json
from typing import Final

from aiohttp import web

from exporter.simulator.smartcar.errors import oauth_error
from exporter.simulator.smartcar.state import TokenError
from exporter.simulator.smartcar.v3_state import V3Cloud

V3: Final = web.AppKey("smartcar_v3", V3Cloud)


async def _fields(request: web.Request) -> dict[str, str] | None:
    ctype = request.content_type
    if ctype == "application/json":
        try:
            doc = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(doc, dict):
            return None
        return {str(k): str(v) for k, v in doc.items() if isinstance(v, str)}
    if ctype == "application/x-www-form-urlencoded":
        form = await request.post()
        return {k: str(v) for k, v in form.items()}
    return None


async def token(request: web.Request) -> web.Response:
    v3 = request.app[V3]
    fields = await _fields(request)
    if fields is None:
        return oauth_error(400, "invalid_request", "Body must be form encoded or JSON.")
    if fields.get("grant_type") != "client_credentials":
        return oauth_error(400, "invalid_request", "grant_type must be client_credentials.")
    client_id, secret = fields.get("client_id", ""), fields.get("client_secret", "")
    if not client_id or not secret:
        return oauth_error(400, "invalid_request", "client_id and client_secret are required.")
    try:
        body = v3.issue_token(client_id, secret)
    except TokenError as exc:
        return oauth_error(exc.status, exc.error, exc.description)
    return web.json_response(body, headers={"Cache-Control": "no-store"})


def routes(app: web.Application) -> None:
    app.router.add_post("/oauth2/token", token)
