"""The login hosts: awsapi (OIDC bootstrap + final redirects), Gigya socialize, auth.smart.com, and
the INTL login on sg-app-api (reference §1.1, §1.2).

The EU chain, as the real one: ``awsapi/authorize`` → 302 to ``auth/oidc/.../authorize`` → 302 to a
login page URL carrying ``context``; ``socialize.getIDs`` hands out ``gmid``/``ucid``;
``accounts.login`` (form POST, always HTTP 200, success when ``errorCode`` is 0) needs the
bootstrap cookie and gives a ``login_token``; ``authorize/continue`` with the ``glt_<APIKey>``
cookie → 302 to ``awsapi/FinalPage`` → 302 to
``MobileData?access_token=…&id_token=…&refresh_token=…``. Every Location is one of the simulator's
own loopback URLs. Too many login chains trip the gateway's WAF (HTTP 403 HTML).
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlencode

from aiohttp import web

from exporter.simulator.faults import Fault, FaultKind
from exporter.simulator.smart import wire
from exporter.simulator.smart.cloud import API_KEY, CLIENT_ID, CLOUD, INTL_CA_KEY, SmartCloud
from exporter.simulator.smart.identity import id_token

SCOPE = "openid EmailScope profile MarketInformation"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


async def _gateway(
    cloud: SmartCloud, endpoint: str, picked: list[Fault] | None = None
) -> web.Response | None:
    """Faults and the WAF block, as the login gateway applies them before anything else. A fault
    the gateway does not answer itself is handed to the caller through ``picked``."""
    fault = cloud.faults.pick(CLOUD, endpoint)
    if fault is not None:
        reply = await wire.transport_fault(cloud.faults, fault, login_host=True)
        if reply is not None:
            return reply
        if fault.kind is FaultKind.MALFORMED_JSON:
            return web.Response(text="<html><body>Bad Gateway</body></html>", status=502)
        if picked is not None:
            picked.append(fault)
    left = cloud.throttle.blocked()
    if left is not None:
        return wire.waf_block(left)
    return None


def _redirect(location: str) -> web.Response:
    return web.Response(status=302, headers={"Location": location})


# ---------------------------------------------------------------------------- awsapi


def awsapi_app(cloud: SmartCloud) -> web.Application:
    async def authorize(request: web.Request) -> web.Response:
        blocked = await _gateway(cloud, "login")
        if blocked is not None:
            return blocked
        ua = request.headers.get("User-Agent", "")
        if cloud.config.require_webview_ua and "Mozilla" not in ua:
            return wire.html(403, "403 Forbidden", "Request blocked.")
        wait = cloud.throttle.check()
        if wait is not None:
            return wire.waf_block(wait)
        locale = request.query.get("uiLocales", "de-DE")
        query = urlencode(
            {
                "client_id": CLIENT_ID,
                "redirect_uri": f"{cloud.urls['awsapi']}/login-app/api/v1/FinalPage",
                "response_type": "code",
                "scope": SCOPE,
                "state": secrets.token_urlsafe(12),
                "nonce": str(int(cloud.clock.now() * 1000)),
                "ui_locales": locale,
            }
        )
        return _redirect(f"{cloud.urls['auth']}/oidc/op/v1.0/{API_KEY}/authorize?{query}")

    async def final_page(request: web.Request) -> web.Response:
        code = cloud.identity.get(request.query.get("code"), "code")
        if code is None or code.used:
            return _redirect(_error_url(cloud, "403005", "Unauthorized user"))
        code.used = True
        ident = cloud.identity
        now = cloud.clock.now()
        access = ident.issue("oauth_access", code.account, ident.lifetimes.oauth_access)
        refresh = ident.issue(
            "oauth_refresh", code.account, ident.lifetimes.oauth_refresh, parent=access.value
        )
        tokens = urlencode(
            {
                "access_token": access.value,
                "id_token": id_token(
                    f"{cloud.urls['auth']}/oidc/op/v1.0/{API_KEY}/",
                    CLIENT_ID,
                    code.account.uid,
                    now,
                ),
                "refresh_token": refresh.value,
            }
        )
        return _redirect(f"/login-app/api/v1/MobileData?{tokens}")

    async def mobile_data(_request: web.Request) -> web.Response:
        return web.Response(
            text="<html><body>Login complete.</body></html>", content_type="text/html"
        )

    app = web.Application()
    app.router.add_get("/login-app/api/v1/authorize", authorize)
    app.router.add_get("/login-app/api/v1/FinalPage", final_page)
    app.router.add_get("/login-app/api/v1/MobileData", mobile_data)
    return app


def _error_url(cloud: SmartCloud, code: str, message: str) -> str:
    return f"{cloud.urls['auth']}/proxy?" + urlencode(
        {"mode": "error", "errorCode": code, "errorMessage": message}
    )


# ---------------------------------------------------------------------------- socialize


def socialize_app(cloud: SmartCloud) -> web.Application:
    async def get_ids(request: web.Request) -> web.Response:
        blocked = await _gateway(cloud, "login")
        if blocked is not None:
            return blocked
        now = cloud.clock.now()
        if request.query.get("APIKey") != API_KEY:
            return web.json_response(
                {
                    "callId": secrets.token_hex(16),
                    "errorCode": 400093,
                    "errorDetails": "Invalid ApiKey parameter",
                    "errorMessage": "Invalid ApiKey parameter",
                    "apiVersion": 2,
                    "statusCode": 400,
                    "statusReason": "Bad Request",
                    "time": _iso(now),
                }
            )
        gmid = f"gmid.ver4.{secrets.token_urlsafe(8)}.{secrets.token_urlsafe(40)}.sc3"
        cloud.identity.gmids.add(gmid)
        return web.json_response(
            {
                "callId": secrets.token_hex(16),
                "errorCode": 0,
                "apiVersion": 2,
                "statusCode": 200,
                "statusReason": "OK",
                "time": _iso(now),
                "ucid": secrets.token_urlsafe(16),
                "gcid": secrets.token_urlsafe(16),
                "gmid": gmid,
                "gmidTicket": secrets.token_urlsafe(24),
                "serverTime": int(now),
            }
        )

    app = web.Application()
    app.router.add_get("/socialize.getIDs", get_ids)
    return app


# ---------------------------------------------------------------------------- auth.smart.com


def _gigya_error(now: float, code: int, message: str, details: str) -> web.Response:
    """Gigya's error body (always HTTP 200): ``statusCode`` is the code's first three digits."""
    status = code // 1000
    reasons = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 206: "Partial Content"}
    return web.json_response(
        {
            "callId": secrets.token_hex(16),
            "errorCode": code,
            "errorDetails": details,
            "errorMessage": message,
            "apiVersion": 2,
            "statusCode": status,
            "statusReason": reasons.get(status, "Bad Request"),
            "time": _iso(now),
        }
    )


# Login challenges of the Gigya chain (codes: the Gigya Web SDK's GSErrors table). Captcha and
# pending registration need the owner in the app; the lockout lifts by itself.
CHALLENGES: Final = {
    "401020": ("Login Failed Captcha Required", "captcha required after failed logins"),
    "403120": ("Account temporarily locked out", "too many failed login attempts"),
    "206001": ("Account Pending Registration", "new terms of use must be accepted (consent)"),
}
APP_ORIGIN: Final = "https://app.id.smart.com"  # what the app's webview sends (pysmarthashtag)


def auth_app(cloud: SmartCloud) -> web.Application:
    async def oidc_authorize(request: web.Request) -> web.Response:
        if request.match_info["key"] != API_KEY:
            return web.Response(status=404, text="unknown client")
        ident = cloud.identity
        if not ident.accounts:
            return wire.html(503, "Service Unavailable", "No accounts configured.")
        now = cloud.clock.now()
        value = f"eu1_tk1.{secrets.token_urlsafe(32)}.{int(now)}"
        # the context is not bound to an account yet; any account may complete it
        placeholder = next(iter(ident.accounts.values()))
        ident.issue("context", placeholder, ident.lifetimes.context, value=value)
        query = urlencode(
            {
                "context": value,
                "client_id": CLIENT_ID,
                "mode": "login",
                "scope": SCOPE,
                "gig_ui_locales": request.query.get("ui_locales", "de-DE"),
                "gig_skipConsent": "true",
            }
        )
        return _redirect(f"{cloud.urls['auth']}/proxy?{query}")

    async def proxy(request: web.Request) -> web.Response:
        if request.query.get("mode") == "error":
            text = f"Login failed: {request.query.get('errorMessage', '')}"
        else:
            text = "smart ID login (simulated). Clients post accounts.login directly."
        return web.Response(text=f"<html><body>{text}</body></html>", content_type="text/html")

    async def accounts_login(request: web.Request) -> web.Response:
        picked: list[Fault] = []
        blocked = await _gateway(cloud, "login", picked)
        if blocked is not None:
            return blocked
        form = await request.post()
        now = cloud.clock.now()
        if form.get("APIKey") != API_KEY:
            return _gigya_error(now, 400093, "Invalid ApiKey parameter", "Invalid ApiKey parameter")
        if cloud.config.strict and request.headers.get("Origin") != APP_ORIGIN:
            # a JS-SDK call from a page outside the site's trusted domains [inferred: the Gigya
            # code for it (INVALID_SITE_DOMAIN) from the Web SDK table; no capture]
            return _gigya_error(now, 400120, "Invalid site domain", "origin not trusted")
        # challenges have their own endpoint name, so a script aims at this step of the chain
        fault = picked[0] if picked else cloud.faults.pick(CLOUD, "accounts.login")
        if fault is not None and fault.kind is FaultKind.LOGIN_CHALLENGE:
            code = fault.code if fault.code in CHALLENGES else "403120"
            message, details = CHALLENGES[code]
            return _gigya_error(now, int(code), message, details)
        gmid = request.cookies.get("gmid", "")
        if gmid not in cloud.identity.gmids:
            return _gigya_error(
                now, 400006, "Invalid parameter value", "Missing or unknown gmid (bootstrap first)"
            )
        acc = cloud.identity.account(str(form.get("loginID", "")))
        if acc is None or acc.region != "EU" or form.get("password") != acc.password:
            return _gigya_error(now, 403042, "Invalid LoginID", "invalid loginID or password")
        cloud.log_login(acc.username)
        ident = cloud.identity
        token = ident.issue("login_token", acc, ident.lifetimes.login_token)
        return web.json_response(_login_result(acc.uid, acc.username, token.value, now))

    async def authorize_continue(request: web.Request) -> web.Response:
        if request.match_info["key"] != API_KEY:
            return web.Response(status=404, text="unknown client")
        ident = cloud.identity
        context = ident.get(request.query.get("context"), "context")
        if context is None or context.used:
            return _redirect(_error_url(cloud, "400006", "Invalid context"))
        login = ident.get(request.cookies.get(f"glt_{API_KEY}"), "login_token")
        if login is None:
            return _redirect(_error_url(cloud, "403005", "Unauthorized user"))
        context.used = True
        code = ident.issue("code", login.account, ident.lifetimes.code)
        return _redirect(f"{cloud.urls['awsapi']}/login-app/api/v1/FinalPage?code={code.value}")

    app = web.Application()
    app.router.add_get("/oidc/op/v1.0/{key}/authorize", oidc_authorize)
    app.router.add_get("/oidc/op/v1.0/{key}/authorize/continue", authorize_continue)
    app.router.add_get("/proxy", proxy)
    app.router.add_post("/accounts.login", accounts_login)
    return app


def _login_result(uid: str, email: str, login_token: str, now: float) -> dict[str, Any]:
    profile = {"firstName": "Sim", "lastName": "Driver", "email": email, "country": "DE"}
    return {
        "callId": secrets.token_hex(16),
        "errorCode": 0,
        "apiVersion": 2,
        "statusCode": 200,
        "statusReason": "OK",
        "time": _iso(now),
        "registeredTimestamp": int(now) - 400 * 86400,
        "UID": uid,
        "UIDSignature": secrets.token_urlsafe(20),
        "signatureTimestamp": str(int(now)),
        "created": _iso(now - 400 * 86400),
        "createdTimestamp": int(now) - 400 * 86400,
        "isActive": True,
        "isRegistered": True,
        "isVerified": True,
        "lastLogin": _iso(now),
        "lastLoginTimestamp": int(now),
        "loginProvider": "site",
        "profile": profile,
        "socialProviders": "site",
        "userInfo": {"UID": uid, "isLoggedIn": True, "loginProvider": "site", **profile},
        "newUser": False,
        "sessionInfo": {"login_token": login_token, "expires_in": "2592000"},
    }


# ---------------------------------------------------------------------------- INTL (sg-app-api)


def _intl(code: str, result: Any, message: str = "success") -> web.Response:
    return web.json_response({"code": code, "message": message, "result": result})


def _missing_gateway_header(request: web.Request) -> str:
    """The INTL login's gateway headers as reference §1.2 lists them for the X-Ca-Key flavour
    (hello_smart): nonce, millisecond timestamp and the login app id. '' when all are there
    [inferred: the gateway's exact reply to a missing one is not captured]."""
    if request.headers.get("X-Ca-Key") is None:
        return ""  # the Xs-* flavour (pysmarthashtag's INTL branch) carries no X-Ca-* set
    if not request.headers.get("X-Ca-Nonce"):
        return "X-Ca-Nonce"
    if not request.headers.get("X-Ca-Timestamp", "").isdigit():
        return "X-Ca-Timestamp"
    if request.headers.get("X-App-Id") != "SmartAPPGlobal":
        return "X-App-Id"
    return ""


def intl_app(cloud: SmartCloud) -> web.Application:
    async def login(request: web.Request) -> web.Response:
        blocked = await _gateway(cloud, "login")
        if blocked is not None:
            return blocked
        # hello_smart sends the gateway app key; pysmarthashtag's INTL branch its Xs-* headers
        ca_key = request.headers.get("X-Ca-Key")
        if ca_key != INTL_CA_KEY and (ca_key is not None or "Xs-Client-Id" not in request.headers):
            return _intl("401", None, "Invalid AppKey")
        missing = _missing_gateway_header(request) if cloud.config.strict else ""
        if missing:
            return _intl("400", None, f"Missing or invalid header {missing}")
        wait = cloud.throttle.check()
        if wait is not None:
            return wire.waf_block(wait)
        try:
            body = json.loads(await request.read())
        except ValueError:
            return _intl("400", None, "Bad request body")
        acc = cloud.identity.account(str(body.get("email", ""))) if isinstance(body, dict) else None
        if acc is None or acc.region != "INTL" or body.get("password") != acc.password:
            return _intl("1001", None, "Incorrect email or password")
        cloud.log_login(acc.username)
        ident = cloud.identity
        ttl = ident.lifetimes.intl_access
        access = ident.issue("intl_access", acc, ttl)
        idt = ident.issue("intl_id", acc, ttl, parent=access.value)
        refresh = ident.issue(
            "intl_refresh", acc, ident.lifetimes.oauth_refresh, parent=access.value
        )
        return _intl(
            "200",
            {
                "accessToken": access.value,
                "refreshToken": refresh.value,
                "idToken": idt.value,
                "userId": acc.user_id,
                "expiresIn": int(ttl),
            },
        )

    async def authorize(request: web.Request) -> web.Response:
        blocked = await _gateway(cloud, "login")
        if blocked is not None:
            return blocked
        missing = _missing_gateway_header(request) if cloud.config.strict else ""
        if missing:
            return _intl("400", None, f"Missing or invalid header {missing}")
        ident = cloud.identity
        access = ident.get(request.query.get("accessToken"), "intl_access")
        idt = ident.get(request.headers.get("Xs-Auth-Token"), "intl_id")
        if access is None or idt is None or idt.parent != access.value:
            return _intl("401", None, "Invalid token")
        code = ident.issue("auth_code", access.account, ident.lifetimes.auth_code)
        return _intl("200", code.value)

    app = web.Application()
    app.router.add_post("/iam/service/api/v1/login", login)
    app.router.add_get("/iam/service/api/v1/oauth20/authorize", authorize)
    return app
