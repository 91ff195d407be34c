"""The credential logins at the smart login gateways (reference §1.1 steps 1-3 and §1.2 steps 1-2).

These are the expensive, WAF-guarded calls; :mod:`exporter.providers.smart.auth` decides *when* they
may run. Redirects are walked by hand (never auto-followed) so that each hop's target is checked
against the configured hosts and the tokens are read from the ``Location`` without fetching it.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

from exporter.providers.base import AuthError, BadReply, RateLimited, ReauthRequired
from exporter.providers.smart.transport import Transport

log = logging.getLogger("exporter.providers.smart")

GIGYA_API_KEY: Final = "3_L94eyQ-wvJhWm7Afp1oBhfTGXZArUfSHHW9p9Pncg513hZELXsxCfMWHrF8f5P5a"
INTL_CA_KEY: Final = "204587190"
INTL_LOGIN_APP_ID: Final = "SmartAPPGlobal"
INTL_LOGIN_UA: Final = "ALIYUN-ANDROID-DEMO"  # the gateway SDK's agent (hello_smart INTL login)
MAX_HOPS: Final = 5
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
WEBVIEW_UA: Final = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36"
)
# Header sets of the app's login webview, step by step as pysmarthashtag 0.15 sends them
# (api/authentication.py); docs/SMART_COMMANDS.md lists where ours differ and why.
_LANGUAGES: Final = "de-DE,de;q=0.9,en-DE;q=0.8,en-US;q=0.7,en;q=0.6"
_BROWSER_HEADERS: Final = {  # the OIDC redirect chain on awsapi / auth
    "x-app-id": "SmartAPPEU",
    "accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "accept-language": _LANGUAGES,
    "x-requested-with": "com.smart.hellosmart",
    "user-agent": WEBVIEW_UA,
    "content-type": "application/json; charset=utf-8",
}
_BOOTSTRAP_HEADERS: Final = {"accept": "*/*", "user-agent": WEBVIEW_UA}  # socialize.getIDs
_LOGIN_HEADERS: Final = {  # accounts.login (+ cookie)
    "accept": "*/*",
    "accept-language": "de",
    "content-type": "application/x-www-form-urlencoded",
    "x-requested-with": "com.smart.hellosmart",
    "origin": "https://app.id.smart.com",
    "user-agent": WEBVIEW_UA,
}
_CONTINUE_HEADERS: Final = {  # authorize/continue and its hops (+ cookie)
    "accept": "*/*",
    "accept-language": _LANGUAGES,
    "x-requested-with": "com.smart.hellosmart",
    "user-agent": WEBVIEW_UA,
}
# Gigya error codes (HTTP 200 bodies; names from the Gigya Web SDK's GSErrors table). Only
# INVALID_LOGINID and LOGINID_DOES_NOT_EXIST mean a wrong username or password; 400006 (invalid
# parameter value) is a request the client built wrong, 403043 a registration conflict.
_GIGYA_BAD_CREDENTIALS: Final = frozenset({403042, 403047})
_GIGYA_LOCKOUT: Final = frozenset({403120, 403048})  # temporary lockout, API rate limit
# challenges only the owner can answer in the app: captcha, pending registration / consent /
# verification, password change, two-factor, a disabled account
_GIGYA_OWNER_ACTION: Final = {
    401020: "a captcha",
    401021: "a captcha",
    206001: "accepting the new terms (consent)",
    206002: "verifying the e-mail address",
    403100: "a password change",
    403101: "a two-factor check",
    403102: "a two-factor registration",
    403041: "re-enabling the disabled account",
}


@dataclass(frozen=True, slots=True)
class OAuthTokens:
    """What a gateway login yields: feeds the API session exchange (layer 1 of the ladder)."""

    access_token: str
    refresh_token: str = ""
    id_token: str = ""
    user_id: str = ""


def _param(url: str, name: str) -> str:
    """A parameter from the URL's query or fragment (clients have seen tokens in both)."""
    parts = urlsplit(url)
    for section in (parts.query, parts.fragment):
        got = parse_qs(section).get(name)
        if got and got[0]:
            return got[0]
    return ""


