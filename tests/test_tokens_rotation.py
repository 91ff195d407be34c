"""Atomic rotation on a manual clock: single-flight, commit-before-use, crash safety, renewal.

The refresh function here is a small in-process model of a rotating OAuth server (single-use
refresh tokens with a grace period); the same properties are proven over HTTP against the Smartcar
simulator in test_smartcar_tokens.py.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from exporter.clock import ManualClock
from exporter.providers.base import MemoryTokenStore, ReauthRequired
from exporter.providers.smartcar.rotation import RenewalPolicy, RotatingToken, TokenPair

DAY = 86400.0


class Crash(Exception):
    """Stands in for the process dying at an injected point."""


class RotatingServer:
    def __init__(self, clock: ManualClock, grace: float = 60.0) -> None:
        self.clock = clock
        self.grace = grace
        self._n = itertools.count(1)
        self.valid_until: dict[str, float] = {}  # refresh token -> death time
        self.access_valid: dict[str, float] = {}
        self.calls = 0
        self.gate: asyncio.Event | None = None  # when set, refreshes wait for it (holds them open)

    def issue(self) -> TokenPair:
        n = next(self._n)
        now = self.clock.now()
        pair = TokenPair(f"at{n}", f"rt{n}", now + 7200, now + 60 * DAY, now)
        self.valid_until[pair.refresh_token] = now + 60 * DAY
        self.access_valid[pair.access_token] = now + 7200
        return pair

    async def refresh(self, rt: str) -> TokenPair:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        now = self.clock.now()
        if self.valid_until.get(rt, 0) <= now:
            raise ReauthRequired("invalid_grant", code="invalid_grant")
        self.valid_until[rt] = min(self.valid_until[rt], now + self.grace)
        return self.issue()


class RecordingStore(MemoryTokenStore):
    """Counts commits and can fail a chosen commit to inject a crash."""

    def __init__(self) -> None:
        super().__init__()
        self.saves: list[dict[str, object]] = []
        self.fail_when = None  # type: ignore[var-annotated]

    def save(self, key: str, tokens: dict[str, object]) -> None:
        if self.fail_when is not None and self.fail_when(tokens):
            raise Crash("power cut during commit")
        super().save(key, tokens)
        self.saves.append(tokens)


def _token(store: RecordingStore, clock: ManualClock, server: RotatingServer) -> RotatingToken:
    return RotatingToken(store, "smartcar:acc:u1", clock, server.refresh, RenewalPolicy())


async def test_access_token_is_reused_until_near_expiry_then_rotated() -> None:
    clock = ManualClock()
    server = RotatingServer(clock)
    store = RecordingStore()
    tok = _token(store, clock, server)
    tok.install(server.issue())
    assert await tok.access_token() == "at1"
    clock.advance(7200 - 301)
    assert await tok.access_token() == "at1"
    clock.advance(2)  # inside the 300 s margin
    assert await tok.access_token() == "at2"
    assert server.calls == 1
    # the new pair was committed, and the intent marker is gone
    stored = store.load("smartcar:acc:u1")
    assert stored is not None and stored["rotating_since"] is None
    assert stored["pair"]["refresh_token"] == "rt2"  # type: ignore[index]


async def test_concurrent_callers_share_one_refresh() -> None:
    clock = ManualClock()
    server = RotatingServer(clock)
    server.gate = asyncio.Event()
    tok = _token(RecordingStore(), clock, server)
    tok.install(server.issue())
    clock.advance(7200)
    tasks = [asyncio.create_task(tok.access_token()) for _ in range(20)]
    for _ in range(5):
        await asyncio.sleep(0)  # every caller is now waiting on the one refresh in flight
    assert server.calls == 1
    server.gate.set()
    got = await asyncio.gather(*tasks)
    assert set(got) == {"at2"}
    assert server.calls == 1


async def test_burst_of_401s_is_one_refresh() -> None:
    clock = ManualClock()
    server = RotatingServer(clock)
    tok = _token(RecordingStore(), clock, server)
    tok.install(server.issue())
    stale = await tok.access_token()
    server.gate = asyncio.Event()
    tasks = [asyncio.create_task(tok.refresh_now(stale)) for _ in range(10)]
    for _ in range(5):
        await asyncio.sleep(0)
    server.gate.set()
    got = await asyncio.gather(*tasks)
    assert set(got) == {"at2"} and server.calls == 1


async def test_new_pair_is_committed_before_the_access_token_is_returned() -> None:
    clock = ManualClock()
    server = RotatingServer(clock)
    store = RecordingStore()
    tok = _token(store, clock, server)
    tok.install(server.issue())
    clock.advance(7200)
    access = await tok.access_token()
    committed = [s["pair"]["access_token"] for s in store.saves if not s["rotating_since"]]  # type: ignore[index]
    assert committed[-1] == access
    # and the intent marker was written before the refresh went out
    assert store.saves[-2]["rotating_since"] is not None
    assert store.saves[-2]["pair"]["refresh_token"] == "rt1"  # type: ignore[index]


async def test_crash_between_reply_and_commit_then_restart_within_grace() -> None:
    clock = ManualClock()
    server = RotatingServer(clock, grace=60)
    store = RecordingStore()
    tok = _token(store, clock, server)
    tok.install(server.issue())
    clock.advance(7200)
    store.fail_when = lambda rec: rec["rotating_since"] is None  # the commit of the new pair
    with pytest.raises(Crash):
        await tok.access_token()
    assert server.calls == 1  # rt1 was spent; rt2 existed only in the dead process
    # restart: a new process loads what is on disk
    store.fail_when = None
    clock.advance(30)
    restarted = _token(store, clock, server)
    assert restarted.load()
    assert restarted.access_due()  # the intent marker forces an immediate refresh
    assert await restarted.access_token() == "at3"
    clock.advance(3600)
    assert server.valid_until["rt3"] > clock.now()  # we hold a live refresh token


async def test_crash_then_restart_after_the_grace_needs_the_owner() -> None:
    """The limit of what a client can do: the cloud's grace period bounds the restart time."""
    clock = ManualClock()
    server = RotatingServer(clock, grace=60)
    store = RecordingStore()
    tok = _token(store, clock, server)
    tok.install(server.issue())
    clock.advance(7200)
    store.fail_when = lambda rec: rec["rotating_since"] is None
    with pytest.raises(Crash):
        await tok.access_token()
    store.fail_when = None
    clock.advance(61)
    restarted = _token(store, clock, server)
    with pytest.raises(ReauthRequired):
        await restarted.access_token()


