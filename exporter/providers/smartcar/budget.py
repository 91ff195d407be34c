"""The request budget: Smartcar bills per vehicle per month (e.g. 500 calls; call 501 gets a 430)
and limits the whole app (a bucket of 120 requests refilling 2 per minute).

The budget is checked *before* a request is sent, so an exhausted month raises ``BudgetExhausted``
instead of spending a call to learn it, and it spreads what is left evenly over what is left of the
month (``min_interval``), which the scheduler obeys. Counts persist through restarts (a restart must
not hand out the month's calls again), in the token store because that is the account's durable,
private state.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime
from typing import Final

from exporter.clock import Clock
from exporter.providers.base import BudgetExhausted, RateLimited, TokenStore

APP_BUCKET: Final = (120.0, 2.0 / 60.0)


def month_key(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m")


def month_end(t: float) -> float:
    """Unix time the billing month of ``t`` ends (start of the next UTC month)."""
    d = datetime.fromtimestamp(t, UTC)
    days = calendar.monthrange(d.year, d.month)[1]
    start = datetime(d.year, d.month, 1, tzinfo=UTC).timestamp()
    return start + days * 86400.0


class Budget:
    """Per-vehicle monthly calls, an optional app-wide monthly cap, and the app rate bucket."""

    def __init__(
        self,
        store: TokenStore,
        key: str,
        clock: Clock,
        *,
        per_vehicle: int = 500,
        reserve: int = 20,
        app_per_month: int | None = None,
        app_bucket: tuple[float, float] = APP_BUCKET,
    ) -> None:
        self.store = store
        self.key = key
        self.clock = clock
        self.per_vehicle = per_vehicle
        self.reserve = reserve
        self.app_per_month = app_per_month
        self._month = month_key(clock.now())
        self._used: dict[str, int] = {}
        self.sent_total: dict[str, int] = {}  # this process, monotonic (for a counter metric)
        self._bucket_cap, self._bucket_rate = app_bucket
        self._bucket = self._bucket_cap
        self._bucket_t = clock.now()
        self._load()

    # --- persistence ------------------------------------------------------------------------------
    def _load(self) -> None:
        data = self.store.load(self.key) or {}
        used = data.get("used")
        if data.get("month") == self._month and isinstance(used, dict):
            self._used = {str(k): int(v) for k, v in used.items() if isinstance(v, int)}

    def _save(self) -> None:
        self.store.save(self.key, {"month": self._month, "used": dict(self._used)})

    def _roll(self) -> None:
        m = month_key(self.clock.now())
        if m != self._month:
            self._month = m
            self._used = {}

    # --- queries ----------------------------------------------------------------------------------
    def used(self, vin: str) -> int:
        self._roll()
        return self._used.get(vin, 0)

    def remaining(self, vin: str) -> int:
        return max(0, self.per_vehicle - self.used(vin))

    def app_used(self) -> int:
        self._roll()
        return sum(self._used.values())

    def reset_at(self) -> float:
        return month_end(self.clock.now())

    def min_interval(self, vin: str, cost: int, share: float = 1.0) -> float:
        """Seconds between polls costing ``cost`` calls so the budget lasts to the month's end.

        ``share`` < 1 leaves part of the budget unplanned (e.g. for webhooks-off fallbacks)."""
        now = self.clock.now()
        left_s = max(1.0, month_end(now) - now)
        usable = (self.remaining(vin) - self.reserve) * share
        if self.app_per_month is not None:
            usable = min(usable, (self.app_per_month - self.app_used()) * share)
        polls = int(usable // max(1, cost))
        if polls <= 0:
            return left_s
        return left_s / polls

    # --- spending ---------------------------------------------------------------------------------
    def _take_bucket(self) -> float:
        now = self.clock.now()
        if now > self._bucket_t:
            self._bucket = min(
                self._bucket_cap, self._bucket + (now - self._bucket_t) * self._bucket_rate
            )
            self._bucket_t = now
        if self._bucket >= 1.0:
            self._bucket -= 1.0
            return 0.0
        return (1.0 - self._bucket) / self._bucket_rate

    def spend(self, vin: str, cost: int, *, reserve_ok: bool = False) -> None:
        """Account for one request of ``cost`` billable calls *before* sending it.

        Raises BudgetExhausted (month spent; ``reserve_ok`` lets commands use the reserve) or
        RateLimited (the app bucket is empty) without counting anything."""
        self._roll()
        floor = 0 if reserve_ok else self.reserve
        now = self.clock.now()
        if self.remaining(vin) - cost < floor:
            raise BudgetExhausted(
                f"monthly Smartcar budget of this vehicle is spent "
                f"({self.used(vin)}/{self.per_vehicle} calls)",
                code="vehicle_month",
                retry_after=max(60.0, month_end(now) - now),
            )
        if self.app_per_month is not None and self.app_used() + cost > self.app_per_month:
            raise BudgetExhausted(
                f"monthly Smartcar budget of the app is spent ({self.app_per_month} calls)",
                code="app_month",
                retry_after=max(60.0, month_end(now) - now),
            )
        wait = self._take_bucket()
        if wait > 0:
            raise RateLimited("app-wide request rate reached", code="app_rate", retry_after=wait)
        self._used[vin] = self._used.get(vin, 0) + cost
        self.sent_total[vin] = self.sent_total.get(vin, 0) + cost
        self._save()

    def record(self, vin: str, cost: int) -> None:
        """Count calls that had to be made whatever the budget (discovery during Connect)."""
        self._roll()
        self._used[vin] = self._used.get(vin, 0) + cost
        self.sent_total[vin] = self.sent_total.get(vin, 0) + cost
        self._save()

    def exhausted(self, vin: str) -> None:
        """Smartcar said 430 VEHICLE_REQUEST_LIMIT: trust it over our own count."""
        self._roll()
        self._used[vin] = max(self._used.get(vin, 0), self.per_vehicle)
        self._save()
