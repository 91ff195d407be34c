"""The real runtime on the embedded smart simulator under a moved clock, ready to be driven.

Benches and tests that need ``carmetrics run`` as it really runs (login, discovery and polls over
HTTP against the simulated cloud, the history, the journal reader) but on a ManualClock, so a
simulated day takes seconds: one config, one start-up, one way to move the clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from exporter.clock import ManualClock
from exporter.config import AccountConfig, Config, PollConfig, SimulatorConfig
from exporter.dbtarget import PgTarget

if TYPE_CHECKING:
    from exporter.runtime import Runtime

LOGIN_TIMEOUT_S = 60.0


def smart_demo_config(
    db: Path | PgTarget, *, seed: int, models: Sequence[str], poll: PollConfig | None = None
) -> Config:
    """One EU account on the embedded simulator holding ``models`` (e.g. ``("#1", "#5")``)."""
    return Config(
        db=db,
        poll=poll or PollConfig(),
        simulator=SimulatorConfig(enabled=True, seed=seed, smart_vehicles=tuple(models)),
        accounts=(
            AccountConfig(
                name="sim-eu", provider="smart", index=0, simulator=True, settings={"region": "EU"}
            ),
        ),
    )


async def started(cfg: Config, clock: ManualClock) -> Runtime:
    """The runtime started and logged in: login and discovery run over HTTP, so the clock is moved a
    second at a time until the runtime is ready (a stopped runtime if it never gets there)."""
    from exporter.runtime import Runtime  # aiohttp and the providers: only when a runtime runs

    rt = await Runtime.create(cfg, clock)
    await rt.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LOGIN_TIMEOUT_S
    while not rt.ready.is_set():
        await clock.run_until(clock.now() + 1.0)
        await asyncio.sleep(0.01)
        if loop.time() > deadline:
            await rt.stop()
            raise RuntimeError(f"the runtime did not log in within {LOGIN_TIMEOUT_S:g} s")
    return rt


async def advance(rt: Runtime, clock: ManualClock, until: float, step: float = 10.0) -> None:
    """Move the clock to ``until`` in steps, letting every poll a step started finish first."""
    while clock.now() < until:
        await clock.run_until(min(until, clock.now() + step))
        while rt.scheduler.busy:
            await asyncio.sleep(0.0005)
