"""The Smartcar provider: Connect, token rotation, ``/batch`` polling and webhooks-first ingestion.

``build_from_runtime`` is what the runtime calls for an ``[[accounts]]`` entry with
``provider = "smartcar"``; ``web.setup`` adds the Connect, callback and webhook routes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from exporter.config import AccountConfig, ConfigError, Secret
from exporter.providers.smartcar.provider import SmartcarProvider
from exporter.providers.smartcar.settings import SmartcarSettings, from_account

__all__ = ["SmartcarProvider", "SmartcarSettings", "build_from_runtime", "from_account"]


def _local_base(runtime: Any) -> str:
    host = runtime.config.listen
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://{host}:{runtime.config.port}"


def _simulated(account: AccountConfig, runtime: Any) -> tuple[AccountConfig, dict[str, str]]:
    """A simulator account gets the simulator's URLs and demo app credentials (never on disk)."""
    sim = runtime.simulator
    urls = (getattr(sim, "urls", None) or {}).get("smartcar") if sim is not None else None
    if not urls:
        raise ConfigError(
            f"{account.key('simulator')} = true but the embedded simulator serves no Smartcar "
            "cloud (set simulator.enabled = true and list simulator.smartcar_vehicles)"
        )
    login = (getattr(sim, "logins", None) or {}).get("smartcar") or {}
    settings = dict(account.settings)
    secrets = dict(account.secrets)
    settings.setdefault("client_id", login.get("client_id"))
    if login.get("webhook_id"):
        settings.setdefault("webhook_id", login["webhook_id"])
    for key in ("client_secret", "management_token"):
        if key not in secrets and login.get(key):
            secrets[key] = Secret(str(login[key]))
    return replace(account, settings=settings, secrets=secrets), dict(urls)


def build_from_runtime(account: AccountConfig, runtime: Any) -> SmartcarProvider:
    """The provider for ``account``; validates its settings (ConfigError names the key)."""
    from exporter.providers.smartcar.web import DEFAULT_CALLBACK, WEBHOOK_PATH, sync_links

    sim_urls = None
    if account.simulator:
        account, sim_urls = _simulated(account, runtime)
    settings = from_account(
        account, sim_urls=sim_urls, default_redirect=_local_base(runtime) + DEFAULT_CALLBACK
    )
    if account.simulator:
        # the simulator's "Dashboard": register our redirect URI and webhook callback
        service = runtime.simulator.service("smartcar")
        hook = _local_base(runtime) + WEBHOOK_PATH if settings.webhooks else None
        service.register_client(settings.client_id, settings.redirect_uri, hook)
    provider = SmartcarProvider(settings, runtime.session, runtime.clock, runtime.tokens)
    provider.listeners.append(lambda _vin: sync_links(runtime))
    return provider
