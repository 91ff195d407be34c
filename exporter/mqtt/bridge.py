"""Commands from MQTT: into the one command service, outcomes back out on a result topic.

A message on ``<prefix>/<vin>/command`` is the HTTP API's JSON body (``{"command": "lock"}``,
``{"command": "charge_limit", "percent": 100}``) or, for commands without parameters, just the name
(``lock``). It goes to ``CommandService.submit`` as the caller ``mqtt``, so it meets the same
validation, cooldown, rate limit, audit row and verification as a request over HTTP. There is no
token: whoever the broker lets publish on the command topic may command (its ACL is the
authorisation; see README). An optional ``request_id`` becomes the Idempotency-Key, so a client
that re-sends after a lost connection does not lock the car twice, and is echoed in every result.

Each request gets a result message when it is accepted or refused and another when its outcome is
known (verified, accepted, not_verified, rejected, failed, timeout).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from typing import Any, Final

from exporter.commands.auth import Caller
from exporter.commands.record import CommandRecord, Status
from exporter.commands.service import CommandService, Refused
from exporter.logs import mask_vin
from exporter.providers.base import Command, CommandRejected

log = logging.getLogger(__name__)

CALLER: Final = Caller("mqtt", can_command=True)
MAX_PAYLOAD: Final = 4096
_BARE: Final = re.compile(r"[a-z_]{1,40}")
Send = Callable[[str, dict[str, Any]], None]  # (vin, result body) -> queued for publishing


def parse(payload: bytes) -> tuple[object, str | None]:
    """(request body for the service, request_id). Raises Refused for what is not a request."""
    if len(payload) > MAX_PAYLOAD:
        raise Refused(413, "invalid_request", f"the payload exceeds {MAX_PAYLOAD} bytes")
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise Refused(400, "invalid_request", "the payload is not UTF-8") from None
    if _BARE.fullmatch(text):
        return {"command": text}, None
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        raise Refused(
            400, "invalid_request", 'expected JSON such as {"command": "lock"} or a command name'
        ) from None
    if not isinstance(body, dict):
        return body, None
    body = dict(body)
    request_id = body.pop("request_id", None)
    if request_id is not None and not isinstance(request_id, str):
        raise Refused(400, "invalid_request", "request_id must be a string")
    return body, request_id


def limit_step(validate: Callable[[str, Command], None] | None, vin: str) -> int:
    """The charge-limit grid a provider accepts, asked of its own parameter check (smart: 5 %),
    so the Home Assistant slider never offers a value the cloud would refuse."""
    if validate is None:
        return 1
    for step in (1, 5, 10):
        try:
            validate(vin, Command("charge_limit", {"percent": 50 + step}))
        except CommandRejected:
            continue
        return step
    return 10


class CommandBridge:
    def __init__(self, service: CommandService, send: Send) -> None:
        self.service = service
        self._send = send
        self._tasks: set[asyncio.Task[None]] = set()

    def handle(self, vin: str, payload: bytes) -> None:
        """Submit one request (synchronously, like the HTTP handler) and follow it to its end."""
        request_id: str | None = None
        try:
            body, request_id = parse(payload)
            rec, replayed = self.service.submit(vin, body, CALLER, request_id)
        except Refused as exc:
            log.info(
                "mqtt command refused",
                extra={"vin": mask_vin(vin), "error": exc.code, "detail": str(exc)},
            )
            self._send(vin, {**exc.body(), "request_id": request_id})
            return
        self._send(vin, self._body(rec, request_id, replayed))
        if rec.status is not Status.DONE:
            task = asyncio.create_task(self._follow(rec, request_id), name=f"mqtt-cmd-{rec.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _follow(self, rec: CommandRecord, request_id: str | None) -> None:
        while True:
            got = await self.service.wait(rec.id, self.service.settings.max_wait)
            if got is None or got.status is Status.DONE:
                break
        self._send(rec.vin, self._body(got or rec, request_id, False))

    @staticmethod
    def _body(rec: CommandRecord, request_id: str | None, replayed: bool) -> dict[str, Any]:
        return {**rec.to_json(), "request_id": request_id, "replayed": replayed}

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
