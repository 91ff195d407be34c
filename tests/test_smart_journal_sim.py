"""The simulated trip journal as the real cloud serves it, with pysmarthashtag as the oracle.

pysmarthashtag 0.15 (``account.py``: ``grant_journal_authorization``, ``get_trip_journal``,
``get_trip_trackpoints``) reads the real journal; pointed at the simulator it must grant, survive the
token rotation the grant causes, page through every trip and read each trip's track. Reference
§3.2/§4.1: 8153 before the grant, for an empty window (recording off) and past the last page.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pysmarthashtag
import pysmarthashtag.account as paccount
import pysmarthashtag.api.authentication as pauth
import pysmarthashtag.api.utils as putils
import pysmarthashtag.vehicle.vehicle as pvehicle
import pytest
from pysmarthashtag.vehicle.journal import TripJournal

from exporter.clock import ManualClock
from exporter.config import SimulatorConfig
from exporter.simulator.runner import SimulatorHandle, start_simulator
from tests.test_pysmarthashtag_oracle import _account
from tests.test_sim_support import logged_in, running_sim

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

RECORDED = Path(pysmarthashtag.__file__).parent / "tests" / "replys"


@pytest.fixture
async def sim(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[SimulatorHandle, ManualClock]]:
    clock = ManualClock()
    handle = await start_simulator(SimulatorConfig(seed=21), clock, tick_every=None)
    urls = handle.urls["smart"]
    monkeypatch.setattr(pvehicle, "API_BASE_URL", urls["api_v1"])
    monkeypatch.setattr(pvehicle, "API_BASE_URL_V2", urls["api_v2"])
    monkeypatch.setattr(pauth, "_BACKOFF_REGISTRY", {})
    monkeypatch.setattr(putils, "time", SimpleNamespace(time=clock.now))

    class SimDatetime(dt.datetime):
        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> SimDatetime:
            return cls.fromtimestamp(clock.now(), tz)

    # its journal window ends at "now": the simulator's now
    monkeypatch.setattr(
        paccount,
        "datetime",
        SimpleNamespace(datetime=SimDatetime, UTC=dt.UTC, timedelta=dt.timedelta),
    )
    try:
        yield handle, clock
    finally:
        await handle.close()


def _recorded_trips(handle: SimulatorHandle, vin: str, since: float) -> list[dict[str, Any]]:
    car = handle.fleet.vehicle(vin)
    return [
        t
        for t in handle.fleet.ground_truth(vin)["trips"]
        if t["start"] >= since and car.journal_recording(t["start"])
    ]


async def test_pysmarthashtag_reads_the_whole_journal_and_each_track(sim: Any) -> None:
    handle, clock = sim
    account = _account(handle)
    await account.login()
    await account._init_vehicles()
    vin = next(iter(account.vehicles))
    clock.advance(5 * 86400)
    window_start = clock.now() - 14 * 86400
    truth = _recorded_trips(handle, vin, window_start)
    assert len(truth) > 6  # more than two pages of three
    # its grant retries a 1402 without renewing (it relies on an earlier read having renewed)
    await account.config.authentication.refresh_api_session()
    before = account.config.authentication.api_access_token
    got = await account.get_trip_journal(vin, page_size=3, raise_on_truncation=True)
    # the grant rotated the token; pysmarthashtag renewed it and went on
    assert account.config.authentication.api_access_token != before
    items = got["data"]["list"]
    assert len(items) == len(truth)
    assert [int(i["startTime"]) for i in items] == [int(t["start"] * 1000) for t in truth][::-1]
    newest = TripJournal.from_response(got)
    assert newest is not None and newest.total_trips == len(truth)
    assert newest.distance is not None
    assert newest.distance.value == pytest.approx(truth[-1]["distance_km"], abs=0.05)
    assert newest.energy_consumption is not None
    assert newest.energy_consumption.value == pytest.approx(truth[-1]["energy_kwh"], rel=0.03)
    assert newest.start_position is not None  # the two ends, from the item's own trackpoints

    # the track of the newest trip: positions only, start to end, inside the trip's region
    last = truth[-1]
    track = await account.get_trip_trackpoints(
        vin, int(last["start"] * 1000), int(last["end"] * 1000)
    )
    assert len(track.points) >= 2
    assert all(p.lat is not None and p.lon is not None for p in track.points)
    lats = [p.lat for p in track.points if p.lat is not None]
    assert min(lats) - 0.2 < last["end_lat"] < max(lats) + 0.2


async def test_recording_off_leaves_the_journal_empty(sim: Any) -> None:
    handle, clock = sim
    account = _account(handle)
    await account.login()
    await account._init_vehicles()
    vin = next(iter(account.vehicles))
    handle.fleet.set_journal_recording(vin, False)
    clock.advance(3 * 86400)
    await account.config.authentication.refresh_api_session()
    assert handle.fleet.ground_truth(vin)["trips"]  # the car did drive
    with pytest.raises(Exception) as err:  # first page: 8153 propagates (httpx.HTTPStatusError)
        await account.get_trip_journal(vin)
    assert type(err.value).__name__ == "HTTPStatusError"
    assert json.loads(err.value.response.text)["code"] == "8153"  # type: ignore[attr-defined]
    state = await account.get_vehicle_state(vin)
    assert str(state["data"]["journalLogState"]) == "0"


async def test_wire_shape_matches_the_recorded_replies() -> None:
    """Same keys as pysmarthashtag's recorded journal and trackpoints replies; journal values are
    strings (seed 004), trackpoint positions integers with nothing else (trackpoints.py)."""
    async with running_sim() as (handle, clock, session):
        client = await logged_in(handle, session)
        vin = handle.info()["vins"]["smart_eu"][0]
        clock.advance(2 * 86400)
        await client.session_post()
        now_ms = int(clock.now() * 1000)
        q = f"endTime={now_ms}&pageIndex=1&pageSize=20&startTime={now_ms - 14 * 86400000}"
        path = f"/geelyTCAccess/tcservices/vehicle/status/journalLogV4/{vin}"
        assert (await client.call("GET", "api_v1", path, q)).code == "8153"  # no grant yet
        body = {"serviceCode": "travelLogBusiCode", "authStatus": 1, "vin": vin}
        grant = "/remote-control/user/authorization/insert"
        assert (await client.call("POST", "api_v1", grant, "", body)).code == "1000"
        await client.session_post()  # the grant rotated the token
        reply = (await client.call("GET", "api_v1", path, q)).json()
        real = json.loads((RECORDED / "journal_response.json").read_text())
        ours = reply["data"]["list"][0]
        assert set(real["data"]["list"][0]) == set(ours)
        assert set(real["data"]["pagination"]) == set(reply["data"]["pagination"])
        scalars = {k: v for k, v in ours.items() if v is not None and k != "trackpoints"}
        assert scalars and all(isinstance(v, str) for v in scalars.values())
        # past the last page: 8153, the end-of-data signal
        total = reply["data"]["pagination"]["totleSize"]
        beyond = q.replace("pageIndex=1", f"pageIndex={total + 1}").replace(
            "pageSize=20", "pageSize=1"
        )
        assert (await client.call("GET", "api_v1", path, beyond)).code == "8153"

        start, end = ours["startTime"], ours["endTime"]
        tq = f"endTime={end}&pageIndex=0&pageSize=500&source=tc&startTime={start}"
        tpath = f"/vehicle-history-service/journal-service/vehicle/status/history/{vin}"
        track = (await client.call("GET", "api_v1", tpath, tq)).json()
        real_tp = json.loads((RECORDED / "trackpoints_response.json").read_text())
        point = track["data"]["list"][0]
        assert set(point) == set(real_tp["data"]["list"][0]) == {"basicVehicleStatus"}
        assert set(point["basicVehicleStatus"]["position"]) == {"latitude", "longitude"}
        assert isinstance(point["basicVehicleStatus"]["position"]["latitude"], int)


async def test_pysmarthashtag_switches_recording_and_the_journal_follows(sim: Any) -> None:
    from pysmarthashtag.control.journal import JournalRecordingControl

    handle, clock = sim
    account = _account(handle)
    await account.login()
    await account._init_vehicles()
    vin = next(iter(account.vehicles))
    switch = JournalRecordingControl(account, vin)
    assert await switch.disable_recording()
    assert not handle.fleet.vehicle(vin).journal_recording(clock.now() + 1)
    state = await account.get_vehicle_state(vin)
    assert str(state["data"]["journalLogState"]) == "0"
    clock.advance(86400)
    await account.config.authentication.refresh_api_session()
    assert await switch.enable_recording()
    assert handle.fleet.vehicle(vin).journal_recording(clock.now() + 1)
    clock.advance(2 * 86400)
    await account.config.authentication.refresh_api_session()
    got = await account.get_trip_journal(vin, raise_on_truncation=True)
    starts = [int(i["startTime"]) / 1000 for i in got["data"]["list"]]
    assert starts and min(starts) >= clock.now() - 2 * 86400  # nothing from the day it was off
    off_day = [
        t
        for t in handle.fleet.ground_truth(vin)["trips"]
        if clock.now() - 3 * 86400 <= t["start"] < clock.now() - 2 * 86400
    ]
    assert off_day  # the car did drive that day
