"""Smartcar's rotating tokens: single-use refresh tokens rotated atomically, renewed before they die.

A Smartcar refresh token is single-use (each refresh returns a new pair and the old refresh token
dies a minute later) and lives 60 days. Losing the newest refresh token means the car owner has to
go through Connect again, so the order of operations matters most:

1. before a refresh is sent, a durable *intent* marker is written next to the current pair;
2. the refresh is sent;
3. the new pair is committed durably (the vault's ``save`` is durable when it returns);
4. only then is the new access token handed to a caller.

A crash between 2 and 3 leaves the old pair plus the intent marker on disk; the next start sees the
marker and refreshes at once with the old refresh token, which the cloud still honours for its grace
period. A failed commit keeps the new pair in memory and retries the commit before anything else.
A burst of callers shares one refresh (:class:`~exporter.singleflight.SingleFlight`); instances
sharing a PostgreSQL vault also take the token's lock (``exporter.providers.base.exclusive``) and
re-read the stored pair under it, so a refresh token is never spent twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, replace

from exporter.clock import Clock
from exporter.providers.base import ReauthRequired, TokenStore, exclusive
from exporter.singleflight import SingleFlight
from exporter.tokens import TokenVaultError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TokenPair:
    """One access/refresh pair with absolute expiry times (unix seconds)."""

    access_token: str
    refresh_token: str
    access_expires_at: float
    refresh_expires_at: float
    issued_at: float

    def to_record(self) -> dict[str, object]:
        return dict(asdict(self))

    @staticmethod
    def from_record(data: Mapping[str, object]) -> TokenPair:
        def num(key: str) -> float:
            v = data[key]
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ValueError(f"{key} is not a number")
            return float(v)

        def text(key: str) -> str:
            v = data[key]
            if not isinstance(v, str) or not v:
                raise ValueError(f"{key} is not a string")
            return v

        return TokenPair(
            access_token=text("access_token"),
            refresh_token=text("refresh_token"),
            access_expires_at=num("access_expires_at"),
            refresh_expires_at=num("refresh_expires_at"),
            issued_at=num("issued_at"),
        )


RefreshFn = Callable[[str], Awaitable[TokenPair]]


@dataclass(frozen=True, slots=True)
class RenewalPolicy:
    """When to refresh without being asked.

    ``access_margin``: refresh an access token this long before it expires (no request should race
    the expiry). ``renew_after``: refresh once the refresh token is this old, even with no polls,
    which keeps a connection alive through a month without polls; the default (30 days) is half the
    60-day lifetime, well before the deadline, and leaves a month of retries if the cloud is down.
    """

    access_margin: float = 300.0
    renew_after: float = 30 * 86400.0
    retry_delay: float = 600.0


class RotatingToken:
    """One connection's token pair, with single-flight, commit-before-use refresh.

    ``extra`` holds non-secret connection data (user id, vehicle ids) that must be stored with the
    pair; it is written with every commit so the two never diverge.
    """

    def __init__(
        self,
        store: TokenStore,
        key: str,
        clock: Clock,
        refresh: RefreshFn,
        policy: RenewalPolicy | None = None,
    ) -> None:
        self.store = store
        self.key = key
        self.clock = clock
        self._refresh = refresh
        self.policy = policy or RenewalPolicy()
        self._pair: TokenPair | None = None
        self._extra: dict[str, object] = {}
        self._unsaved: TokenPair | None = None
        self._flight: SingleFlight[TokenPair] = SingleFlight(f"token-refresh:{key}")
        self.refreshes = 0
        self._loaded = False

    # --- state ------------------------------------------------------------------------------------
    def load(self) -> bool:
        """Read the stored pair; True when one exists. An intent marker means a refresh may have
        happened without being committed, so the next ``access_token`` refreshes at once."""
        data = self.store.load(self.key)
        self._loaded = True
        if data is None:
            return False
        pair_data = data.get("pair")
        if not isinstance(pair_data, Mapping):
            raise TokenVaultError(f"stored tokens for {self.key!r} have no token pair")
        self._pair = TokenPair.from_record(pair_data)
        extra = data.get("extra", {})
        self._extra = dict(extra) if isinstance(extra, Mapping) else {}
        if data.get("rotating_since") is not None:
            log.warning(
                "a token refresh was interrupted before its result was stored; refreshing now",
                extra={"token_key": self.key},
            )
            self._pair = replace(self._pair, access_expires_at=0.0)
        return True

    @property
    def pair(self) -> TokenPair | None:
        return self._pair

    @property
    def extra(self) -> dict[str, object]:
        return dict(self._extra)

    def _record(self, pair: TokenPair, rotating_since: float | None = None) -> dict[str, object]:
        return {
            "pair": pair.to_record(),
            "extra": dict(self._extra),
            "rotating_since": rotating_since,
        }

    def install(self, pair: TokenPair, extra: Mapping[str, object] | None = None) -> None:
        """Take a pair from a code exchange: committed before it is used, like every rotation."""
        if extra is not None:
            self._extra = dict(extra)
        self.store.save(self.key, self._record(pair))
        self._pair = pair
        self._unsaved = None
        self._loaded = True

    def update_extra(self, **values: object) -> None:
        self._extra.update(values)
        if self._pair is not None:
            self.store.save(self.key, self._record(self._pair))

    def forget(self) -> None:
        self.store.delete(self.key)
        self._pair = None
        self._unsaved = None

    # --- use --------------------------------------------------------------------------------------
    def access_due(self, now: float | None = None) -> bool:
        now = self.clock.now() if now is None else now
        return self._pair is None or now >= self._pair.access_expires_at - self.policy.access_margin

    def renewal_due_at(self) -> float | None:
        """When the refresh token should be renewed proactively (unix seconds)."""
        if self._pair is None:
            return None
        return self._pair.issued_at + self.policy.renew_after

    async def access_token(self) -> str:
        """A usable access token, refreshing first when it is (nearly) expired."""
        if not self._loaded:
            self.load()
        if self._unsaved is not None or self.access_due():
            pair = await self._rotate(stale=self._pair.access_token if self._pair else None)
            return pair.access_token
        assert self._pair is not None
        return self._pair.access_token

    async def refresh_now(self, stale_access: str | None = None) -> str:
        """Refresh because the cloud refused ``stale_access`` (401) or renewal is due.

        When another caller already replaced ``stale_access`` this returns the newer token instead
        of spending another refresh: that is what makes a burst of 401s one refresh.
        """
        if not self._loaded:
            self.load()
        pair = await self._rotate(stale=stale_access, force=stale_access is None)
        return pair.access_token

    async def renew_if_due(self) -> bool:
        """Proactive renewal of an ageing refresh token; True when a refresh was done."""
        due = self.renewal_due_at()
        if due is None or self.clock.now() < due:
            return False
        await self.refresh_now()
        return True

    async def _rotate(self, stale: str | None, force: bool = False) -> TokenPair:
        """Refresh unless another caller already did; callers arriving during a refresh share it."""
        if not self._flight.running:
            current = self._pair
            if current is not None and self._unsaved is None:
                if stale is not None and current.access_token != stale:
                    return current  # another caller refreshed already
                if stale is None and not force and not self.access_due():
                    return current
        return await self._flight.run(lambda: self._rotate_once(stale, force))

    async def _rotate_once(self, stale: str | None, force: bool) -> TokenPair:
        async with exclusive(self.store, self.key):
            if self._rotated_elsewhere() and self._pair is not None and not self.access_due():
                return self._pair
            return await self._rotate_locked(stale, force)

    def _rotated_elsewhere(self) -> bool:
        """Take the stored pair when another instance sharing the vault rotated it while this
        one waited for the lock (its refresh token is the only live one now); True if taken."""
        if self._unsaved is not None:
            return False
        data = self.store.load(self.key)
        pair_data = data.get("pair") if data is not None else None
        if not isinstance(pair_data, Mapping):
            return False
        stored = TokenPair.from_record(pair_data)
        if self._pair is not None and stored.refresh_token == self._pair.refresh_token:
            return False
        extra = data.get("extra", {}) if data is not None else {}
        self._extra = dict(extra) if isinstance(extra, Mapping) else self._extra
        if data is not None and data.get("rotating_since") is not None:
            stored = replace(stored, access_expires_at=0.0)  # that instance died mid-refresh
        self._pair = stored
        log.info("token pair rotated by another instance; using it", extra={"token_key": self.key})
        return True

    async def _rotate_locked(self, stale: str | None, force: bool) -> TokenPair:
        if self._unsaved is not None:
            # a previous commit failed: the new pair exists only here; commit it, then use it
            self.store.save(self.key, self._record(self._unsaved))
            self._pair, self._unsaved = self._unsaved, None
            log.info(
                "stored a refreshed token pair after an earlier failure",
                extra={"token_key": self.key},
            )
        current = self._pair
        if current is None:
            raise ReauthRequired(f"no stored tokens for {self.key}", code="no_tokens")
        now = self.clock.now()
        if stale is not None:
            if current.access_token != stale:
                return current  # the pair committed above is already newer
        elif not force and not self.access_due(now):
            return current
        if now >= current.refresh_expires_at:
            raise ReauthRequired(
                f"the refresh token of {self.key} expired "
                f"{(now - current.refresh_expires_at) / 86400:.1f} days ago",
                code="refresh_expired",
            )
        self.store.save(self.key, self._record(current, rotating_since=now))
        new = await self._refresh(current.refresh_token)
        self.refreshes += 1
        try:
            self.store.save(self.key, self._record(new))
        except BaseException:
            self._unsaved = new
            raise
        self._pair = new
        return new

    async def close(self) -> None:
        """Cancel a refresh in flight (the provider is closing)."""
        await self._flight.cancel()

    async def run_renewal(self, stop: asyncio.Event | None = None) -> None:
        """Background task: sleep until renewal is due, renew, repeat; retries on failure.

        ``ReauthRequired`` ends the loop (only the owner can fix it); other errors retry later.
        """
        while stop is None or not stop.is_set():
            due = self.renewal_due_at()
            if due is None:
                return
            wait = due - self.clock.now()
            if wait > 0:
                await self.clock.sleep(wait)
                continue
            try:
                await self.refresh_now()
            except ReauthRequired:
                log.warning(
                    "token renewal needs the owner to reconnect", extra={"token_key": self.key}
                )
                return
            except Exception as exc:  # network, 5xx: try again later
                log.warning(
                    "token renewal failed; retrying",
                    extra={"token_key": self.key, "error": type(exc).__name__},
                )
                await self.clock.sleep(self.policy.retry_delay)
