"""The Smartcar provider: Connect, token rotation, ``/batch`` polling and webhooks-first ingestion.

:data:`ENTRY` is its line in ``exporter.providers.registry``: ``account_settings`` validates an
``[[accounts]]`` entry with ``provider = "smartcar"``, ``build`` makes the provider and ``web.setup``
adds the Connect, callback and webhook routes.
"""

from __future__ import annotations

from dataclasses import replace

from exporter.config import AccountConfig, ConfigError, Secret
from exporter.providers.base import ProviderContext
from exporter.providers.entry import ProviderEntry
from exporter.providers.smartcar import web
from exporter.providers.smartcar.provider import SmartcarProvider
from exporter.providers.smartcar.settings import SmartcarAccount, SmartcarSettings, from_account

__all__ = [
    "ENTRY",
    "SmartcarProvider",
    "SmartcarSettings",
    "account_settings",
    "build",
    "from_account",
]


def _simulated(
    account: AccountConfig, ctx: ProviderContext
) -> tuple[AccountConfig, dict[str, str]]:
    """A simulator account gets the simulator's URLs and demo app credentials (never on disk)."""
    urls = ctx.simulator.urls.get("smartcar") if ctx.simulator is not None else None
    if not urls:
        raise ConfigError(
            f"{account.key('simulator')} = true but the embedded simulator serves no Smartcar "
            "cloud (set simulator.enabled = true and list simulator.smartcar_vehicles)"
        )
    assert ctx.simulator is not None
    login = ctx.simulator.logins.get("smartcar") or {}
    values = dict(account.settings)
    secrets = dict(account.secrets)
    values.setdefault("client_id", login.get("client_id"))
    if login.get("webhook_id"):
        values.setdefault("webhook_id", login["webhook_id"])
    for key in ("client_secret", "management_token"):
        if key not in secrets and login.get(key):
            secrets[key] = Secret(str(login[key]))
    return replace(account, settings=values, secrets=secrets), dict(urls)


def account_settings(account: AccountConfig, ctx: ProviderContext) -> SmartcarSettings:
    """Validate ``account`` (ConfigError names the key)."""
    sim_urls = None
    if account.simulator:
        account, sim_urls = _simulated(account, ctx)
    return from_account(
        account, sim_urls=sim_urls, default_redirect=ctx.public_url + web.DEFAULT_CALLBACK
    )


def build(settings: SmartcarSettings, ctx: ProviderContext) -> SmartcarProvider:
    provider = SmartcarProvider(settings, ctx.session, ctx.clock, ctx.tokens, ctx.sink)
    if settings.simulator:
        # the simulator's "Dashboard" (an admin request at start): our redirect URI and webhook
        hook = ctx.public_url + web.WEBHOOK_PATH if settings.webhooks else None
        provider.dashboard = (settings.api_url.rstrip("/") + "/_sim/apps", hook)
    return provider


ENTRY = ProviderEntry("smartcar", account_settings, build, web.setup, model=SmartcarAccount)
