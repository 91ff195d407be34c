"""The runtime's side of the provider contract: the sink, re-listing on demand, health, ownership."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exporter.clock import ManualClock
from exporter.config import AccountConfig, Config, PollConfig
from exporter.providers import registry
from exporter.providers.base import (
    ProviderContext,
    ProviderError,
    ReauthRequired,
    VehicleNotLinked,
)
from exporter.providers.entry import ProviderEntry
from exporter.runtime import Runtime, running
from exporter.snapshot import Snapshot, VehicleInfo
from tests.fakes import FakeProvider

VIN1, VIN2 = "FAKE0000000000001", "FAKE0000000000002"
BUILT: list[FakeProvider] = []


def _settings(account: AccountConfig, ctx: ProviderContext) -> AccountConfig:
    return account


def _build(account: AccountConfig, ctx: ProviderContext) -> FakeProvider:
    p = FakeProvider(ctx.clock, name="fake", account=account.name, vins=(VIN1, VIN2))
    p.context = ctx
    BUILT.append(p)
    return p


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[tuple[Runtime, FakeProvider, ManualClock]]:
    registry.register(ProviderEntry("fake", _settings, _build))
    BUILT.clear()
    clock = ManualClock()
    cfg = Config(
        db=tmp_path / "h.db",
        poll=PollConfig(jitter=0, relist=86400),
        accounts=(AccountConfig("acc", "fake", 0, simulator=True),),
    )
    try:
        async with running(cfg, clock) as runtime:
            await asyncio.wait_for(runtime.ready.wait(), 5)
            yield runtime, BUILT[0], clock
    finally:
        registry.unregister("fake")
    assert BUILT[0].closed  # stop closed the provider it built


async def test_every_provider_is_built_through_the_registry(
    rt: tuple[Runtime, FakeProvider, ManualClock],
) -> None:
    runtime, provider, _ = rt
    assert runtime.providers["acc"] is provider
    assert set(runtime.scheduler.vins) == {VIN1, VIN2}
    assert runtime.alive()


async def test_the_sink_publishes_adds_removes_and_requests_polls(
    rt: tuple[Runtime, FakeProvider, ManualClock],
) -> None:
    runtime, provider, clock = rt
    assert provider.context is not None
    sink = provider.context.sink
    snap = Snapshot.build(VIN1, "fake", clock.now() + 5, clock.now(), {"battery_soc": 0.5})
    assert str(sink.publish(snap)) == "new"
    assert runtime.hub.latest(VIN1) is snap
    sink.vehicle_removed(VIN2)
    assert VIN2 not in runtime.hub.vehicles and VIN2 not in runtime.scheduler.vins
    sink.vehicle_added(VehicleInfo("FAKE0000000000003", "fake", account="acc"))
    assert "FAKE0000000000003" in runtime.scheduler.vins
    await clock.run_until(clock.now() + 1)
    await asyncio.sleep(0.01)
    polled = len([c for c in provider.calls if c[0] == VIN1])
    sink.request_poll(VIN1)  # long before its next scheduled poll
    await clock.run_until(clock.now() + 1)
    await asyncio.sleep(0.01)
    assert len([c for c in provider.calls if c[0] == VIN1]) == polled + 1


@pytest.mark.parametrize("error", [VehicleNotLinked("gone"), ReauthRequired("revoked")])
async def test_a_car_gone_from_the_account_is_forgotten_without_waiting_for_the_interval(
    rt: tuple[Runtime, FakeProvider, ManualClock], error: ProviderError
) -> None:
    runtime, provider, clock = rt
    t0 = clock.now()
    removed: list[str] = []
    runtime.hub.on_vehicle_removed(removed.append)
    del provider.cars[VIN2]
    provider.script = lambda vin, n: error if vin == VIN2 else {}
    runtime.scheduler.request_poll(VIN2)
    for _ in range(100):
        await clock.run_until(clock.now() + 1)
        await asyncio.sleep(0.001)
        if removed:
            break
    assert removed == [VIN2]
    assert clock.now() - t0 < 600  # far sooner than the 24 h re-list interval
    assert VIN1 in runtime.scheduler.vins
