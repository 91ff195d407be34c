"""The smart (#1/#3/#5) cloud provider: signing, EU/INTL login, token ladder, parsing, commands.

The runtime builds it through :func:`build`; everything else in this package is internal.
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from exporter.clock import Clock
from exporter.config import AccountConfig
from exporter.providers.base import TokenStore
from exporter.providers.smart.hosts import SmartHosts
from exporter.providers.smart.provider import SmartProvider

__all__ = ["SmartHosts", "SmartProvider", "build"]


def build(
    account: AccountConfig,
    session: aiohttp.ClientSession,
    clock: Clock,
    tokens: TokenStore,
    sim_urls: Mapping[str, str] | None = None,
) -> SmartProvider:
    """A provider for ``account``. ``sim_urls`` (the simulator's ``urls["smart"]``) replace the
    base URLs only when the account is marked ``simulator = true``. Raises ConfigError on bad
    settings."""
    return SmartProvider(
        account, session, clock, tokens, sim_urls=sim_urls if account.simulator else None
    )
