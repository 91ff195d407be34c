"""Smartcar over HTTP: the token endpoint and the v2 vehicle API, nothing else.

It never logs a token or a reply body and only talks to the configured origins. Errors come back as
``SmartcarApiError`` (carrying the parsed ``SmartcarError``) so the provider can decide per error
what it means for the connection (re-auth, budget, backoff) before it becomes a ProviderError.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp

from exporter.clock import Clock
from exporter.providers.base import BadReply, UpstreamTimeout, UpstreamUnavailable
from exporter.providers.smartcar.errors import SmartcarError, oauth_error, parse_error
from exporter.providers.smartcar.rotation import TokenPair
from exporter.providers.smartcar.settings import SmartcarSettings

REFRESH_LIFETIME: Final = 60 * 86400.0
USER_AGENT: Final = "carmetrics (Smartcar v2 client)"


class SmartcarApiError(Exception):
    """A non-2xx v2 reply, parsed."""

    def __init__(self, error: SmartcarError) -> None:
        super().__init__(error.key)
        self.error = error


@dataclass(frozen=True, slots=True)
class BatchItem:
    path: str
    status: int
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == 200


class SmartcarClient:
    def __init__(
        self, session: aiohttp.ClientSession, settings: SmartcarSettings, clock: Clock
    ) -> None:
        self.session = session
        self.settings = settings
        self.clock = clock
        self._origins = settings.origins()

    def _check(self, url: str) -> str:
        p = urlsplit(url)
        if f"{p.scheme}://{p.netloc}".lower() not in self._origins:
            raise BadReply(f"refusing to send credentials to {p.scheme}://{p.netloc}")
        return url

    # --- OAuth ------------------------------------------------------------------------------------
    def _basic(self) -> str:
        raw = f"{self.settings.client_id}:{self.settings.client_secret.reveal()}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    async def _token(self, form: Mapping[str, str]) -> TokenPair:
        url = self._check(self.settings.token_url)
        sent_at = self.clock.now()
        try:
            async with self.session.post(
                url,
                data=dict(form),
                headers={"Authorization": self._basic(), "User-Agent": USER_AGENT},
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except TimeoutError:
            raise UpstreamTimeout("token endpoint timed out", code="timeout") from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(
                f"token endpoint unreachable: {type(exc).__name__}", code="connect"
            ) from None
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if status != 200:
            raise oauth_error(status, body)
        if not isinstance(body, dict):
            raise BadReply("token endpoint sent no JSON object", code="token_body")
        try:
            access = str(body["access_token"])
            refresh = str(body["refresh_token"])
            expires_in = float(body.get("expires_in", 7200))
        except (KeyError, TypeError, ValueError):
            raise BadReply(
                "token reply lacks access_token/refresh_token", code="token_body"
            ) from None
        if not access or not refresh:
            raise BadReply("token reply has empty tokens", code="token_body")
        # lifetimes count from when we asked: a slow reply must not stretch them
        return TokenPair(
            access_token=access,
            refresh_token=refresh,
            access_expires_at=sent_at + expires_in,
            refresh_expires_at=sent_at + REFRESH_LIFETIME,
            issued_at=sent_at,
        )

    async def exchange_code(self, code: str) -> TokenPair:
        return await self._token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.settings.redirect_uri,
            }
        )

    async def refresh(self, refresh_token: str) -> TokenPair:
        return await self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    # --- v2 API -----------------------------------------------------------------------------------
    async def _call(
        self,
        method: str,
        path: str,
        token: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        units: bool = True,
    ) -> tuple[Any, Mapping[str, str]]:
        url = self._check(f"{self.settings.api_url}/v2.0{path}")
        headers = {"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT}
        if units:
            headers["sc-unit-system"] = "metric"
        try:
            async with self.session.request(
                method, url, json=body, params=params, headers=headers
            ) as resp:
                raw = await resp.read()
                status = resp.status
                resp_headers = dict(resp.headers)
        except TimeoutError:
            raise UpstreamTimeout(
                f"{method} {path.split('/')[-1]} timed out", code="timeout"
            ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(
                f"Smartcar API unreachable: {type(exc).__name__}", code="connect"
            ) from None
        if status >= 400:
            raise SmartcarApiError(parse_error(status, raw, resp_headers))
        try:
            return json.loads(raw), resp_headers
        except ValueError:
            raise BadReply(f"non-JSON reply to {method} {path}", code="json") from None

    async def user_id(self, token: str) -> str:
        body, _ = await self._call("GET", "/user", token, units=False)
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            raise BadReply("/user reply lacks an id", code="shape")
        return str(body["id"])

    async def vehicle_ids(self, token: str) -> list[str]:
        ids: list[str] = []
        offset = 0
        while True:
            body, _ = await self._call(
                "GET",
                "/vehicles",
                token,
                params={"limit": "50", "offset": str(offset)},
                units=False,
            )
            page = body.get("vehicles") if isinstance(body, dict) else None
            if not isinstance(page, list):
                raise BadReply("/vehicles reply lacks a list", code="shape")
            ids.extend(str(v) for v in page)
            count = (body.get("paging") or {}).get("count", len(ids))
            offset += len(page)
            if not page or offset >= int(count):
                return ids

    async def get(self, token: str, vehicle_id: str, path: str) -> Mapping[str, Any]:
        suffix = "" if path == "/" else path
        body, _ = await self._call("GET", f"/vehicles/{vehicle_id}{suffix}", token)
        if not isinstance(body, dict):
            raise BadReply(f"{path} reply is not an object", code="shape")
        return body

    async def permissions(self, token: str, vehicle_id: str) -> list[str]:
        perms: list[str] = []
        offset = 0
        while True:
            body, _ = await self._call(
                "GET",
                f"/vehicles/{vehicle_id}/permissions",
                token,
                params={"limit": "25", "offset": str(offset)},
                units=False,
            )
            page = body.get("permissions") if isinstance(body, dict) else None
            if not isinstance(page, list):
                raise BadReply("/permissions reply lacks a list", code="shape")
            perms.extend(str(p) for p in page)
            count = (body.get("paging") or {}).get("count", len(perms))
            offset += len(page)
            if not page or offset >= int(count):
                return perms

    async def batch(self, token: str, vehicle_id: str, paths: list[str]) -> list[BatchItem]:
        body, _ = await self._call(
            "POST",
            f"/vehicles/{vehicle_id}/batch",
            token,
            body={"requests": [{"path": p} for p in paths]},
        )
        items = body.get("responses") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise BadReply("batch reply lacks responses", code="shape")
        out = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("path"), str):
                continue
            raw_h, raw_b = item.get("headers"), item.get("body")
            h: Mapping[str, Any] = raw_h if isinstance(raw_h, dict) else {}
            b: Mapping[str, Any] = raw_b if isinstance(raw_b, dict) else {}
            code = item.get("code")
            out.append(
                BatchItem(
                    path=item["path"],
                    status=int(code) if isinstance(code, int) else 0,
                    body=b,
                    headers={str(k).lower(): str(v) for k, v in h.items()},
                )
            )
        return out

    async def action(
        self, token: str, vehicle_id: str, path: str, payload: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        body, _ = await self._call(
            "POST", f"/vehicles/{vehicle_id}{path}", token, body=dict(payload), units=False
        )
        return body if isinstance(body, dict) else {}

    async def subscribe(self, token: str, vehicle_id: str, webhook_id: str) -> None:
        await self._call(
            "POST", f"/vehicles/{vehicle_id}/webhooks/{webhook_id}", token, units=False
        )


__all__ = ["BatchItem", "SmartcarApiError", "SmartcarClient"]
