"""A Smartcar account's settings, validated with errors that name ``accounts[i].<key>``.

The client holds a client secret, long-lived refresh tokens and the application management token,
so its base URLs pass the one allowlist rule of ``exporter.urls`` against Smartcar's hosts listed
here. Anything else stops start-up.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from exporter.config import AccountConfig, ConfigError, Secret
from exporter.settings import AccountSection, invalid, missing, read_error, read_section, required
from exporter.urls import check_base_url, is_loopback, origin

ALLOWED_HOSTS: Final = frozenset(
    {"connect.smartcar.com", "auth.smartcar.com", "api.smartcar.com", "management.smartcar.com"}
)
DEFAULT_URLS: Final = {
    "connect": "https://connect.smartcar.com",
    "auth": "https://auth.smartcar.com",
    "api": "https://api.smartcar.com",
}
# API v3 (the default) reads from other hosts (smartcar-v3.md §1.1); v3_settings builds on these
V3_HOSTS: Final = frozenset(
    {
        "iam.smartcar.com",
        "vehicle.api.smartcar.com",
        "management.api.smartcar.com",
        "connect.smartcar.com",
    }
)
V3_URLS: Final = {
    "iam": "https://iam.smartcar.com",
    "vehicle_api": "https://vehicle.api.smartcar.com",
    "management_api": "https://management.api.smartcar.com",
    "connect": "https://connect.smartcar.com",
}
MODES: Final = ("live", "simulated", "test")
Mode = Literal["live", "simulated", "test"]
POSITIVE: Final = "a positive number"
WHOLE: Final = "a positive whole number"
Positive = Annotated[float, Field(gt=0, description=POSITIVE)]
Count = Annotated[int, Field(gt=0, description=WHOLE)]
Scopes = Annotated[list[str], Field(description="a list of permission names")]
API_VERSIONS: Final = "3 (Smartcar API v3, the default) or 2 (the retiring v2.0 API)"
# v3's API client id (smartcar-v3.md §1.1): "client_..." in the Dashboard's API Credentials tab
CLIENT_ID_RE: Final = re.compile(r"^[A-Za-z0-9_.-]{3,128}$")
V3_CLIENT_ID: Final = (
    "copy the API client ID (it starts with client_) from the Smartcar Dashboard, "
    "API Credentials tab"
)
APPLICATION_ID: Final = (
    "expected the Application ID, a UUID (the client id of the v2 Dashboard); Connect needs it"
)
# keys only v2 reads: in a v3 account they are a mistake (or a forgotten api_version = 2)
V2_ONLY: Final = frozenset({"token_renew_days", "reauth_probe_interval"})


class SmartcarAccount(AccountSection):
    """``[[accounts]] provider = "smartcar"``."""

    client_id: str | None = None
    client_secret: Secret | None = None
    management_token: Secret | None = None
    redirect_uri: str | None = None
    mode: Mode | None = None  # default: "simulated" for a simulator account, else "live"
    scopes: Scopes | None = None
    required_scopes: Scopes | None = None
    make: str | None = None
    single_select: bool = False
    location: bool = False
    commands: bool = False
    webhooks: bool = False
    webhook_id: str | None = None
    webhook_poll_interval: Positive = 12 * 3600.0  # the safety net while webhooks deliver
    budget_calls_per_vehicle: Count = 500
    # kept back for commands and a manual refresh
    budget_reserve_calls: int = Field(default=20, ge=0)
    budget_app_calls_per_month: Count | None = Field(default=None, description=WHOLE)
    token_renew_days: Positive = 30.0
    reauth_probe_interval: Positive = 86400.0
    urls: dict[str, str] | None = None
    # API v3 keys (api_version = 3, the default); v3_settings.from_account_v3 builds from them
    api_version: int | None = Field(default=None, description=API_VERSIONS)
    application_id: str | None = None
    signals_cost: Count | None = Field(default=None, description=WHOLE)
    command_timeout: Positive | None = Field(default=None, description=POSITIVE)

    @model_validator(mode="after")
    def _complete(self, info: ValidationInfo) -> Self:
        if self.api_version not in (None, 2, 3):
            raise invalid(f"expected {API_VERSIONS}", field="api_version", value=self.api_version)
        if self.api_version != 2:
            self._v3(info)
        client_id = "copy the Client ID of your application from the Smartcar Dashboard"
        if self.client_id is not None and not self.client_id:
            raise missing("client_id", client_id)
        if required(self, info):  # a simulator account gets the simulator's demo app
            if self.client_id is None:
                raise missing("client_id", client_id)
            if self.client_secret is None:
                raise missing("client_secret")
            if self.webhooks and self.management_token is None:
                raise missing("management_token")
            if self.redirect_uri is None:
                raise missing("redirect_uri", REGISTERED)
        for name in ("scopes", "required_scopes"):
            for i, scope in enumerate(getattr(self, name) or ()):
                if not scope:
                    raise invalid("expected a permission name", field=f"{name}[{i}]", value=scope)
        if self.redirect_uri is not None:
            _check_redirect(self.redirect_uri)
        v2 = self.api_version == 2  # no api_version: v3, the default
        known, hosts = (DEFAULT_URLS, ALLOWED_HOSTS) if v2 else (V3_URLS, V3_HOSTS)
        for key, url in (self.urls or {}).items():
            if key not in known:
                *first, last = known
                raise invalid(
                    f"unknown host key; expected {', '.join(first)} or {last}", field=f"urls.{key}"
                )
            try:
                check_base_url(url, hosts, simulator=self.simulator)
            except ValueError as exc:
                raise invalid(str(exc), field=f"urls.{key}", value=url) from None
        if self.budget_reserve_calls >= self.budget_calls_per_vehicle:
            raise invalid(
                "expected 0 or more and fewer than budget_calls_per_vehicle "
                f"({self.budget_calls_per_vehicle})",
                field="budget_reserve_calls",
                value=self.budget_reserve_calls,
            )
        if self.token_renew_days >= 59:
            raise invalid(
                "refresh tokens die after 60 days; renew well before (e.g. 30)",
                field="token_renew_days",
                value=self.token_renew_days,
            )
        return self

    def _v3(self, info: ValidationInfo) -> None:
        """What only a v3 account must satisfy (smartcar-v3.md §1.1)."""
        for key in sorted(V2_ONLY & self.model_fields_set):
            allowed = sorted(set(type(self).model_fields) - V2_ONLY - {"provider", "name"})
            raise invalid(
                "unknown key for a smartcar v3 account (a v2 key: set api_version = 2 to keep "
                f"using v2); expected one of: {', '.join(allowed)}",
                field=key,
            )
        if self.client_id is not None and not CLIENT_ID_RE.match(self.client_id):
            raise invalid(V3_CLIENT_ID, field="client_id", value=self.client_id)
        if self.application_id is not None:
            try:
                uuid.UUID(self.application_id)
            except ValueError:
                raise invalid(
                    APPLICATION_ID, field="application_id", value=self.application_id
                ) from None
        elif required(self, info):  # a simulator account gets the simulator's demo app
            raise missing("application_id", APPLICATION_ID)


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
        return frozenset(origin(u) for u in (self.connect_url, self.auth_url, self.api_url))


def check_url(
    value: object, key: str, *, simulator: bool, hosts: frozenset[str] = ALLOWED_HOSTS
) -> str:
    """The base URL without a trailing slash, or ConfigError naming ``key`` (exporter.urls)."""
    try:
        return check_base_url(value, hosts, simulator=simulator)
    except ValueError as exc:
        raise ConfigError(f"{key} = {value!r}: {exc}") from None


REGISTERED: Final = (
    "expected the callback URL registered in the Smartcar Dashboard, "
    "e.g. https://cars.example.org/connect/smartcar/callback"
)


def _check_redirect(value: object) -> str:
    if value is None:
        raise missing("redirect_uri", REGISTERED)
    if not isinstance(value, str) or not value:
        raise invalid(REGISTERED, field="redirect_uri", value=value)
    parts = urlsplit(value)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host or parts.fragment:
        raise invalid(
            "expected an absolute http(s) URL without fragment", field="redirect_uri", value=value
        )
    if parts.scheme == "http" and not is_loopback(host):
        raise invalid(
            "Smartcar sends the authorization code to this URL; use https "
            "(plain http is accepted only on localhost)",
            field="redirect_uri",
            value=value,
        )
    return value


def shared_fields(m: SmartcarAccount) -> dict[str, Any]:
    """The settings v2 and v3 accounts read alike (the rest differs by API version)."""
    return {
        "mode": m.mode or ("simulated" if m.simulator else "live"),
        "scopes": tuple(m.scopes) if m.scopes is not None else None,
        "required_scopes": tuple(m.required_scopes) if m.required_scopes is not None else None,
        "make": m.make,
        "single_select": m.single_select,
        "location": m.location,
        "commands": m.commands,
        "webhooks": m.webhooks,
        "webhook_id": m.webhook_id,
        "webhook_poll_interval": m.webhook_poll_interval,
        "budget_calls_per_vehicle": m.budget_calls_per_vehicle,
        "budget_reserve_calls": m.budget_reserve_calls,
        "budget_app_calls_per_month": m.budget_app_calls_per_month,
    }


def from_account(
    account: AccountConfig,
    *,
    sim_urls: Mapping[str, str] | None = None,
    default_redirect: str | None = None,
) -> SmartcarSettings:
    """Validate ``account`` (provider = "smartcar"). ``sim_urls`` are the simulator's base URLs,
    used only for a ``simulator = true`` account; ``default_redirect`` fills a missing
    ``redirect_uri`` for a simulator account (the exporter's own callback)."""
    raw = account.raw()
    raw.setdefault("api_version", 2)  # this reader is v2's; v3 accounts go to from_account_v3
    if account.simulator:
        raw.setdefault("redirect_uri", default_redirect)
        raw["urls"] = {**(raw.get("urls") or {}), **(sim_urls or {})}
        raw["urls"] = {k: v for k, v in raw["urls"].items() if k in DEFAULT_URLS} or None
    m = read_section(SmartcarAccount, raw, account.where)
    try:  # a simulator account, too, needs these by now (the simulator gives them)
        if not m.client_id:
            raise missing("client_id", "copy the Client ID of your application from the Dashboard")
        if m.client_secret is None:
            raise missing("client_secret")
        if m.webhooks and m.management_token is None:
            raise missing("management_token")
        redirect = _check_redirect(m.redirect_uri)
        urls = {**DEFAULT_URLS, **(m.urls or {})}
        checked = {
            k: check_base_url(v, ALLOWED_HOSTS, simulator=m.simulator) for k, v in urls.items()
        }
    except PydanticCustomError as exc:
        raise read_error(exc, SmartcarAccount, account.where) from None
    return SmartcarSettings(
        account=account.name,
        client_id=m.client_id,
        client_secret=m.client_secret,
        redirect_uri=redirect,
        management_token=m.management_token,
        **shared_fields(m),
        token_renew_days=m.token_renew_days,
        reauth_probe_interval=m.reauth_probe_interval,
        connect_url=checked["connect"],
        auth_url=checked["auth"],
        api_url=checked["api"],
        simulator=m.simulator,
    )
