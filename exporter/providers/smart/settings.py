"""A smart account's settings, validated once at start-up; errors name ``accounts[i].<key>``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from exporter.config import AccountConfig, ConfigError, Secret
from exporter.providers.smart.hosts import SmartHosts
from exporter.providers.smart.signing import REGIONS, Region

KNOWN_KEYS: Final = frozenset({"region", "username", "vins", "hosts", "request_timeout"})


@dataclass(frozen=True, slots=True)
class SmartSettings:
    region: Region
    username: str
    password: Secret
    vins: frozenset[str] | None  # None = every vehicle of the account
    hosts: SmartHosts
    request_timeout: float
    account: str = ""  # the account's config name


def read_settings(
    account: AccountConfig,
    hosts: SmartHosts | None = None,
    sim_urls: Mapping[str, str] | None = None,
) -> SmartSettings:
    """Validate ``account``. ``hosts`` (already validated) wins over the config's ``hosts`` table;
    ``sim_urls`` (the embedded simulator's base URLs) are used only for a simulator account."""
    for key in account.settings:
        if key not in KNOWN_KEYS:
            raise ConfigError(
                f"{account.key(key)}: unknown key for a smart account; expected one of: "
                f"{', '.join(sorted(KNOWN_KEYS))}"
            )
    raw_region = account.setting("region", "EU", kind=str)
    region = REGIONS.get(raw_region.upper())
    if region is None:
        raise ConfigError(f"{account.key('region')} = {raw_region!r}: expected 'EU' or 'INTL'")
    username = account.setting("username", None, kind=str)
    if not username or not username.strip():
        raise ConfigError(
            f"{account.key('username')} is missing: expected the smart app login (an e-mail)"
        )
    password = account.secret("password")
    if password is None:  # secret(required=True) raises first; this keeps the type exact
        raise ConfigError(f"{account.key('password')} is missing")
    vins_raw = account.setting("vins", None, kind=list)
    vins: frozenset[str] | None = None
    if vins_raw is not None:
        if not vins_raw or not all(isinstance(v, str) and v.strip() for v in vins_raw):
            raise ConfigError(
                f"{account.key('vins')} = {vins_raw!r}: expected a non-empty list of VIN strings"
            )
        vins = frozenset(v.strip() for v in vins_raw)
    timeout = account.setting("request_timeout", 20.0, kind=(int, float))
    if isinstance(timeout, bool) or timeout <= 0:
        raise ConfigError(
            f"{account.key('request_timeout')} = {timeout!r}: expected seconds greater than 0"
        )
    if hosts is None:
        if account.simulator and sim_urls:
            hosts = SmartHosts.for_region(
                region.name, sim_urls, simulator=True, key_prefix="simulator.urls.smart"
            )
        else:
            table = account.setting("hosts", None, kind=dict)
            hosts = SmartHosts.for_region(
                region.name, table, simulator=account.simulator, key_prefix=account.key("hosts")
            )
    return SmartSettings(
        region, username.strip(), password, vins, hosts, float(timeout), account.name
    )
