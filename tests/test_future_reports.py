"""A report dated in the future must not freeze a car: refused on every path, counted, logged once
per car, and a car already holding one recovers (issue 15)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from exporter.clock import ManualClock
from exporter.config import AccountConfig, PollConfig, Secret
from exporter.health import Health
from exporter.hub import MAX_SKEW, Hub, Outcome
from exporter.hub_metrics import HubCollector
from exporter.metrics import VehicleCollector, make_registry, render_exposition
from exporter.providers.base import MemoryTokenStore, PollResult
from exporter.providers.smart.parse import parse_status, to_snapshot
from exporter.providers.smartcar.provider import Connection, SmartcarProvider
from exporter.providers.smartcar.settings import from_account
from exporter.scheduler import Scheduler
from exporter.snapshot import Snapshot
from tests.fakes import FakeProvider

VIN = "HESXR1C40PS000001"
Y2100 = 4_102_444_800.0  # 2100-01-01T00:00:00Z
AMT = "amt-0123456789"


def snap(t: float, received: float, soc: float = 0.5, source: str = "poll") -> Snapshot:
    return Snapshot.build(VIN, "smart", t, received, {"battery_soc": soc}, source=source)


def refused_total(hub: Hub) -> dict[tuple[str, str], float]:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(HubCollector(hub))
    from prometheus_client.exposition import generate_latest

    out = {}
    for fam in text_string_to_metric_families(generate_latest(reg).decode()):
        for s in fam.samples:
            if s.name == "carmetrics_reports_refused_total":
                out[(s.labels["vin"], s.labels["reason"])] = s.value
    return out


def test_a_report_from_the_future_is_refused_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = 1_767_225_600.0
    hub = Hub()
    stored: list[Snapshot] = []
    hub.subscribe(stored.append)
    assert hub.publish(snap(now - 60, now, soc=0.5)) is Outcome.NEW
    with caplog.at_level(logging.WARNING, logger="exporter.hub"):
        assert hub.publish(snap(Y2100, now + 10, soc=0.9)) is Outcome.FUTURE
        assert hub.publish(snap(Y2100 + 60, now + 20, soc=0.9)) is Outcome.FUTURE
    future_lines = [r for r in caplog.records if "future" in r.getMessage()]
    assert len(future_lines) == 1
    assert refused_total(hub) == {(VIN, "future"): 2.0}
    # a genuine later report still wins: the car is not frozen
    assert hub.publish(snap(now + 30, now + 31, soc=0.55)) is Outcome.NEW
    assert [s.car_time for s in stored] == [now - 60, now + 30]
    # a small skew (a car clock a minute fast) is not a refusal
    assert hub.publish(snap(now + 100, now + 40, soc=0.56)) is Outcome.NEW


def test_a_car_already_poisoned_recovers_once_the_bad_report_is_beyond_the_allowance() -> None:
    now = 1_767_225_600.0
    hub = Hub(max_skew=float("inf"))  # as before the bound existed
    assert hub.publish(snap(Y2100, now, soc=0.9)) is Outcome.NEW
    hub.max_skew = MAX_SKEW
    assert hub.publish(snap(now + 60, now + 61, soc=0.4)) is Outcome.NEW
    latest = hub.latest(VIN)
    assert (
        latest is not None and latest.car_time == now + 60 and latest.values["battery_soc"] == 0.4
    )
    assert hub.publish(snap(now + 30, now + 90, soc=0.3)) is Outcome.STALE  # ordering is back


def test_data_age_stays_honest_so_the_stale_data_alert_can_fire() -> None:
    clock = ManualClock()
    hub, health = Hub(), Health()
    t0 = clock.now() - 3600
    hub.publish(snap(t0, t0 + 1))
    hub.publish(snap(Y2100, clock.now()))
    coll = VehicleCollector(hub, health, clock, export_location=False, max_data_age=7 * 86400)
    body = b"".join(render_exposition(make_registry(coll), coll)).decode()
    got = {
        s.name: s.value
        for fam in text_string_to_metric_families(body)
        for s in fam.samples
        if s.labels.get("vin") == VIN
    }
    assert got["carmetrics_data_age_seconds"] == pytest.approx(3600)
    assert got["carmetrics_last_update_timestamp_seconds"] == pytest.approx(t0)


def test_smart_update_time_gets_the_same_bound() -> None:
    import copy

    from tests.test_smart_parse import load

    data = copy.deepcopy(load("eu/api_v1/status-hx11-parked.json")["data"])
    data["vehicleStatus"]["updateTime"] = str(int(Y2100 * 1000))
    now = 1_767_225_600.0
    hub = Hub()
    assert hub.publish(to_snapshot(VIN, parse_status(data), now)) is Outcome.FUTURE
    assert hub.latest(VIN) is None


class _FutureProvider(FakeProvider):
    """A poll (and a command check's extra poll) that answers with a report from 2100."""

    async def poll(self, vin: str) -> PollResult:
        return PollResult(
            Snapshot.build(vin, "smart", Y2100, self.clock.now(), {"battery_soc": 0.9})
        )


async def test_the_poll_and_command_check_path_refuses_it() -> None:
    clock = ManualClock()
    hub = Hub()
    sched = Scheduler(hub, Health(), clock, PollConfig())
    sched.add(VIN, _FutureProvider(clock, account="demo"))
    assert await sched.poll_now(VIN) is Outcome.FUTURE  # what command verification calls
    assert hub.latest(VIN) is None


# --- the Smartcar webhook path ------------------------------------------------------------------


def _provider(clock: ManualClock) -> SmartcarProvider:
    account = AccountConfig(
        name="sc",
        provider="smartcar",
        index=0,
        settings={
            "client_id": "cid",
            "redirect_uri": "https://cars.example.org/connect/smartcar/callback",
            "webhooks": True,
        },
        secrets={"client_secret": Secret("s"), "management_token": Secret(AMT)},
    )
    p = SmartcarProvider(from_account(account), None, clock, MemoryTokenStore())  # type: ignore[arg-type]
    p._adopt(
        p._conns.setdefault("c", Connection("c", None)),  # type: ignore[arg-type]
        [{"id": "veh-1", "vin": VIN, "make": "TESLA", "permissions": []}],
    )
    return p


def _state(event_id: str, oem_ms: int, soc: float) -> bytes:
    doc: dict[str, Any] = {
        "eventId": event_id,
        "eventType": "VEHICLE_STATE",
        "vehicleId": "veh-1",
        "data": {
            "user": {"id": "u"},
            "vehicle": {"id": "veh-1", "make": "TESLA", "model": "Model 3", "year": 2020},
            "triggers": [{"code": "tractionbattery-stateofcharge"}],
            "signals": [
                {
                    "code": "tractionbattery-stateofcharge",
                    "name": "StateOfCharge",
                    "group": "TractionBattery",
                    "body": {"unit": "percent", "value": soc},
                    "meta": {"oemUpdatedAt": oem_ms},
                }
            ],
        },
        "meta": {"version": "4.0", "deliveryId": "d", "deliveredAt": oem_ms + 1000},
    }
    return json.dumps(doc).encode()


def _deliver(p: SmartcarProvider, hub: Hub, body: bytes) -> Outcome | None:
    res = p.handle_webhook(body, hmac.new(AMT.encode(), body, hashlib.sha256).hexdigest())
    assert res.status == 200
    return hub.publish(res.snapshot) if res.snapshot is not None else None


def test_a_signed_webhook_from_2100_does_not_freeze_the_car(tmp_path: Path) -> None:
    clock = ManualClock()
    p, hub = _provider(clock), Hub()
    now_ms = int(clock.now() * 1000)
    assert _deliver(p, hub, _state("e0", now_ms - 60_000, 50)) is Outcome.NEW
    assert _deliver(p, hub, _state("e1", int(Y2100 * 1000), 99)) is Outcome.FUTURE
    clock.advance(60)
    # the genuine next event is neither "stale" in the provider nor in the hub
    assert _deliver(p, hub, _state("e2", now_ms + 30_000, 52)) is Outcome.NEW
    latest = hub.latest(VIN)
    assert latest is not None and latest.values["battery_soc"] == pytest.approx(0.52)
    assert refused_total(hub) == {(VIN, "future"): 1.0}
