"""Realistic Snapshots for in-process benchmarks, taken from the simulator through the real client.

Benchmarks of /metrics and the history need thousands of vehicles' worth of canonical values; those
come from polling the simulated smart cloud once per model (#1, #3, #5) with the real provider, then
cloning each snapshot under new VINs with slightly moved values, so every series is a real one.
"""

from __future__ import annotations

import random
from dataclasses import replace
from types import MappingProxyType

import aiohttp

from bench.providers import smart_provider as build
from exporter.clock import ManualClock
from exporter.config import AccountConfig, Secret, SimulatorConfig
from exporter.providers.base import MemoryTokenStore
from exporter.signals import BY_NAME, Kind
from exporter.simulator.runner import start_simulator
from exporter.snapshot import Snapshot, VehicleInfo


async def real_snapshots(seed: int = 7) -> list[Snapshot]:
    """One snapshot per simulated smart car of the demo fleet, fetched over loopback HTTP."""
    clock = ManualClock()
    sim = await start_simulator(
        SimulatorConfig(enabled=True, seed=seed), clock, demo=True, tick_every=None
    )
    clock.advance(3600)  # an hour in: cars have reported, one drove
    try:
        login = sim.logins["smart_eu"]
        account = AccountConfig(
            name="samples",
            provider="smart",
            index=0,
            simulator=True,
            settings={"region": "EU", "username": login["username"]},
            secrets={"password": Secret(login["password"])},
        )
        async with aiohttp.ClientSession() as session:
            p = build(account, session, clock, MemoryTokenStore(), sim.urls["smart"])
            await p.start()
            return [await p.snapshot(v.vin) for v in await p.vehicles()]
    finally:
        await sim.close()


def clone(base: list[Snapshot], n: int, *, t0: float, seed: int = 1) -> list[Snapshot]:
    """``n`` snapshots of distinct VINs, cycling over ``base`` with small random changes."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        src = base[i % len(base)]
        vals = dict(src.values)
        for name, v in vals.items():
            if isinstance(v, float) and BY_NAME[name].kind is Kind.NUMBER:
                vals[name] = v * (1 + rng.uniform(-0.01, 0.01))
        out.append(
            replace(
                src,
                vin=f"BENCH{i:012d}",
                car_time=t0,
                received_at=t0,
                values=MappingProxyType(vals | {"last_update": t0}),
            )
        )
    return out


def info_for(snap: Snapshot) -> VehicleInfo:
    return VehicleInfo(vin=snap.vin, provider=snap.provider, make="smart", model="#1", year="2024")
