"""The token vault: OAuth tokens encrypted at rest, shared by every provider.

Tokens are stored in the history (their own table, in the SQLite file or the PostgreSQL database) sealed with AES-256-GCM; the row's
key is bound as associated data so a blob cannot be moved to another row. The key comes from the
environment (``CARMETRICS_TOKENS__KEY``) or a key file; several comma-separated keys allow rotation
(the first encrypts, all decrypt). Each ``save`` is durable when it returns, which is what lets a
provider commit a newly issued token before it uses it (Smartcar's single-use refresh tokens,
``exporter.providers.smartcar.rotation``). Nothing here knows HTTP.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Final, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from exporter.config import Config, ConfigError, Secret
from exporter.providers.base import MemoryTokenStore, TokenStore
from exporter.settings import Section, read_section
from exporter.tables import OAUTH_TOKENS

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


class TokenRows(Protocol):
    """Where the sealed blobs live (one row per name). ``put`` is durable when it returns."""

    def get(self, name: str) -> bytes | None: ...

    def put(self, name: str, blob: bytes) -> None: ...

    def delete(self, name: str) -> None: ...

    def names(self) -> list[str]: ...

    def close(self) -> None: ...


class SqliteTokenRows:
    """The vault's table in the SQLite history file.

    Each ``put`` is its own ``BEGIN IMMEDIATE`` transaction on a connection with
    ``synchronous=FULL``, so it is on disk when ``put`` returns: atomic rotation depends on it.
    The writes are tiny and rare (one per token refresh), so they run inline.
    """

    def __init__(self, path: Path | str) -> None:
        self._lock = threading.Lock()
        self.path = Path(path)
        from exporter.history import create_private

        create_private(self.path)  # owner-only, as the history it shares the file with
        self._db = sqlite3.connect(
            str(self.path), timeout=5.0, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        for stmt in OAUTH_TOKENS.ddl("sqlite"):
            self._db.execute(stmt)

    def get(self, name: str) -> bytes | None:
        with self._lock:
            row = self._db.execute(f"SELECT blob FROM {_TABLE} WHERE name = ?", (name,)).fetchone()
        return None if row is None else bytes(row[0])

    def put(self, name: str, blob: bytes) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    f"INSERT INTO {_TABLE}(name, blob, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET "
                    "blob = excluded.blob, updated_at = excluded.updated_at",
                    (name, blob, time.time()),
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def delete(self, name: str) -> None:
        with self._lock:
            self._db.execute(f"DELETE FROM {_TABLE} WHERE name = ?", (name,))

    def names(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute(f"SELECT name FROM {_TABLE} ORDER BY name")]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class EncryptedTokenStore:
    """A durable, encrypted ``TokenStore`` over the history's ``oauth_tokens`` rows (an SQLite
    file or a PostgreSQL database: ``rows``, or a path for the SQLite file)."""

    def __init__(self, rows: TokenRows | Path | str, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self._ciphers = [AESGCM(k) for k in keys]
        if isinstance(rows, Path | str):
            rows = SqliteTokenRows(rows)
        self.rows = rows
        self.path = getattr(rows, "path", None)

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
        blob = self.rows.get(key)
        return None if blob is None else self._open(key, blob)

    def save(self, key: str, tokens: dict[str, object]) -> None:
        self.rows.put(key, self._seal(key, tokens))

    def delete(self, key: str) -> None:
        self.rows.delete(key)

    # --- housekeeping -----------------------------------------------------------------------------
    def names(self) -> list[str]:
        return self.rows.names()

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

    def exclusive(self, key: str) -> contextlib.AbstractAsyncContextManager[Any]:
        """The rows' cross-instance lock of one token (``exporter.providers.base.exclusive``)."""
        lock = getattr(self.rows, "exclusive", None)
        if lock is None:
            return contextlib.nullcontext()
        got: contextlib.AbstractAsyncContextManager[Any] = lock(key)
        return got

    def close(self) -> None:
        self.rows.close()


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


def sqlite_stored(db: Path) -> list[tuple[str, bytes]]:
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
    from exporter.backend import backend
    from exporter.history import HistoryError

    try:
        rows = backend(config.db).stored_tokens()
    except HistoryError as exc:  # the database cannot be reached: run would stop there too
        raise ConfigError(str(exc)) from None
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
    from exporter.backend import backend

    store = EncryptedTokenStore(backend(config.db).token_rows(), parse_keys(raw, source))
    store.check()
    return store
