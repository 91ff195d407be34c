"""One run of a costly async job shared by every caller that asks while it runs.

Token renewals need this: a burst of polls that all see an expired token must cause one renewal,
and every caller must get that renewal's outcome (its result or its error), not start another.
The job runs in its own task, so a caller that gives up (a poll's timeout, a shutdown) cancels only
its wait, never the renewal other callers share. The owner cancels the job itself with
:meth:`SingleFlight.cancel` (from its ``close()``), so no renewal outlives its provider.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def _retrieve(task: asyncio.Future[Any]) -> None:
    # When every waiter was cancelled first, shield drops its callback and nobody reads the outcome;
    # read it here, or a failed job is logged by asyncio as "Task exception was never retrieved".
    if not task.cancelled():
        task.exception()


class SingleFlight(Generic[T]):
    """At most one job at a time; callers arriving while it runs share its outcome."""

    def __init__(self, name: str = "single-flight") -> None:
        self.name = name
        self.task: asyncio.Task[T] | None = None

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    async def run(self, job: Callable[[], Awaitable[T]]) -> T:
        """Start ``job`` unless one is running, then wait for the running one's outcome."""
        if self.task is None or self.task.done():

            async def wrapped() -> T:
                return await job()

            self.task = asyncio.create_task(wrapped(), name=self.name)
            self.task.add_done_callback(_retrieve)
        return await asyncio.shield(self.task)

    async def cancel(self) -> None:
        """Stop a running job and wait until it has stopped (the owner's ``close()``)."""
        task, self.task = self.task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
