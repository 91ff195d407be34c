"""The v3 Smartcar account wired into a running carmetrics: pre-connected demo cars on /metrics
without a click, Connect adding more, webhooks into the hub, revoked connections leaving."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exporter.providers.smartcar import SmartcarV3Provider
from tests.test_smartcar_web import Served, serve, until

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
simulator = true
webhooks = true
"""


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async with serve(
        tmp_path, CONFIG, lambda rt: "sc" in rt.providers, "the Smartcar provider"
    ) as s:
        yield s


def provider(s: Served) -> SmartcarV3Provider:
    p = s.rt.providers["sc"]
    assert isinstance(p, SmartcarV3Provider)
    return p


async def test_the_demo_user_cars_show_without_a_click(served: Served) -> None:
    vins = served.rt.simulator.fleet.vins_for("smartcar")
    assert provider(served).settings.client_id.startswith("client_")
    await until(lambda: all(served.rt.hub.latest(v) for v in vins), "the first polls")
    m = await served.metrics()
    for vin in vins:
        truth = served.rt.simulator.fleet.state(vin)
        assert m[("carmetrics_battery_soc_ratio", (("vin", vin),))] == pytest.approx(
            round(truth.soc) / 100,
            abs=1e-9,  # v3 sends whole percent
        )
    # BEVs: the combustion signals are ERRORs (VEHICLE_NOT_CAPABLE), counted, the polls succeeded
    key = (("account", "sc"), ("provider", "smartcar"), ("status", "ERROR"))
    assert m[("carmetrics_signals_absent_total", key)] >= 2 * 3


async def test_webhooks_verify_then_first_delivery_reaches_the_hub(served: Served) -> None:
    sim = served.sim
    hook = sim.v3.webhooks[provider(served).settings.webhook_id or ""]
    # the provider's start registers our callback in the simulator's "Dashboard"
    await until(lambda: hook.callback_uri == served.base + "/webhooks/smartcar", "registration")
    await until(lambda: hook.verified, "the VERIFY answer")
    vins = served.rt.simulator.fleet.vins_for("smartcar")
    await until(
        lambda: all(provider(served).webhook_seen.get(v) for v in vins), "FIRST_DELIVERY per car"
    )
    assert provider(served).webhook_events[("VEHICLE_STATE", "accepted")] >= 1
    assert sim.v3_emitter.verify_count[hook.id] == 1


async def test_connect_adds_cars_and_revoked_ones_leave(served: Served) -> None:
    status, page, loc = await served.connect(email="2-vehicles@smartcar.com")
    assert status == 200 and "id='connected'" in page, page
    assert "user_id=" in loc
    p = provider(served)
    added = [v for v in p.known_vins() if v.startswith("0SCN002")]
    assert len(added) == 2
    await until(lambda: all(v in served.rt.scheduler.vins for v in added), "polling the new cars")
    sim = served.sim
    app_id = p.settings.application_id
    gone = next(c for c in sim.v3.connections_of(app_id) if c.vin == added[0])
    sim.v3.disconnect(gone.id)
    infos = await p.vehicles()
    assert added[0] not in {i.vin for i in infos} and added[1] in {i.vin for i in infos}


async def test_an_account_issue_asks_the_owner_to_reconnect(served: Served) -> None:
    from exporter.providers.base import ReauthRequired
    from exporter.simulator.smartcar.errors import ApiFault

    p = provider(served)
    vin = served.rt.simulator.fleet.vins_for("smartcar")[0]
    await until(lambda: vin in p.known_vins(), "the demo car")
    served.sim.cloud.inject(vin, ApiFault("CONNECTED_SERVICES_ACCOUNT", "ACCOUNT_ISSUE"), times=-1)
    result = await p.poll(vin)
    assert isinstance(result.error, ReauthRequired)
    assert "/connect/smartcar/reconnect?" in result.error.reauth_url
    assert list(p.reauth_links()) == [vin]
    status, _ = await served.get(p.reauth_links()[vin])
    assert status == 302  # on to Smartcar Connect
    served.sim.cloud.clear_faults(vin)
    assert (await p.poll(vin)).error is None and p.reauth_links() == {}
