"""A smart account's keys (``SmartAccount``) and the settings the provider runs with.

Errors name ``accounts[i].<key>``. The model checks what the file and environment can say; the
simulator's URLs and demo login, known only once it runs, are added by ``read_settings``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self

from pydantic import BeforeValidator, Field, ValidationInfo, model_validator

from exporter.config import AccountConfig, ConfigError, Secret
from exporter.providers.smart.hosts import ALLOWED_HOSTS, HOST_KEYS, SmartHosts
from exporter.providers.smart.signing import REGIONS, Region
from exporter.settings import AccountSection, invalid, missing, read_section, required
from exporter.urls import check_base_url


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


class SmartAccount(AccountSection):
    """``[[accounts]] provider = "smart"``."""

    region: Annotated[Literal["EU", "INTL"], BeforeValidator(_upper)] = "EU"
    username: str | None = Field(default=None, description="the smart app login (an e-mail)")
    password: Secret | None = None
    vins: list[str] | None = Field(default=None, min_length=1, description="a list of VIN strings")
    hosts: dict[str, str] | None = None
    request_timeout: float = Field(default=20.0, gt=0, description="seconds greater than 0")
    # the car's own trip log: read every this many seconds (and soon after a drive ends); 0 = never
    journal_interval: float = Field(
        default=21600.0, ge=0, description="seconds (0 turns the trip journal off)"
    )

    @model_validator(mode="after")
    def _complete(self, info: ValidationInfo) -> Self:
        login = "expected the smart app login (an e-mail)"
        if self.username is not None and not self.username.strip():
            raise missing("username", login)
        if required(self, info):  # a simulator account gets the simulator's demo login
            if self.username is None:
                raise missing("username", login)
            if self.password is None:
                raise missing("password")
        for i, vin in enumerate(self.vins or ()):
            if not vin.strip():
                raise invalid("expected a VIN", field=f"vins[{i}]", value=vin)
        for key, url in (self.hosts or {}).items():
            if key not in HOST_KEYS:
                raise invalid(
                    f"unknown host key; expected one of: {', '.join(HOST_KEYS)}",
                    field=f"hosts.{key}",
                )
            try:
                check_base_url(url, ALLOWED_HOSTS, simulator=self.simulator)
            except ValueError as exc:
                raise invalid(str(exc), field=f"hosts.{key}", value=url) from None
        return self


@dataclass(frozen=True, slots=True)
class SmartSettings:
    region: Region
    username: str
    password: Secret
    vins: frozenset[str] | None  # None = every vehicle of the account
    hosts: SmartHosts
    request_timeout: float
    account: str = ""  # the account's config name
    journal_interval: float = 21600.0


def read_settings(
    account: AccountConfig,
    hosts: SmartHosts | None = None,
    sim_urls: Mapping[str, str] | None = None,
) -> SmartSettings:
    """Validate ``account``. ``hosts`` (already validated) wins over the config's ``hosts`` table;
    ``sim_urls`` (the embedded simulator's base URLs) are used only for a simulator account."""
    model = read_section(SmartAccount, account.raw(), account.where)
    region = REGIONS[model.region]
    if model.username is None:
        raise ConfigError(
            f"{account.key('username')} is missing: expected the smart app login (an e-mail)"
        )
    password = model.password or account.secret("password")
    if password is None:  # secret(required=True) raises first; this keeps the type exact
        raise ConfigError(f"{account.key('password')} is missing")
    if hosts is None:
        if account.simulator and sim_urls:
            hosts = SmartHosts.for_region(
                region.name, sim_urls, simulator=True, key_prefix="simulator.urls.smart"
            )
        else:
            hosts = SmartHosts.for_region(
                region.name,
                model.hosts,
                simulator=account.simulator,
                key_prefix=account.key("hosts"),
            )
    vins = frozenset(v.strip() for v in model.vins) if model.vins is not None else None
    return SmartSettings(
        region,
        model.username.strip(),
        password,
        vins,
        hosts,
        model.request_timeout,
        account.name,
        model.journal_interval,
    )