async def test_failed_commit_without_restart_commits_before_use() -> None:
    clock = ManualClock()
    server = RotatingServer(clock)
    store = RecordingStore()
    tok = _token(store, clock, server)
    tok.install(server.issue())
    clock.advance(7200)
    store.fail_when = lambda rec: rec["rotating_since"] is None
    with pytest.raises(Crash):
        await tok.access_token()
    store.fail_when = None
    assert await tok.access_token() == "at2"  # the pair held in memory, committed first
    assert server.calls == 1
    stored = store.load("smartcar:acc:u1")
    assert stored is not None and stored["pair"]["access_token"] == "at2"  # type: ignore[index]


async def test_crash_before_the_refresh_was_sent_loses_nothing() -> None:
    clock = ManualClock()
    server = RotatingServer(clock)
    store = RecordingStore()
    tok = _token(store, clock, server)
    tok.install(server.issue())
    clock.advance(7200)
    store.fail_when = lambda rec: rec["rotating_since"] is not None  # the intent marker write
    with pytest.raises(Crash):
        await tok.access_token()
    assert server.calls == 0
    store.fail_when = None
    clock.advance(30 * DAY)
    restarted = _token(store, clock, server)
    assert await restarted.access_token() == "at2"


async def test_expired_refresh_token_is_not_even_sent() -> None:
    clock = ManualClock()
    server = RotatingServer(clock)
    tok = _token(RecordingStore(), clock, server)
    tok.install(server.issue())
    clock.advance(60 * DAY + 1)
    with pytest.raises(ReauthRequired) as exc:
        await tok.access_token()
    assert exc.value.code == "refresh_expired" and server.calls == 0


async def test_proactive_renewal_keeps_an_idle_connection_alive_for_a_year() -> None:
    clock = ManualClock()
    server = RotatingServer(clock)
    tok = RotatingToken(
        RecordingStore(), "k", clock, server.refresh, RenewalPolicy(renew_after=30 * DAY)
    )
    tok.install(server.issue())
    task = asyncio.create_task(tok.run_renewal())
    await clock.run_until(clock.now() + 365 * DAY)
    assert not task.done()
    task.cancel()
    assert 11 <= server.calls <= 13  # one renewal a month, never more
    assert tok.pair is not None and tok.pair.refresh_expires_at > clock.now()
    assert server.valid_until[tok.pair.refresh_token] > clock.now()


async def test_renewal_retries_after_an_outage() -> None:
    clock = ManualClock()
    server = RotatingServer(clock)
    real = server.refresh
    failures = 3

    async def flaky(rt: str) -> TokenPair:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionError("cloud down")
        return await real(rt)

    tok = RotatingToken(RecordingStore(), "k", clock, flaky, RenewalPolicy(retry_delay=600))
    tok.install(server.issue())
    task = asyncio.create_task(tok.run_renewal())
    await clock.run_until(clock.now() + 31 * DAY)
    task.cancel()
    assert failures == 0 and server.calls == 1
    assert tok.pair is not None and tok.pair.refresh_token == "rt2"
