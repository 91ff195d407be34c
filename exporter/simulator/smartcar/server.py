"""Serve a ``SmartcarCloud`` on loopback: one port per Smartcar host, plus the webhook emitter.

Separate ports for Connect, the token endpoint and the API mean a client that mixes up its base URLs
fails here as it would against the real hosts.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from exporter.simulator.smartcar import admin, api, connect, token
from exporter.simulator.smartcar.connect import CLOUD
from exporter.simulator.smartcar.state import SmartcarCloud
from exporter.simulator.smartcar.webhooks import WebhookEmitter


def make_apps(
    cloud: SmartcarCloud, urls: dict[str, str] | None = None
) -> dict[str, web.Application]:
    """The three aiohttp apps (connect, auth, api) over one shared cloud; ``urls`` is the shared
    (later filled) map of base URLs the apps use in links they hand out."""
    apps: dict[str, web.Application] = {}
    urls = {} if urls is None else urls
    for name, add_routes in (
        ("connect", connect.routes),
        ("auth", token.routes),
        ("api", api.routes),
    ):
        app = web.Application()
        app[CLOUD] = cloud
        app[api.SIM_URLS] = urls
        add_routes(app)
        if name == "api":
            admin.routes(app)
        apps[name] = app
    return apps


class SmartcarSimulator:
    """Start/stop the simulated Smartcar. ``urls`` maps host role to base URL once started:
    ``connect`` (``/oauth/authorize``), ``auth`` (``/oauth/token``), ``api`` (``/v2.0/...``)."""

    def __init__(
        self, cloud: SmartcarCloud, *, host: str = "127.0.0.1", **emitter_options: Any
    ) -> None:
        self.cloud = cloud
        self.host = host
        self.emitter = WebhookEmitter(cloud, **emitter_options)
        self.urls: dict[str, str] = {}
        self.apps = make_apps(cloud, self.urls)
        self._runners: list[web.AppRunner] = []

    def register_client(
        self, client_id: str, redirect_uri: str, webhook_url: str | None = None
    ) -> None:
        """What a developer does in the Dashboard: add a redirect URI, set the webhook callback
        (a changed callback URL must be verified again before events flow)."""
        app = self.cloud.apps[client_id]
        if redirect_uri not in app.redirect_uris:
            app.redirect_uris = (*app.redirect_uris, redirect_uri)
        if webhook_url and webhook_url != app.webhook_url:
            app.webhook_url = webhook_url
            app.verified = False

    async def start(self) -> dict[str, str]:
        for name, app in self.apps.items():
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, self.host, 0)
            await site.start()
            self._runners.append(runner)
            port = runner.addresses[0][1]
            self.urls[name] = f"http://{self.host}:{port}"
        await self.emitter.start()
        return dict(self.urls)

    async def stop(self) -> None:
        await self.emitter.close()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()

    async def __aenter__(self) -> SmartcarSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
