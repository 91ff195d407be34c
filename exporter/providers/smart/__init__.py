"""The smart (#1/#3/#5) cloud provider: signing, EU/INTL login, token ladder, parsing, commands.

:data:`ENTRY` is its line in ``exporter.providers.registry``; everything else in this package is
internal.
"""

from __future__ import annotations

from dataclasses import replace

from exporter.config import AccountConfig, ConfigError, Secret
from exporter.providers.base import ProviderContext
from exporter.providers.entry import ProviderEntry
from exporter.providers.smart.hosts import SmartHosts
from exporter.providers.smart.provider import SmartProvider
from exporter.providers.smart.settings import SmartSettings, read_settings

__all__ = ["ENTRY", "SmartHosts", "SmartProvider", "account_settings", "build"]


def account_settings(account: AccountConfig, ctx: ProviderContext) -> SmartSettings:
    """Validate ``account``; a simulator account gets the simulator's URLs and demo login (never
    written to any file). Raises ConfigError naming the key."""
    sim_urls = None
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


def build(settings: SmartSettings, ctx: ProviderContext) -> SmartProvider:
    return SmartProvider(settings, ctx.session, ctx.clock, ctx.tokens)


ENTRY = ProviderEntry("smart", account_settings, build)
