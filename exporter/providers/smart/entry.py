"""The smart provider's registry entry: how an account is validated and its provider built.

:data:`ENTRY` is what ``exporter.providers.registry`` loads when it first builds a smart provider;
everything else in this package is internal.
"""

from __future__ import annotations

import weakref
from dataclasses import replace

import aiohttp

from exporter.config import AccountConfig, ConfigError, Secret
from exporter.providers.base import ProviderContext
from exporter.providers.entry import ProviderEntry
from exporter.providers.smart.breaker import BreakerRegistry
from exporter.providers.smart.hosts import SmartHosts
from exporter.providers.smart.provider import SmartProvider
from exporter.providers.smart.settings import SmartAccount, SmartSettings, read_settings

__all__ = ["ENTRY", "SmartHosts", "SmartProvider", "account_settings", "build"]


def account_settings(account: AccountConfig, ctx: ProviderContext) -> SmartSettings:
    """Validate ``account``; a simulator account gets the simulator's URLs and demo login (never
    written to any file). Raises ConfigError naming the key."""
    sim_urls = None
    if account.simulator and account.settings.get("hosts"):
        # a simulator account pointed at a standalone simulator (`bench.simproc`) by its own
        # hosts table: loopback is allowed, the login is the account's own
        return read_settings(account)
    if account.simulator:
        if ctx.simulator is None or "smart" not in ctx.simulator.urls:
            raise ConfigError(f"{account.key('simulator')} = true but no simulator is running")
        sim_urls = ctx.simulator.urls["smart"]
        region = str(account.settings.get("region", "EU")).lower()
        login = ctx.simulator.logins.get(f"smart_{region}") or {}
        values = dict(account.settings)
        secrets = dict(account.secrets)
        if "username" not in values and "username" in login:
            values["username"] = login["username"]
        if "password" not in secrets and "password" in login:
            secrets["password"] = Secret(login["password"])
        account = replace(account, settings=values, secrets=secrets)
    return read_settings(account, None, sim_urls)


# One login breaker registry per runtime (its HTTP session): accounts of one process that share a
# username share its quiet window, while separate runtimes in one process (tests, benches, each on
# its own clock) never inherit another's window.
_BREAKERS: weakref.WeakKeyDictionary[aiohttp.ClientSession, BreakerRegistry] = (
    weakref.WeakKeyDictionary()
)


def build(settings: SmartSettings, ctx: ProviderContext) -> SmartProvider:
    breakers = _BREAKERS.setdefault(ctx.session, BreakerRegistry())
    return SmartProvider(settings, ctx.session, ctx.clock, ctx.tokens, breakers=breakers)


ENTRY = ProviderEntry("smart", account_settings, build, model=SmartAccount)
