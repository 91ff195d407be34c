"""The smart provider against the simulated smart cloud, over real loopback HTTP with real signing.

Time is a ManualClock shared with the simulator: token lifetimes, the login circuit breaker and the
cars all move only when a test advances it. Expected values come from the simulator's own vehicle
state (what the car reported), never from the client's code.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from exporter.clock import ManualClock
from exporter.config import AccountConfig, Secret, SimulatorConfig
from exporter.providers.base import (
    AuthError,
    BadReply,
    Command,
    CommandRejected,
    MemoryTokenStore,
    Provider,
    ProviderError,
    RateLimited,
    ReauthRequired,
    TokenStore,
    UpstreamTimeout,
    UpstreamUnavailable,
    VehicleNotLinked,
)
from exporter.providers.smart import SmartProvider
from exporter.providers.smart import breaker as br
from exporter.providers.smart.breaker import BreakerRegistry
from exporter.providers.smart.errors import LoginSuppressed, VehicleUnbound
from exporter.providers.smart.transport import Reply
from exporter.simulator.runner import SimulatorHandle, start_simulator
from exporter.tokens import EncryptedTokenStore

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

DAY = 86400.0


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorHandle]:
    handle = await start_simulator(SimulatorConfig(seed=7), ManualClock(), tick_every=None)
    handle.faults.hang_seconds = 1.0  # a "timeout" hangs 1 real second; the client gives up first
    try:
        yield handle
    finally:
        await handle.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as s:
        yield s


def clock_of(sim: SimulatorHandle) -> ManualClock:
    assert isinstance(sim.clock, ManualClock)
    return sim.clock


def make(
    sim: SimulatorHandle,
    session: aiohttp.ClientSession,
    *,
    region: str = "EU",
    tokens: TokenStore | None = None,
    breakers: BreakerRegistry | None = None,
    password: str | None = None,
    name: str = "sim",
    **settings: Any,
) -> SmartProvider:
    login = sim.logins["smart_eu" if region == "EU" else "smart_intl"]
    account = AccountConfig(
        name=name,
        provider="smart",
        index=0,
        simulator=True,
        settings={
            "region": region,
            "username": login["username"],
            "request_timeout": 0.6,  # well under the 1 s hang, well over a loaded machine
            **settings,
        },
        secrets={"password": Secret(password or login["password"])},
    )
    return SmartProvider(
        account,
        session,
        sim.clock,
        tokens if tokens is not None else MemoryTokenStore(),
        sim_urls=sim.urls["smart"],
        breakers=breakers if breakers is not None else BreakerRegistry(),
    )


def login_attempts(sim: SimulatorHandle) -> int:
    """Login chains the simulated gateway saw (each chain starts at awsapi or sg-app-api)."""
    return int(sim.smart.throttle.attempts)


def assert_matches_report(sim: SimulatorHandle, vin: str, snap: Any) -> None:
    """The snapshot equals the car's last report as the simulator holds it."""
    s = sim.fleet.state(vin)
    assert snap.car_time == pytest.approx(round(s.report_time * 1000) / 1000)
    assert snap.get("battery_soc") == pytest.approx(round(s.soc) / 100)
    assert snap.get("odometer") == math.floor(s.odometer_km) * 1000  # whole km on the wire
    assert snap.get("locked") is s.locked
    assert snap.get("charge_limit") == pytest.approx(round(s.charge_limit * 10) / 1000)
    assert snap.get("cabin_temperature") == pytest.approx(s.cabin_temp_c, abs=0.001)
    assert snap.get("tyre_pressure_front_left") == pytest.approx(s.tyre_kpa[0] * 1000, abs=1.0)
    if s.gps_fix:
        assert snap.get("latitude") == pytest.approx(s.lat, abs=1e-6)
        assert snap.get("longitude") == pytest.approx(s.lon, abs=1e-6)
    else:
        assert snap.get("latitude") is None


# -- login, discovery, reading ------------------------------------------------------------------


