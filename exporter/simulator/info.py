"""The standalone simulator's own small host: what an exporter in another process needs to use it.

``carmetrics simulate`` serves two read-only routes on a loopback port of its own:

- ``GET /info``: the JSON line it printed (every host's base URL, the demo logins, the VINs), so
  ``carmetrics run --simulator-url http://127.0.0.1:PORT/info`` finds everything at one address;
- ``GET /clock``: ``{"now": <simulated unix seconds>, "speed": <simulated s per real s>}``. The
  simulated cars report in simulated time, which at 60x runs far ahead of the wall clock; the
  exporter follows this clock (``exporter.clock.FollowedClock``) so that its bound on reports from
  the future (``exporter.hub``, 300 s) judges them by the same time.

Nothing here is secret beyond what the printed line already holds: demo logins that open only this
loopback simulator.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from exporter.clock import Clock, ScaledClock


def clock_reading(clock: Clock) -> dict[str, float]:
    speed = clock.effective_speed if isinstance(clock, ScaledClock) else 1.0
    return {"now": clock.now(), "speed": speed}


class InfoHost:
    """``/info`` and ``/clock`` of one running simulator; ``start`` returns the ``/info`` URL."""

    def __init__(self, info: dict[str, Any], clock: Clock) -> None:
        self.info = info
        self.clock = clock
        self._runner: web.AppRunner | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        app.router.add_get("/info", self._info)
        app.router.add_get("/clock", self._clock)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound = self._runner.addresses[0][1]
        base = f"http://{'127.0.0.1' if host in ('', '0.0.0.0', '::') else host}:{bound}"
        self.info = {**self.info, "info": f"{base}/info", "clock": f"{base}/clock"}
        return str(self.info["info"])

    async def _info(self, _request: web.Request) -> web.Response:
        return web.json_response(self.info)

    async def _clock(self, _request: web.Request) -> web.Response:
        return web.json_response(clock_reading(self.clock))

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
