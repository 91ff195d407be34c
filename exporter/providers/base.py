"""What every provider offers, and the errors every provider raises.

The scheduler, the command service and the server speak only this module's language. Each error carries
a ``reason`` from a small fixed set (it becomes a bounded Prometheus label) and the vendor's own ``code``
(a cloud code such as ``8153`` or an HTTP status) for logs and the per-code error counter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Protocol, runtime_checkable

from exporter.snapshot import Snapshot, VehicleInfo

# Bounded label values for carmetrics_poll_errors_total{reason=...}.
REASONS: Final = (
    "auth",
    "reauth_required",
    "rate_limited",
    "not_linked",
    "upstream",
    "timeout",
    "bad_reply",
    "rejected",
    "budget",
)


class ProviderError(Exception):
    """Base of every provider failure. ``code`` is the vendor's code as a string, or ''."""

    reason: str = "upstream"

    def __init__(self, message: str, *, code: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after
        # A complete car report read before a *later* call of the same poll failed. The cloud only
        # ever serves a car's latest report, so dropping it could lose it for good; the scheduler
        # stores it and still treats the poll as failed (backoff, Retry-After).
        self.snapshot: Snapshot | None = None

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} (code {self.code})" if self.code else base


class AuthError(ProviderError):
    """Credentials were refused or a token could not be renewed; retried after re-login."""

    reason = "auth"


class ReauthRequired(AuthError):
    """Only the user can fix this (new consent, changed password). Polling stops until they do."""

    reason = "reauth_required"

    def __init__(self, message: str, *, code: str = "", reauth_url: str = "") -> None:
        super().__init__(message, code=code)
        self.reauth_url = reauth_url


class RateLimited(ProviderError):
    """The cloud asked us to slow down; ``retry_after`` seconds must pass before the next call."""

    reason = "rate_limited"


class VehicleNotLinked(ProviderError):
    """The account no longer has this vehicle (or another client selected a different one)."""

    reason = "not_linked"


class UpstreamUnavailable(ProviderError):
    """5xx, maintenance pages, connection errors, 'data unavailable' codes: transient."""

    reason = "upstream"


class UpstreamTimeout(UpstreamUnavailable):
    reason = "timeout"


class BadReply(ProviderError):
    """A reply we could not understand (malformed JSON, wrong shape). Previous values are kept."""

    reason = "bad_reply"


class CommandRejected(ProviderError):
    """The cloud refused a command (vehicle state, unsupported, ...)."""

    reason = "rejected"


class BudgetExhausted(ProviderError):
    """Our own request budget for this vehicle/app is spent; the call was not sent."""

    reason = "budget"


# --- commands -------------------------------------------------------------------------------------

COMMANDS: Final = (
    "lock",
    "unlock",
    "climate_start",
    "climate_stop",
    "charge_start",
    "charge_stop",
    "charge_limit",
    "horn",
    "flash",
    "find",
    "windows_close",
    "seat_heating",
)


@dataclass(frozen=True, slots=True)
class Command:
    """A validated command with its parameters (temperature in degC, percent 50..100, ...)."""

    name: str
    params: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CommandReceipt:
    """The cloud's acceptance of a command. Acceptance is not success: the effect is verified later."""

    accepted: bool
    reply: str  # short, secret-free summary of the cloud's reply for the audit log
    cloud_id: str = ""


@runtime_checkable
class Provider(Protocol):
    """One logged-in account at one cloud."""

    name: str  # "smart" | "smartcar"
    account: str  # config name of the account

    async def start(self) -> None:
        """Log in (or load stored tokens). Raises AuthError/ReauthRequired."""

    async def vehicles(self) -> list[VehicleInfo]:
        """The vehicles this account can read."""

    async def snapshot(self, vin: str) -> Snapshot:
        """One complete, parsed report of a vehicle. Raises a ProviderError on any failure, in which
        case nothing partial is returned."""

    def supported_commands(self, vin: str) -> frozenset[str]:
        """Names from COMMANDS this vehicle accepts through this provider."""

    async def command(self, vin: str, command: Command) -> CommandReceipt:
        """Send a command. Raises CommandRejected (or another ProviderError)."""

    async def close(self) -> None:
        """Release sessions; persist what must survive a restart."""


# --- token persistence ----------------------------------------------------------------------------


class TokenStore(Protocol):
    """Where a provider keeps tokens across restarts (encrypted at rest by the real implementation).

    ``save`` must be durable when it returns: a provider calls it *before* it uses a newly issued
    token, so a crash never loses the only valid refresh token.
    """

    def load(self, key: str) -> dict[str, object] | None: ...

    def save(self, key: str, tokens: dict[str, object]) -> None: ...

    def delete(self, key: str) -> None: ...


class MemoryTokenStore:
    """A TokenStore that forgets on exit; for tests and for accounts that opt out of persistence."""

    def __init__(self) -> None:
        self._data: dict[str, dict[str, object]] = {}

    def load(self, key: str) -> dict[str, object] | None:
        got = self._data.get(key)
        return dict(got) if got is not None else None

    def save(self, key: str, tokens: dict[str, object]) -> None:
        self._data[key] = dict(tokens)

    def delete(self, key: str) -> None:
        self._data.pop(key, None)