async def test_eu_login_discovery_and_snapshots(
    sim: SimulatorHandle, session: aiohttp.ClientSession
) -> None:
    p = make(sim, session)
    assert isinstance(p, Provider)
    await p.start()
    infos = await p.vehicles()
    expected = {vin: sim.fleet.vehicle(vin).spec.series for vin in sim.info()["vins"]["smart_eu"]}
    assert {i.vin: i.series for i in infos} == expected
    assert sorted(i.model for i in infos) == ["#1", "#3", "#5"]
    assert all(i.make == "smart" and i.provider == "smart" and i.account == "sim" for i in infos)
    for info in infos:
        assert_matches_report(sim, info.vin, await p.snapshot(info.vin))
    assert p.auth.stats.full_logins == 1
    assert login_attempts(sim) == 1


async def test_intl_login_and_snapshot(
    sim: SimulatorHandle, session: aiohttp.ClientSession
) -> None:
    p = make(sim, session, region="INTL")
    await p.start()
    infos = await p.vehicles()
    assert [i.vin for i in infos] == sim.info()["vins"]["smart_intl"]
    assert infos[0].series.endswith("_IL")
    assert_matches_report(sim, infos[0].vin, await p.snapshot(infos[0].vin))


async def test_wrong_password_needs_the_user(
    sim: SimulatorHandle, session: aiohttp.ClientSession
) -> None:
    for region in ("EU", "INTL"):
        p = make(sim, session, region=region, password="wrong")
        with pytest.raises(ReauthRequired):
            await p.start()


@pytest.mark.parametrize(
    ("code", "kind"),
    [("401020", ReauthRequired), ("206001", ReauthRequired), ("403120", RateLimited)],
)
async def test_gigya_login_challenges(
    sim: SimulatorHandle, session: aiohttp.ClientSession, code: str, kind: type[Exception]
) -> None:
    """Captcha and consent need the owner in the app; a lockout is a rate limit that lifts."""
    sim.faults.script("login_challenge", endpoint="accounts.login", cloud="smart", code=code)
    p = make(sim, session)
    with pytest.raises(kind) as info:
        await p.start()
    assert info.value.code == code  # type: ignore[attr-defined]
    if kind is ReauthRequired:
        assert "smart app" in str(info.value)


