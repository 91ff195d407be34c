"""The simulated Smartcar's Dashboard and owner actions, as unsigned HTTP under ``/_sim/`` on the
API host. Not part of the real cloud: on the real service a developer does these in the Dashboard
(redirect URIs, webhook callback) and an owner in their Smartcar account (revoking a car's access:
the car leaves ``GET /vehicles`` and every call for it answers 403 PERMISSION, as after
``DELETE /vehicles/{id}/application``; reference smartcar-api.md §2.2, §5.2).

    POST /_sim/apps/{client_id} {"redirect_uri", "webhook_url"?}   register a redirect / callback
    POST /_sim/revoke {"vin", "client_id"?}   the owner revokes the app's access to a car
    POST /_sim/restore {"vin", "client_id"?}  undo a revocation (a new Connect also does)
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from exporter.simulator.smartcar.connect import CLOUD


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        got = json.loads(await request.read() or b"{}")
    except ValueError:
        raise web.HTTPBadRequest(text="body must be JSON") from None
    if not isinstance(got, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return got


async def register_app(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    app = cloud.apps.get(request.match_info["client_id"])
    if app is None:
        raise web.HTTPNotFound(text="no such application")
    spec = await _body(request)
    redirect = spec.get("redirect_uri")
    if not isinstance(redirect, str) or not redirect:
        raise web.HTTPBadRequest(text="need a redirect_uri")
    if redirect not in app.redirect_uris:
        app.redirect_uris = (*app.redirect_uris, redirect)
    hook = spec.get("webhook_url")
    if isinstance(hook, str) and hook and hook != app.webhook_url:
        app.webhook_url = hook
        app.verified = False  # a changed callback must be verified again before events flow
    return web.json_response({"client_id": app.client_id, "webhook_id": app.webhook_id})


def _target(cloud: Any, spec: dict[str, Any]) -> list[tuple[str, str]]:
    vin = spec.get("vin")
    if not isinstance(vin, str) or vin not in cloud.cars:
        raise web.HTTPNotFound(text=f"no simulated vehicle {vin!r}")
    client = spec.get("client_id")
    clients = [client] if isinstance(client, str) else list(cloud.apps)
    return [(c, vin) for c in clients]


async def revoke(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    for key in _target(cloud, await _body(request)):
        cloud.revoked.add(key)
        cloud.subscriptions.discard(key)
    return web.json_response({"status": "revoked"})


async def restore(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    for key in _target(cloud, await _body(request)):
        cloud.revoked.discard(key)
    return web.json_response({"status": "restored"})


def routes(app: web.Application) -> None:
    app.router.add_post("/_sim/apps/{client_id}", register_app)
    app.router.add_post("/_sim/revoke", revoke)
    app.router.add_post("/_sim/restore", restore)
