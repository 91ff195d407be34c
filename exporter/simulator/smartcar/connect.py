"""Smartcar Connect: the consent page, its outcomes, and the re-authentication page.

Real Connect spans several screens (brand select, OEM login, permissions); one page carries all of
it here because what a client must handle is the redirect that follows: ``code`` + ``state``, or one
of the documented ``error`` values. The login email picks the outcome exactly as Smartcar's test
logins do (``catalog``), and Deny gives ``access_denied``.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlencode, urlsplit, urlunsplit

from aiohttp import web

from exporter.simulator.smartcar import catalog
from exporter.simulator.smartcar.state import SimApp, SmartcarCloud

CLOUD: Final = web.AppKey("smartcar_cloud", SmartcarCloud)
MODES: Final = ("live", "test", "simulated")
DEFAULT_SCOPE: Final = ("read_vehicle_info", "read_vin", "read_odometer", "read_battery")
PASSTHROUGH: Final = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "mode",
    "make",
    "single_select",
    "single_select_vin",
    "approval_prompt",
    "flags",
    "user",
)


def _with_query(uri: str, items: list[tuple[str, str]]) -> str:
    parts = urlsplit(uri)
    query = parts.query + ("&" if parts.query else "") + urlencode(items)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _page(title: str, body: str, status: int = 200) -> web.Response:
    doc = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:34em;margin:2em auto}"
        "button{font-size:1.1em;margin-right:1em}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return web.Response(text=doc, content_type="text/html", status=status)


class _Rejected(Exception):
    """A request Connect cannot redirect back for (unknown client or redirect URI)."""


def _resolve(cloud: SmartcarCloud, q: Mapping[str, str]) -> tuple[SimApp, str]:
    app = cloud.apps.get(q.get("client_id", ""))
    if app is None:
        raise _Rejected("Unknown client_id. Check the application's Client ID.")
    redirect = q.get("redirect_uri") or (app.redirect_uris[0] if app.redirect_uris else "")
    if redirect not in app.redirect_uris:
        raise _Rejected(
            "The redirect_uri is not registered for this application. Add it in the "
            "Smartcar Dashboard under Redirect URIs."
        )
    return app, redirect


def _scopes(raw: str) -> tuple[list[str], list[str], list[str]]:
    """(all permissions, required ones, unknown names)."""
    perms: list[str] = []
    required: list[str] = []
    unknown: list[str] = []
    for item in raw.replace("+", " ").split():
        name = item.removeprefix("required:")
        if name not in catalog.PERMISSIONS:
            unknown.append(name)
            continue
        perms.append(name)
        if item.startswith("required:"):
            required.append(name)
    return perms, required, unknown


def _error_redirect(redirect: str, state: str | None, error: str, *extra: tuple[str, str]) -> str:
    items = [("error", error), ("error_description", catalog.CONNECT_ERRORS[error])]
    items += list(extra)
    if error == "configuration_error":
        items += [("status_code", "400"), ("error_message", catalog.CONNECT_ERRORS[error])]
    if state is not None:
        items.append(("state", state))
    return _with_query(redirect, items)


def _config_problem(q: Mapping[str, str]) -> str | None:
    if q.get("response_type", "code") != "code":
        return "response_type must be code"
    if q.get("mode", "live") not in MODES:
        return "mode must be live, test or simulated"
    if q.get("single_select_vin") and q.get("single_select") != "true":
        return "single_select_vin needs single_select=true"
    _, _, unknown = _scopes(q.get("scope", ""))
    if unknown:
        return f"unknown permission {unknown[0]}"
    return None


async def authorize_page(request: web.Request) -> web.StreamResponse:
    cloud = request.app[CLOUD]
    q = request.query
    try:
        _, redirect = _resolve(cloud, q)
    except _Rejected as exc:
        return _page("Smartcar Connect: error", f"<p id='error'>{html.escape(str(exc))}</p>", 400)
    if _config_problem(q) is not None:
        raise web.HTTPFound(_error_redirect(redirect, q.get("state"), "configuration_error"))
    perms, required, _ = (
        _scopes(q.get("scope", ""))
        if q.get("scope")
        else (
            list(DEFAULT_SCOPE),
            [],
            [],
        )
    )
    hidden = "".join(
        f"<input type='hidden' name='{k}' value='{html.escape(q[k], quote=True)}'>"
        for k in PASSTHROUGH
        if k in q
    )
    items = "".join(
        f"<li data-permission='{p}'>{html.escape(p)}"
        + (" <b>(required)</b>" if p in required else "")
        + "</li>"
        for p in perms
    )
    brand = html.escape(q.get("make", "any brand"))
    mode = html.escape(q.get("mode", "live"))
    body = (
        f"<p>carmetrics would like access to your vehicle ({brand}, {mode} mode).</p>"
        "<form method='post' action='/oauth/authorize' id='consent'>"
        f"{hidden}"
        "<p><label>Email <input name='email' id='email' "
        f"value='{html.escape(cloud.owner_email, quote=True)}'></label></p>"
        "<p><label>Password <input name='password' id='password' type='password' "
        "value='simulated'></label></p>"
        f"<p>Permissions:</p><ul id='permissions'>{items}</ul>"
        "<button type='submit' name='action' value='approve' id='approve'>Allow</button>"
        "<button type='submit' name='action' value='deny' id='deny'>Deny</button>"
        "</form>"
    )
    return _page("Smartcar Connect", body)


async def authorize_submit(request: web.Request) -> web.StreamResponse:
    cloud = request.app[CLOUD]
    form = await request.post()
    q = {k: str(v) for k, v in form.items()}
    try:
        app, redirect = _resolve(cloud, q)
    except _Rejected as exc:
        return _page("Smartcar Connect: error", f"<p id='error'>{html.escape(str(exc))}</p>", 400)
    state = q.get("state")
    if _config_problem(q) is not None:
        raise web.HTTPFound(_error_redirect(redirect, state, "configuration_error"))
    if q.get("action") != "approve":
        raise web.HTTPFound(_error_redirect(redirect, state, "access_denied"))
    mode = q.get("mode", "live")
    if q.get("scope"):
        perms, required, _ = _scopes(q["scope"])
    else:
        perms, required = list(DEFAULT_SCOPE), []
    result = cloud.login(q.get("email", ""), mode)
    if result.error is not None:
        raise web.HTTPFound(_error_redirect(redirect, state, result.error, *result.extra))
    vins = list(result.vins)
    if q.get("make"):
        vins = [v for v in vins if cloud.cars[v].make.upper() == q["make"].upper()]
        if not vins:
            raise web.HTTPFound(_error_redirect(redirect, state, "no_vehicles"))
    if q.get("single_select") == "true":
        wanted = q.get("single_select_vin")
        if wanted:
            if wanted not in vins:
                raise web.HTTPFound(_error_redirect(redirect, state, "configuration_error"))
            vins = [wanted]
        else:
            vins = vins[:1]
    bad = cloud.incompatible(vins, required)
    if bad is not None:
        car = cloud.cars[bad]
        extra = (
            ("vin", car.vin),
            ("make", car.make),
            ("model", car.model),
            ("year", str(car.year)),
        )
        raise web.HTTPFound(_error_redirect(redirect, state, "vehicle_incompatible", *extra))
    code = cloud.issue_code(app.client_id, redirect, result.user_id, vins, perms, mode)
    items = [("code", code)]
    for hook in cloud.connect_hooks:  # v3: + user_id (the code is ignored by v3 clients)
        items += hook(app.client_id, result.user_id, tuple(vins), frozenset(perms), mode)
    if state is not None:
        items.append(("state", state))
    raise web.HTTPFound(_with_query(redirect, items))


async def reauthenticate_page(request: web.Request) -> web.StreamResponse:
    cloud = request.app[CLOUD]
    q = request.query
    try:
        app, redirect = _resolve(cloud, q)
    except _Rejected as exc:
        return _page("Smartcar Connect: error", f"<p id='error'>{html.escape(str(exc))}</p>", 400)
    state = q.get("state")
    vehicle_id = q.get("vehicle_id", "")
    vin = cloud.vin_of(app.client_id, vehicle_id)
    if q.get("response_type") != "vehicle_id" or vin is None:
        raise web.HTTPFound(_error_redirect(redirect, state, "configuration_error"))
    if request.method == "POST":
        form = await request.post()
        if form.get("action") != "approve":
            raise web.HTTPFound(_error_redirect(redirect, state, "access_denied"))
        cloud.reauthenticate(app.client_id, vin)
        items = [("vehicle_id", vehicle_id)]
        if state is not None:
            items.append(("state", state))
        raise web.HTTPFound(_with_query(redirect, items))
    body = (
        "<p>Log in to your connected-services account again to restore access.</p>"
        "<form method='post' id='reauth'>"
        "<button type='submit' name='action' value='approve' id='approve'>Log in</button>"
        "<button type='submit' name='action' value='deny' id='deny'>Cancel</button></form>"
    )
    return _page("Smartcar Connect: reconnect", body)


def routes(app: web.Application) -> None:
    app.router.add_get("/oauth/authorize", authorize_page)
    app.router.add_post("/oauth/authorize", authorize_submit)
    app.router.add_get("/oauth/reauthenticate", reauthenticate_page)
    app.router.add_post("/oauth/reauthenticate", reauthenticate_page)
