"""The token vault: OAuth tokens encrypted at rest, rotated atomically, renewed before they die.

Why this module exists: a Smartcar refresh token is single-use (each refresh returns a new pair
and the old refresh token dies a minute later) and lives 60 days. Losing the newest refresh token
means the car owner has to go through Connect again, so the order of operations matters most:

1. before a refresh is sent, a durable *intent* marker is written next to the current pair;
2. the refresh is sent;
3. the new pair is committed durably (``synchronous=FULL``);
4. only then is the new access token handed to a caller.

A crash between 2 and 3 leaves the old pair plus the intent marker on disk; the next start sees the
marker and refreshes at once with the old refresh token, which the cloud still honours for its grace
period. A failed commit keeps the new pair in memory and retries the commit before anything else.

Tokens are stored in the history SQLite file (their own table) sealed with AES-256-GCM; the row's
key is bound as associated data so a blob cannot be moved to another row. The key comes from the
environment (``CARMETRICS_TOKENS__KEY``) or a key file; several comma-separated keys allow rotation
(the first encrypts, all decrypt). Nothing here knows HTTP: the provider passes a refresh function.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import ClassVar, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from exporter.clock import Clock
from exporter.config import Config, ConfigError, Secret
from exporter.providers.base import MemoryTokenStore, ReauthRequired, TokenStore
from exporter.settings import Section, read_section

log = logging.getLogger(__name__)

KEY_ENV: Final = "CARMETRICS_TOKENS__KEY"
_BLOB_VERSION: Final = b"\x01"
_NONCE_LEN: Final = 12
_AAD_PREFIX: Final = b"carmetrics-token-v1:"
_TABLE: Final = "oauth_tokens"


class TokenVaultError(ConfigError):
    """The vault cannot be opened or read with the configured key; a start-up error, one line."""


def generate_key() -> str:
    """A fresh 256-bit key in URL-safe base64, the format ``CARMETRICS_TOKENS__KEY`` expects."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


def parse_keys(raw: str, source: str) -> list[bytes]:
    """Decode one or more comma-separated keys; the first encrypts, all may decrypt (rotation)."""
    keys: list[bytes] = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        try:
            key = base64.urlsafe_b64decode(part.encode("ascii") + b"=" * (-len(part) % 4))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            key = b""
        if len(key) != 32:
            raise ConfigError(
                f"{source}: expected a 32-byte key in URL-safe base64 "
                "(generate one with `carmetrics tokens genkey`)"
            )
        keys.append(key)
    if not keys:
        raise ConfigError(f"{source}: is empty; generate a key with `carmetrics tokens genkey`")
    return keys


