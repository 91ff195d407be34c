"""A Smartcar API v3 account's settings (``api_version = 3``, the default), built from the same
account model as v2 (``SmartcarAccount``, whose v3 rules apply unless ``api_version = 2``), so
``check-config`` and ``run`` report a mistake with the same line naming ``accounts[i].<key>``.

v3 credentials (smartcar-v3.md §1.1): the API ``client_id`` (``client_...``) and ``client_secret``
get the application token at iam; the ``application_id`` (a UUID, the legacy v2 client id) is what
Connect takes; the ``management_token`` (AMT) keys the webhook HMAC. The secrets come from
``*_file`` / environment variables like every secret, never from the config file. Base URLs pass
the same allowlist as v2, with v3's hosts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from pydantic_core import PydanticCustomError

from exporter.config import AccountConfig, ConfigError, Secret
from exporter.providers.smartcar.settings import (
    API_VERSIONS,
    APPLICATION_ID,
    CLIENT_ID_RE,
    REGISTERED,
    V2_ONLY,
    V3_CLIENT_ID,
    V3_HOSTS,
    V3_URLS,
    SmartcarAccount,
    shared_fields,
)
from exporter.settings import missing, read_error, read_section
from exporter.urls import check_base_url

__all__ = ["CLIENT_ID_RE", "V2_ONLY", "SmartcarV3Settings", "api_version", "from_account_v3"]

# Billed calls per GET /signals: 1 in the reading of the docs our reference gives; per-signal
# billing is an open question (smartcar-v3.md §2.4, §7 q6), so it is a setting.
DEFAULT_SIGNALS_COST: Final = 1
DEFAULT_COMMAND_TIMEOUT: Final = 310.0  # the official SDK's timeout [SDK-PY helpers.py]


@dataclass(frozen=True)
class SmartcarV3Settings:
    account: str
    client_id: str
    client_secret: Secret
    application_id: str
    redirect_uri: str
    management_token: Secret | None = None
    mode: str = "live"
    scopes: tuple[str, ...] | None = None
    required_scopes: tuple[str, ...] | None = None
    make: str | None = None
    single_select: bool = False
    location: bool = False
    commands: bool = False
    webhooks: bool = False
    webhook_id: str | None = None
    webhook_poll_interval: float = 12 * 3600.0
    budget_calls_per_vehicle: int = 500
    budget_reserve_calls: int = 20
    budget_app_calls_per_month: int | None = None
    # Billed calls per GET /signals: 1 in the reading of the docs our reference gives; per-signal
    # billing is an open question (smartcar-v3.md §2.4, §7 q6), so it is a setting.
    signals_cost: int = DEFAULT_SIGNALS_COST
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT
    iam_url: str = V3_URLS["iam"]
    vehicle_api_url: str = V3_URLS["vehicle_api"]
    management_api_url: str = V3_URLS["management_api"]
    connect_url: str = V3_URLS["connect"]
    simulator: bool = False

    @property
    def token_url(self) -> str:
        return f"{self.iam_url}/oauth2/token"

    @property
    def callback_path(self) -> str:
        return urlsplit(self.redirect_uri).path or "/"


def api_version(account: AccountConfig) -> int:
    """``api_version``: 3 (default) or 2 (applications that have not migrated yet)."""
    value = account.settings.get("api_version", 3)
    if value not in (2, 3) or isinstance(value, bool):
        raise ConfigError(f"{account.key('api_version')} = {value!r}: expected {API_VERSIONS}")
    return int(value)


def from_account_v3(
    account: AccountConfig,
    *,
    sim_urls: Mapping[str, str] | None = None,
    default_redirect: str | None = None,
) -> SmartcarV3Settings:
    """Validate ``account`` (a v3 one) against ``SmartcarAccount``. ``sim_urls`` are the
    simulator's base URLs, used only for a ``simulator = true`` account; ``default_redirect``
    fills a missing ``redirect_uri`` for a simulator account (the exporter's own callback)."""
    raw = account.raw()
    if account.simulator:
        raw.setdefault("redirect_uri", default_redirect)
        urls = {**(raw.get("urls") or {}), **(sim_urls or {})}
        raw["urls"] = {k: v for k, v in urls.items() if k in V3_URLS} or None
    m = read_section(SmartcarAccount, raw, account.where)
    try:  # a simulator account, too, needs these by now (the simulator gives them)
        if m.client_id is None:
            raise missing("client_id", V3_CLIENT_ID)
        if m.application_id is None:
            raise missing("application_id", APPLICATION_ID)
        if m.client_secret is None:
            raise missing("client_secret")
        if m.webhooks and m.management_token is None:
            raise missing("management_token")
        if m.redirect_uri is None:
            raise missing("redirect_uri", REGISTERED)
        urls = {**V3_URLS, **(m.urls or {})}
        checked = {k: check_base_url(v, V3_HOSTS, simulator=m.simulator) for k, v in urls.items()}
    except PydanticCustomError as exc:
        raise read_error(exc, SmartcarAccount, account.where) from None
    return SmartcarV3Settings(
        account=account.name,
        client_id=m.client_id,
        client_secret=m.client_secret,
        application_id=m.application_id,
        redirect_uri=m.redirect_uri,
        management_token=m.management_token,
        **shared_fields(m),
        signals_cost=m.signals_cost or DEFAULT_SIGNALS_COST,
        command_timeout=m.command_timeout or DEFAULT_COMMAND_TIMEOUT,
        iam_url=checked["iam"],
        vehicle_api_url=checked["vehicle_api"],
        management_api_url=checked["management_api"],
        connect_url=checked["connect"],
        simulator=m.simulator,
    )
