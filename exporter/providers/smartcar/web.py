"""carmetrics' Smartcar pages: start Connect, receive the callback, reconnect, receive webhooks.

- ``GET /connect/smartcar``: a CSRF ``state`` (server-side, single use, 15 min, also pinned in an
  HttpOnly cookie so a code cannot be injected into someone else's browser), then a redirect to
  Connect with the minimal scopes.
- the callback at the path of the configured ``redirect_uri``: checks ``state``, exchanges the code
  server-side, stores the tokens, discovers the cars and starts polling; every Connect error becomes
  a page that says what to do, plus a log line.
- ``GET /connect/smartcar/reconnect``: where the "Reconnect" links and log lines point.
- ``POST /webhooks/smartcar[/{account}]``: VERIFY, signature, dedupe, ordering, then the hub.
"""

from __future__ import annotations

import html
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from aiohttp import web

from exporter.config import AccountConfig
from exporter.logs import mask_vin
from exporter.providers.base import ReauthRequired
from exporter.providers.entry import WebContext
from exporter.providers.smartcar import scopes, v3_connect
from exporter.providers.smartcar.metrics import SmartcarCollector
from exporter.providers.smartcar.provider import SmartcarProvider
from exporter.providers.smartcar.v3_provider import SmartcarV3Provider

AnyProvider = SmartcarProvider | SmartcarV3Provider

log = logging.getLogger(__name__)

CONNECT_PATH: Final = "/connect/smartcar"
RECONNECT_PATH: Final = "/connect/smartcar/reconnect"
DEFAULT_CALLBACK: Final = "/connect/smartcar/callback"
WEBHOOK_PATH: Final = "/webhooks/smartcar"
STATE_TTL: Final = 900.0  # wall-clock seconds: a person is filling in a form
COOKIE: Final = "carmetrics_sc_state"
CONNECT_LABEL: Final = "Connect a car"

CONNECT_ERRORS: Final = {
    "access_denied": "You declined access in Smartcar Connect, so nothing was connected. "
    "You can start again whenever you like.",
    "no_vehicles": "This account has no vehicles; add one in the maker's app and try again.",
    "invalid_subscription": "The car's connected-services subscription is inactive or has "
    "expired. Renew it in the maker's app, then try again.",
    "vehicle_incompatible": "This car cannot share the data carmetrics needs through Smartcar.",
    "configuration_error": "Smartcar reported a problem with this application's setup. Check "
    "client_id, redirect_uri and mode of the Smartcar account in the carmetrics configuration.",
    "server_error": "Smartcar had a temporary problem. Please try again in a few minutes.",
}


@dataclass
class _Pending:
    account: str
    created: float
    purpose: str  # connect | reconnect


class ConnectStates:
    """Issued ``state`` values: single use, short-lived, never reused across accounts."""

    def __init__(self, ttl: float = STATE_TTL) -> None:
        self.ttl = ttl
        self._pending: dict[str, _Pending] = {}

    def issue(self, account: str, purpose: str = "connect") -> str:
        now = time.monotonic()
        self._pending = {k: v for k, v in self._pending.items() if now - v.created < self.ttl}
        state = secrets.token_urlsafe(24)
        self._pending[state] = _Pending(account, now, purpose)
        return state

    def take(self, state: str) -> _Pending | None:
        got = self._pending.pop(state, None)
        if got is None or time.monotonic() - got.created >= self.ttl:
            return None
        return got


STATES: Final = web.AppKey("smartcar_states", ConnectStates)


def _page(title: str, body: str, status: int = 200) -> web.Response:
    doc = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:40em}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}"
        "<p><a href='/' id='home'>Back to carmetrics</a></p></body></html>"
    )
    return web.Response(text=doc, content_type="text/html", status=status)


def _callback_path(account: AccountConfig) -> str:
    uri = account.settings.get("redirect_uri")
    return (urlsplit(uri).path or "/") if isinstance(uri, str) and uri else DEFAULT_CALLBACK


def _providers(wctx: WebContext) -> list[AnyProvider]:
    return [p for p in wctx.providers() if isinstance(p, SmartcarProvider | SmartcarV3Provider)]


def _provider(wctx: WebContext, name: str | None) -> AnyProvider | None:
    found = [p for p in _providers(wctx) if not name or p.account == name]
    return found[0] if found else None