async def test_gigya_400006_is_not_a_wrong_password(
    sim: SimulatorHandle, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """400006 "invalid parameter value" (here: no bootstrap cookie) is our request's fault: a
    plain login failure, retried after the breaker's pause, never 're-enter the password'."""
    from exporter.providers.smart import login

    async def no_bootstrap(_transport: object) -> str:
        return ""

    monkeypatch.setattr(login, "_gigya_bootstrap", no_bootstrap)
    p = make(sim, session)
    with pytest.raises(AuthError) as info:
        await p.start()
    assert info.value.code == "400006"
    assert not isinstance(info.value, ReauthRequired)


async def test_the_5_is_read_on_v2_and_a_wrong_host_heals(
    sim: SimulatorHandle, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    p = make(sim, session)
    infos = {i.model: i.vin for i in await p.vehicles()}
    vin5 = infos["#5"]
    assert p._vehicles[vin5].v2
    assert not p._vehicles[infos["#1"]].v2
    # Pretend discovery had routed the #5 to v1: the cloud answers 8063 and the provider moves it.
    p._vehicles[vin5] = p._vehicles[vin5].__class__(**{**_fields(p._vehicles[vin5]), "v2": False})
    with caplog.at_level(logging.WARNING, logger="exporter.providers.smart"):
        snap = await p.snapshot(vin5)
    assert_matches_report(sim, vin5, snap)
    assert p._vehicles[vin5].v2
    assert any("8063" in r.getMessage() for r in caplog.records)


def _fields(rec: Any) -> dict[str, Any]:
    return {k: getattr(rec, k) for k in rec.__slots__}


async def test_vins_filter(sim: SimulatorHandle, session: aiohttp.ClientSession) -> None:
    eu = sim.info()["vins"]["smart_eu"]
    p = make(sim, session, vins=[eu[1]])
    assert [i.vin for i in await p.vehicles()] == [eu[1]]
    with pytest.raises(VehicleNotLinked):
        await p.snapshot(eu[0])


async def test_the_5_dc_power_is_measured(
    sim: SimulatorHandle, session: aiohttp.ClientSession
) -> None:
    p = make(sim, session)
    vin5 = {i.model: i.vin for i in await p.vehicles()}["#5"]
    clock = clock_of(sim)
    for _ in range(4 * 24 * 30):  # wait (simulated) until the #5 reports a DC session
        state = sim.fleet.state(vin5)
        if state.charging and state.dc and state.charge_power_kw > 0:
            break
        clock.advance(900)
    else:
        pytest.fail("the simulated #5 never DC-charged within 30 days")
    snap = await p.snapshot(vin5)
    assert snap.get("charging_state") == "dc_charging"
    assert snap.get("charging_current_dc") == pytest.approx(state.charge_current_a, abs=0.1)
    assert snap.get("charging_voltage_dc") == pytest.approx(state.charge_voltage_v, abs=0.5)
    power = state.charge_current_a * state.charge_voltage_v
    assert snap.get("charging_power") == pytest.approx(power, rel=0.005)


# -- the token ladder ---------------------------------------------------------------------------


async def test_restart_with_stored_tokens_needs_no_login(
    sim: SimulatorHandle, session: aiohttp.ClientSession
) -> None:
    store = MemoryTokenStore()
    first = make(sim, session, tokens=store)
    vin = (await first.vehicles())[0].vin
    await first.close()
    saved = store.load("smart:sim")
    assert saved is not None
    login = sim.logins["smart_eu"]
    assert login["password"] not in repr(saved)
    second = make(sim, session, tokens=store)
    await second.start()
    assert_matches_report(sim, vin, await second.snapshot(vin))
    assert second.auth.stats.full_logins == 0
    assert second.auth.state.device_id == first.auth.state.device_id
    assert login_attempts(sim) == 1


async def test_restart_through_the_encrypted_vault(
    sim: SimulatorHandle, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    key = os.urandom(32)
    db = tmp_path / "tokens.db"
    first = make(sim, session, tokens=EncryptedTokenStore(db, [key]))
    vin = (await first.vehicles())[0].vin
    assert first.auth.state.api is not None
    token = first.auth.state.api.access_token
    # a new process: a new store object on the same file, a new provider
    second = make(sim, session, tokens=EncryptedTokenStore(db, [key]))
    assert_matches_report(sim, vin, await second.snapshot(vin))
    assert second.auth.stats.full_logins == 0
    assert login_attempts(sim) == 1
    raw = b"".join(f.read_bytes() for f in tmp_path.iterdir())
    assert token.encode() not in raw
    assert sim.logins["smart_eu"]["password"].encode() not in raw


async def test_expired_session_is_renewed_by_reposting_the_oauth_token(
    sim: SimulatorHandle, session: aiohttp.ClientSession
) -> None:
    p = make(sim, session)
    vin = (await p.vehicles())[0].vin
    sim.faults.script("token_expired", endpoint="status")  # the token dies on the next status
    assert_matches_report(sim, vin, await p.snapshot(vin))
    clock_of(sim).advance(1.5 * DAY)  # and the simulated API session outlives its real lifetime
    assert_matches_report(sim, vin, await p.snapshot(vin))
    assert p.auth.stats.by_rung == ["full_login", "repost", "repost"]
    assert login_attempts(sim) == 1


async def test_dead_oauth_token_uses_the_refresh_token_exchange(
    sim: SimulatorHandle, session: aiohttp.ClientSession
) -> None:
    p = make(sim, session)
    vin = (await p.vehicles())[0].vin
    sim.faults.script("main_token_expired", endpoint="status")  # session and OAuth token die
    assert_matches_report(sim, vin, await p.snapshot(vin))
    assert p.auth.stats.by_rung == ["full_login", "repost", "oauth_refresh"]
    clock_of(sim).advance(8 * DAY)  # past the OAuth token's 7 days, within the refresh's 30
    assert_matches_report(sim, vin, await p.snapshot(vin))
    assert p.auth.stats.by_rung[-2:] == ["repost", "oauth_refresh"]
    assert p.auth.stats.full_logins == 1
    assert login_attempts(sim) == 1


async def test_all_tokens_dead_means_one_full_login_for_many_callers(
    sim: SimulatorHandle, session: aiohttp.ClientSession
) -> None:
    p = make(sim, session)
    await p.vehicles()
    clock_of(sim).advance(31 * DAY)  # session, OAuth and refresh token all expired
    results = await asyncio.gather(*(p.vehicles() for _ in range(6)))
    assert all(len(r) == 3 for r in results)
    assert p.auth.stats.by_rung == ["full_login", "repost", "oauth_refresh", "full_login"]
    assert p.auth.stats.renewals == 2  # the start-up login and ONE shared renewal
    assert login_attempts(sim) == 2


async def test_a_failing_renewal_is_shared_not_repeated_per_caller(
    sim: SimulatorHandle, session: aiohttp.ClientSession
) -> None:
    p = make(sim, session)
    await p.vehicles()
    clock_of(sim).advance(31 * DAY)
    sim.faults.set_rate("forbidden", 1.0, endpoint="login", cloud="smart")
    results = await asyncio.gather(*(p.vehicles() for _ in range(6)), return_exceptions=True)
    assert all(isinstance(r, RateLimited) for r in results)
    assert p.auth.stats.renewals == 2
    assert len([e for e in sim.faults.log if e.endpoint == "login"]) == 1


# -- the login circuit breaker ------------------------------------------------------------------


def allowed_logins(horizon: float) -> int:
    """Most login attempts a quiet window that starts at 2 min and grows x1.5 (cap 90 min) admits
    in ``horizon`` seconds of non-stop failures (computed from the rule, not from the code)."""
    t, window, n = 0.0, 120.0, 1
    while True:
        t += window
        if t > horizon:
            return n
        n += 1
        window = min(window * 1.5, 90 * 60)


async def test_waf_storm_gets_a_widening_quiet_window(
    sim: SimulatorHandle, session: aiohttp.ClientSession
) -> None:
    clock = clock_of(sim)
    sim.faults.set_rate("forbidden", 1.0, endpoint="login", cloud="smart")  # the WAF blocks all
    p = make(sim, session)
    horizon, step, tries = 3 * 3600.0, 30.0, 0
    end = clock.now() + horizon
    while clock.now() < end:
        with pytest.raises(RateLimited) as info:
            await p.start()
        assert info.value.retry_after is not None
        assert info.value.retry_after > 0
        tries += 1
        clock.advance(step)
    sent = [e for e in sim.faults.log if e.endpoint == "login"]
    assert tries == horizon / step
    assert 3 <= len(sent) <= allowed_logins(horizon)
    assert len(sent) < tries / 20
    # The WAF lifts: after the current quiet window one login gets through and works.
    sim.faults.reset()
    breaker = p.auth._breaker
    clock.advance(max(0.0, breaker.quiet_until - clock.now()))
    await p.start()
    assert len(await p.vehicles()) == 3


async def test_breaker_is_shared_by_every_provider_of_a_username(
    sim: SimulatorHandle, session: aiohttp.ClientSession
) -> None:
    registry = BreakerRegistry()
    sim.faults.script("forbidden", 1, endpoint="login", cloud="smart")
    first = make(sim, session, breakers=registry, name="a")
    with pytest.raises(RateLimited):
        await first.start()
    before = login_attempts(sim)
    second = make(sim, session, breakers=registry, name="b")  # e.g. re-created after a reload
    with pytest.raises(LoginSuppressed) as info:
        await second.start()
    assert info.value.retry_after == pytest.approx(br.FLOOR)
    assert login_attempts(sim) == before  # nothing was sent
    clock_of(sim).advance(br.FLOOR)
    await second.start()


async def test_other_login_failures_pause_logins_for_a_minute(
    sim: SimulatorHandle, session: aiohttp.ClientSession
) -> None:
    sim.faults.script("server_error", 1, endpoint="login", cloud="smart")
    p = make(sim, session)
    with pytest.raises(UpstreamUnavailable):
        await p.start()
    with pytest.raises(LoginSuppressed) as info:
        await p.start()
    assert info.value.retry_after == pytest.approx(br.OTHER_FAILURE_QUIET)
    clock_of(sim).advance(br.OTHER_FAILURE_QUIET)
    await p.start()


# -- vehicle selection --------------------------------------------------------------------------


async def test_another_client_selecting_a_car_is_healed_by_reselecting(
    sim: SimulatorHandle, session: aiohttp.ClientSession
) -> None:
    p = make(sim, session)
    p.bind_vin_headers = False  # rely on the account-wide selection alone
    vins = [i.vin for i in await p.vehicles()]
    username = sim.logins["smart_eu"]["username"]
    await p.snapshot(vins[0])
    sim.smart.select(username, vins[1])  # the phone app looks at another car
    assert_matches_report(sim, vins[0], await p.snapshot(vins[0]))
    assert sim.smart.identity.account(username).selected == vins[0]
    sim.faults.script("other_client_selected", endpoint="soc")  # mid-snapshot, between calls
    assert_matches_report(sim, vins[0], await p.snapshot(vins[0]))


async def test_binding_headers_make_another_clients_selection_harmless(
    sim: SimulatorHandle, session: aiohttp.ClientSession
) -> None:
    p = make(sim, session)
    vins = [i.vin for i in await p.vehicles()]
    username = sim.logins["smart_eu"]["username"]
    await p.snapshot(vins[0])
    sim.smart.select(username, vins[2])
    assert_matches_report(sim, vins[0], await p.snapshot(vins[0]))
    assert sim.smart.identity.account(username).selected == vins[2]  # we did not need to touch it


async def test_concurrent_snapshots_of_one_account_do_not_fight_over_the_selection(
    sim: SimulatorHandle, session: aiohttp.ClientSession
) -> None:
    p = make(sim, session)
    p.bind_vin_headers = False
    vins = [i.vin for i in await p.vehicles()]
    snaps = await asyncio.gather(*(p.snapshot(v) for v in vins * 2))
    for vin, snap in zip(vins * 2, snaps, strict=True):
        assert snap.vin == vin
        assert_matches_report(sim, vin, snap)


# -- every fault knob ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "endpoint", "error", "code", "params"),
    [
        ("data_unavailable", "status", UpstreamUnavailable, "8153", {}),
        ("rate_limited", "status", RateLimited, "429", {"retry_after": 45}),
        ("forbidden", "status", RateLimited, "403", {"retry_after": 20}),
        ("server_error", "status", UpstreamUnavailable, "502", {"status": 502}),
        ("timeout", "status", UpstreamTimeout, "", {}),
        ("malformed_json", "status", BadReply, "", {}),
        ("garbage_fields", "status", BadReply, "", {"fields": ("vehicleStatus.updateTime",)}),
        ("data_unavailable", "soc", UpstreamUnavailable, "8153", {}),
        ("malformed_json", "soc", BadReply, "", {}),
        ("server_error", "select", UpstreamUnavailable, "503", {}),
        ("timeout", "vehicles", UpstreamTimeout, "", {}),
        ("data_unavailable", "session", UpstreamUnavailable, "8153", {}),
    ],
)
async def test_fault_knobs_end_in_a_typed_error_and_nothing_partial(
    sim: SimulatorHandle,
    session: aiohttp.ClientSession,
    kind: str,
    endpoint: str,
    error: type[ProviderError],
    code: str,
    params: dict[str, Any],
) -> None:
    p = make(sim, session)
    if endpoint == "select":
        p.bind_vin_headers = False  # only an unbound poll selects the car (see the test below)
    vin = (await p.vehicles())[0].vin
    if endpoint != "select":
        await p.snapshot(vin)  # selected and warm (a selected car is not selected again)
    if endpoint == "session":
        clock_of(sim).advance(1.5 * DAY)  # the next call must renew through session/secure
    sim.faults.script(kind, 1, endpoint=endpoint, cloud="smart", **params)
    with pytest.raises(error) as info:
        if endpoint == "vehicles":
            await p.vehicles()
        else:
            await p.snapshot(vin)
    assert info.value.code == code
    if "retry_after" in params:
        assert info.value.retry_after == pytest.approx(params["retry_after"])
    # The provider is not wedged: the next poll reads the car as it reported.
    assert_matches_report(sim, vin, await p.snapshot(vin))


async def test_bound_polls_never_select_so_an_accounts_cars_poll_in_parallel(
    sim: SimulatorHandle, session: aiohttp.ClientSession
) -> None:
    """With the VIN binding headers a poll needs no session/update: a broken selection endpoint does
    not stop polls, and a command (which does select) still reports it."""
    p = make(sim, session)
    vins = [i.vin for i in await p.vehicles()]
    sim.faults.script("server_error", 100, endpoint="select", cloud="smart")
    snaps = await asyncio.gather(*(p.snapshot(v) for v in vins))
    for vin, snap in zip(vins, snaps, strict=True):
        assert_matches_report(sim, vin, snap)
    with pytest.raises(UpstreamUnavailable):
        await p.command(vins[0], Command("horn"))


@pytest.mark.parametrize(
    ("kind", "endpoint", "params"),
    [
        ("token_expired", "soc", {}),
        ("main_token_expired", "vehicles", {}),
        ("server_error", "state", {}),
        ("malformed_json", "state", {}),
        ("timeout", "state", {}),
    ],
)
async def test_fault_knobs_that_are_recovered_within_the_poll(
    sim: SimulatorHandle,
    session: aiohttp.ClientSession,
    kind: str,
    endpoint: str,
    params: dict[str, Any],
) -> None:
    p = make(sim, session)
    vin = (await p.vehicles())[0].vin
    sim.faults.script(kind, 1, endpoint=endpoint, cloud="smart", **params)
    await p.vehicles()
    assert_matches_report(sim, vin, await p.snapshot(vin))
    assert any(e.endpoint == endpoint for e in sim.faults.log)


async def test_garbage_fields_become_unknown_not_a_crash(
    sim: SimulatorHandle, session: aiohttp.ClientSession
) -> None:
    p = make(sim, session)
    vin = (await p.vehicles())[0].vin
    ev = "vehicleStatus.additionalVehicleStatus.electricVehicleStatus"
    sim.faults.script(
        "garbage_fields",
        endpoint="status",
        fields=(f"{ev}.chargeLevel", "vehicleStatus.basicVehicleStatus.position.latitude"),
        value="garbage",
    )
    snap = await p.snapshot(vin)
    assert snap.get("battery_soc") is None
    assert snap.get("latitude") is None
    assert snap.get("odometer") == math.floor(sim.fleet.state(vin).odometer_km) * 1000
    sim.faults.set_rate("garbage_fields", 1.0, endpoint="status", cloud="smart")  # random leaves
    for _ in range(10):
        with contextlib.suppress(BadReply):  # only when the garbled leaf was updateTime itself
            await p.snapshot(vin)


async def test_8040_is_tolerated_twice_then_the_car_is_gone(
    sim: SimulatorHandle, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The simulator has no 8040 knob; inject it at the API layer, under the real provider logic.
    p = make(sim, session)
    vin = (await p.vehicles())[0].vin
    real_call = p.api.call
    failures = {"left": 3}

    async def call(method: str, base: str, path: str, **kw: Any) -> Reply:
        if "/status/" in path and failures["left"] > 0:
            failures["left"] -= 1
            raise VehicleUnbound("no vehicle bound", code="8040")
        return await real_call(method, base, path, **kw)

    monkeypatch.setattr(p.api, "call", call)
    for _ in range(2):
        with pytest.raises(UpstreamUnavailable) as info:
            await p.snapshot(vin)
        assert info.value.code == "8040"
    with pytest.raises(VehicleNotLinked) as gone:
        await p.snapshot(vin)
    assert gone.value.code == "8040"
    assert_matches_report(sim, vin, await p.snapshot(vin))  # and a later success resets it


# -- commands -----------------------------------------------------------------------------------


async def test_commands_reach_the_car(sim: SimulatorHandle, session: aiohttp.ClientSession) -> None:
    p = make(sim, session)
    vin = (await p.vehicles())[0].vin
    clock = clock_of(sim)
    assert p.supported_commands(vin) >= {"lock", "unlock", "climate_start", "charge_limit"}

    async def after(command: Command) -> Any:
        receipt = await p.command(vin, command)
        assert receipt.accepted
        assert receipt.cloud_id
        clock.advance(120)
        return await p.snapshot(vin)

    assert (await after(Command("unlock"))).get("locked") is False
    assert (await after(Command("lock"))).get("locked") is True
    assert (await after(Command("climate_start", {"temperature": 22}))).get("climate_active")
    assert (await after(Command("climate_stop"))).get("climate_active") is False
    assert (await after(Command("charge_limit", {"percent": 70}))).get("charge_limit") == (
        pytest.approx(0.7)
    )
    for name in ("horn", "flash", "find", "windows_close"):
        assert (await p.command(vin, Command(name))).accepted
    assert (await p.command(vin, Command("seat_heating", {"seat": "driver", "level": 2}))).accepted


async def test_command_refusals(sim: SimulatorHandle, session: aiohttp.ClientSession) -> None:
    p = make(sim, session)
    vin = (await p.vehicles())[0].vin
    state = sim.fleet.live_state(vin)
    assert not state.plugged  # a parked, unplugged car cannot start charging
    # the cloud only queues it: accepted now, refused by the car when it acts
    receipt = await p.command(vin, Command("charge_start"))
    assert receipt.accepted
    clock_of(sim).advance(120)
    snap = await p.snapshot(vin)
    assert snap.get("charging_state") not in ("charging", "dc_charging")
    last = sim.fleet.ground_truth(vin)["commands"][-1]
    assert last["name"] == "charge_start" and last["ok"] is False
    assert "not plugged" in last["reason"] and last["effective"] > last["time"]
    # a car that refuses whatever its state (the strict cloud's fault knob): accepted, not done
    sim.faults.script("car_refuses", endpoint="command", cloud="smart")
    was_locked = sim.fleet.live_state(vin).locked
    assert (await p.command(vin, Command("unlock" if was_locked else "lock"))).accepted
    clock_of(sim).advance(120)
    assert sim.fleet.live_state(vin).locked is was_locked
    assert sim.fleet.ground_truth(vin)["commands"][-1]["ok"] is False
    attempts = len(sim.faults.log)
    off_grid = Command("charge_limit", {"percent": 42})
    with pytest.raises(CommandRejected):
        p.validate_command(vin, off_grid)  # what the command API asks before accepting a request
    with pytest.raises(CommandRejected):
        await p.command(vin, off_grid)  # never sent
    assert len(sim.faults.log) == attempts
    sim.faults.script("rate_limited", endpoint="command", cloud="smart")
    with pytest.raises(RateLimited):  # a limit is not a refusal: it may be retried
        await p.command(vin, Command("lock"))


async def test_commands_on_the_5_use_the_v2_host(
    sim: SimulatorHandle, session: aiohttp.ClientSession
) -> None:
    p = make(sim, session)
    vin5 = {i.model: i.vin for i in await p.vehicles()}["#5"]
    assert (await p.command(vin5, Command("flash"))).accepted


# -- secrets ------------------------------------------------------------------------------------


async def test_no_secret_or_vin_reaches_the_logs(
    sim: SimulatorHandle, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    p = make(sim, session)
    vins = [i.vin for i in await p.vehicles()]
    sim.faults.script("token_expired", endpoint="status")
    sim.faults.script("server_error", endpoint="soc")
    for vin in vins:
        with contextlib.suppress(ProviderError):
            await p.snapshot(vin)
    clock_of(sim).advance(31 * DAY)
    await p.vehicles()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "full login" in text  # the logs did record the events
    state = p.auth.state
    assert state.api is not None
    assert state.oauth is not None
    secrets_ = [
        sim.logins["smart_eu"]["password"],
        state.api.access_token,
        state.api.refresh_token,
        state.oauth.access_token,
        state.oauth.refresh_token,
        *vins,
    ]
    for secret in secrets_:
        assert secret
        assert secret not in text


async def test_auth_errors_are_typed(sim: SimulatorHandle, session: aiohttp.ClientSession) -> None:
    # Sanity: everything above that is auth-related derives from the protocol's AuthError.
    assert issubclass(ReauthRequired, AuthError)
    assert math.isclose(br.GROWTH, 1.5)


@pytest.mark.parametrize("region", ["EU", "INTL"])
async def test_binding_headers_built_once_are_sent_unchanged_on_every_call(
    sim: SimulatorHandle, session: aiohttp.ClientSession, region: str
) -> None:
    """The per-car cache of the X-Vehicle-* headers: every call sends what ``_binding`` builds,
    INTL's x-client-id is added to a copy (the cached mapping never grows), and re-reading the
    car list keeps only the cars still on the account."""
    p = make(sim, session, region=region)
    vins = [i.vin for i in await p.vehicles()]
    sent: list[dict[str, str]] = []
    call = p.api.call

    async def spy(*args: Any, headers: Mapping[str, str] | None = None, **kw: Any) -> Any:
        sent.append(dict(headers or {}))
        return await call(*args, headers=headers, **kw)

    p.api.call = spy  # type: ignore[method-assign]
    for _ in range(2):
        assert_matches_report(sim, vins[0], await p.snapshot(vins[0]))
    rec = p._vehicles[vins[0]]
    expected = p._binding(rec)
    client_id = (await p.auth.session()).client_id if region == "INTL" else ""
    if client_id:
        expected["x-client-id"] = client_id
    data_calls = [h for h in sent if any(k.lower() == "x-vehicle-identifier" for k in h)]
    assert len(data_calls) >= 4
    assert all(h == expected for h in data_calls)
    assert dict(p._bindings[rec]) == p._binding(rec)  # not the copy with x-client-id
    p.settings = dataclasses.replace(p.settings, vins=frozenset(vins[1:]))
    await p.vehicles()
    assert rec not in p._bindings
    assert not any(vin == vins[0] for _, vin in p._paths)


async def test_a_token_rotated_by_another_call_meanwhile_does_not_spend_the_renewal(
    sim: SimulatorHandle, session: aiohttp.ClientSession
) -> None:
    """A journal grant rotates the account's token while another car's poll is in flight: that
    poll's 1402 is answered by retrying with the current token, and its one renewal stays
    available for a token that really died (here the rotated one, which the cloud never issued)."""
    from exporter.providers.smart.errors import TokenExpired

    p = make(sim, session)
    vin = (await p.vehicles())[0].vin
    real_once = p._once
    calls = 0

    async def rotated_meanwhile(*args: Any, **kwargs: Any) -> Reply:
        nonlocal calls
        calls += 1
        if calls == 1:
            cur = p.auth.state.api
            assert cur is not None
            p.auth.state.api = dataclasses.replace(cur, access_token="rotated-elsewhere")
            raise TokenExpired("1402: token expired", code="1402")
        return await real_once(*args, **kwargs)

    p._once = rotated_meanwhile  # type: ignore[method-assign]
    assert_matches_report(sim, vin, await p.snapshot(vin))
    assert p.auth.stats.renewals == 2  # the start-up login and one renewal of the dead token
