"""A token renewal whose every waiter was cancelled still ends quietly.

Found by the 30-day soak: one "Task exception was never retrieved" error log. A poll that times out
(or an exporter that stops) cancels its wait for a shared renewal, not the renewal; once the waiter
is gone, ``asyncio.shield`` drops its callback, so when that renewal then fails nobody reads its
error and asyncio logs it at ERROR level when the task is collected.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable

from exporter.providers.base import UpstreamUnavailable
from exporter.providers.smart.auth import ApiSession, Authenticator, AuthStats, TokenState
from exporter.singleflight import SingleFlight


class ScriptedAuthenticator(Authenticator):
    """Only what ``renew`` touches: the token state, the stats and a scripted ladder."""

    def __init__(self, ladder: Callable[[], Awaitable[ApiSession]]) -> None:
        self._renewal = SingleFlight("test-renewal")
        self.state = TokenState("user@example.com", "EU", "device")
        self.stats = AuthStats()
        self._script = ladder

    async def _ladder(self) -> ApiSession:
        return await self._script()


def bare_authenticator(ladder: Callable[[], Awaitable[ApiSession]]) -> Authenticator:
    return ScriptedAuthenticator(ladder)


async def test_a_failed_renewal_nobody_waits_for_is_not_logged_as_never_retrieved() -> None:
    release = asyncio.Event()

    async def failing_ladder() -> ApiSession:
        await release.wait()
        raise UpstreamUnavailable("smart cloud answered HTTP 502", code="502")

    reported: list[str] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, ctx: reported.append(str(ctx.get("message"))))
    try:
        auth = bare_authenticator(failing_ladder)
        waiter = asyncio.create_task(auth.renew(None))
        await asyncio.sleep(0)  # the renewal is in flight
        waiter.cancel()  # e.g. the poll's timeout
        await asyncio.sleep(0)  # the waiter is gone before the renewal ends
        release.set()
        await asyncio.sleep(0.01)  # the ladder fails with nobody awaiting it
        task = auth._renewal.task
        assert task is not None and task.done()
        auth._renewal.task = None  # the next renewal replaces it; the old one is collected
        del task
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert not [m for m in reported if "never retrieved" in m]


async def test_waiting_callers_still_get_the_renewal_error() -> None:
    async def failing_ladder() -> ApiSession:
        await asyncio.sleep(0)
        raise UpstreamUnavailable("smart cloud answered HTTP 502", code="502")

    auth = bare_authenticator(failing_ladder)
    results = await asyncio.gather(auth.renew(None), auth.renew(None), return_exceptions=True)
    assert all(isinstance(r, UpstreamUnavailable) for r in results)
    assert auth.stats.renewals == 1  # one shared ladder, not one per caller


async def test_close_cancels_a_renewal_in_flight() -> None:
    """The renewal is owned by the authenticator (and so by the provider's close()): nothing of it
    outlives the provider."""
    started = asyncio.Event()

    async def endless_ladder() -> ApiSession:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    auth = bare_authenticator(endless_ladder)
    waiter = asyncio.create_task(auth.renew(None))
    await started.wait()
    task = auth._renewal.task
    await auth.close()
    assert task is not None and task.cancelled()
    results = await asyncio.gather(waiter, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
