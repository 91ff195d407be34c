"""The provider contract: what every provider offers, what it is given, and the errors it raises.

The scheduler, the command service and the server speak only this module's language. A provider is
built by its registry entry (``exporter.providers.registry``) from its account settings and a
:class:`ProviderContext`; everything it learns outside a poll (a webhook, a Connect grant, a car that
left the account) it hands to the context's :class:`Sink`, never to the runtime's objects. Optional
capabilities are methods of :class:`BaseProvider` with harmless defaults, so callers never probe with
``getattr``. Each error carries a ``reason`` from a small fixed set (it becomes a bounded Prometheus
label) and the vendor's own ``code`` (a cloud code such as ``8153`` or an HTTP status) for logs and
the per-code error counter.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from exporter.clock import Clock
from exporter.hub import Outcome
from exporter.journal import JournalTrip
from exporter.snapshot import Snapshot, VehicleInfo

if TYPE_CHECKING:
    import aiohttp

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


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll gave: a report, an error, or both.

    Both: a complete car report was read before a *later* call of the same poll failed (e.g. a
    Retry-After on an optional call). The cloud only ever serves a car's latest report, so dropping
    it could lose it for good; the scheduler stores it and still treats the poll as failed.
    """

    snapshot: Snapshot | None = None
    error: ProviderError | None = None

    def __post_init__(self) -> None:
        if self.snapshot is None and self.error is None:
            raise ValueError("a PollResult holds a snapshot, an error or both")

    def unwrap(self) -> Snapshot:
        """The report of a successful poll; raises the error of a failed one."""
        if self.error is not None:
            raise self.error
        assert self.snapshot is not None
        return self.snapshot


class Sink(Protocol):
    """The only way into the running exporter for what a provider learns outside a poll."""

    def publish(self, snapshot: Snapshot) -> Outcome:
        """A car report (from a webhook, say): classified by the hub, shown and stored if new."""
        ...

    def vehicle_added(self, info: VehicleInfo) -> None:
        """A car joined the account (Connect, re-listing): export and poll it."""
        ...

    def vehicle_removed(self, vin: str) -> None:
        """A car left the account (revoked, removed): stop polling, drop its series; history stays."""
        ...

    def request_poll(self, vin: str, delay: float = 0.0) -> None:
        """Poll this car within ``delay`` seconds (the cloud's Retry-After still binds)."""
        ...


@dataclass(frozen=True, slots=True)
class SimulatorLink:
    """What a ``simulator = true`` account needs from the embedded simulator, as plain data.

    ``urls[cloud]`` are the base URLs per host, ``logins[name]`` the demo logins (never on disk).
    A provider reaches the simulator only over HTTP, at these URLs, as it reaches a real cloud.
    """

    urls: Mapping[str, Mapping[str, str]]
    logins: Mapping[str, Mapping[str, str]]


@dataclass(frozen=True, slots=True)
class ProviderContext:
    """Everything a provider gets from the runtime; nothing else of the runtime is reachable."""

    session: aiohttp.ClientSession
    clock: Clock
    tokens: TokenStore
    sink: Sink
    public_url: str = "http://127.0.0.1:8477"  # the exporter's base URL (redirects, webhooks)
    simulator: SimulatorLink | None = None  # set when the embedded simulator runs


@runtime_checkable
class Provider(Protocol):
    """One logged-in account at one cloud. Subclass :class:`BaseProvider` to get the hooks' defaults."""

    name: str  # the registry name: "smart" | "smartcar" | ...
    account: str  # config name of the account

    async def start(self) -> None:
        """Log in (or load stored tokens). Raises AuthError/ReauthRequired."""

    async def vehicles(self) -> list[VehicleInfo]:
        """The vehicles this account can read now (called at start and at every re-listing)."""

    async def poll(self, vin: str) -> PollResult:
        """One complete, parsed report of a vehicle, or the typed error that prevented it (never a
        partial report). Expected failures are returned, not raised."""

    def supported_commands(self, vin: str) -> frozenset[str]:
        """Names from COMMANDS this vehicle accepts through this provider."""

    async def command(self, vin: str, command: Command) -> CommandReceipt:
        """Send a command. Raises CommandRejected (or another ProviderError)."""

    async def close(self) -> None:
        """Cancel background work (renewals); persist what must survive a restart."""

    # --- optional hooks (BaseProvider gives the defaults) ---------------------------------------
    def min_poll_interval(self, vin: str) -> float:
        """A floor under the scheduler's interval (a request budget); 0 = none."""

    def validate_command(self, vin: str, command: Command) -> None:
        """Raise CommandRejected for parameters this cloud cannot encode, before anything is sent."""

    def reauth_links(self) -> dict[str, str]:
        """VIN -> URL (path on this exporter) where the owner repairs a broken connection."""

    def journal_interval(self, vin: str) -> float:
        """Seconds between reads of the car's own trip log; 0 = this provider has none."""

    async def journal(self, vin: str, since: float, routed: frozenset[str]) -> list[JournalTrip]:
        """The trips the car logged that started at or after ``since``, each with its route unless
        its id is in ``routed`` (stored already). Raises ProviderError; an empty log is []."""


class BaseProvider:
    """The optional hooks of :class:`Provider` with their defaults, plus ``snapshot``."""

    name: str = ""
    account: str = ""

    async def poll(self, vin: str) -> PollResult:
        raise NotImplementedError

    async def snapshot(self, vin: str) -> Snapshot:
        """One poll's report, raising its error: for tools and tests that want one value."""
        return (await self.poll(vin)).unwrap()

    def supported_commands(self, vin: str) -> frozenset[str]:
        return frozenset()

    async def command(self, vin: str, command: Command) -> CommandReceipt:
        raise CommandRejected(f"{self.name} accepts no commands", code="unsupported")

    async def close(self) -> None:
        return None

    def min_poll_interval(self, vin: str) -> float:
        return 0.0

    def validate_command(self, vin: str, command: Command) -> None:
        return None

    def reauth_links(self) -> dict[str, str]:
        return {}

    def journal_interval(self, vin: str) -> float:
        return 0.0

    async def journal(self, vin: str, since: float, routed: frozenset[str]) -> list[JournalTrip]:
        return []


# --- token persistence ----------------------------------------------------------------------------


class TokenStore(Protocol):
    """Where a provider keeps tokens across restarts (encrypted at rest by the real implementation).

    ``save`` must be durable when it returns: a provider calls it *before* it uses a newly issued
    token, so a crash never loses the only valid refresh token.
    """

    def load(self, key: str) -> dict[str, object] | None: ...

    def save(self, key: str, tokens: dict[str, object]) -> None: ...

    def delete(self, key: str) -> None: ...


def exclusive(store: TokenStore, key: str) -> contextlib.AbstractAsyncContextManager[Any]:
    """Single flight of one token's renewal across every process sharing ``store``.

    A store that other carmetrics instances share (the PostgreSQL vault) gives a lock held
    until the block ends; a provider renews inside it and first re-reads the stored tokens, which
    another instance may have renewed meanwhile, so one refresh token is never spent twice and one
    account never logs in twice. A store only one process uses needs no lock.
    """
    lock = getattr(store, "exclusive", None)
    if lock is None:
        return contextlib.nullcontext()
    got: contextlib.AbstractAsyncContextManager[Any] = lock(key)
    return got


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