def setup(app: web.Application, wctx: WebContext) -> None:
    """Register the Smartcar routes when the configuration has a Smartcar account. What a page
    learns (a Connect grant, a repaired connection, a webhook) goes through the provider to its
    sink; nothing here touches the runtime."""
    accounts = wctx.accounts
    if not accounts:
        return
    app[STATES] = ConnectStates()

    async def connect(request: web.Request) -> web.StreamResponse:
        name = request.query.get("account")
        if name and name not in {a.name for a in wctx.accounts}:
            return _page("Unknown account", "<p>No Smartcar account has that name here.</p>", 404)
        provider = _provider(wctx, name)
        if provider is None:
            return _page("Smartcar is starting", "<p>Try again in a few seconds.</p>", 503)
        state = request.app[STATES].issue(provider.account)
        if isinstance(provider, SmartcarV3Provider):
            url = v3_connect.authorize_url(
                provider.settings, state, make=request.query.get("make") or None
            )
            return _redirect(url, state, request)
        url = scopes.authorize_url(
            provider.settings,
            state,
            make=request.query.get("make") or None,
            single_select=request.query.get("single_select") == "true" or None,
        )
        return _redirect(url, state, request)

    async def reconnect(request: web.Request) -> web.StreamResponse:
        provider = _provider(wctx, request.query.get("account"))
        vin = provider.vin_of(request.query.get("vehicle", "")) if provider else None
        if provider is None or vin is None:
            return _page("Unknown car", "<p>That car is not connected here.</p>", 404)
        state = request.app[STATES].issue(provider.account, "reconnect")
        if isinstance(provider, SmartcarV3Provider):  # v3: a new Connect renews the grant
            return _redirect(v3_connect.authorize_url(provider.settings, state), state, request)
        r = provider.reauth.get(vin)
        vehicle_id = provider.vehicle_id(vin) or ""
        if r is not None and "AUTHENTICATION_FAILED" in r.reason:
            url = scopes.reauth_url(provider.settings, vehicle_id, state)
        else:
            url = scopes.authorize_url(provider.settings, state, single_select_vin=vin, force=True)
        return _redirect(url, state, request)

    async def callback(request: web.Request) -> web.StreamResponse:
        q = request.query
        state = q.get("state", "")
        # the cookie is checked first: a callback from another browser must not use up the state
        # the real user's browser is about to present
        same_browser = bool(state) and request.cookies.get(COOKIE) == state
        pending = request.app[STATES].take(state) if same_browser else None
        if pending is None:
            log.warning("smartcar callback with an unknown or expired state refused")
            return _page(
                "This sign-in was not started here",
                "<p id='error'>The link expired or was not started from this carmetrics. "
                f"<a href='{CONNECT_PATH}'>Start again</a>.</p>",
                400,
            )
        provider = _provider(wctx, pending.account)
        if provider is None:
            return _page("Smartcar is starting", "<p>Try again in a few seconds.</p>", 503)
        error = q.get("error")
        if error:
            return _connect_error(error, q)
        if isinstance(provider, SmartcarV3Provider):
            return await _v3_callback(request, provider)
        if q.get("vehicle_id") and not q.get("code"):
            provider.reauthenticated(q["vehicle_id"])  # re-polled through the sink
            return _done(
                request, "Reconnected", "<p id='connected'>The car is connected again.</p>"
            )
        code = q.get("code")
        if not code:
            return _page("Nothing to do", "<p id='error'>The callback carried no code.</p>", 400)
        try:
            infos = await provider.connect(code)
        except Exception as exc:
            log.warning(
                "smartcar code exchange failed",
                extra={"account": provider.account, "error": str(exc)[:200]},
            )
            # a code Smartcar refuses (expired, replayed, made up) is the request's fault: 400;
            # only Smartcar itself failing is a 502
            return _page(
                "Connecting failed",
                "<p id='error'>Smartcar did not accept the sign-in (it may have expired). "
                f"<a href='{CONNECT_PATH}'>Please start again</a>.</p>",
                400 if isinstance(exc, ReauthRequired) else 502,
            )
        items = "".join(
            f"<li>{html.escape(i.make)} {html.escape(i.model)} {html.escape(i.year)} "
            f"({html.escape(mask_vin(i.vin))})</li>"
            for i in infos
        )
        body = (
            f"<p id='connected'>Connected {len(infos)} car(s). Their metrics appear on "
            f"<a href='/metrics'>/metrics</a> after the first poll.</p><ul>{items}</ul>"
        )
        return _done(request, "Car connected", body)

    async def webhook(request: web.Request) -> web.StreamResponse:
        name = request.match_info.get("account")
        candidates = [
            p for p in _providers(wctx) if p.settings.webhooks and (not name or p.account == name)
        ]
        if not candidates:
            return web.json_response({"error": "no Smartcar webhook configured"}, status=404)
        raw = await request.read()
        # an accepted report reaches the hub through the provider's sink
        target = candidates[0]
        if isinstance(target, SmartcarV3Provider):
            result3 = target.handle_webhook(raw, request.headers)
            return web.json_response(result3.body, status=result3.status)
        result = target.handle_webhook(raw, request.headers.get("SC-Signature"))
        return web.json_response(result.body, status=result.status)

    paths = {_callback_path(a) for a in accounts}
    for path in sorted(paths):
        app.router.add_get(path, callback)
    app.router.add_get(CONNECT_PATH, connect)
    app.router.add_get(RECONNECT_PATH, reconnect)
    app.router.add_post(WEBHOOK_PATH, webhook)
    app.router.add_post(WEBHOOK_PATH + "/{account}", webhook)
    if (CONNECT_LABEL, CONNECT_PATH) not in wctx.links:
        wctx.links.append((CONNECT_LABEL, CONNECT_PATH))
    wctx.registry.register(SmartcarCollector(lambda: _providers(wctx)))