class EncryptedTokenStore:
    """A durable, encrypted ``TokenStore`` in its own table of an SQLite file.

    Each ``save`` is its own ``BEGIN IMMEDIATE`` transaction on a connection with
    ``synchronous=FULL``, so it is on disk when ``save`` returns: atomic rotation depends on it.
    The writes are tiny and rare (one per token refresh), so they run inline.
    """

    def __init__(self, path: Path | str, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self._ciphers = [AESGCM(k) for k in keys]
        self._lock = threading.Lock()
        self.path = Path(path)
        from exporter.history import create_private

        create_private(self.path)  # owner-only, as the history it shares the file with
        self._db = sqlite3.connect(
            str(self.path), timeout=5.0, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            f"CREATE TABLE IF NOT EXISTS {_TABLE} ("
            "name TEXT PRIMARY KEY, blob BLOB NOT NULL, updated_at REAL NOT NULL) STRICT"
        )

    # --- sealing ----------------------------------------------------------------------------------
    def _seal(self, name: str, tokens: Mapping[str, object]) -> bytes:
        nonce = os.urandom(_NONCE_LEN)
        plain = json.dumps(tokens, separators=(",", ":"), sort_keys=True).encode()
        return (
            _BLOB_VERSION
            + nonce
            + self._ciphers[0].encrypt(nonce, plain, _AAD_PREFIX + name.encode())
        )

    def _open(self, name: str, blob: bytes) -> dict[str, object]:
        return _open_blob(self._ciphers, name, blob)

    # --- TokenStore -------------------------------------------------------------------------------
    def load(self, key: str) -> dict[str, object] | None:
        with self._lock:
            row = self._db.execute(f"SELECT blob FROM {_TABLE} WHERE name = ?", (key,)).fetchone()
        return None if row is None else self._open(key, row[0])

    def save(self, key: str, tokens: dict[str, object]) -> None:
        blob = self._seal(key, tokens)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    f"INSERT INTO {_TABLE}(name, blob, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET "
                    "blob = excluded.blob, updated_at = excluded.updated_at",
                    (key, blob, time.time()),
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def delete(self, key: str) -> None:
        with self._lock:
            self._db.execute(f"DELETE FROM {_TABLE} WHERE name = ?", (key,))

    # --- housekeeping -----------------------------------------------------------------------------
    def names(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute(f"SELECT name FROM {_TABLE} ORDER BY name")]

    def check(self) -> None:
        """Decrypt every row once so a wrong key fails at start-up, not at the first refresh."""
        for name in self.names():
            self.load(name)

    def rekey(self) -> int:
        """Re-seal every row with the first key (after adding a new key in front); returns rows."""
        names = self.names()
        for name in names:
            data = self.load(name)
            if data is not None:
                self.save(name, data)
        return len(names)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _open_blob(ciphers: Sequence[AESGCM], name: str, blob: bytes) -> dict[str, object]:
    if blob[:1] != _BLOB_VERSION or len(blob) < 1 + _NONCE_LEN + 16:
        raise TokenVaultError(f"stored tokens for {name!r} are not in a known format")
    nonce, body = blob[1 : 1 + _NONCE_LEN], blob[1 + _NONCE_LEN :]
    for cipher in ciphers:
        try:
            plain = cipher.decrypt(nonce, body, _AAD_PREFIX + name.encode())
        except InvalidTag:
            continue
        data = json.loads(plain)
        if not isinstance(data, dict):
            raise TokenVaultError(f"stored tokens for {name!r} are not an object")
        return data
    raise TokenVaultError(
        f"stored tokens for {name!r} cannot be decrypted with the configured key "
        f"({KEY_ENV} or [tokens] key_file changed?); restore the old key as a second, "
        "comma-separated key, or reconnect the account"
    )


def _needs_vault(config: Config) -> bool:
    return any(not a.simulator for a in config.accounts)


class TokensSection(Section):
    """``[tokens]``: the vault key, from ``CARMETRICS_TOKENS__KEY`` or ``key_file`` only."""

    secret_hint: ClassVar[str] = "create one with `carmetrics tokens genkey`"
    key: Secret | None = None


def _key_from_config(config: Config, env: Mapping[str, str]) -> tuple[str, str] | None:
    """(raw key text, where it came from), or None when no key is configured."""
    src = Path(config.source)
    base = src.resolve().parent if config.source != "<defaults>" else Path.cwd()
    section = read_section(TokensSection, config.extra.get("tokens"), "tokens", base=base)
    if env.get(KEY_ENV):
        return env[KEY_ENV], KEY_ENV
    if section.key is None:
        return None
    raw = config.extra.get("tokens", {})
    return section.key.reveal(), "tokens.key_file" if "key_file" in raw else KEY_ENV


def _refuse_without_key(config: Config) -> None:
    if _needs_vault(config):
        first = next(a for a in config.accounts if not a.simulator)
        raise ConfigError(
            f"{first.key('provider')} = {first.provider!r} stores OAuth tokens, but no "
            f"encryption key is configured: set {KEY_ENV} (generate one with "
            "`carmetrics tokens genkey`) or point tokens.key_file at a file holding it"
        )


def _stored(db: Path) -> list[tuple[str, bytes]]:
    """The vault's rows, read without creating or changing the file; none if there is no vault."""
    if not db.is_file():
        return []
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return []
    try:
        return [(str(n), bytes(b)) for n, b in conn.execute(f"SELECT name, blob FROM {_TABLE}")]
    except sqlite3.Error:  # no vault table yet, or not a database (the history reports that)
        return []
    finally:
        conn.close()


def check_vault(config: Config, env: Mapping[str, str] | None = None) -> list[str]:
    """What ``tokens_from_config`` will decide, without creating or changing any file: raises the
    same ``ConfigError``, and returns warnings (stored connections that will not be read)."""
    env = os.environ if env is None else env
    found = _key_from_config(config, env)
    rows = _stored(config.db)
    if found is None:
        _refuse_without_key(config)
        accounts = sorted({n.split(":")[1] for n, _ in rows if n.count(":") >= 2})
        if not accounts:
            return []
        return [
            f"{config.db} holds encrypted tokens of account(s) {', '.join(accounts)}, but no "
            f"vault key is configured, so those connections are not read: set {KEY_ENV} or "
            "tokens.key_file to the key they were stored with"
        ]
    keys = parse_keys(*found)
    ciphers = [AESGCM(k) for k in keys]
    for name, blob in rows:
        try:
            _open_blob(ciphers, name, blob)
        except TokenVaultError as exc:
            raise ConfigError(str(exc)) from None
    return []


def tokens_from_config(config: Config, env: Mapping[str, str] | None = None) -> TokenStore:
    """The token store the runtime should use.

    A configured key always gives the encrypted vault in ``config.db``. Without a key, accounts on
    real clouds are refused (tokens are never written in plaintext, and forgetting them on every
    restart would force owners through Connect again); simulator-only setups get a
    ``MemoryTokenStore``.
    """
    env = os.environ if env is None else env
    found = _key_from_config(config, env)
    if found is None:
        _refuse_without_key(config)
        return MemoryTokenStore()
    raw, source = found
    store = EncryptedTokenStore(config.db, parse_keys(raw, source))
    store.check()
    return store


# ------------------------------------------------------------------------------------------------
# Rotation


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
        self._lock = asyncio.Lock()
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
        async with self._lock:
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
                    return current  # another caller refreshed while we waited for the lock
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
