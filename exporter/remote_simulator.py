"""A standalone simulator in another process (``[simulator] url``, ``run --simulator-url``).

The address is either the ``info`` URL from the JSON line ``carmetrics simulate`` prints (the
simulator serves that line at ``/info``), or a file holding the line. The file form is what lets a
proxy sit between the two: copy the line, point its host URLs (and its ``clock`` URL) at the
proxy, and give the file. The exporter then reaches every simulated host, as it reaches a real
cloud, only at those URLs.

Time: the simulated cars report in the simulator's (usually accelerated) time. The exporter runs a
:class:`~exporter.clock.FollowedClock` set from the simulator's ``/clock`` at start-up and synced
again every ``SYNC_EVERY`` real seconds, so its bound on reports from the future (300 s) and its
poll intervals agree with the cars.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp

from exporter.clock import FollowedClock
from exporter.config import ConfigError
from exporter.providers.base import SimulatorLink

log = logging.getLogger(__name__)

SYNC_EVERY: Final = 30.0  # real seconds between two reads of the simulator's clock
_TIMEOUT: Final = aiohttp.ClientTimeout(total=10)


@dataclass(frozen=True)
class RemoteSimulator:
    link: SimulatorLink
    clock_url: str


def _where(url: str) -> str:
    return f"simulator.url = {url!r}"


async def _get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url, timeout=_TIMEOUT) as resp:
        if resp.status != 200:
            raise ValueError(f"HTTP {resp.status}")
        return await resp.json(content_type=None)


async def connect(url: str) -> tuple[RemoteSimulator, float, float]:
    """The simulator at ``url``: its hosts and logins, and its clock now (simulated time, speed).
    ConfigError (one line naming the key) when it cannot be read."""
    async with aiohttp.ClientSession() as session:
        try:
            if url.startswith(("http://", "https://")):
                info = await _get_json(session, url)
            else:
                path = Path(url.removeprefix("file://"))
                info = json.loads((await asyncio.to_thread(path.read_text)).strip().splitlines()[0])
        except (OSError, aiohttp.ClientError, TimeoutError, ValueError, IndexError) as exc:
            raise ConfigError(
                f"{_where(url)}: cannot read the simulator's line ({exc or type(exc).__name__}); "
                "start `carmetrics simulate` first and give the info URL it prints"
            ) from None
        urls, logins, clock_url = (
            (info.get("urls"), info.get("logins"), info.get("clock"))
            if isinstance(info, dict)
            else (None, None, None)
        )
        if not isinstance(urls, dict) or not isinstance(logins, dict):
            raise ConfigError(f"{_where(url)}: not a `carmetrics simulate` line (no urls/logins)")
        if not isinstance(clock_url, str):
            raise ConfigError(
                f"{_where(url)}: the line has no clock URL (from a carmetrics older than this one?)"
            )
        try:
            now, speed = await read_clock(session, clock_url)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ConfigError(
                f"{_where(url)}: the simulator's clock at {clock_url} cannot be read ({exc})"
            ) from None
    return RemoteSimulator(SimulatorLink(urls=urls, logins=logins), clock_url), now, speed


async def read_clock(session: aiohttp.ClientSession, clock_url: str) -> tuple[float, float]:
    got = await _get_json(session, clock_url)
    if not isinstance(got, dict):
        raise ValueError("not a clock reading")
    now, speed = got.get("now"), got.get("speed")
    if not isinstance(now, int | float) or not isinstance(speed, int | float) or speed <= 0:
        raise ValueError("not a clock reading")
    return float(now), float(speed)


async def follow(clock: FollowedClock, session: aiohttp.ClientSession, clock_url: str) -> None:
    """Sync ``clock`` with the simulator's every ``SYNC_EVERY`` real seconds, forever; a failed
    read is logged once until a read succeeds again (the clock runs on meanwhile)."""
    failing = False
    while True:
        await asyncio.sleep(SYNC_EVERY)
        try:
            now, speed = await read_clock(session, clock_url)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            if not failing:
                log.warning(
                    "simulator clock not read; running on",
                    extra={"url": clock_url, "error": str(exc) or type(exc).__name__},
                )
            failing = True
            continue
        failing = False
        clock.sync(now, speed)
