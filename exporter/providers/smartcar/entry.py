"""The Smartcar provider's registry entry (v3 by default, v2 behind ``api_version = 2``).

:data:`ENTRY` is what ``exporter.providers.registry`` loads when it first builds a Smartcar
provider: ``account_settings`` validates an ``[[accounts]]`` entry with ``provider = "smartcar"``,
``build`` makes the provider and ``web.setup`` adds the Connect, callback and webhook routes.
"""

from __future__ import annotations

from dataclasses import replace

from exporter.config import AccountConfig, ConfigError, Secret
from exporter.providers.base import ProviderContext
from exporter.providers.entry import ProviderEntry
from exporter.providers.smartcar import web
from exporter.providers.smartcar.provider import SmartcarProvider
from exporter.providers.smartcar.settings import SmartcarAccount, SmartcarSettings, from_account
from exporter.providers.smartcar.v3_provider import SmartcarV3Provider
from exporter.providers.smartcar.v3_settings import SmartcarV3Settings, api_version, from_account_v3

__all__ = [
    "ENTRY",
    "SmartcarProvider",
    "SmartcarSettings",
    "SmartcarV3Provider",
    "SmartcarV3Settings",
    "account_settings",
    "build",
    "from_account",
]


def _simulated(
    account: AccountConfig, ctx: ProviderContext, cloud: str, plain: tuple[str, ...]
) -> tuple[AccountConfig, dict[str, str]]:
    """A simulator account gets the simulator's URLs for ``cloud`` ("smartcar" for v2,
    "smartcar_v3") and its demo app credentials (never on disk): the ``plain`` keys as settings,
    the client secret and management token as secrets."""
    urls = ctx.simulator.urls.get(cloud) if ctx.simulator is not None else None
    if not urls:
        raise ConfigError(
            f"{account.key('simulator')} = true but the embedded simulator serves no Smartcar "
            "cloud (set simulator.enabled = true and list simulator.smartcar_vehicles)"
        )
    assert ctx.simulator is not None
    login = ctx.simulator.logins.get(cloud) or {}
    values = dict(account.settings)
    secrets = dict(account.secrets)
    for key in plain:
        if login.get(key):
            values.setdefault(key, login[key])
    for key in ("client_secret", "management_token"):
        if key not in secrets and login.get(key):
            secrets[key] = Secret(str(login[key]))
    return replace(account, settings=values, secrets=secrets), dict(urls)


def account_settings(
    account: AccountConfig, ctx: ProviderContext
) -> SmartcarSettings | SmartcarV3Settings:
    """Validate ``account`` (ConfigError names the key): ``api_version`` 3 (default) or 2."""
    default_redirect = ctx.public_url + web.DEFAULT_CALLBACK
    if api_version(account) == 3:
        sim_urls = None
        if account.simulator:
            account, sim_urls = _simulated(
                account, ctx, "smartcar_v3", ("client_id", "application_id", "webhook_id")
            )
        return from_account_v3(account, sim_urls=sim_urls, default_redirect=default_redirect)
    sim_urls = None
    if account.simulator:
        account, sim_urls = _simulated(account, ctx, "smartcar", ("client_id", "webhook_id"))
    return from_account(account, sim_urls=sim_urls, default_redirect=default_redirect)


def build(
    settings: SmartcarSettings | SmartcarV3Settings, ctx: ProviderContext
) -> SmartcarProvider | SmartcarV3Provider:
    hook = ctx.public_url + web.WEBHOOK_PATH if settings.webhooks else None
    if isinstance(settings, SmartcarV3Settings):
        v3 = SmartcarV3Provider(settings, ctx.session, ctx.clock, ctx.tokens, ctx.sink)
        if settings.simulator and ctx.simulator is not None:
            # the simulator's "Dashboard": the Application ID's redirect URI (admin API on the
            # v2 host, where Connect's apps live) and the webhook's callback (management host)
            v2_api = ctx.simulator.urls.get("smartcar", {}).get("api", "")
            v3.dashboard = (
                v2_api.rstrip("/") + "/_sim/apps",
                settings.management_api_url.rstrip("/") + "/_sim/webhooks",
                hook,
            )
        return v3
    provider = SmartcarProvider(settings, ctx.session, ctx.clock, ctx.tokens, ctx.sink)
    if settings.simulator:
        # the simulator's "Dashboard" (an admin request at start): our redirect URI and webhook
        provider.dashboard = (settings.api_url.rstrip("/") + "/_sim/apps", hook)
    return provider


ENTRY = ProviderEntry("smartcar", account_settings, build, web.setup, model=SmartcarAccount)
