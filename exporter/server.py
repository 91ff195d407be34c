"""The HTTP face of the exporter: ``/``, ``/metrics``, ``/healthz``, plus the routes that provider
registry entries (OAuth callback, webhooks) and features (the command API) contribute.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4 as CONTENT_TYPE

from exporter import __version__
from exporter.commands import web as commands_web
from exporter.config import Config
from exporter.logs import mask_vin
from exporter.metrics import render_exposition
from exporter.mqtt import wiring as mqtt_wiring
from exporter.providers import registry
from exporter.providers.base import Provider
from exporter.reconnect import needs_reconnect
from exporter.runtime import Runtime

log = logging.getLogger(__name__)

RUNTIME = web.AppKey("runtime", Runtime)
_RENDER = web.AppKey("render_executor", ThreadPoolExecutor)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def metrics(request: web.Request) -> web.StreamResponse:
    """Render in a worker thread (a fleet's scrape must not stall the poll loop) and stream the chunks,
    so a 40 MB exposition is never joined into one more copy.

    Always the Prometheus text format, whatever ``Accept`` asks for (as client_golang does by
    default): Prometheus reads it, and only this format has the cached fast path (see exporter.metrics).
    """
    rt = request.app[RUNTIME]
    loop = asyncio.get_running_loop()
    chunks = await loop.run_in_executor(
        request.app[_RENDER], render_exposition, rt.registry, rt.collector
    )
    resp = web.StreamResponse(headers={"Content-Type": CONTENT_TYPE})
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        resp.enable_compression()
    else:
        resp.content_length = sum(len(c) for c in chunks)
    await resp.prepare(request)
    for chunk in chunks:
        await resp.write(chunk)
    await resp.write_eof()
    return resp


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers and its loops run. Cloud trouble is reported by metrics, not here."""
    rt = request.app[RUNTIME]
    alive = rt.alive()
    body: dict[str, object] = {
        "status": "ok" if alive else "degraded",
        "vehicles": len(rt.hub.vehicles),
        "version": __version__,
    }
    if rt.fleet is not None:
        body["shard"] = rt.fleet.health()
    return web.json_response(body, status=200 if alive else 503)


def _ago(seconds: float) -> str:
    s = int(max(0, seconds))
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= n:
            return f"{s // n} {unit} ago"
    return f"{s} s ago"


_POLLING: dict[str, str] = {  # the scheduler's state, as the "next poll" column explains it
    "driving": "often (driving)",
    "charging": "often (charging)",
    "parked": "every few minutes (parked)",
    "asleep": "rarely (asleep)",
    "backoff": "retrying after errors",
    "paused": "paused",
    "unknown": "not polled yet",
}


def _status(rt: Runtime, vin: str) -> str:
    """How the car is being polled, or what its owner must do first."""
    if needs_reconnect(rt.scheduler, rt.health, vin):
        return "reconnect needed"
    h = rt.health.vehicles.get(vin)
    state = h.state if h else "unknown"
    return _POLLING.get(state, state)


async def landing(request: web.Request) -> web.Response:
    """A page a person leaves open: it refreshes itself, shows VINs masked as the logs do (the page
    may be on a shared screen), and says per car which account it comes through."""
    rt = request.app[RUNTIME]
    now = rt.clock.now()
    rows = []
    for vin, info in sorted(rt.hub.vehicles.items()):
        snap = rt.hub.latest(vin)
        soc = snap.values.get("battery_soc") if snap else None
        rows.append(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} {}</td><td>{}</td><td>{}</td><td>{}</td>"
            "</tr>".format(
                html.escape(mask_vin(vin)),
                html.escape(info.account or "–"),
                html.escape(info.provider),
                html.escape(info.make),
                html.escape(info.model),
                f"{float(soc) * 100:.0f} %" if isinstance(soc, float) else "–",
                html.escape(
                    datetime.fromtimestamp(snap.car_time, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
                    + f" ({_ago(now - snap.car_time)})"
                )
                if snap
                else "no report yet",
                html.escape(_status(rt, vin)),
            )
        )
    links = "".join(
        f'<li><a href="{html.escape(href, quote=True)}">{html.escape(label)}</a></li>'
        for label, href in rt.landing_links + _reauth_links(rt)
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>carmetrics</title>
<meta http-equiv="refresh" content="30">
<style>body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}</style></head>
<body><h1>carmetrics {html.escape(__version__)}</h1>
<p><a href="/metrics">/metrics</a> · <a href="/healthz">/healthz</a></p>
<ul class="links">{links}</ul>
<table><thead><tr><th>VIN</th><th>account</th><th>provider</th><th>model</th>
<th>state of charge</th><th>last car report</th><th>polled</th></tr></thead>
<tbody>{"".join(rows) or '<tr><td colspan="7">no vehicles yet</td></tr>'}</tbody></table>
<p><small>This page refreshes every 30 s.</small></p>
</body></html>"""
    return web.Response(text=page, content_type="text/html")


def _reauth_links(rt: Runtime) -> list[tuple[str, str]]:
    """A "Reconnect" link per car whose connection only its owner can repair."""
    out = []
    for provider in rt.providers.values():
        for vin, href in provider.reauth_links().items():
            info = rt.hub.vehicles.get(vin)
            name = f"{info.make} {info.model}".strip() if info else ""
            out.append((f"Reconnect {name or 'car'} ({mask_vin(vin)})", href))
    return out


def _add_routes(app: web.Application, runtime: Runtime) -> None:
    """Routes of each configured provider kind (once per kind), then of the features."""
    kinds = sorted({a.provider for a in runtime.config.accounts})
    for name in kinds:
        entry = registry.entry_for(next(a for a in runtime.config.accounts if a.provider == name))
        if entry.web is None:
            continue

        def providers(kind: str = name) -> list[Provider]:
            return [p for p in runtime.providers.values() if p.name == kind]

        entry.web(
            app,
            registry.WebContext(
                accounts=[a for a in runtime.config.accounts if a.provider == name],
                providers=providers,
                vehicles=lambda: runtime.hub.vehicles,
                links=runtime.landing_links,
                registry=runtime.registry,
            ),
        )
    commands_web.setup(app, runtime)
    mqtt_wiring.setup(app, runtime)


@web.middleware
async def _fleet_routing(request: web.Request, handler: Handler) -> web.StreamResponse:
    """In a fleet, a command or webhook for a car another instance holds goes there."""
    fleet = request.app[RUNTIME].fleet
    if fleet is None:
        return await handler(request)
    return await fleet.forwarder.handle(request, handler)


def make_app(runtime: Runtime, *, manage_runtime: bool = True) -> web.Application:
    """The aiohttp application. With ``manage_runtime`` the runtime is started and stopped with it."""
    app = web.Application(middlewares=[_fleet_routing])
    app[RUNTIME] = runtime
    app[_RENDER] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics")
    app.router.add_get("/", landing)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    _add_routes(app, runtime)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        if manage_runtime:
            try:
                await runtime.start()
            except BaseException:
                await runtime.stop()  # close what started (HTTP session, simulator, history)
                raise
        yield
        if manage_runtime:
            await runtime.stop()
        app[_RENDER].shutdown(wait=False)

    app.cleanup_ctx.append(lifecycle)
    return app


def serve(config: Config) -> None:
    """Run until SIGTERM/SIGINT (``carmetrics run``); aiohttp's run_app handles the signals and then
    runs the cleanup context, which stops the runtime and flushes the history."""

    async def build() -> web.Application:
        return make_app(await Runtime.create(config))

    log.info(
        "listening", extra={"url": f"http://{config.listen}:{config.port}/", "db": str(config.db)}
    )
    web.run_app(
        build(),
        host=config.listen,
        port=config.port,
        access_log=None,
        print=None,
        shutdown_timeout=10,
        handle_signals=True,
    )
