"""The simulated smart cloud (EU + INTL), registered in the simulator runner as "smart".

``start_cloud(ctx)`` creates the demo accounts (one EU account holding ``cfg.smart_vehicles``, one
INTL account with one car), starts one loopback HTTP server per upstream host and returns a
``CloudHandle`` whose ``urls`` use the host keys the smart client expects: awsapi, socialize, auth,
api_v1, api_v2, sg_app_api, ota.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from exporter.simulator.context import CloudHandle, SimContext
from exporter.simulator.smart.cloud import SmartCloud, SmartCloudConfig
from exporter.simulator.smart.identity import Lifetimes

__all__ = ["Lifetimes", "SmartCloud", "SmartCloudConfig", "start_cloud"]


def demo_password(seed: int, account: str) -> str:
    """Deterministic per seed, so scripts can reuse it; it only opens the loopback simulator."""
    return "sim-" + hashlib.sha256(f"{seed}/{account}".encode()).hexdigest()[:12]


async def start_cloud(ctx: SimContext) -> CloudHandle | None:
    eu = ctx.groups.get("smart_eu", [])
    intl = ctx.groups.get("smart_intl", [])
    if not eu and not intl:
        return None
    config = ctx.options.get("smart")
    cloud = SmartCloud(
        ctx.fleet,
        ctx.faults,
        ctx.clock,
        config if isinstance(config, SmartCloudConfig) else None,
    )
    if eu:
        cloud.add_account(
            "smart_eu", "demo@smart.sim", demo_password(ctx.cfg.seed, "eu"), "EU", list(eu)
        )
    if intl:
        cloud.add_account(
            "smart_intl",
            "demo-intl@smart.sim",
            demo_password(ctx.cfg.seed, "intl"),
            "INTL",
            list(intl),
        )
    urls = await cloud.start(ctx.host)
    vins = {name: list(v) for name, v in cloud.info()["vins"].items()}
    return CloudHandle(
        name="smart",
        urls=urls,
        logins=dict(cloud.logins),
        vins=vins,
        close=cloud.close,
        service=cloud,
        dump=lambda: {
            "tokens": cloud.identity.dump(),
            "grants": sorted(list(g) for g in cloud.grants),
        },
        load=lambda data: _load(cloud, data),
    )


def _load(cloud: SmartCloud, data: Mapping[str, Any]) -> None:
    grants = {(str(user), str(vin)) for user, vin in data["grants"]}
    cloud.identity.load(data["tokens"])
    cloud.grants |= grants
