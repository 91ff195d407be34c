"""Bearer tokens for the command API.

Tokens are compared as SHA-256 digests with ``hmac.compare_digest`` against *every* configured token
(no early exit), so neither the position of the first differing byte nor which entry matched shows
in the response time. Only the token's configured name ever leaves this module (audit log, logs).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from exporter.commands.settings import TokenEntry


@dataclass(frozen=True, slots=True)
class Caller:
    name: str
    can_command: bool


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class Authenticator:
    def __init__(self, entries: Iterable[TokenEntry]) -> None:
        self._entries = [
            (_digest(e.secret.reveal()), Caller(e.name, e.can_command)) for e in entries
        ]

    def identify(self, authorization: str | None) -> Caller | None:
        """The caller for an ``Authorization: Bearer <token>`` header, or None."""
        if not authorization:
            return None
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        given = _digest(token.strip())
        found: Caller | None = None
        for digest, caller in self._entries:
            if hmac.compare_digest(digest, given) and found is None:
                found = caller
        return found
