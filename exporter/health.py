"""The exporter's own bookkeeping about polls: plain data written by the scheduler, read by metrics.

Kept apart from both so the scheduler needs no Prometheus and the collector needs no scheduler.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class VehicleHealth:
    provider: str = ""
    account: str = ""
    polls: int = 0
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)  # (reason, code) -> count
    last_duration: float | None = None
    last_success: float | None = None
    last_error: str = ""  # short, secret-free
    next_poll: float | None = None
    interval: float | None = None
    state: str = "unknown"  # driving | charging | parked | asleep | backoff | paused
    consecutive_failures: int = 0
    last_active: float | None = None  # last poll that found the car driving or charging


@dataclass
class Health:
    vehicles: dict[str, VehicleHealth] = field(default_factory=dict)
    api_up: dict[tuple[str, str], bool] = field(default_factory=dict)  # (provider, account) -> up

    def vehicle(self, vin: str) -> VehicleHealth:
        got = self.vehicles.get(vin)
        if got is None:
            got = self.vehicles[vin] = VehicleHealth()
        return got
