"""The one Smartcar v3 application token of an account (``client_credentials`` at iam).

v3 has one token for all users and vehicles of an application, valid 1 h, with no refresh token
(smartcar-v3.md §1.2 [DOC]). So: fetch it lazily, renew it a few minutes before expiry, let
concurrent callers share one fetch (single-flight), and when the API answers 401 drop it so the
next caller fetches a new one (the client retries once). The token never leaves memory: it is
cheap to fetch again after a restart and there is nothing to rotate atomically.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Final

import aiohttp

from exporter.clock import Clock
from exporter.config import Secret
from exporter.providers.base import BadReply, UpstreamTimeout, UpstreamUnavailable
from exporter.providers.smartcar.errors import oauth_error

RENEW_BEFORE: Final = 300.0  # 3P clients renew 1-5 min early [3P-CODE §1.2]
USER_AGENT: Final = "carmetrics (Smartcar v3 client)"


@dataclass
class _Token:
    value: str
    expires_at: float


class AppTokenSource:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        token_url: str,
        client_id: str,
        client_secret: Secret,
        clock: Clock,
        *,
        renew_before: float = RENEW_BEFORE,
    ) -> None:
        self.session = session
        self.token_url = token_url
        self.client_id = client_id
        self._secret = client_secret
        self.clock = clock
        self.renew_before = renew_before
        self._token: _Token | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    def _fresh(self) -> str | None:
        t = self._token
        if t is not None and self.clock.now() < t.expires_at - self.renew_before:
            return t.value
        return None

    async def get(self) -> str:
        token = self._fresh()
        if token is not None:
            return token
        async with self._lock:  # single flight: the others wait and reuse its result
            token = self._fresh()
            if token is not None:
                return token
            self._token = await self._fetch()
            return self._token.value

    def drop(self, value: str) -> None:
        """The API refused ``value`` (401): forget it unless a newer one replaced it already."""
        if self._token is not None and self._token.value == value:
            self._token = None

    async def _fetch(self) -> _Token:
        self.fetches += 1
        sent_at = self.clock.now()
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._secret.reveal(),
        }  # form encoding, as the docs' curl [DOC request-access-token]
        try:
            async with self.session.post(
                self.token_url, data=form, headers={"User-Agent": USER_AGENT}
            ) as resp:
                status, raw = resp.status, await resp.read()
        except TimeoutError:
            raise UpstreamTimeout("iam token endpoint timed out", code="timeout") from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(
                f"iam token endpoint unreachable: {type(exc).__name__}", code="connect"
            ) from None
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if status != 200:
            raise oauth_error(status, body)
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise BadReply("iam token reply lacks access_token", code="token_body")
        try:
            expires_in = float(body.get("expires_in", 3600))
        except (TypeError, ValueError):
            expires_in = 3600.0
        # the lifetime counts from when we asked: a slow reply must not stretch it
        return _Token(str(body["access_token"]), sent_at + expires_in)
