"""The URL allowlist and the account settings: bad values stop start-up naming the key."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from exporter.clock import Clock, ManualClock
from exporter.config import AccountConfig, ConfigError, Secret
from exporter.providers import registry
from exporter.providers.base import (
    MemoryTokenStore,
    Provider,
    ProviderContext,
    SimulatorLink,
    TokenStore,
)
from exporter.providers.smart import SmartHosts, SmartProvider
from exporter.providers.smart.hosts import HOST_KEYS
from exporter.providers.smart.settings import read_settings
from tests.fakes import FakeSink

SIM = {k: f"http://127.0.0.1:{40000 + i}" for i, k in enumerate(HOST_KEYS)}


def build(
    acc: AccountConfig,
    session: aiohttp.ClientSession,
    clock: Clock,
    store: TokenStore,
    sim_urls: dict[str, str],
) -> Provider:
    """Through the registry, as the runtime builds it, with a simulator serving ``sim_urls``."""
    link = SimulatorLink(urls={"smart": sim_urls}, logins={})
    return registry.build(acc, ProviderContext(session, clock, store, FakeSink(), simulator=link))


def account(simulator: bool = False, **settings: Any) -> AccountConfig:
    base: dict[str, Any] = {"username": "driver@example.com"}
    base.update(settings)
    return AccountConfig(
        name="car",
        provider="smart",
        index=2,
        simulator=simulator,
        settings=base,
        secrets={"password": Secret("pw")},
    )


def test_real_defaults_are_https_on_the_allowlist() -> None:
    hosts = SmartHosts()
    assert hosts.api_v1 == "https://api.ecloudeu.com"
    assert hosts.api_v2 == "https://apiv2.ecloudeu.com"
    assert hosts.sg_app_api == "https://sg-app-api.smart.com"
    assert all(getattr(hosts, k).startswith("https://") for k in HOST_KEYS)


def test_the_documented_intl_hosts_are_allowed() -> None:
    """pysmarthashtag's INTL preset hosts (reference §0) may be configured for an INTL account;
    the default stays on ecloudeu (hello_smart's working INTL code)."""
    s = read_settings(
        account(
            region="INTL",
            hosts={"api_v1": "https://api.ecloudap.com", "api_v2": "https://apiv2.ecloudap.com/"},
        )
    )
    assert s.hosts.api_v1 == "https://api.ecloudap.com"
    assert s.hosts.allows("https://apiv2.ecloudap.com/remote-control/vehicle/status/X")
    assert read_settings(account(region="INTL")).hosts.api_v1 == "https://api.ecloudeu.com"
    with pytest.raises(ConfigError, match=r"accounts\[2\]\.hosts\.api_v1"):
        read_settings(account(region="INTL", hosts={"api_v1": "https://api.ecloudxx.com"}))


def test_loopback_is_refused_for_a_real_account_and_names_the_key() -> None:
    with pytest.raises(
        ConfigError, match=r"accounts\[2\]\.hosts\.api_v1 = 'http://127\.0\.0\.1:9'"
    ):
        read_settings(account(hosts={"api_v1": "http://127.0.0.1:9"}))


def test_loopback_is_accepted_for_a_simulator_account() -> None:
    s = read_settings(account(simulator=True, hosts={"api_v1": "http://127.0.0.1:9/"}))
    assert s.hosts.api_v1 == "http://127.0.0.1:9"
    assert s.hosts.allows("http://127.0.0.1:9/device-platform/user/vehicle/secure")
    assert not s.hosts.allows("http://127.0.0.1:10/x")


@pytest.mark.parametrize(
    "url",
    [
        "http://api.ecloudeu.com",  # plain HTTP to a real host
        "https://evil.example.com",  # not on the list
        "https://api.ecloudeu.com.evil.example",  # suffix trick
        "https://user:pw@api.ecloudeu.com",  # credentials in the URL
        "https://api.ecloudeu.com/?x=1",  # a query
        "ftp://api.ecloudeu.com",
        "",
        42,
    ],
)
def test_bad_urls_are_refused(url: object) -> None:
    with pytest.raises(ConfigError, match=r"accounts\[2\]\.hosts\.ota"):
        read_settings(account(simulator=True, hosts={"ota": url}))


def test_simulator_account_still_refuses_foreign_hosts() -> None:
    with pytest.raises(ConfigError, match="expected https://"):
        read_settings(account(simulator=True, hosts={"auth": "http://10.0.0.1:80"}))


def test_unknown_host_key() -> None:
    with pytest.raises(ConfigError, match=r"accounts\[2\]\.hosts\.apiv3: unknown host key"):
        read_settings(account(hosts={"apiv3": "https://api.ecloudeu.com"}))


@pytest.mark.parametrize(
    ("settings", "pattern"),
    [
        ({"region": "US"}, r"accounts\[2\]\.region = 'US': expected 'EU' or 'INTL'"),
        ({"username": ""}, r"accounts\[2\]\.username is missing"),
        ({"vins": []}, r"accounts\[2\]\.vins"),
        ({"vins": "VIN1"}, r"accounts\[2\]\.vins = 'VIN1': expected a list"),
        ({"request_timeout": 0}, r"accounts\[2\]\.request_timeout"),
        ({"colour": "red"}, r"accounts\[2\]\.colour: unknown key"),
    ],
)
def test_settings_errors_name_the_key(settings: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        read_settings(account(**settings))


def test_missing_password_names_the_env_variable() -> None:
    acc = AccountConfig("car", "smart", 0, settings={"username": "u"})
    with pytest.raises(ConfigError, match=r"CARMETRICS_ACCOUNTS__0__PASSWORD"):
        read_settings(acc)


def test_region_is_case_insensitive_and_vins_are_kept() -> None:
    s = read_settings(account(region="intl", vins=["VIN1", " VIN2 "]))
    assert s.region.name == "INTL"
    assert s.vins == frozenset({"VIN1", "VIN2"})


async def test_build_uses_sim_urls_only_for_simulator_accounts() -> None:
    async with aiohttp.ClientSession() as session:
        clock, store = ManualClock(), MemoryTokenStore()
        sim = build(account(simulator=True), session, clock, store, SIM)
        assert isinstance(sim, SmartProvider)
        assert sim.transport.hosts.api_v2 == SIM["api_v2"]
        real = build(account(), session, clock, store, SIM)
        assert isinstance(real, SmartProvider)
        assert real.transport.hosts.api_v2 == "https://apiv2.ecloudeu.com"


async def test_bad_simulator_url_names_the_simulator_key() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ConfigError, match=r"simulator\.urls\.smart\.auth"):
            build(
                account(simulator=True),
                session,
                ManualClock(),
                MemoryTokenStore(),
                {**SIM, "auth": "http://192.0.2.1:1"},
            )
