"""The exporter's pipeline as ``carmetrics run`` builds it, for benches whose simulator is a child process.

``carmetrics run`` only accepts loopback URLs for its embedded simulator, so benches that keep the
simulator's CPU and memory out of the measured process assemble the same pieces here: hub, health,
SQLite history, scheduler, the smart providers of the simulator's accounts, and the real ``/metrics``
handler on a loopback port, scraped from another process as Prometheus would.
"""

from __future__ import annotations

import asyncio
import sys
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.poll_throughput import _account
from bench.providers import smart_provider as build
from exporter.clock import Clock
from exporter.config import PollConfig
from exporter.health import Health
from exporter.history import History
from exporter.hub import Hub
from exporter.metrics import VehicleCollector, make_registry
from exporter.providers.base import MemoryTokenStore, ProviderError
from exporter.scheduler import Scheduler
from exporter.server import _RENDER, RUNTIME, metrics


class Pipeline:
    """Started with ``start``; ``polls`` counts [succeeded, failed] polls; ``port`` serves /metrics."""

    def __init__(self, clock: Clock, db: Path, poll: PollConfig) -> None:
        self.clock = clock
        self.hub, self.health, self.history = Hub(), Health(), History(db)
        self.hub.subscribe(self.history.add)
        self.hub.on_vehicle(self.history.add_vehicle)
        self.polls = [0, 0]
        self.scheduler = Scheduler(self.hub, self.health, clock, poll, on_poll=self._count)
        self.collector = VehicleCollector(self.hub, self.health, clock, history=self.history)
        self.registry = make_registry(self.collector)
        self.tasks: list[asyncio.Task[Any]] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    def _count(self, _vin: str, result: object) -> None:
        self.polls[1 if isinstance(result, ProviderError) else 0] += 1

    async def start(self) -> None:
        self.history.open()
        self.runner, self.port = await serve_metrics(self.registry, self.collector)
        self.tasks = [
            asyncio.create_task(self.history.run()),
            asyncio.create_task(self.scheduler.run()),
        ]

    async def add_smart_accounts(
        self, sim_info: dict[str, Any], session: aiohttp.ClientSession
    ) -> None:
        """Log in to every account of the simulator child and schedule its cars."""
        store = MemoryTokenStore()
        for i, acc in enumerate(sim_info["accounts"]):
            p = build(_account(i, acc), session, self.clock, store, sim_info["urls"]["smart"])
            while True:  # faults hit the login too; retry as Runtime.add_provider does
                try:
                    await p.start()
                    vehicles = await p.vehicles()
                    break
                except ProviderError:
                    await self.clock.sleep(30)
            for info in vehicles:
                self.hub.register(info)
                self.scheduler.add(info.vin, p)

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.runner is not None:
            await self.runner.cleanup()
        self.history.close()


async def serve_metrics(registry: object, collector: object) -> tuple[web.AppRunner, int]:
    """The real /metrics handler on a loopback port, over the bench's own pipeline pieces."""
    app = web.Application()
    app[RUNTIME] = types.SimpleNamespace(registry=registry, collector=collector)  # type: ignore[misc]
    app[_RENDER] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics")
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, int(port)


_SCRAPER = """
import sys, time, urllib.request
req = urllib.request.Request(sys.argv[1], headers={"Accept-Encoding": "gzip"})
t = time.perf_counter()
with urllib.request.urlopen(req, timeout=120) as resp:
    size = len(resp.read())
print(time.perf_counter() - t, size)
"""


async def scrape(port: int) -> tuple[float, int]:
    """One scrape as Prometheus does it (gzip), by another process: (seconds, bytes on the wire)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _SCRAPER,
        f"http://127.0.0.1:{port}/metrics",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    seconds, size = out.split()
    return float(seconds), int(size)


def reset_peak_rss() -> bool:
    """Reset VmHWM (Linux: write 5 to clear_refs), so the peak is of the measured window only."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0