def _json(text: str, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError:
        raise BadReply(f"{what}: reply is not JSON") from None
    if not isinstance(doc, dict):
        raise BadReply(f"{what}: reply is not a JSON object")
    return doc


async def _walk(
    transport: Transport, url: str, headers: dict[str, str], wanted: str, what: str
) -> str:
    """Follow redirects by hand until a ``Location`` carries ``wanted``; return that URL."""
    for _ in range(MAX_HOPS):
        reply = await transport.send("GET", url, headers=headers)
        if reply.status not in _REDIRECTS:
            break
        location = urljoin(url, reply.headers.get("Location", ""))
        if _param(location, wanted):
            return location
        if _param(location, "mode") == "error" or _param(location, "errorCode"):
            code = _param(location, "errorCode")
            raise AuthError(f"{what}: the login page reported an error", code=code)
        if not transport.hosts.allows(location):
            break
        url = location
    raise AuthError(f"{what}: no {wanted!r} in the redirect chain")


async def eu_login(transport: Transport, username: str, password: str) -> OAuthTokens:
    """Gigya + OIDC login: context, bootstrap cookie, accounts.login, authorize/continue."""
    hosts = transport.hosts
    start = f"{hosts.awsapi}/login-app/api/v1/authorize?uiLocales=de-DE"
    context = _param(
        await _walk(transport, start, dict(_BROWSER_HEADERS), "context", "login"), "context"
    )
    cookie = await _gigya_bootstrap(transport)

    form = urlencode(
        {
            "loginID": username,
            "password": password,
            "sessionExpiration": "2592000",
            "targetEnv": "jssdk",
            "include": "profile,data,emails,subscriptions,preferences,",
            "includeUserInfo": "true",
            "loginMode": "standard",
            "lang": "de",
            "APIKey": GIGYA_API_KEY,
            "source": "showScreenSet",
            "sdk": "js_latest",
            "sdkBuild": "15482",
            "pageURL": "https://app.id.smart.com/login?gig_ui_locales=de-DE",
            "format": "json",
        }
    ).encode()
    headers = dict(_LOGIN_HEADERS)
    if cookie:
        headers["cookie"] = cookie
    reply = await transport.send("POST", f"{hosts.auth}/accounts.login", headers=headers, body=form)
    doc = _json(reply.text, "accounts.login")
    error_code = doc.get("errorCode")
    if error_code != 0:
        code = str(error_code)
        if error_code in _GIGYA_BAD_CREDENTIALS:
            raise ReauthRequired("smart login refused the username or password", code=code)
        if error_code in _GIGYA_LOCKOUT:
            raise RateLimited("smart login gateway is throttling this account", code=code)
        if isinstance(error_code, int) and error_code in _GIGYA_OWNER_ACTION:
            raise ReauthRequired(
                f"smart login needs {_GIGYA_OWNER_ACTION[error_code]}: log in once in the smart "
                "app, then carmetrics retries",
                code=code,
            )
        raise AuthError("smart login failed", code=code)
    session_info = doc.get("sessionInfo")
    login_token = session_info.get("login_token") if isinstance(session_info, dict) else None
    if not isinstance(login_token, str) or not login_token:
        raise AuthError("accounts.login returned no login token")

    query = urlencode({"context": context, "login_token": login_token})
    cont = f"{hosts.auth}/oidc/op/v1.0/{GIGYA_API_KEY}/authorize/continue?{query}"
    glt = f"glt_{GIGYA_API_KEY}={login_token}"
    headers = {**_CONTINUE_HEADERS, "cookie": f"{cookie}; {glt}" if cookie else glt}
    final = await _walk(transport, cont, headers, "access_token", "authorize/continue")
    return OAuthTokens(
        access_token=_param(final, "access_token"),
        refresh_token=_param(final, "refresh_token"),
        id_token=_param(final, "id_token"),
    )


async def _gigya_bootstrap(transport: Transport) -> str:
    """The ``gmid``/``ucid`` cookie newer Gigya tenants require; best effort (older logins worked
    without it), except that a WAF block is passed on so the circuit breaker sees it."""
    query = urlencode({"APIKey": GIGYA_API_KEY, "format": "json", "includeTicket": "true"})
    try:
        reply = await transport.send(
            "GET",
            f"{transport.hosts.socialize}/socialize.getIDs?{query}",
            headers=_BOOTSTRAP_HEADERS,
        )
        doc = _json(reply.text, "socialize.getIDs")
    except RateLimited:
        raise
    except (AuthError, BadReply) as exc:
        log.info("smart login: gigya bootstrap failed (%s); continuing without it", exc.code or "-")
        return ""
    gmid, ucid = doc.get("gmid"), doc.get("ucid")
    if doc.get("errorCode") != 0 or not isinstance(gmid, str) or not isinstance(ucid, str):
        log.info("smart login: gigya bootstrap gave no ids; continuing without them")
        return ""
    return f"gmid={gmid}; ucid={ucid}; hasGmid=ver4; gig_bootstrap_{GIGYA_API_KEY}=auth_ver4"


def _intl_headers(now: float) -> dict[str, str]:
    """The Alibaba API gateway headers of the INTL login (hello_smart's working INTL code, the only
    source; docs/SMART_COMMANDS.md "INTL facts"). Its own user agent, so the session's default
    ``User-Agent: carmetrics`` never reaches the gateway."""
    return {
        "X-Ca-Key": INTL_CA_KEY,
        "X-Ca-Nonce": str(uuid.uuid4()),
        "X-Ca-Timestamp": str(int(now * 1000)),
        "X-App-Id": INTL_LOGIN_APP_ID,
        "Accept": "application/json;charset=UTF-8",
        "Content-Type": "application/json;charset=UTF-8",
        "User-Agent": INTL_LOGIN_UA,
    }


def _intl_result(doc: dict[str, Any], what: str) -> Any:
    code = str(doc.get("code", ""))
    if code not in {"200", "0", "0000", "1000"}:
        message = str(doc.get("message") or "")
        lowered = message.lower()
        if any(w in lowered for w in ("password", "credential", "account not", "not exist")):
            raise ReauthRequired(f"{what}: the username or password was refused", code=code)
        if any(w in lowered for w in ("too many", "frequent", "limit")):
            raise RateLimited(f"{what}: throttled", code=code)
        raise AuthError(f"{what} failed", code=code)
    return doc.get("result", doc.get("data"))


async def intl_login(transport: Transport, username: str, password: str) -> OAuthTokens:
    """INTL step 1: e-mail + password at sg-app-api."""
    body = json.dumps(
        {"email": username, "password": password, "imageSessionId": "", "imageCode": ""},
        separators=(",", ":"),
    ).encode()
    reply = await transport.send(
        "POST",
        f"{transport.hosts.sg_app_api}/iam/service/api/v1/login",
        headers=_intl_headers(transport.clock.now()),
        body=body,
    )
    result = _intl_result(_json(reply.text, "INTL login"), "INTL login")
    if not isinstance(result, dict) or not isinstance(result.get("accessToken"), str):
        raise AuthError("INTL login returned no access token")
    return OAuthTokens(
        access_token=result["accessToken"],
        refresh_token=str(result.get("refreshToken") or ""),
        id_token=str(result.get("idToken") or ""),
        user_id=str(result.get("userId") or ""),
    )


async def intl_authorize(transport: Transport, login: OAuthTokens) -> str:
    """INTL step 2: trade the login token for a one-time authCode."""
    url = f"{transport.hosts.sg_app_api}/iam/service/api/v1/oauth20/authorize?" + urlencode(
        {"accessToken": login.access_token}
    )
    headers = {**_intl_headers(transport.clock.now()), "Xs-Auth-Token": login.id_token}
    reply = await transport.send("GET", url, headers=headers)
    result = _intl_result(_json(reply.text, "INTL authorize"), "INTL authorize")
    if isinstance(result, dict):
        result = result.get("authCode")
    if not isinstance(result, str) or not result:
        raise AuthError("INTL authorize returned no authCode")
    return result