async def _v3_callback(request: web.Request, provider: SmartcarV3Provider) -> web.Response:
    """v3: the redirect names the user (no code exchange); the cars come from /connections."""
    got = v3_connect.parse_redirect(request.query)
    if got.user_id is None:
        return _page("Nothing to do", "<p id='error'>The callback named no user.</p>", 400)
    try:
        infos = await provider.connected(got.user_id)
    except Exception as exc:
        log.warning(
            "smartcar connections could not be read after Connect",
            extra={"account": provider.account, "error": str(exc)[:200]},
        )
        return _page(
            "Connecting failed",
            "<p id='error'>Smartcar did not list the new connection. "
            f"<a href='{CONNECT_PATH}'>Please start again</a>.</p>",
            502,
        )
    items = "".join(
        f"<li>{html.escape(i.make)} {html.escape(i.model)} {html.escape(i.year)} "
        f"({html.escape(mask_vin(i.vin))})</li>"
        for i in infos
    )
    body = (
        f"<p id='connected'>Connected {len(infos)} car(s). Their metrics appear on "
        f"<a href='/metrics'>/metrics</a> after the first poll.</p><ul>{items}</ul>"
    )
    return _done(request, "Car connected", body)


def _redirect(url: str, state: str, request: web.Request) -> web.StreamResponse:
    resp = web.Response(status=302, headers={"Location": url, "Cache-Control": "no-store"})
    resp.set_cookie(
        COOKIE,
        state,
        max_age=int(STATE_TTL),
        httponly=True,
        samesite="Lax",  # sent on Connect's top-level redirect back, not on cross-site posts
        secure=request.secure,
        path="/",
    )
    return resp


def _done(request: web.Request, title: str, body: str) -> web.Response:
    resp = _page(title, body)
    resp.del_cookie(COOKIE, path="/")
    return resp


def _connect_error(error: str, q: Any) -> web.Response:
    message = CONNECT_ERRORS.get(error, f"Smartcar Connect ended with an error ({error}).")
    if error == "vehicle_incompatible" and q.get("make"):
        car = " ".join(q.get(k, "") for k in ("make", "model", "year")).strip()
        message = f"This car ({car}) cannot share the data carmetrics needs through Smartcar."
    log.warning(
        "smartcar connect failed: %s",
        message,
        extra={"error": error, "description": q.get("error_description", "")[:200]},
    )
    body = (
        f"<p id='error' data-error='{html.escape(error, quote=True)}'>{html.escape(message)}</p>"
        f"<p><a href='{CONNECT_PATH}'>Try again</a></p>"
    )
    return _page("Could not connect the car", body, 200)
