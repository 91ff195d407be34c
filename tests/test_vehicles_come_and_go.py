"""Cars join and leave an account while the exporter runs: re-listing finds both.

The exporter runs against the smart simulator on a moved clock; the account is changed through the
simulator's admin API over HTTP (as an owner would in the maker's app). Within one ``[poll] relist``
interval the new car is polled and exported and the removed car's series leave /metrics, while the
rows it already wrote stay in the history.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from exporter.clock import ManualClock
from exporter.config import AccountConfig, Config, PollConfig, SimulatorConfig
from exporter.metrics import render_exposition
from exporter.providers.base import VehicleNotLinked
from exporter.runtime import RELIST_MIN_GAP, Runtime, running
from exporter.snapshot import VehicleInfo
from tests.test_pipeline_e2e import advance, quiet

RELIST = 3600.0


def config(tmp_path: Path) -> Config:
    return Config(
        db=tmp_path / "h.db",
        poll=PollConfig(jitter=0, timeout=1.0, relist=RELIST),
        simulator=SimulatorConfig(enabled=True, seed=11, smart_vehicles=("#1", "#3")),
        accounts=(AccountConfig("eu", "smart", 0, simulator=True, settings={"region": "EU"}),),
    )


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[tuple[Runtime, ManualClock]]:
    clock = ManualClock()
    async with running(config(tmp_path), clock) as runtime:
        for _ in range(300):
            await asyncio.sleep(0.01)
            if len(runtime.hub.vehicles) == 2 and not runtime.scheduler.busy:
                break
        await quiet(runtime)
        yield runtime, clock


def exposition(rt: Runtime) -> str:
    """Exactly the body GET /metrics serves."""
    return b"".join(render_exposition(rt.registry, rt.collector)).decode()


async def admin(rt: Runtime, method: str, path: str, body: object = None) -> dict[str, object]:
    base = rt.simulator.urls["smart"]["api_v1"]
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, base + path, json=body) as resp,
    ):
        assert resp.status == 200, await resp.text()
        got: dict[str, object] = await resp.json()
        return got


async def test_a_car_added_and_a_car_removed_show_within_one_relist(
    rt: tuple[Runtime, ManualClock],
) -> None:
    runtime, clock = rt
    await advance(runtime, clock, 600, step=60)  # a few polls: both cars have series and rows
    gone, stays = sorted(runtime.hub.vehicles)
    text = exposition(runtime)
    assert f'vin="{gone}"' in text and f'vin="{stays}"' in text
    runtime.history.write_now([])
    rows_before = runtime.history.query("SELECT count(*) FROM samples WHERE vin = ?", (gone,))
    assert rows_before[0][0] > 0

    user = runtime.simulator.logins["smart_eu"]["username"]
    added = await admin(runtime, "POST", f"/_sim/accounts/{user}/vehicles", {"model": "#5"})
    new = str(added["vin"])
    await admin(runtime, "DELETE", f"/_sim/accounts/{user}/vehicles/{gone}")
    removed: list[str] = []
    runtime.hub.on_vehicle_removed(removed.append)

    await advance(runtime, clock, RELIST + 120, step=60)

    text = exposition(runtime)
    assert f'vin="{new}"' in text  # polled and exported
    assert runtime.hub.latest(new) is not None
    assert f'vin="{gone}"' not in text  # its series left /metrics
    assert f'vin="{stays}"' in text
    assert removed == [gone]
    assert gone not in runtime.scheduler.vins
    runtime.history.write_now([])
    rows_after = runtime.history.query("SELECT count(*) FROM samples WHERE vin = ?", (gone,))
    assert rows_after == rows_before  # its history stays


async def test_a_car_is_not_re_listed_before_the_interval(
    rt: tuple[Runtime, ManualClock],
) -> None:
    runtime, clock = rt
    user = runtime.simulator.logins["smart_eu"]["username"]
    added = await admin(runtime, "POST", f"/_sim/accounts/{user}/vehicles", {"model": "#5"})
    await advance(runtime, clock, RELIST / 2, step=60)
    assert str(added["vin"]) not in runtime.hub.vehicles  # the periodic re-list has not run yet
    await advance(runtime, clock, RELIST / 2 + 60, step=60)
    assert str(added["vin"]) in runtime.hub.vehicles


async def test_polls_asking_for_a_relist_are_honoured_at_most_every_ten_minutes(
    rt: tuple[Runtime, ManualClock],
) -> None:
    """A car waiting for reconnection fails every poll; each failure asks for a re-list. The
    first is honoured at once, later ones are spaced by RELIST_MIN_GAP, not one per poll."""
    runtime, clock = rt
    provider = runtime.providers["eu"]
    vin = sorted(runtime.hub.vehicles)[0]
    lists: list[float] = []
    real = provider.vehicles

    async def counted() -> list[VehicleInfo]:
        lists.append(clock.now())
        return await real()

    provider.vehicles = counted  # type: ignore[method-assign]
    await advance(runtime, clock, RELIST_MIN_GAP + 60, step=60)  # the last list is long past
    assert lists == []
    asked = clock.now()
    for _ in range(60):  # one failed poll a minute for an hour
        runtime._poll_failed(vin, VehicleNotLinked("gone"))
        await advance(runtime, clock, 60, step=60)
    assert lists[0] - asked <= 60  # the first request is served promptly
    gaps = [b - a for a, b in itertools.pairwise(lists)]
    assert gaps and min(gaps) >= RELIST_MIN_GAP
    assert len(lists) <= 3600 / RELIST_MIN_GAP + 1
