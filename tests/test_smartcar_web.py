"""The Smartcar pages in the running exporter: Connect, callback (CSRF, errors), reconnect links,
webhooks from the simulator's emitter into the hub, and the Smartcar metrics on /metrics.

Everything runs in one process: the real runtime with its embedded simulator, served on loopback,
with a manual clock."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from exporter.clock import ManualClock
from exporter.config import load
from exporter.providers.smartcar import SmartcarProvider
from exporter.runtime import Runtime
from exporter.server import make_app
from exporter.simulator.smartcar.errors import ApiFault
from exporter.simulator.smartcar.headless import consent
from exporter.simulator.smartcar.server import SmartcarSimulator

CONFIG = """
[exporter]
port = {port}
db = "{db}"
[simulator]
enabled = true
smart_vehicles = []
smartcar_vehicles = ["Tesla Model 3", "Ford Mustang Mach-E"]
[[accounts]]
name = "sc"
provider = "smartcar"
api_version = 2   # these tests cover the v2 flow; tests/test_smartcar_v3_web.py covers v3
simulator = true
webhooks = true
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    rt: Runtime
    base: str
    http: aiohttp.ClientSession
    clock: ManualClock

    @property
    def sim(self) -> SmartcarSimulator:
        service: SmartcarSimulator = self.rt.simulator.service("smartcar")
        return service

    async def get(self, path: str) -> tuple[int, str]:
        async with self.http.get(self.base + path, allow_redirects=False) as r:
            return r.status, await r.text()

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        _, text = await self.get("/metrics")
        out = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    async def connect(self, email: str | None = None) -> tuple[int, str, str]:
        """Landing link -> Connect -> consent -> callback; (status, page, callback URL)."""
        async with self.http.get(self.base + "/connect/smartcar", allow_redirects=False) as r:
            assert r.status == 302
            url = r.headers["Location"]
        loc = await consent(self.http, url, email=email)
        async with self.http.get(loc, allow_redirects=False) as r:
            return r.status, await r.text(), loc


