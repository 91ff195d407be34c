"""The in-process stand-ins tests share: one fake provider and one fake sink.

What they replace is a cloud where the timing or wiring logic is under test (scheduler, command
service, runtime); the real clients are exercised over HTTP against the simulators in their own tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from exporter.clock import Clock
from exporter.hub import Hub, Outcome
from exporter.providers.base import (
    BaseProvider,
    Command,
    CommandReceipt,
    PollResult,
    ProviderContext,
    ProviderError,
)
from exporter.signals import Value
from exporter.snapshot import Snapshot, VehicleInfo

# A poll script: (vin, how many times this VIN was polled, 1-based) -> the car's values or an error.
Script = Callable[[str, int], Mapping[str, Value] | ProviderError]


class FakeProvider(BaseProvider):
    """A scripted provider: each poll reports the script's values at the clock's time.

    ``calls`` records (vin, time) per poll; ``active``/``max_active`` count concurrent polls;
    ``gate`` (an Event) holds every poll until set; ``floor`` is ``min_poll_interval``; ``cars``
    is what ``vehicles()`` lists (tests add and remove cars to exercise re-listing).
    """

    def __init__(
        self,
        clock: Clock,
        script: Script | None = None,
        *,
        name: str = "smart",
        account: str = "acc",
        vins: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.account = account
        self.clock = clock
        self.script: Script = script or (lambda _vin, _n: {})
        self.calls: list[tuple[str, float]] = []
        self.active = 0
        self.max_active = 0
        self.floor = 0.0
        self.gate: asyncio.Event | None = None
        self.cars: dict[str, VehicleInfo] = {
            v: VehicleInfo(v, name, "fake", "one", account=account) for v in vins
        }
        self.commands: list[tuple[str, Command]] = []
        self.closed = False
        self.context: ProviderContext | None = None  # set by a registry entry's build, if any

    async def start(self) -> None:
        return None

    async def vehicles(self) -> list[VehicleInfo]:
        return list(self.cars.values())

    def min_poll_interval(self, vin: str) -> float:
        return self.floor

    def supported_commands(self, vin: str) -> frozenset[str]:
        return frozenset({"lock", "unlock"})

    async def command(self, vin: str, command: Command) -> CommandReceipt:
        self.commands.append((vin, command))
        return CommandReceipt(True, f"{command.name} queued")

    async def poll(self, vin: str) -> PollResult:
        self.calls.append((vin, self.clock.now()))
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.gate is not None:
                await self.gate.wait()
            got = self.script(vin, len([c for c in self.calls if c[0] == vin]))
            if isinstance(got, ProviderError):
                return PollResult(error=got)
            now = self.clock.now()
            return PollResult(Snapshot.build(vin, self.name, now, now, got))
        finally:
            self.active -= 1

    async def close(self) -> None:
        self.closed = True


class FakeSink:
    """A Sink that records every call; ``publish`` goes to a real Hub so outcomes are honest."""

    def __init__(self, hub: Hub | None = None) -> None:
        self.hub = hub or Hub()
        self.published: list[tuple[Snapshot, Outcome]] = []
        self.added: list[VehicleInfo] = []
        self.removed: list[str] = []
        self.polls: list[tuple[str, float]] = []

    def publish(self, snapshot: Snapshot) -> Outcome:
        outcome = self.hub.publish(snapshot)
        self.published.append((snapshot, outcome))
        return outcome

    def vehicle_added(self, info: VehicleInfo) -> None:
        self.added.append(info)

    def vehicle_removed(self, vin: str) -> None:
        self.removed.append(vin)

    def request_poll(self, vin: str, delay: float = 0.0) -> None:
        self.polls.append((vin, delay))
