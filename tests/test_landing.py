"""The landing page a person leaves open: account, masked VINs, self-refresh, a polling column that
says what it means, and "reconnect needed" when a connection stopped working (issue 15)."""

from __future__ import annotations

from exporter.logs import mask_vin
from exporter.simulator.smartcar.errors import ApiFault
from tests.test_smartcar_web import Served, served, until  # noqa: F401 (fixture)


async def test_the_landing_page_masks_vins_names_the_account_and_refreshes(
    served: Served,  # noqa: F811
) -> None:
    await served.connect()
    vins = served.rt.simulator.fleet.vins_for("smartcar")
    await until(lambda: all(served.rt.hub.latest(v) for v in vins), "the first polls")
    _, page = await served.get("/")
    for vin in vins:
        assert vin not in page and mask_vin(vin) in page
    assert "<td>sc</td>" in page  # the account the cars came through
    assert '<meta http-equiv="refresh"' in page
    assert "<th>polled</th>" in page and "not polled yet" not in page


async def test_a_connection_that_stopped_working_says_reconnect_needed(
    served: Served,  # noqa: F811
) -> None:
    await served.connect()
    broken, fine = served.rt.simulator.fleet.vins_for("smartcar")[:2]
    await until(lambda: served.rt.hub.latest(broken), "the first poll")
    served.sim.cloud.inject(
        broken, ApiFault("CONNECTED_SERVICES_ACCOUNT", "AUTHENTICATION_FAILED"), times=-1
    )
    served.rt.scheduler.request_poll(broken)
    provider = served.rt.providers["sc"]
    await until(lambda: broken in provider.reauth, "the re-auth flag")  # type: ignore[attr-defined]
    _, page = await served.get("/")
    rows = {r.split("</td>")[0].split("<td>")[-1]: r for r in page.split("<tr>")[1:]}
    assert "reconnect needed" in rows[mask_vin(broken)]
    assert "reconnect needed" not in rows[mask_vin(fine)]
