"""Providers for benches, built exactly as the runtime builds them: through the registry, from an
account and a ProviderContext whose sink feeds a hub."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from exporter.clock import Clock
from exporter.config import AccountConfig
from exporter.hub import Hub, Outcome
from exporter.providers import registry
from exporter.providers.base import ProviderContext, SimulatorLink, TokenStore
from exporter.providers.smart import SmartProvider
from exporter.snapshot import Snapshot, VehicleInfo


class HubSink:
    """A sink that publishes to a hub and registers cars there (a bench has no re-listing)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def publish(self, snapshot: Snapshot) -> Outcome:
        return self.hub.publish(snapshot)

    def vehicle_added(self, info: VehicleInfo) -> None:
        self.hub.register(info)

    def vehicle_removed(self, vin: str) -> None:
        self.hub.forget(vin)

    def request_poll(self, vin: str, delay: float = 0.0) -> None:
        return None


def smart_provider(
    account: AccountConfig,
    session: aiohttp.ClientSession,
    clock: Clock,
    tokens: TokenStore,
    sim_urls: Mapping[str, str],
    hub: Hub | None = None,
) -> SmartProvider:
    """A smart provider for ``account`` against a simulator serving ``sim_urls``."""
    ctx = ProviderContext(
        session,
        clock,
        tokens,
        HubSink(hub or Hub()),
        simulator=SimulatorLink(urls={"smart": sim_urls}, logins={}),
    )
    provider = registry.build(account, ctx)
    assert isinstance(provider, SmartProvider)
    return provider
