"""Accounts and every token the smart login chains hand out, on the simulated clock.

The real service has a zoo of credentials: an OIDC ``context`` (10 min), a Gigya login token (30
days), a one-time ``code``, the OAuth access/refresh tokens from the redirect, and the API session
(access token, refresh token, clientId) that the vehicle endpoints want. Each lives for a
configurable time so tests can jump the clock past any of them; expiring the API token before its
advertised ``expiresIn`` is deliberate, because the real one dies early too (reference §1.1).
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from exporter.clock import Clock
from exporter.simulator.persist import digest, lookup

DAY: Final = 86400.0


@dataclass(frozen=True)
class Lifetimes:
    """Seconds of simulated time each credential stays valid."""

    context: float = 600.0
    login_token: float = 30 * DAY
    code: float = 300.0
    oauth_access: float = 7 * DAY
    oauth_refresh: float = 60 * DAY
    api_access: float = 1 * DAY  # the reply still advertises expiresIn = 4579200
    api_refresh: float = 30 * DAY
    intl_access: float = 1 * DAY
    auth_code: float = 300.0


@dataclass(eq=False)
class Account:
    username: str
    password: str
    region: str  # "EU" | "INTL"
    user_id: str
    uid: str  # Gigya UID
    vins: list[str] = field(default_factory=list)
    selected: str | None = None


@dataclass(eq=False)
class Token:
    value: str
    kind: str
    account: Account
    expires: float
    region: str = "EU"
    client_id: str = ""
    parent: str = ""  # the OAuth token an API session was minted from
    used: bool = False


class Identity:
    """Issues, checks and revokes credentials; knows the accounts."""

    def __init__(self, clock: Clock, lifetimes: Lifetimes | None = None) -> None:
        self.clock = clock
        self.lifetimes = lifetimes or Lifetimes()
        self.accounts: dict[str, Account] = {}
        self._by_user_id: dict[str, Account] = {}
        self._tokens: dict[str, Token] = {}
        self.gmids: set[str] = set()

    # ------------------------------------------------------------------ accounts

    def add_account(self, username: str, password: str, region: str, vins: list[str]) -> Account:
        user_id = str(100000 + len(self.accounts) * 7919 + 4242)
        acc = Account(username, password, region, user_id, secrets.token_hex(16), list(vins))
        self.accounts[username.lower()] = acc
        self._by_user_id[user_id] = acc
        return acc

    def account(self, username: str) -> Account | None:
        return self.accounts.get(username.lower())

    def by_user_id(self, user_id: str) -> Account | None:
        return self._by_user_id.get(user_id)

    def account_of_vin(self, vin: str) -> Account | None:
        for acc in self.accounts.values():
            if vin in acc.vins:
                return acc
        return None

    # ------------------------------------------------------------------ tokens

    def issue(
        self,
        kind: str,
        account: Account,
        ttl: float,
        *,
        value: str | None = None,
        region: str = "EU",
        client_id: str = "",
        parent: str = "",
    ) -> Token:
        tok = Token(
            value or _random_value(kind),
            kind,
            account,
            self.clock.now() + ttl,
            region,
            client_id,
            parent,
        )
        self._tokens[tok.value] = tok
        if len(self._tokens) > 50_000:
            self.purge()
        return tok

    def get(self, value: str | None, kind: str) -> Token | None:
        """The token if it exists, is of ``kind`` and is not expired or revoked."""
        tok = lookup(self._tokens, value)  # a restarted simulator knows it by digest
        if tok is None or tok.kind != kind or tok.expires <= self.clock.now():
            return None
        return tok

    def known(self, value: str | None, kind: str) -> Token | None:
        """The token even if expired (to tell "expired" from "never issued")."""
        tok = lookup(self._tokens, value)
        return tok if tok is not None and tok.kind == kind else None

    @staticmethod
    def matches(token: Token, value: object) -> bool:
        """Is ``value`` this token (its value, or, for a token from before a restart, whose value
        is only known as a digest, the value of that digest)?"""
        return isinstance(value, str) and bool(value) and digest(value) == digest(token.value)

    def expire(self, value: str) -> None:
        tok = lookup(self._tokens, value)
        if tok is not None:
            tok.expires = min(tok.expires, self.clock.now())

    def revoke_children(self, parent: str, kind: str) -> None:
        """Expire every ``kind`` token minted from ``parent`` (a re-POST rotates the session)."""
        now = self.clock.now()
        for tok in self._tokens.values():
            if tok.parent == parent and tok.kind == kind and tok.expires > now:
                tok.expires = now

    def expire_account(self, account: Account, kinds: tuple[str, ...]) -> int:
        """Expire all live tokens of ``account`` of the given kinds; returns how many."""
        now = self.clock.now()
        n = 0
        for tok in self._tokens.values():
            if tok.account is account and tok.kind in kinds and tok.expires > now:
                tok.expires = now
                n += 1
        return n

    def dump(self) -> dict[str, Any]:
        """Every live token by digest (``exporter.simulator.persist``: never a value on disk)."""
        now = self.clock.now()
        return {
            digest(t.value): {
                "kind": t.kind,
                "account": t.account.username,
                "expires": t.expires,
                "region": t.region,
                "client_id": t.client_id,
                "parent": digest(t.parent) if t.parent else "",
                "used": t.used,
            }
            for t in self._tokens.values()
            if t.expires > now
        }

    def load(self, data: Mapping[str, Any]) -> None:
        """Take back ``dump``'s tokens (KeyError/TypeError/ValueError on a malformed one)."""
        restored = {}
        for key, raw in data.items():
            acc = self.account(str(raw["account"]))
            if acc is None:
                raise ValueError("a saved token names an unknown account")
            restored[str(key)] = Token(
                str(key),
                str(raw["kind"]),
                acc,
                float(raw["expires"]),
                str(raw["region"]),
                str(raw["client_id"]),
                str(raw["parent"]),
                bool(raw["used"]),
            )
        self._tokens.update(restored)

    def purge(self) -> None:
        """Drop tokens that expired more than a day ago."""
        cutoff = self.clock.now() - DAY
        self._tokens = {k: t for k, t in self._tokens.items() if t.expires > cutoff}

    # ------------------------------------------------------------------ API sessions

    def mint_session(self, oauth: Token, region: str) -> tuple[Token, Token]:
        """A new API session (access + refresh) from an OAuth token; older sessions of the same
        OAuth token stop working, as a re-POST rotates the server-side session."""
        acc = oauth.account
        self.revoke_children(oauth.value, "api_access")
        client_id = "APPLE0000APP00IPHONE" + f"{secrets.randbelow(10**12):012d}"
        exp = self.clock.now() + self.lifetimes.api_access
        access = self.issue(
            "api_access",
            acc,
            self.lifetimes.api_access,
            value=_jwt(
                {
                    "uid": acc.user_id,
                    "clientId": client_id,
                    "moduleType": "mobile",
                    "appId": "SmartAPPEU" if region == "EU" else "SMARTAPP-ISRAEL",
                    "businessId": "",
                    "exp": int(exp + 90 * DAY),  # what the token claims, not when it really dies
                    "env": "production",
                    "jti": secrets.token_hex(8),
                }
            ),
            region=region,
            client_id=client_id,
            parent=oauth.value,
        )
        refresh = self.issue(
            "api_refresh",
            acc,
            self.lifetimes.api_refresh,
            value=base64.b64encode(secrets.token_hex(16).upper().encode()).decode(),
            region=region,
            client_id=client_id,
            parent=oauth.value,
        )
        return access, refresh


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(payload: dict[str, object], alg: str = "HS256") -> str:
    head = _b64url(json.dumps({"alg": alg}, separators=(",", ":")).encode())
    body = _b64url(json.dumps(payload, separators=(",", ":")).encode())
    return f"{head}.{body}.{_b64url(secrets.token_bytes(32))}"


def id_token(issuer: str, audience: str, subject: str, now: float) -> str:
    """An OIDC id_token shaped like the captured one (RS256 header, 7 days)."""
    return _jwt(
        {
            "iss": issuer,
            "exp": int(now + 7 * DAY),
            "iat": int(now),
            "aud": audience,
            "auth_time": int(now),
            "azp": audience,
            "sub": subject,
            "nonce": str(int(now * 1000)),
            "at_hash": _b64url(secrets.token_bytes(16)),
        },
        alg="RS256",
    )


def _random_value(kind: str) -> str:
    raw = _b64url(secrets.token_bytes(48))
    if kind == "context":
        return f"eu1_tk1.{raw[:43]}"
    if kind in {"login_token", "code", "oauth_access", "oauth_refresh"}:
        return f"st2.s.Acb{raw[:6]}.{raw[6:]}.sc3"
    if kind == "auth_code":
        return f"CODE-{secrets.token_hex(12)}"
    return raw
