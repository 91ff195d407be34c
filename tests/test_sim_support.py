"""Test helpers for the smart-cloud simulator: a tiny signed HTTP client written from the reference.

Deliberately independent of ``exporter.simulator.smart.signing`` (a verifier checked against itself
proves nothing) and far smaller than a real client: no retries, no token ladder, just the wire
protocol, so each test states exactly which requests it makes. No tests live here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import aiohttp
from yarl import URL

from exporter.clock import ManualClock
from exporter.config import SimulatorConfig
from exporter.simulator.runner import SimulatorHandle, start_simulator

EU_KEY = b"74e7469aff5042bbbed7bbb1b36c15e9"
INTL_KEY = b"30fb4a7b7fab4e2e8b52120d0087efdd"
GIGYA_KEY = "3_L94eyQ-wvJhWm7Afp1oBhfTGXZArUfSHHW9p9Pncg513hZELXsxCfMWHrF8f5P5a"
WEBVIEW_UA = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/120 Mobile Safari/537.36"


def signature(
    key: bytes, nonce: str, query: str, body: bytes, ts: str, method: str, path: str
) -> str:
    md5 = (
        base64.b64encode(hashlib.md5(body).digest()).decode()
        if body
        else "1B2M2Y8AsgTpgAmY7PhCfg=="
    )
    text = (
        "application/json;responseformat=3\n"
        f"x-api-signature-nonce:{nonce}\nx-api-signature-version:1.0\n\n"
        f"{query}\n{md5}\n{ts}\n{method}\n{path}"
    )
    return base64.b64encode(hmac.new(key, text.encode(), hashlib.sha1).digest()).decode()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)

    @property
    def code(self) -> str:
        return str(self.json().get("code"))


@dataclass
class SignedClient:
    """Signed requests against one simulator; remembers the last API session it obtained."""

    session: aiohttp.ClientSession
    urls: dict[str, str]
    key: bytes = EU_KEY
    token: str | None = None
    user_id: str | None = None
    client_id: str | None = None
    refresh: str | None = None
    oauth: str | None = None
    device: str = field(default_factory=lambda: secrets.token_hex(8))
    clock: Any = None  # the simulator's clock: the strict cloud refuses a stale x-timestamp

    def now_ms(self) -> str:
        return str(int((self.clock.now() if self.clock is not None else time.time()) * 1000))

    async def call(
        self,
        method: str,
        host: str,
        path: str,
        query: str = "",
        body: bytes | dict[str, Any] | None = None,
        *,
        token: str | None = "default",
        nonce: str | None = None,
        headers: dict[str, str] | None = None,
        sign_query: str | None = None,
        sign_body: bytes | None = None,
        key: bytes | None = None,
        timeout: float = 10.0,
    ) -> Reply:
        """One signed request; ``sign_*`` sign something other than what is sent (to test 1445)."""
        raw = (
            json.dumps(body, separators=(",", ":")).encode()
            if isinstance(body, dict)
            else (body or b"")
        )
        nonce = nonce or secrets.token_hex(8)
        ts = self.now_ms()
        sig = signature(
            key or self.key,
            nonce,
            query if sign_query is None else sign_query,
            raw if sign_body is None else sign_body,
            ts,
            method,
            path,
        )
        hdrs = {
            "x-app-id": "SmartAPPEU" if (key or self.key) == EU_KEY else "SMARTAPP-ISRAEL",
            "accept": "application/json;responseformat=3",
            "x-operator-code": "SMART" if (key or self.key) == EU_KEY else "SMART-ISRAEL",
            "x-device-identifier": self.device,
            "x-api-signature-version": "1.0",
            "x-api-signature-nonce": nonce,
            "x-timestamp": ts,
            "x-signature": sig,
            "content-type": "application/json; charset=utf-8",
        }
        tok = self.token if token == "default" else token
        if tok:
            hdrs["authorization"] = tok
        hdrs.update(headers or {})
        url = URL(self.urls[host] + path + (f"?{query}" if query else ""), encoded=True)
        async with self.session.request(
            method,
            url,
            data=raw or None,
            headers=hdrs,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            return Reply(resp.status, dict(resp.headers), await resp.text())

    # ---------------------------------------------------------------- login chains

    async def eu_oauth(self, username: str, password: str) -> str:
        """Walk the EU login chain and return the OAuth access token (refresh kept too)."""
        s, u = self.session, self.urls
        ua = {"user-agent": WEBVIEW_UA, "x-app-id": "SmartAPPEU"}
        url = u["awsapi"] + "/login-app/api/v1/authorize?uiLocales=de-DE"
        context = None
        for _ in range(5):
            async with s.get(url, headers=ua, allow_redirects=False) as r:
                assert r.status == 302, (r.status, await r.text())
                loc = r.headers["Location"]
            qs = parse_qs(urlparse(loc).query)
            if "context" in qs:
                context = qs["context"][0]
                break
            url = loc
        assert context
        async with s.get(
            f"{u['socialize']}/socialize.getIDs",
            params={"APIKey": GIGYA_KEY, "format": "json", "includeTicket": "true"},
        ) as r:
            ids = await r.json(content_type=None)
        cookie = (
            f"gmid={ids['gmid']}; ucid={ids['ucid']}; hasGmid=ver4; "
            f"gig_bootstrap_{GIGYA_KEY}=auth_ver4"
        )
        async with s.post(
            f"{u['auth']}/accounts.login",
            data={"loginID": username, "password": password, "APIKey": GIGYA_KEY, "format": "json"},
            headers={"cookie": cookie, "origin": "https://app.id.smart.com"},
        ) as r:
            result = await r.json(content_type=None)
        assert result["errorCode"] == 0, result
        lt = result["sessionInfo"]["login_token"]
        url = f"{u['auth']}/oidc/op/v1.0/{GIGYA_KEY}/authorize/continue?" + urlencode(
            {"context": context, "login_token": lt}
        )
        for _ in range(5):
            async with s.get(
                url, headers={"cookie": f"{cookie}; glt_{GIGYA_KEY}={lt}"}, allow_redirects=False
            ) as r:
                assert r.status == 302
                loc = r.headers["Location"]
            target = str(URL(url).join(URL(loc)))
            qs = parse_qs(urlparse(target).query)
            if "access_token" in qs:
                self.oauth = qs["access_token"][0]
                return self.oauth
            url = target
        raise AssertionError("no access token in the redirect chain")

    async def session_post(self, oauth: str | None = None) -> Reply:
        body = {"accessToken": oauth or self.oauth}
        reply = await self.call(
            "POST",
            "api_v1",
            "/auth/account/session/secure",
            "identity_type=smart",
            body,
            token=None,
        )
        self._keep(reply)
        return reply

    def _keep(self, reply: Reply) -> None:
        data = reply.json().get("data") if reply.status == 200 else None
        if isinstance(data, dict) and data.get("accessToken"):
            self.token = data["accessToken"]
            self.user_id = data.get("userId", self.user_id)
            self.client_id = data.get("clientId", self.client_id)
            self.refresh = data.get("refreshToken", self.refresh)

    async def login_eu(self, username: str, password: str) -> None:
        await self.eu_oauth(username, password)
        reply = await self.session_post()
        assert reply.json()["code"] == 1000, reply.text

    async def login_intl(self, username: str, password: str) -> None:
        s, u = self.session, self.urls
        ca = {
            "X-Ca-Key": "204587190",
            "X-Ca-Nonce": secrets.token_hex(8),
            "X-Ca-Timestamp": self.now_ms(),
            "X-App-Id": "SmartAPPGlobal",
        }
        async with s.post(
            f"{u['sg_app_api']}/iam/service/api/v1/login",
            json={"email": username, "password": password},
            headers=ca,
        ) as r:
            res = (await r.json())["result"]
        async with s.get(
            f"{u['sg_app_api']}/iam/service/api/v1/oauth20/authorize",
            params={"accessToken": res["accessToken"]},
            headers={**ca, "Xs-Auth-Token": res["idToken"]},
        ) as r:
            code = (await r.json())["result"]
        self.key = INTL_KEY
        reply = await self.call(
            "POST",
            "api_v2",
            "/auth/account/session/secure",
            "identity_type=smart-israel",
            {"authCode": code},
            token=None,
        )
        assert reply.json()["code"] == 1000, reply.text
        self._keep(reply)

    # ---------------------------------------------------------------- API calls

    async def vehicles(self, **kw: Any) -> Reply:
        return await self.call(
            "GET",
            "api_v1",
            "/device-platform/user/vehicle/secure",
            f"needSharedCar=1&userId={self.user_id}",
            **kw,
        )

    async def select(self, vin: str, host: str = "api_v1") -> Reply:
        body = json.dumps({"vin": vin, "sessionToken": self.token, "language": ""}).encode()
        return await self.call("POST", host, "/device-platform/user/session/update", "", body)

    async def status(self, vin: str, host: str = "api_v1", **kw: Any) -> Reply:
        query = f"latest=True&target=basic%2Cmore&userId={self.user_id}"
        return await self.call("GET", host, f"/remote-control/vehicle/status/{vin}", query, **kw)

    async def soc(self, vin: str, host: str = "api_v1", **kw: Any) -> Reply:
        return await self.call(
            "GET", host, f"/remote-control/vehicle/status/soc/{vin}", "setting=charging", **kw
        )

    async def command(self, vin: str, body: dict[str, Any], host: str = "api_v1") -> Reply:
        return await self.call("PUT", host, f"/remote-control/vehicle/telematics/{vin}", "", body)


def command_body(
    service: str,
    params: dict[str, str],
    command: str = "start",
    *,
    duration: int | None = None,
) -> dict[str, Any]:
    """A telematics body in the shape of docs/SMART_COMMANDS.md (pysmarthashtag 0.15): rcs with
    its timeStamp and integer recurrentOperation, horn/lights and windows with duration 0, climate
    180."""
    ts = str(int(time.time() * 1000))
    if service == "rcs":
        sched: dict[str, Any] = {
            "scheduledTime": None,
            "interval": 0,
            "occurs": 1,
            "recurrentOperation": 0,
            "duration": 6,
        }
    else:
        default = {"RCE_2": 180, "RWS_2": 0, "RHL": 0 if "rhl" in params else 6}.get(service, 6)
        sched = {
            "duration": default if duration is None else duration,
            "interval": 0,
            "occurs": 1,
            "recurrentOperation": False,
        }
    body: dict[str, Any] = {
        "creator": "tc",
        "command": command,
        "serviceId": service,
        "operationScheduling": sched,
        "serviceParameters": [{"key": k, "value": v} for k, v in params.items()],
    }
    body["timeStamp" if service == "rcs" else "timestamp"] = ts
    return body


@asynccontextmanager
async def running_sim(
    cfg: SimulatorConfig | None = None, **kw: Any
) -> AsyncIterator[tuple[SimulatorHandle, ManualClock, aiohttp.ClientSession]]:
    """A simulator on a ManualClock plus a client session; both closed afterwards."""
    clock = ManualClock()
    handle = await start_simulator(cfg or SimulatorConfig(seed=11), clock, tick_every=None, **kw)
    try:
        async with aiohttp.ClientSession() as session:
            yield handle, clock, session
    finally:
        await handle.close()


async def logged_in(
    handle: SimulatorHandle, session: aiohttp.ClientSession, account: str = "smart_eu"
) -> SignedClient:
    client = SignedClient(session, handle.urls["smart"], clock=handle.clock)
    login = handle.logins[account]
    if account == "smart_intl":
        await client.login_intl(login["username"], login["password"])
    else:
        await client.login_eu(login["username"], login["password"])
    return client
