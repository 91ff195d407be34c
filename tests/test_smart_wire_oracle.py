"""Request by request, carmetrics sends what pysmarthashtag 0.15 sends.

Both clients are driven against the same strict simulator, which records every request as it
arrives (``SmartCloud.captured``). For each operation - EU login, session refresh (both rungs),
vehicle list, the reads and every command - the requests of the two clients are compared on method,
path, query, header names and body (JSON or form, key order aside). Values that differ by nature
(tokens, nonces, timestamps, the login context) are compared by presence only. Every remaining
difference must be one of ``ALLOWED`` below, each of which docs/SMART_COMMANDS.md lists with its
reason; anything else fails. The INTL login has no pysmarthashtag counterpart: it is checked
against the reference (hello_smart's working INTL code).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pysmarthashtag.api.authentication as pauth
import pysmarthashtag.api.utils as putils
import pysmarthashtag.vehicle.vehicle as pvehicle
import pytest
from pysmarthashtag.control.climate import HeatingLocation

from exporter.clock import ManualClock
from exporter.config import AccountConfig, Secret, SimulatorConfig
from exporter.providers.base import Command, MemoryTokenStore
from exporter.providers.smart import SmartProvider
from exporter.providers.smart.breaker import BreakerRegistry
from exporter.simulator.runner import SimulatorHandle, start_simulator
from exporter.simulator.smart.cloud import Captured, SmartCloud
from tests.test_pysmarthashtag_oracle import _account

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

# header names set by the HTTP library, not by the client (httpx vs aiohttp)
TRANSPORT = frozenset({"host", "content-length", "connection", "accept-encoding"})
# values that differ by nature: compared by presence only
DYNAMIC_QUERY = frozenset({"context", "login_token", "code", "state", "nonce"})
DYNAMIC_BODY = frozenset(
    {"timestamp", "timeStamp", "accessToken", "sessionToken", "refreshToken", "password"}
)
# (operation, what differs) -> the reason, as in docs/SMART_COMMANDS.md "Differences"
ALLOWED: dict[tuple[str, str], str] = {
    ("reads", "select before reads"): "carmetrics binds reads with X-Vehicle-* headers only",
    ("reads", "ota, journal"): "no OTA; the journal is read in its own slow loop",
    ("reads", "qrvs"): "both read it only while a #5 is DC charging",
    ("climate_start", "x-vehicle-* headers"): "carmetrics binds every VIN call",
    ("climate_stop", "x-vehicle-* headers"): "carmetrics binds every VIN call",
    ("charge_start", "x-vehicle-* headers"): "carmetrics binds every VIN call",
    ("charge_stop", "x-vehicle-* headers"): "carmetrics binds every VIN call",
    ("seat_heating", "x-vehicle-* headers"): "carmetrics binds every VIN call",
    ("seat_heating_off", "x-vehicle-* headers"): "carmetrics binds every VIN call",
}
BINDING = frozenset({"x-vehicle-identifier", "x-vehicle-series", "x-vehicle-model"})


def _template(path: str, vins: list[str]) -> str:
    for vin in vins:
        path = path.replace(vin, "{vin}")
    return path


def _body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return {k: ("<dyn>" if k in DYNAMIC_BODY else v) for k, v in parse_qsl(raw.decode())}
    return _mask(doc)


def _mask(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: ("<dyn>" if k in DYNAMIC_BODY else _mask(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_mask(v) for v in node]
    return node


def _query(raw: str) -> dict[str, str]:
    pairs = [p.partition("=") for p in raw.split("&") if p]
    return {k: ("<dyn>" if k in DYNAMIC_QUERY else v) for k, _, v in pairs}


def _wire(c: Captured, vins: list[str]) -> dict[str, Any]:
    return {
        "raw_path": c.path,
        "host": c.host,
        "method": c.method,
        "path": _template(c.path, vins),
        "query": _query(c.query),
        "headers": sorted(c.headers - TRANSPORT),
        "body": _body(c.body),
    }


class Recorder:
    """Runs one operation and returns the requests the simulator saw for it."""

    def __init__(self, cloud: SmartCloud, vins: list[str]) -> None:
        self.cloud = cloud
        self.vins = vins

    async def __call__(self, run: Callable[[], Coroutine[Any, Any, Any]]) -> list[dict[str, Any]]:
        self.cloud.captured = []
        try:
            await run()
            return [_wire(c, self.vins) for c in self.cloud.captured]
        finally:
            self.cloud.captured = None


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
    monkeypatch.setattr(putils, "time", type("T", (), {"time": staticmethod(clock.now)}))
    try:
        yield handle, clock
    finally:
        await handle.close()


def _provider(
    handle: SimulatorHandle, session: aiohttp.ClientSession, name: str = "smart_eu"
) -> SmartProvider:
    login = handle.logins[name]
    account = AccountConfig(
        name=name,
        provider="smart",
        index=0,
        simulator=True,
        settings={"region": login["region"], "username": login["username"]},
        secrets={"password": Secret(login["password"])},
    )
    return SmartProvider(
        account,
        session,
        handle.clock,
        MemoryTokenStore(),
        sim_urls=handle.urls["smart"],
        breakers=BreakerRegistry(),
    )


def _diff(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    out = []
    for field in ("host", "method", "path", "query", "body"):  # not raw_path: it holds the VIN
        if ours[field] != theirs[field]:
            out.append(f"{field}: ours {ours[field]!r} != theirs {theirs[field]!r}")
    if ours["headers"] != theirs["headers"]:
        extra = sorted(set(ours["headers"]) - set(theirs["headers"]))
        missing = sorted(set(theirs["headers"]) - set(ours["headers"]))
        if set(extra) <= BINDING and not missing:
            out.append("x-vehicle-* headers")
        else:
            out.append(f"headers: extra {extra}, missing {missing}")
    return out


def _check(op: str, ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> None:
    assert len(ours) == len(theirs), (op, [o["path"] for o in ours], [t["path"] for t in theirs])
    for mine, other in zip(ours, theirs, strict=True):
        for problem in _diff(mine, other):
            assert (op, problem) in ALLOWED, (op, problem, mine, other)


def _puts(reqs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in reqs if r["method"] == "PUT" and "/telematics/" in r["path"]]


async def test_carmetrics_sends_what_pysmarthashtag_sends(sim: Any) -> None:
    handle, clock = sim
    cloud: SmartCloud = handle.smart
    eu_vins = handle.info()["vins"]["smart_eu"]
    rec = Recorder(cloud, eu_vins + handle.info()["vins"]["smart_intl"])
    theirs_acc = _account(handle)
    series = {v: handle.fleet.vehicle(v).spec.series for v in eu_vins}
    one = next(v for v in eu_vins if series[v].startswith("HX"))
    five = next(v for v in eu_vins if series[v].startswith("HY"))

    async with aiohttp.ClientSession(
        headers={"User-Agent": "carmetrics"}, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        ours_p = _provider(handle, session)

        # --- EU login: the whole chain, step by step
        theirs = await rec(theirs_acc.login)
        ours = await rec(ours_p.start)
        assert [t["path"] for t in theirs][-1] == "/auth/account/session/secure"
        _check("login_eu", ours, theirs)

        # --- vehicle list
        async def their_list() -> None:
            await theirs_acc._init_vehicles()

        theirs = await rec(their_list)
        ours = await rec(ours_p.vehicles)
        _check("vehicles", ours, theirs)

        # --- reads of one car: status, soc, state (theirs also selects, reads OTA and journal)
        async def their_reads() -> None:
            await theirs_acc.get_vehicles()

        async def our_reads() -> None:
            await ours_p.snapshot(one)

        theirs = await rec(their_reads)
        ours = await rec(our_reads)
        common = {
            "/remote-control/vehicle/status/{vin}",
            "/remote-control/vehicle/status/soc/{vin}",
            "/remote-control/vehicle/status/state/{vin}",
        }
        theirs_one = [t for t in theirs if t["path"] in common and one in t["raw_path"]]
        skipped = {t["path"] for t in theirs} - common
        assert "/device-platform/user/session/update" in skipped  # ALLOWED: select before reads
        assert all(one in o["raw_path"] for o in ours)
        assert [o["path"] for o in ours] == [t["path"] for t in theirs_one]
        _check("reads", ours, theirs_one)

        # --- refresh, rung 1 (re-POST the OAuth token) and rung 2 (PUT the refresh token)
        theirs = await rec(theirs_acc.config.authentication.refresh_api_session)
        session_now = await ours_p.auth.session()
        ours = await rec(lambda: ours_p.auth.renew(session_now.access_token))
        _check("refresh", ours, theirs)
        theirs = await rec(theirs_acc.config.authentication.refresh_token_exchange)
        handle.faults.script("main_token_expired", endpoint="session", cloud="smart")
        session_now = await ours_p.auth.session()
        ours = [r for r in await rec(lambda: ours_p.auth.renew(session_now.access_token))]
        assert [o["method"] for o in ours] == ["POST", "PUT", "POST"]  # 1501, PUT, POST again
        _check("refresh_put", [ours[1]], theirs)

        # --- every command: the telematics PUT of each client
        car = theirs_acc.vehicles[one]
        car5 = theirs_acc.vehicles[five]
        driver = HeatingLocation.DRIVER_SEAT
        pairs: list[tuple[str, str, Command, Callable[[], Coroutine[Any, Any, Any]]]] = [
            ("lock", one, Command("lock"), car.door_lock_control.lock),
            ("unlock", one, Command("unlock"), car.door_lock_control.unlock),
            (
                "climate_start",
                one,
                Command("climate_start", {"temperature": 22}),
                lambda: car.climate_control.set_climate_conditioning(22.0, True),
            ),
            (
                "climate_stop",
                one,
                Command("climate_stop", {"temperature": 22}),
                lambda: car.climate_control.set_climate_conditioning(22.0, False),
            ),
            ("charge_start", one, Command("charge_start"), car.charging_control.start_charging),
            ("charge_stop", one, Command("charge_stop"), car.charging_control.stop_charging),
            (
                "charge_limit",
                one,
                Command("charge_limit", {"percent": 70}),
                lambda: car.charging_control.set_charging_limit(70),
            ),
            ("horn", one, Command("horn"), car.horn_light_control.honk_horn),
            ("flash", one, Command("flash"), car.horn_light_control.flash_lights),
            (
                "windows_close",
                one,
                Command("windows_close"),
                lambda: car.window_control.set_ventilation(False),
            ),
            (
                "seat_heating",
                one,
                Command("seat_heating", {"seat": "driver", "level": 2}),
                lambda: car.climate_control.set_heating(True, {driver: 2}),
            ),
            (
                "seat_heating_off",
                one,
                Command("seat_heating", {"seat": "driver", "level": 0}),
                lambda: car.climate_control.set_heating(False, {driver: 0}),
            ),
            (
                "seat_heating_5",
                five,
                Command("seat_heating", {"seat": "driver", "level": 2}),
                lambda: car5.climate_control.set_heating(True, {driver: 2}),
            ),
        ]
        compared = set()
        for op, vin, command, their_call in pairs:
            theirs = _puts(await rec(their_call))
            ours = _puts(await rec(lambda v=vin, c=command: ours_p.command(v, c)))
            assert len(theirs) == 1 and len(ours) == 1, op
            _check(op, ours, theirs)
            compared.add(command.name)
            clock.advance(60)
        # the comparison bites: the seed's old lock body (no door=all) is a difference it reports
        lock = _puts(await rec(car.door_lock_control.lock))[0]
        seed_lock = {**lock, "body": {**lock["body"], "serviceParameters": []}}
        problems = _diff(seed_lock, lock)
        assert problems and all(("lock", p) not in ALLOWED for p in problems)
        # find has no pysmarthashtag counterpart (seed 004, unconfirmed); every other command
        # carmetrics offers was compared
        assert compared == ours_p.supported_commands(one) - {"find"}


async def test_intl_login_follows_the_reference(sim: Any) -> None:
    """No pysmarthashtag counterpart: the INTL requests carry what hello_smart's working INTL code
    sends, and never the session's own ``User-Agent: carmetrics``."""
    handle, _clock = sim
    cloud: SmartCloud = handle.smart
    async with aiohttp.ClientSession(
        headers={"User-Agent": "carmetrics"}, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        p = _provider(handle, session, "smart_intl")
        cloud.captured = []
        await p.start()
        await p.vehicles()
        got, cloud.captured = cloud.captured, None
    assert [(c.host, c.method, c.path) for c in got] == [
        ("sg_app_api", "POST", "/iam/service/api/v1/login"),
        ("sg_app_api", "GET", "/iam/service/api/v1/oauth20/authorize"),
        ("api_v2", "POST", "/auth/account/session/secure"),
        ("api_v1", "GET", "/device-platform/user/vehicle/secure"),
    ]
    for c in got:
        values = dict(c.header_values)
        assert "carmetrics" not in values.get("user-agent", "")
    login, authorize, exchange, listing = got
    assert {"x-ca-key", "x-ca-nonce", "x-ca-timestamp", "x-app-id"} <= login.headers
    assert dict(login.header_values)["x-app-id"] == "SmartAPPGlobal"
    assert json.loads(login.body).keys() == {"email", "password", "imageSessionId", "imageCode"}
    assert "xs-auth-token" in authorize.headers and authorize.query.startswith("accessToken=")
    assert exchange.query == "identity_type=smart-israel"
    assert json.loads(exchange.body).keys() == {"authCode"}
    for c in (exchange, listing):
        values = dict(c.header_values)
        assert values["x-app-id"] == "SMARTAPP-ISRAEL" and values["platform"] == "NON-CMA"
        assert values["x-agent-version"] == "18.6.1"
    assert "x-client-id" in listing.headers


async def test_journal_requests_match_pysmarthashtag(sim: Any) -> None:
    """The grant, a journal page and a trip's track: same host, method, path, query keys (times
    compared by presence), header names and body as pysmarthashtag sends them."""
    handle, clock = sim
    cloud: SmartCloud = handle.smart
    eu_vins = handle.info()["vins"]["smart_eu"]
    rec = Recorder(cloud, eu_vins)
    theirs_acc = _account(handle)
    await theirs_acc.login()
    await theirs_acc._init_vehicles()
    vin = eu_vins[0]
    clock.advance(86400)
    await theirs_acc.config.authentication.refresh_api_session()
    trip = handle.fleet.ground_truth(vin)["trips"][-1]
    lo, hi = int(trip["start"] * 1000), int(trip["end"] * 1000)

    async def their_journal() -> None:
        await theirs_acc.grant_journal_authorization(vin, force=True)
        await theirs_acc._fetch_journal_page(vin, 1, 20, lo - 3600_000, hi)
        await theirs_acc.get_trip_trackpoints(vin, lo, hi)

    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        ours_p = _provider(handle, session)
        await ours_p.start()
        await ours_p.vehicles()
        theirs = await rec(their_journal)
        ours = await rec(lambda: ours_p.journal(vin, trip["start"] - 1, frozenset()))
    times = {"startTime", "endTime"}
    for reqs in (ours, theirs):
        for r in reqs:
            r["query"] = {k: "<dyn>" if k in times else v for k, v in r["query"].items()}
    paths = ["/remote-control/user/authorization/insert"]
    paths += ["/geelyTCAccess/tcservices/vehicle/status/journalLogV4/{vin}"]
    paths += ["/vehicle-history-service/journal-service/vehicle/status/history/{vin}"]
    for path in paths:  # the first of each (ours repeats the page once: the grant's 1402)
        mine = next(r for r in ours if r["path"] == path)
        other = next(r for r in theirs if r["path"] == path)
        assert _diff(mine, other) == [], path
