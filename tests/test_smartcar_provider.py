"""The Smartcar provider against the simulator over loopback HTTP: Connect, polling through
``/batch``, the request budget, and what each Smartcar error does to the connection."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from exporter.clock import ManualClock
from exporter.config import AccountConfig, Secret
from exporter.providers.base import (
    BadReply,
    BudgetExhausted,
    Command,
    RateLimited,
    ReauthRequired,
    TokenStore,
    UpstreamUnavailable,
)
from exporter.providers.smartcar import scopes
from exporter.providers.smartcar.budget import month_end
from exporter.providers.smartcar.provider import SmartcarProvider
from exporter.providers.smartcar.settings import from_account
from exporter.simulator.fleet import Fleet
from exporter.simulator.smartcar.errors import ApiFault
from exporter.simulator.smartcar.fleet_adapter import DemoApp, demo_cloud
from exporter.simulator.smartcar.headless import consent
from exporter.simulator.smartcar.server import SmartcarSimulator
from exporter.simulator.smartcar.state import SmartcarCloud
from exporter.tokens import EncryptedTokenStore, generate_key, parse_keys

REDIRECT = "http://127.0.0.1:9/connect/smartcar/callback"
DAY = 86400.0


@dataclass
class World:
    clock: ManualClock
    fleet: Fleet
    cloud: SmartcarCloud
    creds: DemoApp
    sim: SmartcarSimulator
    http: aiohttp.ClientSession
    store: TokenStore

    def provider(self, **settings: Any) -> SmartcarProvider:
        account = AccountConfig(
            name="sc",
            provider="smartcar",
            index=0,
            simulator=True,
            settings={"client_id": self.creds.client_id, "redirect_uri": REDIRECT, **settings},
            secrets={
                "client_secret": Secret(self.creds.client_secret),
                "management_token": Secret(self.creds.management_token),
            },
        )
        s = from_account(account, sim_urls=self.sim.urls)
        return SmartcarProvider(s, self.http, self.clock, self.store)

    async def connect(self, p: SmartcarProvider, email: str | None = None) -> list[str]:
        loc = await consent(self.http, scopes.authorize_url(p.settings, "st"), email=email)
        q = parse_qs(urlsplit(loc).query)
        assert "code" in q, q
        return [i.vin for i in await p.connect(q["code"][0])]

    def calls(self, vin: str) -> int:
        return self.cloud.calls_this_month(self.creds.client_id, vin)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = ManualClock()
    fleet = Fleet(["Tesla Model 3", "Volkswagen ID.4"], seed=5, clock=clock)
    cloud, creds = demo_cloud(fleet, clock, redirect_uris=(REDIRECT,))
    store = EncryptedTokenStore(tmp_path / "h.db", parse_keys(generate_key(), "k"))
    async with SmartcarSimulator(cloud) as sim, aiohttp.ClientSession() as http:
        yield World(clock, fleet, cloud, creds, sim, http, store)


async def test_connect_then_poll_reads_the_vehicle_model(world: World) -> None:
    p = world.provider()
    vins = await world.connect(p)
    assert sorted(vins) == sorted(world.fleet.vins_for("smartcar"))
    vin = vins[0]
    truth = world.fleet.state(vin)
    snap = await p.snapshot(vin)
    v = snap.values
    assert snap.provider == "smartcar" and snap.source == "poll"
    assert snap.car_time == pytest.approx(truth.report_time)
    assert v["battery_soc"] == pytest.approx(truth.soc / 100, abs=1e-3)
    assert v["odometer"] == pytest.approx(truth.odometer_km * 1000, abs=10)
    assert v["electric_range"] == pytest.approx(truth.range_km * 1000, abs=10)
    assert v["charge_limit"] == pytest.approx(truth.charge_limit / 100, abs=0.01)
    assert v["tyre_pressure_rear_left"] == pytest.approx(truth.tyre_kpa[2] * 1000, abs=60)
    assert v["locked"] is truth.locked
    assert v["charger_connected"] is truth.plugged
    expected_state = (
        "charging" if truth.charging else ("disconnected" if not truth.plugged else None)
    )
    if expected_state is not None:
        assert v["charging_state"] == expected_state
    assert "latitude" not in v  # location is opt-in (scope minimisation)
    info = {i.vin: i for i in await p.vehicles()}[vin]
    assert (info.make, info.model, info.year) == ("Tesla", "Model 3", "2024")


async def test_scopes_are_minimal_and_marked_required(world: World) -> None:
    p = world.provider()
    url = scopes.authorize_url(p.settings, "st")
    scope = parse_qs(urlsplit(url).query)["scope"][0].split()
    assert "required:read_vin" in scope and "required:read_vehicle_info" in scope
    assert "read_location" not in " ".join(scope) and "control_security" not in scope
    vin = (await world.connect(p))[0]
    assert p.supported_commands(vin) == frozenset()  # no control scopes without commands = true
    grant = next(iter(world.cloud.refresh.values()))
    assert "read_location" not in grant.scopes and "read_battery" in grant.scopes
    with_loc = world.provider(location=True, commands=True)
    scope2 = parse_qs(urlsplit(scopes.authorize_url(with_loc.settings, "s")).query)["scope"][0]
    assert "read_location" in scope2 and "control_charge" in scope2
    assert "required:read_location" not in scope2


async def test_one_batch_call_per_poll_counts_each_path(world: World) -> None:
    p = world.provider()
    vin = (await world.connect(p))[0]
    before = world.calls(vin)
    await p.snapshot(vin)
    cost = len(p._vehicles[vin].paths)
    assert world.calls(vin) - before == cost
    assert p.budget.used(vin) == world.calls(vin)  # our count agrees with Smartcar's


async def test_budget_spreads_the_month_and_refuses_without_sending(world: World) -> None:
    p = world.provider(budget_calls_per_vehicle=60, budget_reserve_calls=0)
    vin = (await world.connect(p))[0]
    cost = len(p._vehicles[vin].paths)
    now = world.clock.now()
    left_polls = (60 - p.budget.used(vin)) // cost
    assert p.min_poll_interval(vin) == pytest.approx((month_end(now) - now) / left_polls)
    sent = 0
    with pytest.raises(BudgetExhausted) as exc:
        for _ in range(100):
            await p.snapshot(vin)
            sent += 1
    assert sent == left_polls
    assert exc.value.retry_after == pytest.approx(month_end(now) - now)
    calls = world.calls(vin)
    with pytest.raises(BudgetExhausted):
        await p.snapshot(vin)
    assert world.calls(vin) == calls  # refused before sending
    assert p.min_poll_interval(vin) == pytest.approx(month_end(now) - now)
    # the count survives a restart, and the next month starts afresh
    again = world.provider(budget_calls_per_vehicle=60, budget_reserve_calls=0)
    await again.start()
    assert again.budget.used(vin) == p.budget.used(vin)
    world.clock.set(month_end(now) + 1)
    await again.snapshot(vin)


async def test_app_wide_budget(world: World) -> None:
    p = world.provider(budget_app_calls_per_month=30, budget_reserve_calls=0)
    vins = await world.connect(p)
    with pytest.raises(BudgetExhausted) as exc:
        for _ in range(10):
            for vin in vins:
                await p.snapshot(vin)
    assert exc.value.code == "app_month"
    assert p.budget.app_used() <= 30


async def test_rate_limit_obeys_retry_after_and_backs_off(world: World) -> None:
    p = world.provider()
    vin = (await world.connect(p))[0]
    world.cloud.inject(vin, ApiFault("RATE_LIMIT", "VEHICLE", retry_after=42))
    with pytest.raises(RateLimited) as exc:
        await p.snapshot(vin)
    assert exc.value.retry_after is not None and exc.value.retry_after >= 42
    waits = []
    for _ in range(3):
        world.cloud.inject(vin, ApiFault("RATE_LIMIT", "VEHICLE", retry_after=1))
        with pytest.raises(RateLimited) as exc:
            await p.snapshot(vin)
        waits.append(exc.value.retry_after)
    assert waits[0] < waits[1] < waits[2] and waits[2] == pytest.approx(4 * waits[0])
    world.cloud.inject(vin, ApiFault("RATE_LIMIT", "SMARTCAR_API"))  # no Retry-After at all
    with pytest.raises(RateLimited) as exc:
        await p.snapshot(vin)
    assert exc.value.retry_after is not None and exc.value.retry_after > 0
    await p.snapshot(vin)  # success resets the backoff
    world.cloud.inject(vin, ApiFault("RATE_LIMIT", "VEHICLE", retry_after=1))
    with pytest.raises(RateLimited) as exc:
        await p.snapshot(vin)
    assert exc.value.retry_after == pytest.approx(waits[0] / 2)  # back to the first step


async def test_billing_430_ends_the_month_for_the_vehicle(world: World) -> None:
    p = world.provider()
    vin = (await world.connect(p))[0]
    world.cloud.inject(vin, ApiFault("BILLING", "VEHICLE_REQUEST_LIMIT"))
    with pytest.raises(BudgetExhausted):
        await p.snapshot(vin)
    calls = world.calls(vin)
    with pytest.raises(BudgetExhausted):
        await p.snapshot(vin)
    assert world.calls(vin) == calls


@pytest.mark.parametrize(
    ("fault", "reauthenticate"),
    [
        (ApiFault("CONNECTED_SERVICES_ACCOUNT", "ACCOUNT_ISSUE"), False),
        (ApiFault("CONNECTED_SERVICES_ACCOUNT", "AUTHENTICATION_FAILED"), True),
        (ApiFault("PERMISSION"), False),
    ],
)
async def test_owner_errors_mark_the_car_for_reconnect(
    world: World, caplog: pytest.LogCaptureFixture, fault: ApiFault, reauthenticate: bool
) -> None:
    p = world.provider()
    vin = (await world.connect(p))[0]
    world.cloud.inject(vin, fault, times=-1)
    with caplog.at_level(logging.WARNING), pytest.raises(ReauthRequired) as exc:
        await p.snapshot(vin)
    assert vin in p.reauth
    url = p.reauth[vin].url
    assert url in caplog.text and "/connect/smartcar/reconnect?" in url
    if reauthenticate:
        assert "/oauth/reauthenticate" in exc.value.reauth_url  # Smartcar's own repair link
    calls = world.calls(vin)
    with pytest.raises(ReauthRequired):
        await p.snapshot(vin)
    assert world.calls(vin) == calls  # no spending while we wait for the owner
    assert p.min_poll_interval(vin) >= p.settings.reauth_probe_interval - 1
    world.cloud.clear_faults(vin)
    world.clock.advance(p.settings.reauth_probe_interval)
    await p.snapshot(vin)  # the daily probe finds it fixed
    assert vin not in p.reauth


async def test_reconnect_through_connect_clears_the_flag(world: World) -> None:
    p = world.provider()
    vin = (await world.connect(p))[0]
    world.cloud.inject(vin, ApiFault("CONNECTED_SERVICES_ACCOUNT", "ACCOUNT_ISSUE"), times=-1)
    with pytest.raises(ReauthRequired):
        await p.snapshot(vin)
    world.cloud.clear_faults(vin)
    await world.connect(p)  # the owner reconnects: same user, new grant
    assert vin not in p.reauth
    assert len(p._conns) == 1  # the older grant was replaced, not kept alongside
    await p.snapshot(vin)


async def test_asleep_backs_off_1_5_15_minutes(world: World) -> None:
    p = world.provider()
    vin = (await world.connect(p))[0]
    waits = []
    for _ in range(4):
        world.cloud.inject(vin, ApiFault("VEHICLE_STATE", "ASLEEP"))
        with pytest.raises(UpstreamUnavailable) as exc:
            await p.snapshot(vin)
        waits.append(exc.value.retry_after)
    assert waits == [60.0, 300.0, 900.0, 900.0]


async def test_not_capable_paths_are_dropped_and_never_paid_again(world: World) -> None:
    p = world.provider()
    vin = (await world.connect(p, "0SCFUEL0000000007@fuel.smartcar.com"))[0]
    snap = await p.snapshot(vin)
    assert "odometer" in snap.values and "battery_soc" not in snap.values
    assert "/battery" not in p._vehicles[vin].paths and "/charge" not in p._vehicles[vin].paths
    before = world.calls(vin)
    await p.snapshot(vin)
    assert world.calls(vin) - before == len(p._vehicles[vin].paths)


async def test_error_vin_everything_fails(world: World) -> None:
    p = world.provider()
    vin = (await world.connect(p, "UPSTREAM.NO_RESPONSE@smartcar.com"))[0]
    with pytest.raises(UpstreamUnavailable) as exc:
        await p.snapshot(vin)
    assert exc.value.code == "UPSTREAM:NO_RESPONSE"


async def test_401_refreshes_once_and_retries(world: World) -> None:
    p = world.provider()
    vin = (await world.connect(p))[0]
    world.cloud.inject(vin, ApiFault("AUTHENTICATION"))
    before = world.cloud.token_calls
    snap = await p.snapshot(vin)
    assert snap.values and world.cloud.token_calls == before + 1
    world.clock.advance(7200)  # expired: refreshed before use, not after a 401
    await p.snapshot(vin)
    assert world.cloud.token_calls == before + 2


async def test_restart_resumes_from_the_vault_without_connect(world: World) -> None:
    p = world.provider()
    vins = await world.connect(p)
    await p.close()
    again = world.provider()
    await again.start()
    assert sorted(i.vin for i in await again.vehicles()) == sorted(vins)
    world.clock.advance(3 * 3600)
    assert (await again.snapshot(vins[0])).values
    await again.close()


async def test_commands(world: World) -> None:
    p = world.provider(commands=True)
    vin = (await world.connect(p))[0]
    assert {"lock", "unlock", "charge_limit"} <= p.supported_commands(vin)
    receipt = await p.command(vin, Command("unlock"))
    assert receipt.accepted
    world.clock.advance(60)
    assert not world.fleet.state(vin).locked
    await p.command(vin, Command("charge_limit", {"percent": 70}))
    world.clock.advance(60)
    assert world.fleet.state(vin).charge_limit == pytest.approx(70)


async def test_no_granted_paths_is_a_clear_error(world: World) -> None:
    p = world.provider(scopes=["read_vin", "read_vehicle_info"])
    vin = (await world.connect(p))[0]
    with pytest.raises(BadReply, match="granted"):
        await p.snapshot(vin)
