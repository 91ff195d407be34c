"""API session tokens: persisted, renewed cheapest-first, and renewed once for many callers.

The ladder (reference §1.1 "Refresh"): a dead session (1402) is first renewed by re-POSTing
``session/secure`` with the stored OAuth token; if that token is dead too (1501/8500) the API
refresh token buys a new one (PUT ``session/secure``); only then does a full credential login run,
and only when the per-username circuit breaker allows it. Concurrent callers that hit 1402 with the
same token share one renewal, and instances sharing a PostgreSQL vault take the account's lock
for it (``exporter.providers.base.exclusive``), so the account is renewed once for all. New tokens are saved to the TokenStore *before* they are handed out,
so a crash never loses the only valid set, and a restart resumes without logging in.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from exporter.clock import Clock
from exporter.config import Secret
from exporter.providers.base import (
    AuthError,
    BadReply,
    ProviderError,
    RateLimited,
    TokenStore,
    exclusive,
)
from exporter.providers.smart import login
from exporter.providers.smart.breaker import LoginBreaker
from exporter.providers.smart.errors import MainTokenExpired, SigningError
from exporter.providers.smart.login import OAuthTokens
from exporter.providers.smart.signing import Region
from exporter.providers.smart.transport import SignedApi
from exporter.singleflight import SingleFlight

log = logging.getLogger("exporter.providers.smart")

SESSION_PATH: Final = "/auth/account/session/secure"
EXPIRY_MARGIN: Final = 60.0  # renew this long before the cloud's stated expiry


@dataclass(frozen=True, slots=True)
class ApiSession:
    """The vehicle-API session: ``access_token`` goes raw into ``authorization``."""

    access_token: str
    refresh_token: str
    user_id: str
    client_id: str
    expires_at: float = 0.0  # clock seconds; 0 = the cloud did not say


@dataclass(slots=True)
class TokenState:
    """Everything persisted for one account (the store encrypts it; nothing here is ever logged)."""

    username: str
    region: str
    device_id: str
    oauth: OAuthTokens | None = None
    api: ApiSession | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "version": 1,
            "username": self.username,
            "region": self.region,
            "device_id": self.device_id,
            "oauth": asdict(self.oauth) if self.oauth else None,
            "api": asdict(self.api) if self.api else None,
        }

    @staticmethod
    def from_dict(raw: dict[str, object]) -> TokenState | None:
        """Tolerant load: anything malformed is treated as 'no stored tokens'."""
        try:
            oauth = raw.get("oauth")
            api = raw.get("api")
            return TokenState(
                username=str(raw["username"]),
                region=str(raw["region"]),
                device_id=str(raw["device_id"]),
                oauth=OAuthTokens(**oauth) if isinstance(oauth, dict) else None,
                api=ApiSession(**api) if isinstance(api, dict) else None,
            )
        except (KeyError, TypeError, ValueError):
            return None


def _parse_session(data: Any, now: float) -> ApiSession:
    if not isinstance(data, dict) or not isinstance(data.get("accessToken"), str):
        raise AuthError("session exchange returned no access token")
    expires_in = data.get("expiresIn")
    expires_at = 0.0
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0:
        expires_at = now + float(expires_in) - EXPIRY_MARGIN
    return ApiSession(
        access_token=data["accessToken"],
        refresh_token=str(data.get("refreshToken") or ""),
        user_id=str(data.get("userId") or ""),
        client_id=str(data.get("clientId") or ""),
        expires_at=expires_at,
    )


def _ladder_may_continue(exc: ProviderError) -> bool:
    """Auth-type refusals move down the ladder; transient trouble (network, 5xx, garbled replies,
    rate limits) is passed up instead: a full login would not fix it and costs WAF budget."""
    if isinstance(exc, RateLimited | SigningError):
        return False
    if isinstance(exc, AuthError):
        return True
    return isinstance(exc, BadReply) and bool(exc.code)


@dataclass(slots=True)
class AuthStats:
    """Counters for tests and logs: how often each rung of the ladder ran."""

    session_reposts: int = 0
    oauth_refreshes: int = 0
    full_logins: int = 0
    renewals: int = 0
    by_rung: list[str] = field(default_factory=list)


class Authenticator:
    """Owns one account's tokens: ``session()`` for a usable token, ``renew(failed)`` after 1402."""

    def __init__(
        self,
        *,
        api: SignedApi,
        region: Region,
        username: str,
        password: Secret,
        store: TokenStore,
        store_key: str,
        clock: Clock,
        breaker: LoginBreaker,
    ) -> None:
        self._api = api
        self._region = region
        self._username = username
        self._password = password
        self._store = store
        self._key = store_key
        self._clock = clock
        self._breaker = breaker
        self._renewal: SingleFlight[ApiSession] = SingleFlight(f"smart-renewal:{store_key}")
        self.stats = AuthStats()
        self.state = self._load() or TokenState(username, region.name, api.device_id)
        api.device_id = self.state.device_id

    def _load(self, *, quiet: bool = False) -> TokenState | None:
        raw = self._store.load(self._key)
        state = TokenState.from_dict(raw) if raw else None
        if state is None or state.username != self._username or state.region != self._region.name:
            return None
        if not quiet:
            log.info("smart %s: resuming with stored tokens", self._region.name)
        return state

    def _renewed_elsewhere(self) -> ApiSession | None:
        """Take the stored tokens when another instance sharing the vault renewed them while
        this one waited for the account's lock; their session, when still valid, ends the ladder
        before any request (a second login would cost WAF budget and may end the first one's
        session)."""
        stored = self._load(quiet=True)
        if stored is None or stored.to_dict() == self.state.to_dict():
            return None
        log.info("smart %s: tokens renewed by another instance; using them", self._region.name)
        self.state = stored
        self._api.device_id = stored.device_id
        api = stored.api
        if api is not None and not (api.expires_at and self._clock.now() >= api.expires_at):
            return api
        return None

    def _save(self) -> None:
        self._store.save(self._key, self.state.to_dict())

    # -- public --------------------------------------------------------------------------------

    async def session(self) -> ApiSession:
        """A session believed valid: the stored one, or a renewed one once it is due."""
        cur = self.state.api
        if cur is not None and not (cur.expires_at and self._clock.now() >= cur.expires_at):
            return cur
        return await self.renew(cur.access_token if cur else None)

    async def renew(self, failed: str | None) -> ApiSession:
        """Renew after ``failed`` was refused (single flight).

        A caller holding an older token than the current one gets the current one without any
        network call; callers arriving while a renewal runs share its outcome - its new session or
        its error - so a failing ladder is not re-run once per waiting caller.
        """
        if not self._renewal.running:
            cur = self.state.api
            if cur is not None and cur.access_token != failed:
                return cur
            self.stats.renewals += 1
        return await self._renewal.run(self._ladder)

    async def close(self) -> None:
        """Cancel a renewal in flight: the provider that owns this account is closing."""
        await self._renewal.cancel()

    # -- the ladder ----------------------------------------------------------------------------

    async def _ladder(self) -> ApiSession:
        async with exclusive(self._store, self._key):
            fresh = self._renewed_elsewhere()
            if fresh is not None:
                return fresh
            return await self._climb()

    async def _climb(self) -> ApiSession:
        oauth = self.state.oauth
        if oauth is not None and oauth.access_token:
            rung = "session re-POST" if self._region.name == "EU" else "re-authorize"
            try:
                if self._region.name == "EU":
                    return await self._exchange_eu(oauth, rung="repost")
                return await self._reauthorize_intl(oauth)
            except MainTokenExpired as exc:
                log.info(
                    "smart %s: %s: OAuth token dead (code %s)", self._region.name, rung, exc.code
                )
                refreshed = await self._try_oauth_refresh()
                if refreshed is not None:
                    return refreshed
            except ProviderError as exc:
                if not _ladder_may_continue(exc):
                    raise
                log.info("smart %s: %s failed (code %s)", self._region.name, rung, exc.code or "-")
        return await self._full_login()

    async def _try_oauth_refresh(self) -> ApiSession | None:
        """Layer 2 (EU): PUT session/secure with the API refresh token -> new OAuth token ->
        layer 1 again."""
        api = self.state.api
        if self._region.name != "EU" or api is None or not api.refresh_token:
            return None
        self.stats.oauth_refreshes += 1
        self.stats.by_rung.append("oauth_refresh")
        try:
            reply = await self._api.call(
                "PUT",
                self._api.transport.hosts.api_v1,
                SESSION_PATH,
                body={"refreshToken": api.refresh_token, "proprietaryPlatform": "0"},
                headers={"X-CLIENT-ID": api.client_id},
            )
            data = reply.data
            if not isinstance(data, dict) or not isinstance(data.get("accessToken"), str):
                raise AuthError("refresh-token exchange returned no access token")
            old = self.state.oauth or OAuthTokens("")
            oauth = OAuthTokens(
                access_token=data["accessToken"],
                refresh_token=str(data.get("refreshToken") or old.refresh_token),
                id_token=old.id_token,
            )
            self.state.oauth = oauth
            if isinstance(data.get("refreshToken"), str) or isinstance(data.get("clientId"), str):
                self.state.api = ApiSession(
                    api.access_token,
                    str(data.get("refreshToken") or api.refresh_token),
                    api.user_id,
                    str(data.get("clientId") or api.client_id),
                    api.expires_at,
                )
            self._save()
            return await self._exchange_eu(oauth, rung=None)
        except ProviderError as exc:
            if not _ladder_may_continue(exc):
                raise
            log.info("smart EU: refresh-token exchange failed (code %s)", exc.code or "-")
            return None

    async def _exchange_eu(self, oauth: OAuthTokens, *, rung: str | None) -> ApiSession:
        if rung is not None:
            self.stats.session_reposts += 1
            self.stats.by_rung.append(rung)
        reply = await self._api.call(
            "POST",
            self._api.transport.hosts.api_v1,
            SESSION_PATH,
            query=[("identity_type", self._region.identity_type)],
            body={"accessToken": oauth.access_token},
        )
        return self._adopt(oauth, _parse_session(reply.data, self._clock.now()))

    async def _exchange_intl(self, oauth: OAuthTokens, auth_code: str) -> ApiSession:
        reply = await self._api.call(
            "POST",
            self._api.transport.hosts.api_v2,
            SESSION_PATH,
            query=[("identity_type", self._region.identity_type)],
            body={"authCode": auth_code},
        )
        return self._adopt(oauth, _parse_session(reply.data, self._clock.now()))

    async def _reauthorize_intl(self, oauth: OAuthTokens) -> ApiSession:
        """INTL's cheap rung: a new authCode from the stored login token, without the password."""
        self.stats.session_reposts += 1
        self.stats.by_rung.append("reauthorize")
        code = await login.intl_authorize(self._api.transport, oauth)
        return await self._exchange_intl(oauth, code)

    def _adopt(self, oauth: OAuthTokens, session: ApiSession) -> ApiSession:
        self.state.oauth = oauth
        self.state.api = session
        self._save()  # durable before anyone uses the new token
        return session

    async def _full_login(self) -> ApiSession:
        self._breaker.check(self._clock)
        self.stats.full_logins += 1
        self.stats.by_rung.append("full_login")
        transport = self._api.transport
        log.info("smart %s: full login", self._region.name)
        try:
            if self._region.name == "EU":
                oauth = await login.eu_login(transport, self._username, self._password.reveal())
                session = await self._exchange_eu(oauth, rung=None)
            else:
                oauth = await login.intl_login(transport, self._username, self._password.reveal())
                code = await login.intl_authorize(transport, oauth)
                session = await self._exchange_intl(oauth, code)
        except RateLimited as exc:
            quiet = self._breaker.rate_limited(self._clock, exc.code)
            log.warning(
                "smart %s: login rate-limited (code %s); no login for %.0f s",
                self._region.name,
                exc.code or "-",
                quiet,
            )
            exc.retry_after = max(exc.retry_after or 0.0, quiet)
            raise
        except ProviderError as exc:
            quiet = self._breaker.failed(self._clock, exc.code)
            log.warning(
                "smart %s: login failed (%s, code %s); no login for %.0f s",
                self._region.name,
                type(exc).__name__,
                exc.code or "-",
                quiet,
            )
            raise
        self._breaker.succeeded()
        return session
