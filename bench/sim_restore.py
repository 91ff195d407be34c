"""What a restarted demo pays to continue: rebuilding the embedded simulator from its saved state.

The saved state is a recipe (``exporter.simulator.persist``): each car is replayed from its start
to the saved moment, so the cost grows with the simulated days the demo has lived. This script
runs the shipped demo fleet (a #1, a #3, a #5, an INTL #3, a Tesla and a Ford) for N simulated
days on a manual clock, saves it, and times ``start_simulator(..., saved=...)`` (wall time, best
of ``--rounds``):

    python -m bench.sim_restore --days 14 30 90 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import time

from exporter.clock import ManualClock
from exporter.config import SimulatorConfig
from exporter.simulator.runner import start_simulator

DEMO = SimulatorConfig(
    enabled=True,
    smart_vehicles=("#1", "#3", "#5"),
    smartcar_vehicles=("Tesla Model 3", "Ford Mustang Mach-E"),
)
T0 = 1_767_225_600.0


async def restore_seconds(days: float, cfg: SimulatorConfig = DEMO) -> float:
    """Seconds to bring back a demo fleet saved after ``days`` simulated days."""
    clock = ManualClock(T0)
    first = await start_simulator(cfg, clock, demo=True, tick_every=None)
    try:
        clock.advance(days * 86400.0)
        saved = first.state()
    finally:
        await first.close()
    started = time.perf_counter()
    again = await start_simulator(
        cfg, ManualClock(clock.now()), demo=True, tick_every=None, saved=saved
    )
    took = time.perf_counter() - started
    await again.close()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, nargs="+", default=[14.0, 30.0, 90.0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for days in args.days:
        best = min(asyncio.run(restore_seconds(days)) for _ in range(args.rounds))
        print(f"{days:g} simulated days: {best:.2f} s ({best / days * 1000:.0f} ms per day)")


if __name__ == "__main__":
    main()
