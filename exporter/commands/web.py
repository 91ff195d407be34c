"""The command API's routes, added to the exporter's aiohttp app by ``setup(app, runtime)``.

    GET  /api/v1/openapi.json              the OpenAPI document (no token needed)
    GET  /api/v1/vehicles                  vehicles and their supported commands   (read)
    POST /api/v1/vehicles/{vin}/commands   send a command -> 202 + id              (command)
    GET  /api/v1/vehicles/{vin}/commands   recent commands of a vehicle            (read)
    GET  /api/v1/commands/{id}?wait=30     a command's outcome, optionally waiting  (read)

Handlers only translate HTTP to the service and back; every rule lives in ``service``. Without a
configured token the API answers 404 on every route but the document, and start-up logs why.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from exporter.clock import RealClock, ScaledClock
from exporter.commands.audit import AuditLog
from exporter.commands.auth import Authenticator, Caller
from exporter.commands.metrics import CommandCounter
from exporter.commands.openapi import MAX_LIMIT, document
from exporter.commands.service import CommandService, Refused
from exporter.commands.settings import CommandSettings, load_settings
from exporter.runtime import Runtime

log = logging.getLogger(__name__)

SERVICE = web.AppKey("command_service", CommandService)
PREFIX = "/api/v1"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json_errors(handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Refused as exc:
            headers = {}
            if exc.retry_after is not None:
                headers["Retry-After"] = str(exc.retry_after)
            if exc.status == 401:
                headers["WWW-Authenticate"] = 'Bearer realm="carmetrics"'
            return web.json_response(exc.body(), status=exc.status, headers=headers)

    return wrapped


class Routes:
    def __init__(self, service: CommandService, auth: Authenticator) -> None:
        self.service = service
        self.auth = auth

    def caller(self, request: web.Request) -> Caller:
        got = self.auth.identify(request.headers.get("Authorization"))
        if got is None:
            raise Refused(
                401, "unauthorized", "send a valid token as 'Authorization: Bearer <token>'"
            )
        return got

    async def vehicles(self, request: web.Request) -> web.StreamResponse:
        self.caller(request)
        return web.json_response({"vehicles": self.service.vehicles()})

    async def send(self, request: web.Request) -> web.StreamResponse:
        caller = self.caller(request)
        raw = await request.read()
        try:
            body = json.loads(raw) if raw.strip() else None
        except (ValueError, RecursionError):
            raise Refused(400, "invalid_request", "the body is not valid JSON") from None
        key = request.headers.get("Idempotency-Key")
        rec, replayed = self.service.submit(request.match_info["vin"], body, caller, key)
        return web.json_response(
            rec.to_json(),
            status=202,
            headers={
                "Location": f"{PREFIX}/commands/{rec.id}",
                "Idempotent-Replayed": "true" if replayed else "false",
            },
        )

    async def list_commands(self, request: web.Request) -> web.StreamResponse:
        self.caller(request)
        vin = request.match_info["vin"]
        raw = request.query.get("limit", "20")
        try:
            limit = int(raw)
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_LIMIT:
            raise Refused(400, "invalid_request", f"limit = {raw!r}: expected 1..{MAX_LIMIT}")
        if self.service.scheduler.provider_of(vin) is None and vin not in self.service.hub.vehicles:
            raise Refused(404, "unknown_vehicle", f"no vehicle {vin!r} is known to this exporter")
        records = await self.service.history(vin, limit)
        return web.json_response({"commands": [r.to_json() for r in records]})

    async def get_command(self, request: web.Request) -> web.StreamResponse:
        self.caller(request)
        raw = request.query.get("wait", "0")
        try:
            wait = float(raw)
        except ValueError:
            wait = -1.0
        limit = self.service.settings.max_wait
        if not math.isfinite(wait) or not 0 <= wait <= limit:
            raise Refused(400, "invalid_request", f"wait = {raw!r}: expected 0..{limit:g} seconds")
        rec = await self.service.wait(request.match_info["id"], wait)
        if rec is None:
            raise Refused(404, "unknown_command", "no command with this id")
        return web.json_response(rec.to_json())


async def _disabled(request: web.Request) -> web.StreamResponse:
    return web.json_response(
        {
            "error": "disabled",
            "message": "the command API is disabled: no token is configured "
            "(set CARMETRICS_API_TOKEN or commands.token_file)",
        },
        status=404,
    )


def _add_routes(app: web.Application, routes: Routes | None) -> None:
    table: list[tuple[str, str, Handler]] = [
        ("GET", f"{PREFIX}/vehicles", routes.vehicles if routes else _disabled),
        ("POST", f"{PREFIX}/vehicles/{{vin}}/commands", routes.send if routes else _disabled),
        (
            "GET",
            f"{PREFIX}/vehicles/{{vin}}/commands",
            routes.list_commands if routes else _disabled,
        ),
        ("GET", f"{PREFIX}/commands/{{id}}", routes.get_command if routes else _disabled),
    ]
    for method, path, handler in table:
        app.router.add_route(method, path, _json_errors(handler))


def setup(app: web.Application, runtime: Runtime) -> None:
    """Add the routes; raises ConfigError for a bad [commands] table (start-up fails loudly)."""
    settings = load_settings(runtime.config)
    doc = document(settings)

    async def openapi(request: web.Request) -> web.StreamResponse:
        return web.json_response(doc)

    app.router.add_get(f"{PREFIX}/openapi.json", openapi)
    if not settings.enabled:
        log.warning(
            "command API disabled: no token configured "
            "(set CARMETRICS_API_TOKEN or [commands] token_file)"
        )
        _add_routes(app, None)
        return
    service = command_service(app, runtime, settings)
    _add_routes(app, Routes(service, Authenticator(settings.tokens)))
    log.info(
        "command API enabled",
        extra={
            "clients": ", ".join(
                f"{t.name} ({'command' if t.can_command else 'read'})" for t in settings.tokens
            ),
            "cooldown_s": settings.cooldown,
            "verify_delay_s": settings.verify_delay,
        },
    )


def command_service(
    app: web.Application, runtime: Runtime, settings: CommandSettings | None = None
) -> CommandService:
    """The app's one command service, built (and opened, stopped, closed with the app) on first
    use. The HTTP API and the MQTT bridge both call this, so they share one cooldown, one rate
    limit and one audit log."""
    if SERVICE in app:
        return app[SERVICE]
    service = build_service(runtime, settings)
    app[SERVICE] = service

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, service.open)
        yield
        await loop.run_in_executor(None, service.audit.close)

    async def shutdown(app: web.Application) -> None:
        await service.stop()

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(shutdown)
    return service


def build_service(runtime: Runtime, settings: CommandSettings | None = None) -> CommandService:
    """The service over a runtime's clock, hub, scheduler and history file; its counter is
    registered on the runtime's registry."""
    counter = CommandCounter()
    runtime.registry.register(counter)
    return CommandService(
        settings or load_settings(runtime.config),
        runtime.clock,
        runtime.hub,
        runtime.scheduler,
        AuditLog(runtime.config.db),
        counter,
        limits_clock=RealClock() if isinstance(runtime.clock, ScaledClock) else runtime.clock,
    )
