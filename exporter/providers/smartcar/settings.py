"""A Smartcar account's settings, validated with errors that name ``accounts[i].<key>``.

The client holds a client secret, long-lived refresh tokens and the application management token,
so its base URLs pass an allowlist: HTTPS to Smartcar's own hosts, or plain HTTP to loopback for an
account explicitly marked ``simulator = true``. Anything else stops start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from exporter.config import AccountConfig, ConfigError, Secret

ALLOWED_HOSTS: Final = frozenset(
    {"connect.smartcar.com", "auth.smartcar.com", "api.smartcar.com", "management.smartcar.com"}
)
LOOPBACK: Final = frozenset({"127.0.0.1", "::1", "localhost"})
DEFAULT_URLS: Final = {
    "connect": "https://connect.smartcar.com",
    "auth": "https://auth.smartcar.com",
    "api": "https://api.smartcar.com",
}
MODES: Final = ("live", "simulated", "test")
KNOWN_KEYS: Final = frozenset(
    {
        "api_version",  # 2 here; 3 is v3_settings
        "client_id",
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
        "token_renew_days",
        "reauth_probe_interval",
        "urls",
    }
)


@dataclass(frozen=True)
class SmartcarSettings:
    """Everything the Smartcar client needs from one ``[[accounts]]`` entry."""

    account: str
    client_id: str
    client_secret: Secret
    redirect_uri: str
    management_token: Secret | None = None
    mode: str = "live"
    scopes: tuple[str, ...] | None = None  # None: derived from the signals (scope minimisation)
    required_scopes: tuple[str, ...] | None = None
    make: str | None = None
    single_select: bool = False
    location: bool = False
    commands: bool = False
    webhooks: bool = False
    webhook_id: str | None = None
    webhook_poll_interval: float = 12 * 3600.0  # the safety net while webhooks deliver
    budget_calls_per_vehicle: int = 500
    budget_reserve_calls: int = 20  # kept back for commands and a manual refresh
    budget_app_calls_per_month: int | None = None
    token_renew_days: float = 30.0
    reauth_probe_interval: float = 86400.0
    connect_url: str = DEFAULT_URLS["connect"]
    auth_url: str = DEFAULT_URLS["auth"]
    api_url: str = DEFAULT_URLS["api"]
    simulator: bool = False

    @property
    def token_url(self) -> str:
        return f"{self.auth_url}/oauth/token"

    @property
    def callback_path(self) -> str:
        return urlsplit(self.redirect_uri).path or "/"

    def origins(self) -> frozenset[str]:
        return frozenset(_origin(u) for u in (self.connect_url, self.auth_url, self.api_url))


def _origin(url: str) -> str:
    p = urlsplit(url)
    return f"{p.scheme}://{p.netloc}".lower()


def check_url(
    value: object, key: str, *, simulator: bool, hosts: frozenset[str] = ALLOWED_HOSTS
) -> str:
    want = "https:// and a smartcar.com host"
    if simulator:
        want += " (or http://127.0.0.1:PORT for this simulator account)"
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key} = {value!r}: expected a base URL, {want}")
    try:
        parts = urlsplit(value)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        raise ConfigError(f"{key} = {value!r}: not a valid URL; expected {want}") from None
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError(f"{key} = {value!r}: a base URL may not carry credentials or a query")
    if host in LOOPBACK:
        if not simulator:
            raise ConfigError(
                f"{key} = {value!r}: loopback URLs are accepted only for a simulator account "
                "(set simulator = true)"
            )
        if parts.scheme != "http" or port is None:
            raise ConfigError(f"{key} = {value!r}: expected http://127.0.0.1:PORT")
    elif parts.scheme != "https" or host not in hosts:
        raise ConfigError(f"{key} = {value!r}: expected {want}")
    return value.rstrip("/")


def _redirect(value: object, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(
            f"{key} = {value!r}: expected the callback URL registered in the Smartcar Dashboard, "
            "e.g. https://cars.example.org/connect/smartcar/callback"
        )
    parts = urlsplit(value)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host or parts.fragment:
        raise ConfigError(f"{key} = {value!r}: expected an absolute http(s) URL without fragment")
    if parts.scheme == "http" and host not in LOOPBACK:
        raise ConfigError(
            f"{key} = {value!r}: Smartcar sends the authorization code to this URL; use https "
            "(plain http is accepted only on localhost)"
        )
    return value


def _positive(account: AccountConfig, name: str, default: float, *, integer: bool = False) -> Any:
    value = account.setting(name, default, kind=(int, float))
    if isinstance(value, bool) or value <= 0 or (integer and int(value) != value):
        want = "a positive whole number" if integer else "a positive number"
        raise ConfigError(f"{account.key(name)} = {value!r}: expected {want}")
    return int(value) if integer else float(value)


def _str_list(account: AccountConfig, name: str) -> tuple[str, ...] | None:
    value = account.setting(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{account.key(name)} = {value!r}: expected a list of permission names")
    return tuple(value)


def _bool(account: AccountConfig, name: str, default: bool) -> bool:
    value = account.setting(name, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{account.key(name)} = {value!r}: expected true or false")
    return value


def from_account(
    account: AccountConfig,
    *,
    sim_urls: Mapping[str, str] | None = None,
    default_redirect: str | None = None,
) -> SmartcarSettings:
    """Validate ``account`` (provider = "smartcar"). ``sim_urls`` are the simulator's base URLs,
    used only for a ``simulator = true`` account; ``default_redirect`` fills a missing
    ``redirect_uri`` for a simulator account (the exporter's own callback)."""
    for key in account.settings:
        if key not in KNOWN_KEYS:
            raise ConfigError(
                f"{account.key(key)}: unknown key for a smartcar account; expected one of: "
                + ", ".join(sorted(KNOWN_KEYS))
            )
    client_id = account.setting("client_id", None, kind=str)
    if not client_id:
        raise ConfigError(
            f"{account.key('client_id')} is missing: copy the Client ID of your application "
            "from the Smartcar Dashboard"
        )
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
    webhook_id = account.setting("webhook_id", None, kind=str)
    make = account.setting("make", None, kind=str)

    urls: dict[str, Any] = dict(DEFAULT_URLS)
    raw_urls = account.setting("urls", {}, kind=dict)
    for key, value in raw_urls.items():
        if key not in DEFAULT_URLS:
            raise ConfigError(
                f"{account.key('urls')}.{key}: unknown host key; expected connect, auth or api"
            )
        urls[key] = value
    if account.simulator and sim_urls:
        urls.update({k: v for k, v in sim_urls.items() if k in DEFAULT_URLS})
    checked = {
        k: check_url(v, f"{account.key('urls')}.{k}", simulator=account.simulator)
        for k, v in urls.items()
    }
    app_calls = account.setting("budget_app_calls_per_month")
    if app_calls is not None:
        app_calls = _positive(account, "budget_app_calls_per_month", 1, integer=True)
    per_vehicle = _positive(account, "budget_calls_per_vehicle", 500, integer=True)
    reserve = account.setting("budget_reserve_calls", 20, kind=int)
    if isinstance(reserve, bool) or not 0 <= reserve < per_vehicle:
        raise ConfigError(
            f"{account.key('budget_reserve_calls')} = {reserve!r}: expected 0 or more and "
            f"fewer than budget_calls_per_vehicle ({per_vehicle})"
        )
    renew = _positive(account, "token_renew_days", 30.0)
    if renew >= 59:
        raise ConfigError(
            f"{account.key('token_renew_days')} = {renew!r}: refresh tokens die after 60 days; "
            "renew well before (e.g. 30)"
        )
    return SmartcarSettings(
        account=account.name,
        client_id=client_id,
        client_secret=secret,
        redirect_uri=redirect,
        management_token=amt,
        mode=mode,
        scopes=_str_list(account, "scopes"),
        required_scopes=_str_list(account, "required_scopes"),
        make=make,
        single_select=_bool(account, "single_select", False),
        location=_bool(account, "location", False),
        commands=_bool(account, "commands", False),
        webhooks=webhooks,
        webhook_id=webhook_id,
        webhook_poll_interval=_positive(account, "webhook_poll_interval", 12 * 3600.0),
        budget_calls_per_vehicle=per_vehicle,
        budget_reserve_calls=int(reserve),
        budget_app_calls_per_month=app_calls,
        token_renew_days=renew,
        reauth_probe_interval=_positive(account, "reauth_probe_interval", 86400.0),
        connect_url=checked["connect"],
        auth_url=checked["auth"],
        api_url=checked["api"],
        simulator=account.simulator,
    )
