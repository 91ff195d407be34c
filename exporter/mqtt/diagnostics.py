"""A car's availability and the exporter's own facts about it (data age, API budget, re-auth, last
poll error), as topic payloads.

Availability is the exporter's judgement, not the car's: a car is ``online`` while its latest report
is younger than ``exporter.max_data_age`` (the rule that keeps it on /metrics) and no owner action
is pending (Smartcar re-authentication). Budget and re-auth are provider features; a provider
without them simply has no such topic.
"""

from __future__ import annotations

from typing import Any

from exporter.health import Health
from exporter.mqtt import topics as t
from exporter.providers.base import Provider
from exporter.snapshot import Snapshot


def needs_reauth(provider: Provider | None, vin: str) -> bool:
    return provider is not None and vin in provider.reauth_links()


def budget_left(provider: Provider | None, vin: str) -> int | None:
    budget: Any = getattr(provider, "budget", None)
    if budget is None:
        return None
    return int(budget.remaining(vin))


def status(
    vin: str,
    snap: Snapshot | None,
    provider: Provider | None,
    health: Health,
    *,
    now: float,
    max_data_age: float,
) -> dict[str, str]:
    reauth = needs_reauth(provider, vin)
    fresh = snap is not None and now - snap.car_time <= max_data_age
    h = health.vehicles.get(vin)
    out = {
        t.AVAILABILITY: "online" if fresh and not reauth else "offline",
        t.REAUTH: "true" if reauth else "false",
        t.POLL_ERROR: (h.last_error if h and h.last_error else "none"),
    }
    if snap is not None:
        out[t.DATA_AGE] = str(int(max(0.0, now - snap.car_time)))
    left = budget_left(provider, vin)
    if left is not None:
        out[t.BUDGET] = str(left)
    return out
