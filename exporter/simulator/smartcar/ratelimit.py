"""Smartcar's limits on a movable clock: token buckets and the monthly per-vehicle plan counter."""

from __future__ import annotations

from datetime import UTC, datetime


class TokenBucket:
    """``capacity`` requests at once, refilled at ``rate`` per second (Smartcar's app limit is
    120 with 2 per minute: a burst of 120, then one request every 30 s)."""

    def __init__(self, capacity: float, rate: float, now: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self._tokens = capacity
        self._t = now

    def _refill(self, now: float) -> None:
        if now > self._t:
            self._tokens = min(self.capacity, self._tokens + (now - self._t) * self.rate)
            self._t = now

    def take(self, now: float, n: float = 1.0) -> float:
        """Take ``n`` tokens; returns 0 on success, else the seconds until they would be there."""
        self._refill(now)
        if self._tokens >= n:
            self._tokens -= n
            return 0.0
        return (n - self._tokens) / self.rate if self.rate > 0 else float("inf")

    def level(self, now: float) -> float:
        self._refill(now)
        return self._tokens


def month_key(t: float) -> str:
    """The billing month of a unix time (UTC calendar month), e.g. ``2026-01``."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m")
