"""The "add a provider" recipe holds: a toy provider in one folder plus one registry line runs in the
real runtime, its signal reaches /metrics, and its cars come and go like any provider's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exporter.clock import ManualClock
from exporter.config import AccountConfig, Config, ConfigError, PollConfig
from exporter.metrics import render_exposition
from exporter.providers import registry
from exporter.runtime import Runtime, running
from tests.toy_provider import ENTRY
from tests.toy_provider.cloud import ToyCloud

RELIST = 600.0


@pytest.fixture
async def toy() -> AsyncIterator[ToyCloud]:
    registry.register(ENTRY)
    cloud = ToyCloud(ManualClock())
    await cloud.start()
    try:
        yield cloud
    finally:
        await cloud.close()
        registry.unregister(ENTRY.name)


def config(tmp_path: Path, url: str) -> Config:
    return Config(
        db=tmp_path / "h.db",
        poll=PollConfig(jitter=0, timeout=1.0, parked=60, asleep=60, relist=RELIST),
        accounts=(AccountConfig("mine", "toy", 0, simulator=True, settings={"url": url}),),
    )


async def settle(rt: Runtime, clock: ManualClock, seconds: float) -> None:
    end = clock.now() + seconds
    while clock.now() < end:
        await clock.run_until(min(end, clock.now() + 30))
        for _ in range(50):
            await asyncio.sleep(0.002)
            if not rt.scheduler.busy:
                break


def exposition(rt: Runtime) -> str:
    return b"".join(render_exposition(rt.registry, rt.collector)).decode()


async def test_a_toy_provider_runs_through_the_registry(toy: ToyCloud, tmp_path: Path) -> None:
    clock = ManualClock()
    toy.clock = clock
    toy.cars = {"TOY00000000000001": 42.0, "TOY00000000000002": 80.0}
    async with running(config(tmp_path, toy.url), clock) as rt:
        await settle(rt, clock, 60)
        text = exposition(rt)
        assert 'carmetrics_battery_soc_ratio{vin="TOY00000000000001"} 0.42' in text
        assert 'carmetrics_battery_soc_ratio{vin="TOY00000000000002"} 0.8' in text
        del toy.cars["TOY00000000000002"]
        toy.cars["TOY00000000000003"] = 10.0
        await settle(rt, clock, RELIST + 60)
        text = exposition(rt)
        assert 'vin="TOY00000000000002"' not in text
        assert 'carmetrics_battery_soc_ratio{vin="TOY00000000000003"} 0.1' in text


async def test_its_settings_errors_name_the_key(toy: ToyCloud, tmp_path: Path) -> None:
    rt = await Runtime.create(config(tmp_path, "https://example.com"), ManualClock())
    try:
        with pytest.raises(ConfigError, match=r"accounts\[0\]\.url = 'https://example.com'"):
            rt.build_provider(rt.config.accounts[0])
    finally:
        await rt.session.close()
