"""Requests for a car this instance does not hold go to the instance that does, over HTTP.

Why HTTP forwarding rather than PostgreSQL LISTEN/NOTIFY: a command's caller waits for an answer
(202 with the command id, later its outcome, with ``?wait=`` up to minutes) and a webhook's sender
judges delivery by the HTTP status (Smartcar retries what was not acknowledged with a 2xx).
Forwarding the request keeps both end to end: the owner answers, the answer goes back unchanged.
NOTIFY would need a reply channel built beside it, caps a payload at 8,000 bytes (a webhook can
be larger), and delivers at most once to whoever listens at that moment: a notification sent while
the owner's listening connection is down is gone without a trace. PostgreSQL stays the directory
(which instance holds which account, at which URL, and which instance accepted which command).

Failure modes (docs/SCALING.md): no instance holds the account right now (its holder died, the
lease has not expired yet) -> 503 with Retry-After, the caller retries; the owner is unreachable
or dies mid-request -> 502 (a command may or may not have been sent: its audit row on the owner
says which, and a retried POST with the same Idempotency-Key is not sent twice); a request already
forwarded once is never forwarded again (an account moving during the hop) -> 503.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final, TypeVar

import aiohttp
from aiohttp import web

from exporter.fleet.store import Owner, Store

if TYPE_CHECKING:
    from exporter.fleet.member import FleetMember

log = logging.getLogger(__name__)

FORWARDED_BY: Final = "X-Carmetrics-Forwarded-By"
# request headers that belong to one hop only (RFC 9110 §7.6.1), and Host (the owner's own)
_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "accept-encoding",
    }
)
_REPLY_HEADERS: Final = ("Content-Type", "Location", "Retry-After", "Idempotent-Replayed")
T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

VEHICLE_COMMANDS: Final = "/api/v1/vehicles/{vin}/commands"
COMMAND: Final = "/api/v1/commands/{id}"
VEHICLES: Final = "/api/v1/vehicles"
WEBHOOKS: Final = ("/webhooks/smartcar", "/webhooks/smartcar/{account}")


class Forwarder:
    def __init__(self, member: FleetMember, max_wait: float = 300.0) -> None:
        self.member = member
        self.counts: Counter[str] = Counter()  # outcome -> forwarded requests
        self._max_wait = max_wait
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(
                    total=self._max_wait + 30, sock_connect=5, connect=10
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
            )
        return self._session

    async def handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.resource
        path = route.canonical if route is not None else ""
        info = request.match_info
        if path == VEHICLES and request.method == "GET":
            return await self._fleet_vehicles(request, handler)
        if path == VEHICLE_COMMANDS:
            account = await self._store_call(lambda s: s.account_of_vin(info["vin"]))
        elif path == COMMAND:
            owner = await self._store_call(lambda s: s.owner_of_command(info["id"]))
            if owner is None or owner.instance == self.member.id:
                return await handler(request)
            return await self._forward(request, owner)
        elif path in WEBHOOKS:
            account = info.get("account") or self._webhook_account()
        else:
            return await handler(request)
        if account is None or account in self.member.held_accounts():
            response = await handler(request)
            if path == VEHICLE_COMMANDS and request.method == "POST":
                await self._remember_command(response)
            return response
        owner = await self._store_call(lambda s: s.owner_of_account(account))
        if owner is None or owner.instance == self.member.id:
            self.counts["no_owner"] += 1
            return _refuse(
                503,
                "owner_unavailable",
                f"no instance holds account {account!r} right now (its holder stopped; another "
                "takes over when the lease expires); retry shortly",
                retry_after=self.member.settings.heartbeat,
            )
        return await self._forward(request, owner)

    def _webhook_account(self) -> str | None:
        """A webhook without an account in its path is for the first Smartcar account that takes
        webhooks, as the route itself picks it (exporter.providers.smartcar.web)."""
        for a in self.member.rt.config.accounts:
            if a.provider == "smartcar" and a.settings.get("webhooks"):
                return a.name
        return None

    async def _store_call(self, call: Callable[[Store], Awaitable[T]]) -> T:
        pool = self.member.pool
        assert pool is not None
        async with pool.connection() as conn:
            return await call(Store(conn, self.member.id))

    async def _remember_command(self, response: web.StreamResponse) -> None:
        """Which instance accepted a command, so a status read at any instance finds it."""
        if response.status != 202 or not isinstance(response, web.Response):
            return
        try:
            body = json.loads(response.body if isinstance(response.body, bytes) else b"")
            command_id = str(body["id"])
        except (ValueError, KeyError, TypeError):
            return
        try:
            await self._store_call(lambda s: s.record_command(command_id))
        except Exception as exc:  # the command is sent; only its status at other instances suffers
            log.warning("command owner not recorded", extra={"error": str(exc)})

    async def _forward(self, request: web.Request, owner: Owner) -> web.StreamResponse:
        if FORWARDED_BY in request.headers:
            self.counts["refused_second_hop"] += 1
            return _refuse(
                503,
                "owner_moved",
                "the car's account moved to another instance while this request was forwarded; "
                "retry",
                retry_after=self.member.settings.heartbeat,
            )
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        headers[FORWARDED_BY] = self.member.id
        body = await request.read()
        try:
            async with self._client().request(
                request.method,
                owner.url + request.rel_url.path_qs,
                data=body,
                headers=headers,
                allow_redirects=False,
            ) as reply:
                data = await reply.read()
                out = {k: reply.headers[k] for k in _REPLY_HEADERS if k in reply.headers}
                if "Content-Encoding" in reply.headers:
                    out["Content-Encoding"] = reply.headers["Content-Encoding"]
                self.counts["forwarded"] += 1
                return web.Response(status=reply.status, body=data, headers=out)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.counts["owner_unreachable"] += 1
            log.warning(
                "request not forwarded: the owner did not answer",
                extra={"instance": owner.instance, "error": str(exc) or type(exc).__name__},
            )
            return _refuse(
                502,
                "owner_unreachable",
                f"the instance holding this car ({owner.instance}) did not answer; a command may "
                "or may not have been sent: retry with the same Idempotency-Key",
                retry_after=self.member.settings.heartbeat,
            )

    async def _fleet_vehicles(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every car of the fleet, from the shared database, at any instance (the local handler
        checks the caller's token first; the cars held here keep their live details)."""
        local = await handler(request)
        if local.status != 200 or not isinstance(local, web.Response):
            return local
        body = json.loads(local.body if isinstance(local.body, bytes) else b"{}")
        mine = {v["vin"]: v for v in body.get("vehicles", [])}
        for v in mine.values():
            v["instance"] = self.member.id
        fleet = await self._store_call(lambda s: s.vehicles())
        for v in fleet:
            if v["vin"] in mine:
                continue
            v["supported_commands"] = list(v["supported_commands"])
            v["last_report"] = None
            v.pop("last_poll", None)
            mine[v["vin"]] = v
        return web.json_response({"vehicles": [mine[k] for k in sorted(mine)]})


def _refuse(status: int, error: str, message: str, retry_after: float) -> web.Response:
    return web.json_response(
        {"error": error, "message": message},
        status=status,
        headers={"Retry-After": str(max(1, round(retry_after)))},
    )
