"""What the simulator runner hands a simulated cloud, and what the cloud hands back.

Kept apart from ``runner`` so that the clouds can import these types while the runner imports the
clouds' factories plainly (no string imports, no import cycle).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
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
    # what the cloud must remember across a restart (``exporter.simulator.persist``): ``dump``
    # gives a JSON-able dict without a secret in it, ``load`` takes it back into a fresh cloud
    # (KeyError/TypeError/ValueError when it is malformed)
    dump: Callable[[], dict[str, Any]] | None = None
    load: Callable[[Mapping[str, Any]], None] | None = None


CloudFactory = Callable[[SimContext], Awaitable[CloudHandle | None]]
