"""A Smartcar API v3 account's settings (``api_version = 3``, the default), validated with errors
that name ``accounts[i].<key>``.

v3 credentials (smartcar-v3.md §1.1): the API ``client_id`` (``client_...``) and ``client_secret``
get the application token at iam; the ``application_id`` (a UUID, the legacy v2 client id) is what
Connect takes; the ``management_token`` (AMT) keys the webhook HMAC. The secrets come from
``*_file`` / environment variables like every secret, never from the config file. Base URLs pass
the same allowlist as v2, with v3's hosts.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from exporter.config import AccountConfig, ConfigError, Secret
from exporter.providers.smartcar.settings import (
    MODES,
    V3_HOSTS,
    V3_URLS,
    _bool,
    _positive,
    _redirect,
    _str_list,
    check_url,
)

V3_KEYS: Final = frozenset(
    {
        "api_version",
        "client_id",
        "application_id",
        "redirect_uri",
        "mode",
        "scopes",
        "required_scopes",
        "make",
        "single_select",
        "location",
        "commands",
        "webhooks",
        "webhook_id",
        "webhook_poll_interval",
        "budget_calls_per_vehicle",
        "budget_reserve_calls",
        "budget_app_calls_per_month",
        "signals_cost",
        "command_timeout",
        "urls",
    }
)
CLIENT_ID_RE: Final = re.compile(r"^[A-Za-z0-9_.-]{3,128}$")


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
    signals_cost: int = 1
    command_timeout: float = 310.0  # the official SDK's timeout [SDK-PY helpers.py]
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
    value = account.setting("api_version", 3)
    if value not in (2, 3) or isinstance(value, bool):
        raise ConfigError(
            f"{account.key('api_version')} = {value!r}: expected 3 (Smartcar API v3, the default) "
            "or 2 (the retiring v2.0 API)"
        )
    return int(value)


def from_account_v3(
    account: AccountConfig,
    *,
    sim_urls: Mapping[str, str] | None = None,
    default_redirect: str | None = None,
) -> SmartcarV3Settings:
    for key in account.settings:
        if key not in V3_KEYS:
            hint = " (a v2 key: set api_version = 2 to keep using v2)" if key in _V2_ONLY else ""
            raise ConfigError(
                f"{account.key(key)}: unknown key for a smartcar v3 account{hint}; expected one "
                "of: " + ", ".join(sorted(V3_KEYS))
            )
    client_id = account.setting("client_id", None, kind=str)
    if not client_id or not CLIENT_ID_RE.match(client_id):
        raise ConfigError(
            f"{account.key('client_id')} = {client_id!r}: copy the API client ID (it starts with "
            "client_) from the Smartcar Dashboard, API Credentials tab"
        )
    app_id = account.setting("application_id", None, kind=str)
    try:
        uuid.UUID(str(app_id))
    except ValueError:
        raise ConfigError(
            f"{account.key('application_id')} = {app_id!r}: expected the Application ID, a UUID "
            "(the client id of the v2 Dashboard); Connect needs it"
        ) from None
    secret = account.secret("client_secret")
    assert secret is not None
    mode = account.setting("mode", "simulated" if account.simulator else "live", kind=str)
    if mode not in MODES:
        raise ConfigError(f"{account.key('mode')} = {mode!r}: expected one of {', '.join(MODES)}")
    redirect = account.setting("redirect_uri")
    if redirect is None and account.simulator:
        redirect = default_redirect
    redirect = _redirect(redirect, account.key("redirect_uri"))
    webhooks = _bool(account, "webhooks", False)
    amt = account.secret("management_token", required=webhooks)
    urls: dict[str, Any] = dict(V3_URLS)
    for key, value in account.setting("urls", {}, kind=dict).items():
        if key not in V3_URLS:
            raise ConfigError(
                f"{account.key('urls')}.{key}: unknown host key; expected "
                + ", ".join(sorted(V3_URLS))
            )
        urls[key] = value
    if account.simulator and sim_urls:
        urls.update({k: v for k, v in sim_urls.items() if k in V3_URLS})
    checked = {
        k: check_url(v, f"{account.key('urls')}.{k}", simulator=account.simulator, hosts=V3_HOSTS)
        for k, v in urls.items()
    }
    per_vehicle = _positive(account, "budget_calls_per_vehicle", 500, integer=True)
    reserve = account.setting("budget_reserve_calls", 20, kind=int)
    if isinstance(reserve, bool) or not 0 <= reserve < per_vehicle:
        raise ConfigError(
            f"{account.key('budget_reserve_calls')} = {reserve!r}: expected 0 or more and "
            f"fewer than budget_calls_per_vehicle ({per_vehicle})"
        )
    app_calls = account.setting("budget_app_calls_per_month")
    if app_calls is not None:
        app_calls = _positive(account, "budget_app_calls_per_month", 1, integer=True)
    return SmartcarV3Settings(
        account=account.name,
        client_id=client_id,
        client_secret=secret,
        application_id=str(app_id),
        redirect_uri=redirect,
        management_token=amt,
        mode=mode,
        scopes=_str_list(account, "scopes"),
        required_scopes=_str_list(account, "required_scopes"),
        make=account.setting("make", None, kind=str),
        single_select=_bool(account, "single_select", False),
        location=_bool(account, "location", False),
        commands=_bool(account, "commands", False),
        webhooks=webhooks,
        webhook_id=account.setting("webhook_id", None, kind=str),
        webhook_poll_interval=_positive(account, "webhook_poll_interval", 12 * 3600.0),
        budget_calls_per_vehicle=per_vehicle,
        budget_reserve_calls=int(reserve),
        budget_app_calls_per_month=app_calls,
        signals_cost=_positive(account, "signals_cost", 1, integer=True),
        command_timeout=_positive(account, "command_timeout", 310.0),
        iam_url=checked["iam"],
        vehicle_api_url=checked["vehicle_api"],
        management_api_url=checked["management_api"],
        connect_url=checked["connect"],
        simulator=account.simulator,
    )


_V2_ONLY: Final = frozenset({"token_renew_days", "reauth_probe_interval"})
