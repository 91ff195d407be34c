"""The toy cloud (its simulator): an aiohttp app on loopback holding cars with a state of charge.

Test code steers it through ``cars`` (the account's cars: VIN -> percent); the client only ever
reaches it over HTTP.
"""

from __future__ import annotations

from aiohttp import web

from exporter.clock import Clock


class ToyCloud:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.cars: dict[str, float] = {}
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _list(self, _request: web.Request) -> web.Response:
        return web.json_response(sorted(self.cars))

    async def _read(self, request: web.Request) -> web.Response:
        vin = request.match_info["vin"]
        if vin not in self.cars:
            raise web.HTTPNotFound(text="no such car on this account")
        return web.json_response({"soc": self.cars[vin], "time": self.clock.now()})

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/cars", self._list)
        app.router.add_get("/cars/{vin}", self._read)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
