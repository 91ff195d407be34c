"""Token rotation end to end: the provider, the encrypted vault and the simulator's token endpoint,
on a manual clock that jumps hours, days and months.

The property under test throughout: at every moment the vault holds a refresh token that Smartcar
still accepts (or, past the cloud's grace period after a crash, the owner is asked to reconnect).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from exporter.clock import ManualClock
from exporter.config import AccountConfig, Secret
from exporter.providers.base import ReauthRequired
from exporter.providers.smartcar import scopes
from exporter.providers.smartcar.provider import SmartcarProvider
from exporter.providers.smartcar.settings import from_account
from exporter.simulator.fleet import Fleet
from exporter.simulator.smartcar.fleet_adapter import DemoApp, demo_cloud
from exporter.simulator.smartcar.headless import consent
from exporter.simulator.smartcar.server import SmartcarSimulator
from exporter.simulator.smartcar.state import SmartcarCloud
from exporter.tokens import EncryptedTokenStore, generate_key, parse_keys

REDIRECT = "http://127.0.0.1:9/connect/smartcar/callback"
DAY = 86400.0


class Crash(Exception):
    pass


class CrashingStore(EncryptedTokenStore):
    """The vault with a fuse: ``crash_on(record)`` decides which commit dies."""

    crash_on: Callable[[str, dict[str, object]], bool] | None = None

    def save(self, key: str, tokens: dict[str, object]) -> None:
        if self.crash_on is not None and self.crash_on(key, tokens):
            raise Crash("process killed during the commit")
        super().save(key, tokens)


def _new_pair_commit(key: str, rec: dict[str, object]) -> bool:
    return ":conn:" in key and rec.get("rotating_since") is None and "pair" in rec


@dataclass
class Rig:
    clock: ManualClock
    cloud: SmartcarCloud
    creds: DemoApp
    sim: SmartcarSimulator
    http: aiohttp.ClientSession
    store: CrashingStore

    def provider(self, **settings: Any) -> SmartcarProvider:
        account = AccountConfig(
            name="sc",
            provider="smartcar",
            index=0,
            simulator=True,
            settings={"client_id": self.creds.client_id, "redirect_uri": REDIRECT, **settings},
            secrets={"client_secret": Secret(self.creds.client_secret)},
        )
        return SmartcarProvider(
            from_account(account, sim_urls=self.sim.urls), self.http, self.clock, self.store
        )

    async def connect(self, p: SmartcarProvider) -> list[str]:
        loc = await consent(self.http, scopes.authorize_url(p.settings, "st"))
        return [i.vin for i in await p.connect(parse_qs(urlsplit(loc).query)["code"][0])]

    def stored_refresh_token(self, p: SmartcarProvider) -> str:
        conn = next(iter(p._conns.values()))
        rec = self.store.load(conn.token.key)
        assert rec is not None
        pair = rec["pair"]
        assert isinstance(pair, dict)
        return str(pair["refresh_token"])

    def alive(self, rt: str) -> bool:
        return rt in self.cloud.live_refresh_tokens(self.creds.client_id)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    clock = ManualClock()
    fleet = Fleet(["Tesla Model 3", "Volkswagen ID.4"], seed=9, clock=clock)
    cloud, creds = demo_cloud(fleet, clock, redirect_uris=(REDIRECT,))
    store = CrashingStore(tmp_path / "h.db", parse_keys(generate_key(), "k"))
    async with SmartcarSimulator(cloud) as sim, aiohttp.ClientSession() as http:
        yield Rig(clock, cloud, creds, sim, http, store)


async def until(cond: Callable[[], object], what: str) -> None:
    for _ in range(250):
        if cond():
            return
        await asyncio.sleep(0.02)  # waits for loopback I/O only; simulated time stands still
    raise AssertionError(f"timed out waiting for {what}")


async def test_concurrent_polls_share_one_refresh(rig: Rig) -> None:
    p = rig.provider()
    vins = await rig.connect(p)
    rig.clock.advance(7200)
    before = rig.cloud.token_calls
    snaps = await asyncio.gather(*(p.snapshot(v) for v in vins for _ in range(3)))
    assert all(s.values for s in snaps)
    assert rig.cloud.token_calls == before + 1
    assert rig.alive(rig.stored_refresh_token(p))


async def test_every_request_uses_a_token_already_in_the_vault(rig: Rig) -> None:
    p = rig.provider()
    vins = await rig.connect(p)
    seen: list[bool] = []
    original = rig.cloud.bearer

    def checking(token: str) -> Any:
        conn = next(iter(p._conns.values()))
        rec = rig.store.load(conn.token.key)
        seen.append(rec is not None and rec["pair"]["access_token"] == token)  # type: ignore[index]
        return original(token)

    rig.cloud.bearer = checking  # type: ignore[method-assign]
    for _ in range(4):
        rig.clock.advance(7200)
        await p.snapshot(vins[0])
    assert len(seen) >= 4 and all(seen)


async def test_crash_between_token_reply_and_commit_loses_nothing(rig: Rig) -> None:
    p = rig.provider()
    vins = await rig.connect(p)
    old_rt = rig.stored_refresh_token(p)
    rig.clock.advance(7200)
    rig.store.crash_on = _new_pair_commit
    with pytest.raises(Crash):
        await p.snapshot(vins[0])
    await p.close()  # the process is gone; the new pair existed only in its memory
    assert rig.stored_refresh_token(p) == old_rt
    rig.store.crash_on = None
    rig.clock.advance(20)  # restarted (e.g. by Docker) well inside the cloud's grace period
    again = rig.provider()
    await again.start()
    snap = await again.snapshot(vins[0])
    assert snap.values
    rt = rig.stored_refresh_token(again)
    assert rt != old_rt and rig.alive(rt)
    rig.clock.advance(3 * DAY)  # and the chain goes on
    assert (await again.snapshot(vins[0])).values
    await again.close()


async def test_crash_then_restart_after_the_grace_asks_the_owner(rig: Rig) -> None:
    p = rig.provider()
    vins = await rig.connect(p)
    rig.clock.advance(7200)
    rig.store.crash_on = _new_pair_commit
    with pytest.raises(Crash):
        await p.snapshot(vins[0])
    await p.close()
    rig.store.crash_on = None
    rig.clock.advance(rig.cloud.refresh_grace + 1)
    again = rig.provider()
    await again.start()
    with pytest.raises(ReauthRequired):
        await again.snapshot(vins[0])
    assert set(again.reauth) == set(vins)  # every car of the connection, with a reconnect link
    await again.close()


async def test_crash_before_the_refresh_went_out(rig: Rig) -> None:
    p = rig.provider()
    vins = await rig.connect(p)
    rig.clock.advance(7200)
    before = rig.cloud.token_calls
    rig.store.crash_on = lambda key, rec: rec.get("rotating_since") is not None
    with pytest.raises(Crash):
        await p.snapshot(vins[0])
    assert rig.cloud.token_calls == before  # nothing was sent, nothing can be lost
    rig.store.crash_on = None
    rig.clock.advance(10 * DAY)
    again = rig.provider()
    await again.start()
    assert (await again.snapshot(vins[0])).values
    await again.close()


async def test_proactive_renewal_keeps_an_unpolled_connection_alive(rig: Rig) -> None:
    p = rig.provider(token_renew_days=20)
    await rig.connect(p)
    start = rig.clock.now()
    conn = next(iter(p._conns.values()))
    for month in range(1, 10):
        due = conn.token.renewal_due_at()
        assert due is not None
        rig.clock.set(due)
        await until(lambda m=month: conn.token.refreshes >= m, f"renewal {month}")
        rt = rig.stored_refresh_token(p)
        assert rig.alive(rt)
    assert rig.clock.now() - start > 2 * rig.cloud.refresh_ttl  # two refresh-token lifetimes
    await p.close()


async def test_without_renewal_an_idle_connection_dies_at_day_60(rig: Rig) -> None:
    p = rig.provider()
    vins = await rig.connect(p)
    await p.close()  # no renewal task, no polls
    rig.clock.advance(60 * DAY + 1)
    fresh = rig.provider()
    await fresh.start()
    for c in fresh._conns.values():
        if c.renewal is not None:
            c.renewal.cancel()
    with pytest.raises(ReauthRequired) as exc:
        await fresh.snapshot(vins[0])
    assert exc.value.code == "refresh_expired"
    await fresh.close()


async def test_renewal_refused_asks_the_owner(rig: Rig) -> None:
    p = rig.provider(token_renew_days=20)
    vins = await rig.connect(p)
    rig.cloud.refresh.clear()  # e.g. the owner revoked the app in the maker's account
    conn = next(iter(p._conns.values()))
    due = conn.token.renewal_due_at()
    assert due is not None
    rig.clock.set(due)
    await until(lambda: set(p.reauth) == set(vins), "the re-auth flag after a refused renewal")
    assert conn.renewal is not None and conn.renewal.done()
    await p.close()
