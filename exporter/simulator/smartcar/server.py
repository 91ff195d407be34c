"""Serve a ``SmartcarCloud`` on loopback: one port per Smartcar host, plus the webhook emitter.

Separate ports for Connect, the token endpoint and the API mean a client that mixes up its base URLs
fails here as it would against the real hosts.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from exporter.simulator.smartcar import (
    admin,
    api,
    connect,
    token,
    v3_admin,
    v3_api,
    v3_iam,
    v3_webhooks,
)
from exporter.simulator.smartcar.connect import CLOUD
from exporter.simulator.smartcar.state import SmartcarCloud
from exporter.simulator.smartcar.v3_iam import V3
from exporter.simulator.smartcar.v3_state import V3Cloud
from exporter.simulator.smartcar.v3_webhooks import V3Emitter
from exporter.simulator.smartcar.webhooks import WebhookEmitter


def make_apps(
    cloud: SmartcarCloud, urls: dict[str, str] | None = None, v3: V3Cloud | None = None
) -> dict[str, web.Application]:
    """The aiohttp apps over one shared cloud: v2's connect, auth and api, and v3's iam,
    vehicle_api and management_api hosts (smartcar-v3.md §2.1); ``urls`` is the shared (later
    filled) map of base URLs the apps use in links they hand out."""
    apps: dict[str, web.Application] = {}
    urls = {} if urls is None else urls
    v3 = V3Cloud(cloud) if v3 is None else v3
    for name, add_routes in (
        ("connect", connect.routes),
        ("auth", token.routes),
        ("api", api.routes),
        ("iam", v3_iam.routes),
        ("vehicle_api", v3_api.routes),
        ("management_api", v3_webhooks.routes),
    ):
        app = web.Application()
        app[CLOUD] = cloud
        app[V3] = v3
        app[api.SIM_URLS] = urls
        add_routes(app)
        if name == "api":
            admin.routes(app)
        if name == "management_api":
            v3_admin.routes(app)
        apps[name] = app
    return apps


class SmartcarSimulator:
    """Start/stop the simulated Smartcar. ``urls`` maps host role to base URL once started:
    ``connect`` (``/oauth/authorize``), ``auth`` (``/oauth/token``), ``api`` (``/v2.0/...``),
    ``iam`` (``/oauth2/token``), ``vehicle_api`` and ``management_api`` (``/v3/...``)."""

    def __init__(
        self,
        cloud: SmartcarCloud,
        *,
        host: str = "127.0.0.1",
        v3: V3Cloud | None = None,
        v3_retry_delays: tuple[float, ...] = v3_webhooks.RETRY_DELAYS,
        connect_bind: tuple[str, int] | None = None,
        **emitter_options: Any,
    ) -> None:
        self.cloud = cloud
        self.host = host
        # Connect is the one host a browser opens: it may need a fixed, published address
        self.connect_bind = connect_bind
        self.emitter = WebhookEmitter(cloud, **emitter_options)
        self.v3 = V3Cloud(cloud) if v3 is None else v3
        self.v3_emitter = V3Emitter(self.v3, retry_delays=v3_retry_delays)
        self.urls: dict[str, str] = {}
        self.apps = make_apps(cloud, self.urls, self.v3)
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
            host, port = self.host, 0
            if name == "connect" and self.connect_bind is not None:
                host, port = self.connect_bind
            site = web.TCPSite(runner, host, port)
            await site.start()
            self._runners.append(runner)
            port = runner.addresses[0][1]
            if host in ("", "0.0.0.0", "::"):  # every interface: the browser's way in is loopback
                host = "127.0.0.1"
            self.urls[name] = f"http://{host}:{port}"
        await self.emitter.start()
        return dict(self.urls)

    @property
    def v3_urls(self) -> dict[str, str]:
        """The v3 hosts (``vehicle_api`` and ``management_api`` without the ``/v3`` suffix)."""
        return {k: self.urls[k] for k in ("iam", "vehicle_api", "management_api", "connect")}

    async def stop(self) -> None:
        await self.v3_emitter.close()
        await self.emitter.close()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()

    async def __aenter__(self) -> SmartcarSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
