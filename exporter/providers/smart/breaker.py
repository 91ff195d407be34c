"""A per-username circuit breaker around full logins.

The smart login gateway answers repeated logins with a WAF block (HTTP 403) that keeps the account
locked out for hours; an exporter that retries a failed login every poll makes that worse (reference
§4.3). So a full login is attempted only outside a quiet window that grows x1.5 with every
rate-limit failure (floor 2 min, cap 90 min), shrinks by a minute on success, and is a flat 60 s
after any other failure. State is shared per username through a registry, so a re-created provider
(config reload, a second account entry with the same user) cannot bypass it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from exporter.clock import Clock
from exporter.providers.smart.errors import LoginSuppressed

FLOOR: Final = 120.0
CAP: Final = 90 * 60.0
GROWTH: Final = 1.5
SHRINK: Final = 60.0
OTHER_FAILURE_QUIET: Final = 60.0


@dataclass(slots=True)
class LoginBreaker:
    """Quiet-window state of one username. Times are the injected clock's seconds."""

    window: float = FLOOR  # the next rate-limit quiet window
    quiet_until: float = 0.0
    attempts: int = 0  # full logins actually attempted (for tests and logs)
    last_code: str = ""

    def check(self, clock: Clock) -> None:
        """Raise LoginSuppressed while inside the quiet window; else count the attempt."""
        left = self.quiet_until - clock.now()
        if left > 0:
            raise LoginSuppressed(
                f"full login suppressed for another {left:.0f} s after earlier failures",
                code=self.last_code,
                retry_after=left,
            )
        self.attempts += 1

    def rate_limited(self, clock: Clock, code: str) -> float:
        """Open the window for the current length, then grow it. Returns the quiet time applied."""
        quiet = self.window
        self.quiet_until = clock.now() + quiet
        self.window = min(CAP, self.window * GROWTH)
        self.last_code = code
        return quiet

    def failed(self, clock: Clock, code: str) -> float:
        self.quiet_until = clock.now() + OTHER_FAILURE_QUIET
        self.last_code = code
        return OTHER_FAILURE_QUIET

    def succeeded(self) -> None:
        self.window = max(FLOOR, self.window - SHRINK)
        self.quiet_until = 0.0
        self.last_code = ""


class BreakerRegistry:
    """One breaker per (region, username); module-level :data:`BREAKERS` is the shared default."""

    def __init__(self) -> None:
        self._by_user: dict[str, LoginBreaker] = {}

    def for_user(self, region: str, username: str) -> LoginBreaker:
        key = f"{region}:{username.strip().lower()}"
        return self._by_user.setdefault(key, LoginBreaker())


BREAKERS: Final = BreakerRegistry()