async def until(cond: Callable[[], object], what: str, tries: int = 200) -> None:
    """Wait for loopback I/O (polls, webhook deliveries) to land; never moves simulated time."""
    for _ in range(tries):
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.asynccontextmanager
async def serve(
    tmp_path: Path,
    config: str,
    ready: Callable[[Runtime], bool],
    what: str,
    *,
    cookies: bool = True,
) -> AsyncIterator[Served]:
    """The runtime of ``config`` (a template with ``{port}`` and ``{db}``) on a ManualClock behind
    its real web app on a free loopback port, once ``ready``; the client keeps cookies (the Connect
    flow's) unless ``cookies`` is off."""
    port = free_port()
    cfg_path = tmp_path / "config.toml"
    cfg_path.write_text(config.format(port=port, db=tmp_path / "h.db"))
    clock = ManualClock()
    rt = await Runtime.create(load(cfg_path, env={}), clock)
    server = TestServer(make_app(rt), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        jar = aiohttp.CookieJar(unsafe=True) if cookies else None
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            s = Served(rt, f"http://127.0.0.1:{port}", http, clock)
            await until(lambda: ready(rt), what)
            yield s
    finally:
        await server.close()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async with serve(
        tmp_path, CONFIG, lambda rt: "sc" in rt.providers, "the Smartcar provider"
    ) as s:
        yield s


async def test_landing_connect_callback_then_metrics(served: Served) -> None:
    status, page = await served.get("/")
    assert 'href="/connect/smartcar"' in page and "Connect a car" in page
    status, page, loc = await served.connect()
    assert status == 200 and "id='connected'" in page
    vins = served.rt.simulator.fleet.vins_for("smartcar")
    await until(lambda: all(served.rt.hub.latest(v) for v in vins), "the first polls")
    m = await served.metrics()
    for vin in vins:
        truth = served.rt.simulator.fleet.state(vin)
        assert m[("carmetrics_battery_soc_ratio", (("vin", vin),))] == pytest.approx(
            truth.soc / 100, abs=1e-3
        )
        assert m[("carmetrics_reauth_required", (("vin", vin),))] == 0
        left = m[
            ("carmetrics_api_budget_remaining_calls", (("provider", "smartcar"), ("vin", vin)))
        ]
        used = m[("carmetrics_api_budget_used_calls", (("provider", "smartcar"), ("vin", vin)))]
        assert left + used == 500 and used > 0
    # the same callback URL again: the state was single use
    async with served.http.get(loc, allow_redirects=False) as r:
        assert r.status == 400


async def test_callback_refuses_a_state_it_did_not_issue(served: Served) -> None:
    async with served.http.get(served.base + "/connect/smartcar", allow_redirects=False) as r:
        url = r.headers["Location"]
    loc = await consent(served.http, url)
    # a second browser (no cookie) presenting the code: login CSRF is refused
    async with aiohttp.ClientSession() as stranger, stranger.get(loc) as r:
        assert r.status == 400
    forged = loc.replace(parse_qs(urlsplit(loc).query)["state"][0], "forged")
    async with served.http.get(forged) as r:
        assert r.status == 400


@pytest.mark.parametrize(
    ("email", "approve", "needle"),
    [
        ("0-vehicles@smartcar.com", True, "no vehicles; add one in the maker's app"),
        ("smartcar@invalid-subscription.com", True, "subscription is inactive"),
        ("smartcar@vehicle-incompatible.com", True, "cannot share the data"),
        ("smartcar@server-error.com", True, "temporary problem"),
        (None, False, "You declined access"),
    ],
)
async def test_connect_errors_become_clear_pages(
    served: Served, caplog: pytest.LogCaptureFixture, email: str | None, approve: bool, needle: str
) -> None:
    async with served.http.get(served.base + "/connect/smartcar", allow_redirects=False) as r:
        url = r.headers["Location"]
    loc = await consent(served.http, url, email=email, approve=approve)
    with caplog.at_level("WARNING"):
        async with served.http.get(loc) as r:
            page = await r.text()
    assert needle in page.replace("&#x27;", "'")
    assert "smartcar connect failed" in caplog.text


async def test_webhooks_verify_then_state_flows_into_the_hub(served: Served) -> None:
    await served.connect()
    app = served.sim.cloud.apps["carmetrics-demo"]
    emitter = served.sim.emitter
    await until(lambda: emitter.deliveries, "the first webhook delivery")
    await emitter.idle()
    assert emitter.verify_results and emitter.verify_results[0][1] is True and app.verified
    assert {d.status for d in emitter.deliveries} == {200}
    provider = served.rt.providers["sc"]
    assert isinstance(provider, SmartcarProvider)
    vin = served.rt.simulator.fleet.vins_for("smartcar")[0]
    await until(lambda: provider.webhook_seen.get(vin), "a webhook for the car")
    assert provider.webhooks_live(vin)
    assert provider.min_poll_interval(vin) >= 12 * 3600
    m = await served.metrics()
    accepted = m[
        (
            "carmetrics_webhook_events_total",
            (("event", "VEHICLE_STATE"), ("outcome", "accepted"), ("provider", "smartcar")),
        )
    ]
    assert accepted >= 1


async def test_vehicle_error_metric_and_resolution(served: Served) -> None:
    await served.connect()
    emitter = served.sim.emitter
    await until(lambda: emitter.deliveries, "the first webhook delivery")
    await emitter.idle()
    vin = served.rt.simulator.fleet.vins_for("smartcar")[0]
    emitter.vehicle_error(vin, "VEHICLE_STATE", "REMOTE_ACCESS_DISABLED")
    await emitter.idle()
    key = (("error", "VEHICLE_STATE:REMOTE_ACCESS_DISABLED"), ("vin", vin))
    assert (await served.metrics())[("carmetrics_vehicle_error", key)] == 1
    emitter.vehicle_error(vin, "VEHICLE_STATE", "REMOTE_ACCESS_DISABLED", state="RESOLVED")
    await emitter.idle()
    assert (await served.metrics())[("carmetrics_vehicle_error", key)] == 0


async def test_reauth_shows_a_reconnect_link_and_the_owner_fixes_it(served: Served) -> None:
    await served.connect()
    vin = served.rt.simulator.fleet.vins_for("smartcar")[0]
    await until(lambda: served.rt.hub.latest(vin), "the first poll")
    cloud = served.sim.cloud
    cloud.inject(vin, ApiFault("CONNECTED_SERVICES_ACCOUNT", "AUTHENTICATION_FAILED"), times=-1)
    served.rt.scheduler.request_poll(vin)
    provider = served.rt.providers["sc"]
    assert isinstance(provider, SmartcarProvider)
    await until(lambda: vin in provider.reauth, "the re-auth flag")
    m = await served.metrics()
    assert m[("carmetrics_reauth_required", (("vin", vin),))] == 1
    _, landing = await served.get("/")
    assert "/connect/smartcar/reconnect?" in landing and "Reconnect" in landing
    link = landing.split('href="/connect/smartcar/reconnect?')[1].split('"')[0]
    async with served.http.get(
        served.base + "/connect/smartcar/reconnect?" + link.replace("&amp;", "&"),
        allow_redirects=False,
    ) as r:
        url = r.headers["Location"]
    assert "/oauth/reauthenticate?" in url  # Smartcar's repair flow for AUTHENTICATION_FAILED
    loc = await consent(served.http, url)
    assert "vehicle_id=" in loc
    async with served.http.get(loc) as r:
        assert r.status == 200 and "connected again" in await r.text()
    assert vin not in provider.reauth
    _, landing = await served.get("/")
    assert "/connect/smartcar/reconnect?" not in landing
    await until(lambda: served.rt.health.vehicle(vin).consecutive_failures == 0, "a good poll")


async def test_smartcar_metrics_pass_promtool(served: Served) -> None:
    from tests.conftest import require_tool

    promtool = require_tool("promtool")
    await served.connect()
    emitter = served.sim.emitter
    await until(lambda: emitter.deliveries, "the first webhook delivery")
    vin = served.rt.simulator.fleet.vins_for("smartcar")[0]
    emitter.vehicle_error(vin, "COMPATIBILITY", "VEHICLE_NOT_CAPABLE")
    await emitter.idle()
    _, text = await served.get("/metrics")
    for name in ("carmetrics_api_calls_total", "carmetrics_vehicle_error{", "carmetrics_webhook"):
        assert name in text
    proc = await asyncio.create_subprocess_exec(
        promtool,
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate(text.encode())
    assert proc.returncode == 0, out.decode()[-2000:]


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("error=configuration_error&status_code=400", "problem with this application"),
        (
            "error=vehicle_incompatible&make=FORD&model=Focus&year=2012",
            "This car (FORD Focus 2012) cannot share",
        ),
        ("error=something_new", "ended with an error (something_new)"),
    ],
)
async def test_every_connect_error_has_a_page(served: Served, query: str, needle: str) -> None:
    """Smartcar's redirect back, as Connect sends it for errors the simulator rarely produces."""
    async with served.http.get(served.base + "/connect/smartcar", allow_redirects=False) as r:
        state = parse_qs(urlsplit(r.headers["Location"]).query)["state"][0]
    url = f"{served.base}/connect/smartcar/callback?{query}&state={state}"
    async with served.http.get(url) as r:
        page = await r.text()
    assert r.status == 200 and needle in page


async def test_a_revoked_car_leaves_metrics_and_the_other_stays(served: Served) -> None:
    """The owner revokes one car's access in their Smartcar account: the next poll's PERMISSION
    re-lists the account at once, and the car is forgotten (its history stays)."""
    await served.connect()
    gone, stays = served.rt.simulator.fleet.vins_for("smartcar")
    await until(lambda: served.rt.hub.latest(gone) and served.rt.hub.latest(stays), "first polls")
    removed: list[str] = []
    served.rt.hub.on_vehicle_removed(removed.append)
    api = served.rt.simulator.urls["smartcar"]["api"]
    async with served.http.post(api + "/_sim/revoke", json={"vin": gone}) as r:
        assert r.status == 200
    served.rt.scheduler.request_poll(gone)
    await until(lambda: removed, "the revoked car to be forgotten")
    assert removed == [gone]
    m = await served.metrics()
    assert ("carmetrics_battery_soc_ratio", (("vin", gone),)) not in m
    assert ("carmetrics_reauth_required", (("vin", gone),)) not in m  # Smartcar's own series too
    assert ("carmetrics_battery_soc_ratio", (("vin", stays),)) in m
    assert gone not in served.rt.scheduler.vins and stays in served.rt.scheduler.vins
