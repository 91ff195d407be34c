"""End to end in a real browser: connect a car the way its owner would, on Smartcar API v3.

`carmetrics run` (a real process) with the embedded simulator and a Smartcar simulator account
(API v3, the default: the demo user's car is pre-connected); Debian's headless chromium, driven
over the Chrome DevTools Protocol (a small client below, on aiohttp's websocket, so no browser
download is needed): open the landing page, click "Connect a car", log in on the simulated Smartcar
Connect page as another owner and approve, land back on carmetrics' callback page with the v3
redirect (``user_id``), then watch that owner's car appear on /metrics next to the demo car.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
)
CONFIG = """
[exporter]
port = {port}
db = "{db}"
[simulator]
enabled = true
speed = 60
history_days = 0.05
smart_vehicles = []
smartcar_vehicles = ["Tesla Model 3"]
[[accounts]]
name = "smartcar-demo"
provider = "smartcar"
simulator = true
webhooks = true
"""


# Smartcar's "<n>-vehicles@smartcar.com" test login: one simulated car with this VIN
OWNER = "1-vehicles@smartcar.com"
OWNER_VIN = "0SCN0010000000000"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Page:
    """One browser tab over CDP: evaluate JavaScript, navigate, click, wait for a URL."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            fut = self._waiting.pop(data.get("id", -1), None)
            if fut is not None and not fut.done():
                fut.set_result(data)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        n = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[n] = fut
        await self.ws.send_json({"id": n, "method": method, "params": params})
        reply = await asyncio.wait_for(fut, 15)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def eval(self, expression: str) -> Any:
        res = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in res:
            raise RuntimeError(res["exceptionDetails"].get("text", "script error"))
        return res.get("result", {}).get("value")

    async def wait_for(self, pred: Callable[[str], bool], what: str, tries: int = 300) -> str:
        """Wait until the tab shows a fully loaded page whose URL satisfies ``pred``."""
        href = ""
        for _ in range(tries):
            with suppress(RuntimeError, TimeoutError):  # a navigation swaps the JS context
                href = await self.eval("document.readyState === 'complete' ? location.href : ''")
                if href and pred(href):
                    return href
            await asyncio.sleep(0.05)
        raise AssertionError(f"the browser never reached {what} (last URL: {href!r})")

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", url=url)
        await self.wait_for(lambda h: h.startswith(url), url)

    async def click(self, selector: str) -> None:
        ok = await self.eval(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return false; e.click(); return true; })()"
        )
        assert ok, f"nothing to click at {selector}"

    async def text(self) -> str:
        return str(await self.eval("document.body ? document.body.innerText : ''"))

    async def close(self) -> None:
        self._reader.cancel()
        with suppress(asyncio.CancelledError):
            await self._reader
        await self.ws.close()


@asynccontextmanager
async def chromium(path: str, profile: Path) -> AsyncIterator[Page]:
    proc = await asyncio.create_subprocess_exec(
        path,
        *FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        for _ in range(1200):  # up to 60 s: chromium starts slowly on a loaded machine
            if port_file.exists() and port_file.read_text().strip():
                break
            await asyncio.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                targets = await r.json()
            target = next(t for t in targets if t.get("type") == "page")
            ws = await http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
            page = Page(ws)
            try:
                await page.send("Page.enable")
                yield page
            finally:
                await page.close()
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def http_text(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        return await r.text()


async def test_connect_a_car_in_a_real_browser(tmp_path: Path) -> None:
    browser = require_tool("chromium", "chromium-browser")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cfg = tmp_path / "config.toml"
    cfg.write_text(CONFIG.format(port=port, db=tmp_path / "history.db"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARMETRICS_")}
    log = (tmp_path / "carmetrics.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter.cli", "run", "--config", str(cfg)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(300):
            with suppress(aiohttp.ClientError):
                if "Connect a car" in await http_text(base + "/"):
                    break
            await asyncio.sleep(0.1)
        profile = tmp_path / "profile"
        profile.mkdir()
        async with chromium(browser, profile) as page:
            await page.goto(base + "/")
            assert "carmetrics" in await page.text()
            await page.click('a[href="/connect/smartcar"]')
            connect_url = await page.wait_for(
                lambda h: "/oauth/authorize?" in h, "the Smartcar Connect page"
            )
            assert not connect_url.startswith(base)  # Connect is another host
            assert "required:read_vin" in connect_url.replace("%3A", ":")
            assert await page.eval("document.title") == "Smartcar Connect"
            # v3: Connect's client_id is the Application ID (a UUID), not the client_... API id
            assert "client_id=client_" not in connect_url
            await page.eval(f"document.querySelector('#email').value = {json.dumps(OWNER)}")
            await page.click("#approve")
            callback = await page.wait_for(
                lambda h: h.startswith(base + "/connect/smartcar/callback"), "the callback page"
            )
            assert "user_id=" in callback  # v3 names the user; there is no code exchange
            assert "Connected 1 car(s)" in await page.text()
            vin_line = ""
            for _ in range(200):
                await page.goto(base + "/metrics")
                metrics = await page.text()
                vin_line = next(
                    (
                        ln
                        for ln in metrics.splitlines()
                        if ln.startswith(f'carmetrics_battery_soc_ratio{{vin="{OWNER_VIN}')
                    ),
                    "",
                )
                if vin_line:
                    break
                await asyncio.sleep(0.1)
            assert vin_line, "the connected car's metrics never appeared on /metrics"
            soc = float(vin_line.rsplit(" ", 1)[1])
            assert 0.0 < soc <= 1.0
            assert f'carmetrics_reauth_required{{vin="{OWNER_VIN}' in metrics
            assert "carmetrics_vehicle_info{" in metrics and 'provider="smartcar"' in metrics
            socs = [ln for ln in metrics.splitlines() if ln.startswith("carmetrics_battery_soc")]
            assert len(socs) == 2  # the pre-connected demo car and the one just connected
            await page.goto(base + "/")
            assert "Tesla" in await page.text()  # the landing page lists the demo car
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(tmp_path / "profile", ignore_errors=True)
    assert proc.returncode == 0, (tmp_path / "carmetrics.log").read_text()[-3000:]
