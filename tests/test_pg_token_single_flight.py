"""Token rotation stays single-flight across instances that share one PostgreSQL vault: two
provider instances (each with its own vault object and connection pool, as two processes would
have) never log in to one smart account twice and never spend one Smartcar refresh token twice.
Counted at the simulators, not in the client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from bench.postgres import PASSWORD, Cluster
from exporter.backend import backend
from exporter.clock import ManualClock
from exporter.config import AccountConfig, Secret, SimulatorConfig
from exporter.dbtarget import PgTarget
from exporter.providers.base import MemoryTokenStore, TokenStore
from exporter.providers.smart import SmartProvider
from exporter.providers.smart.breaker import BreakerRegistry
from exporter.providers.smartcar import scopes
from exporter.providers.smartcar.provider import SmartcarProvider
from exporter.providers.smartcar.settings import from_account
from exporter.simulator.fleet import Fleet
from exporter.simulator.runner import SimulatorHandle, start_simulator
from exporter.simulator.smartcar.fleet_adapter import demo_cloud
from exporter.simulator.smartcar.headless import consent
from exporter.simulator.smartcar.server import SmartcarSimulator
from exporter.tokens import EncryptedTokenStore, generate_key, parse_keys

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
KEY = parse_keys(generate_key(), "k")


def vault(pg: Cluster) -> EncryptedTokenStore:
    """One instance's vault: its own rows object and pool on the shared database."""
    target = PgTarget(pg.dsn_without_password, Secret(PASSWORD))
    return EncryptedTokenStore(backend(target).token_rows(), KEY)


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorHandle]:
    handle = await start_simulator(SimulatorConfig(seed=7), ManualClock(), tick_every=None)
    try:
        yield handle
    finally:
        await handle.close()


def smart(sim: SimulatorHandle, http: aiohttp.ClientSession, tokens: TokenStore) -> SmartProvider:
    login = sim.logins["smart_eu"]
    account = AccountConfig(
        name="shared",
        provider="smart",
        index=0,
        simulator=True,
        settings={"region": "EU", "username": login["username"], "request_timeout": 2.0},
        secrets={"password": Secret(login["password"])},
    )
    return SmartProvider(
        account, http, sim.clock, tokens, sim_urls=sim.urls["smart"], breakers=BreakerRegistry()
    )


def logins(sim: SimulatorHandle) -> int:
    return int(sim.smart.throttle.attempts)  # login chains the simulated gateway saw


async def test_two_instances_log_in_to_one_smart_account_once(
    sim: SimulatorHandle, postgres: Cluster
) -> None:
    stores = [vault(postgres), vault(postgres)]
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        a, b = (smart(sim, http, s) for s in stores)
        listed = await asyncio.gather(a.vehicles(), b.vehicles())
        assert listed[0] and [v.vin for v in listed[0]] == [v.vin for v in listed[1]]
        assert logins(sim) == 1
        assert a.auth.stats.full_logins + b.auth.stats.full_logins == 1
        vin = listed[0][0].vin
        # the session dies for everyone: both instances poll and meet 1402 at once
        sim.faults.script("token_expired", endpoint="status")
        snaps = await asyncio.gather(a.snapshot(vin), b.snapshot(vin))
        assert all(s.get("battery_soc") is not None for s in snaps)
        assert logins(sim) == 1
        reposts = a.auth.stats.session_reposts + b.auth.stats.session_reposts
        assert reposts <= 1
        await a.close()
        await b.close()
    for s in stores:
        s.close()


async def test_without_a_shared_vault_each_instance_logs_in(sim: SimulatorHandle) -> None:
    """The control: the count above is what the lock saves, not what the simulator always says."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        a, b = smart(sim, http, MemoryTokenStore()), smart(sim, http, MemoryTokenStore())
        await asyncio.gather(a.vehicles(), b.vehicles())
        assert logins(sim) == 2
        await a.close()
        await b.close()


REDIRECT = "http://127.0.0.1:9/connect/smartcar/callback"


async def test_two_instances_spend_one_smartcar_refresh_token_once(postgres: Cluster) -> None:
    clock = ManualClock()
    fleet = Fleet(["Tesla Model 3", "Volkswagen ID.4"], seed=9, clock=clock)
    cloud, creds = demo_cloud(fleet, clock, redirect_uris=(REDIRECT,))
    stores = [vault(postgres), vault(postgres)]

    def provider(store: TokenStore, http: aiohttp.ClientSession, **settings: Any) -> Any:
        account = AccountConfig(
            name="sc",
            provider="smartcar",
            index=0,
            simulator=True,
            settings={"client_id": creds.client_id, "redirect_uri": REDIRECT, **settings},
            secrets={"client_secret": Secret(creds.client_secret)},
        )
        return SmartcarProvider(from_account(account, sim_urls=sim.urls), http, clock, store)

    async with SmartcarSimulator(cloud) as sim, aiohttp.ClientSession() as http:
        a: SmartcarProvider = provider(stores[0], http)
        loc = await consent(http, scopes.authorize_url(a.settings, "st"))
        vins = [i.vin for i in await a.connect(parse_qs(urlsplit(loc).query)["code"][0])]
        b: SmartcarProvider = provider(stores[1], http)
        await b.start()  # the second instance finds the connection in the shared vault
        assert sorted(v.vin for v in await b.vehicles()) == sorted(vins)
        for hours in (2, 4, 6):  # three access-token lifetimes, both instances polling each
            clock.advance(7200)
            before = cloud.token_calls
            snaps = await asyncio.gather(
                *(p.snapshot(v) for p in (a, b) for v in vins for _ in range(2))
            )
            assert all(s.values for s in snaps), hours
            assert cloud.token_calls == before + 1, hours  # one refresh for both instances
        conn = next(iter(a._conns.values()))
        stored = stores[1].load(conn.token.key)
        assert stored is not None and isinstance(stored["pair"], dict)
        assert stored["pair"]["refresh_token"] in cloud.live_refresh_tokens(creds.client_id)
        await a.close()
        await b.close()
    for s in stores:
        s.close()
