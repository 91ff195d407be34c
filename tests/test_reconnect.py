"""A real connection whose credentials stop working says "reconnect needed" on ``/``, on
``/metrics`` (``carmetrics_reauth_required``) and once in the log, whatever the provider (issue 15).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exporter.logs import mask_vin
from exporter.runtime import Runtime
from exporter.simulator.smartcar.errors import ApiFault
from tests.test_smartcar_web import Served, serve, until

CONFIG = """
[exporter]
port = {port}
db = "{db}"
[simulator]
enabled = true
smart_vehicles = ["#1"]
smartcar_vehicles = ["Tesla Model 3", "Ford Mustang Mach-E"]
[[accounts]]
name = "eu"
provider = "smart"
region = "EU"
simulator = true
[[accounts]]
name = "sc"
provider = "smartcar"
simulator = true
"""


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    def ready(rt: Runtime) -> bool:
        return {"eu", "sc"} <= set(rt.providers)

    async with serve(tmp_path, CONFIG, ready, "the providers", cookies=False) as s:
        yield s


def _rows(page: str) -> dict[str, str]:
    return {r.split("</td>")[0].split("<td>")[-1]: r for r in page.split("<tr>")[1:]}


def _told(caplog: pytest.LogCaptureFixture, vin: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if "reconnect" in r.getMessage() and r.__dict__.get("vin") == mask_vin(vin)
    ]


async def test_a_smartcar_v3_connection_that_stopped_working(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    broken, fine = served.rt.simulator.fleet.vins_for("smartcar")
    await until(lambda: served.rt.hub.latest(broken) and served.rt.hub.latest(fine), "polls")
    m = await served.metrics()
    assert m[("carmetrics_reauth_required", (("vin", broken),))] == 0
    served.sim.cloud.inject(
        broken, ApiFault("CONNECTED_SERVICES_ACCOUNT", "AUTHENTICATION_FAILED"), times=-1
    )
    with caplog.at_level(logging.WARNING):
        for _ in range(2):  # two refused polls: still one line in the log
            before = served.rt.health.vehicle(broken).consecutive_failures
            served.rt.scheduler.request_poll(broken)
            await until(
                lambda b=before: served.rt.health.vehicle(broken).consecutive_failures > b,  # type: ignore[misc]
                "the refused poll",
            )
    _, page = await served.get("/")
    rows = _rows(page)
    assert "reconnect needed" in rows[mask_vin(broken)]
    assert "reconnect needed" not in rows[mask_vin(fine)]
    assert "/connect/smartcar/reconnect" in page  # where the owner fixes it
    m = await served.metrics()
    assert m[("carmetrics_reauth_required", (("vin", broken),))] == 1
    assert m[("carmetrics_reauth_required", (("vin", fine),))] == 0
    told = _told(caplog, broken)
    assert len(told) == 1 and "/connect/smartcar/reconnect" in told[0].getMessage()


async def test_a_smart_account_whose_sign_in_is_refused(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    vin = served.rt.simulator.clouds["smart"].vins["smart_eu"][0]
    await until(lambda: served.rt.hub.latest(vin), "the first poll")
    cloud = served.rt.simulator.smart
    account = cloud.identity.account("demo@smart.sim")
    account.password = "changed-by-the-owner"  # the stored session dies, the password is refused
    cloud.identity.expire_account(
        account, ("api_access", "api_refresh", "oauth_access", "oauth_refresh", "login_token")
    )
    with caplog.at_level(logging.WARNING):
        served.rt.scheduler.request_poll(vin)
        await until(lambda: served.rt.health.vehicle(vin).state == "paused", "the refusal")
    _, page = await served.get("/")
    assert "reconnect needed" in _rows(page)[mask_vin(vin)]
    m = await served.metrics()
    assert m[("carmetrics_reauth_required", (("vin", vin),))] == 1
    assert len(_told(caplog, vin)) == 1
