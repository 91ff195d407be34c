"""The simulated Smartcar's v3 Dashboard, as unsigned HTTP under ``/_sim/`` on the management host.

Not part of the real cloud: there, a developer sets a webhook's callback URI in the Dashboard (no
``POST /webhooks`` exists, smartcar-v3.md §2.6). A changed callback must be verified again before
events flow (§4.3: VERIFY is sent when the callback URL changes).

    POST /_sim/webhooks/{webhook_id} {"callback_uri", "error_callback_uri"?}
"""

from __future__ import annotations

import json

from aiohttp import web

from exporter.simulator.smartcar.v3_iam import V3


async def set_webhook(request: web.Request) -> web.Response:
    v3 = request.app[V3]
    hook = v3.webhooks.get(request.match_info["wid"])
    if hook is None:
        raise web.HTTPNotFound(text="no such webhook")
    try:
        spec = json.loads(await request.read() or b"{}")
    except ValueError:
        raise web.HTTPBadRequest(text="body must be JSON") from None
    uri = spec.get("callback_uri") if isinstance(spec, dict) else None
    if not isinstance(uri, str) or not uri:
        raise web.HTTPBadRequest(text="need a callback_uri")
    if uri != hook.callback_uri:
        hook.callback_uri = uri
        hook.verified = False
    err = spec.get("error_callback_uri")
    if isinstance(err, str) and err:
        hook.error_callback_uri = err
    return web.json_response({"webhook_id": hook.id})


def routes(app: web.Application) -> None:
    app.router.add_post("/_sim/webhooks/{wid}", set_webhook)
