"""Plugs the MQTT publisher into the exporter's app (called by ``exporter.server`` by plain import):
built from ``[mqtt]`` at setup (a bad table fails start-up with the key named), started and stopped
with the app, on the runtime's hub and the app's one command service."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from exporter.commands.web import command_service
from exporter.mqtt.publisher import Publisher
from exporter.mqtt.settings import load_settings
from exporter.runtime import Runtime

log = logging.getLogger(__name__)

PUBLISHER = web.AppKey("mqtt_publisher", Publisher)


def setup(app: web.Application, runtime: Runtime) -> None:
    settings = load_settings(runtime.config)
    if not settings.enabled:
        return
    service = command_service(app, runtime) if settings.commands else None
    publisher = Publisher(
        settings,
        runtime.hub,
        runtime.clock,
        runtime.scheduler,
        runtime.health,
        service=service,
        export_location=runtime.config.export_location,
        max_data_age=runtime.config.max_data_age,
        ready=runtime.all_listed,
    )
    app[PUBLISHER] = publisher

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        publisher.start()
        log.info(
            "mqtt publisher started",
            extra={
                "broker": f"{settings.host}:{settings.port}",
                "tls": settings.tls,
                "topic_prefix": settings.topic_prefix,
                "commands": service is not None,
            },
        )
        yield
        await publisher.stop()

    app.cleanup_ctx.append(lifecycle)
