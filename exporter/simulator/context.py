"""What the simulator runner hands a simulated cloud, and what the cloud hands back.

Kept apart from ``runner`` so that the clouds can import these types while the runner imports the
clouds' factories plainly (no string imports, no import cycle).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from exporter.clock import Clock
from exporter.config import SimulatorConfig
from exporter.simulator.faults import Faults
from exporter.simulator.fleet import Fleet


@dataclass
class SimContext:
    """What a cloud factory gets: the shared fleet, clock and faults, and its own options."""

    cfg: SimulatorConfig
    clock: Clock
    fleet: Fleet
    faults: Faults
    host: str
    groups: dict[str, list[str]]  # "smart_eu", "smart_intl", "smartcar" -> VINs
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class CloudHandle:
    """A running simulated cloud."""

    name: str
    urls: dict[str, str]
    logins: dict[str, dict[str, Any]]
    vins: dict[str, list[str]]  # login name -> VINs of that account
    close: Callable[[], Awaitable[None]]
    service: Any = None  # the cloud object itself, for in-process control in tests
    # further host groups served by the same cloud (e.g. "smartcar_v3": iam, vehicle_api, ...)
    extra_urls: dict[str, dict[str, str]] = field(default_factory=dict)


CloudFactory = Callable[[SimContext], Awaitable[CloudHandle | None]]
