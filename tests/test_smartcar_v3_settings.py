"""v3 account settings (one line naming the key per mistake) and the v3 Connect URL / redirect."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import pytest

from exporter.clock import ManualClock
from exporter.config import AccountConfig, ConfigError, Secret
from exporter.providers.base import MemoryTokenStore, ProviderContext
from exporter.providers.smartcar.v3_connect import authorize_url, parse_redirect
from exporter.providers.smartcar.v3_settings import api_version, from_account_v3
from tests.fakes import FakeSink

APP_ID = "5b2f0c1e-3a4d-4e5f-8a9b-0c1d2e3f4a5b"
GOOD: dict[str, Any] = {
    "client_id": "client_abc123",
    "application_id": APP_ID,
    "redirect_uri": "https://cars.example.org/connect/smartcar/callback",
}


def account(simulator: bool = False, **settings: Any) -> AccountConfig:
    return AccountConfig(
        name="home",
        provider="smartcar",
        index=1,
        simulator=simulator,
        settings={**GOOD, **settings},
        secrets={"client_secret": Secret("cs-1"), "management_token": Secret("amt-1")},
    )


def test_defaults_are_v3_and_the_live_v3_hosts() -> None:
    a = account()
    assert api_version(a) == 3
    s = from_account_v3(a)
    assert s.token_url == "https://iam.smartcar.com/oauth2/token"
    assert s.vehicle_api_url == "https://vehicle.api.smartcar.com"
    assert s.signals_cost == 1 and s.command_timeout == 310.0
    assert "cs-1" not in repr(s) and "amt-1" not in repr(s)


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ({"api_version": 4}, "api_version", "expected 3"),
        ({"client_id": "has space"}, "client_id", "client_"),
        ({"application_id": "client_abc"}, "application_id", "UUID"),
        ({"token_renew_days": 30}, "token_renew_days", "api_version = 2"),
        ({"urls": {"iam": "https://evil.example.com"}}, "urls.iam", "smartcar.com"),
        ({"urls": {"api": "https://api.smartcar.com"}}, "urls.api", "unknown host key"),
        ({"signals_cost": 0}, "signals_cost", "positive"),
        ({"redirect_uri": "http://cars.example.org/cb"}, "redirect_uri", "https"),
    ],
)
def test_each_mistake_names_its_key(change: dict[str, Any], key: str, words: str) -> None:
    a = account(**change)
    with pytest.raises(ConfigError) as err:
        api_version(a)
        from_account_v3(a)
    msg = str(err.value)
    assert f"accounts[1].{key}" in msg and words in msg and "\n" not in msg


def test_webhooks_need_the_management_token() -> None:
    a = AccountConfig(
        name="home",
        provider="smartcar",
        index=1,
        settings={**GOOD, "webhooks": True},
        secrets={"client_secret": Secret("cs-1")},
    )
    with pytest.raises(ConfigError, match="management_token"):
        from_account_v3(a)


def test_simulator_urls_only_for_simulator_accounts() -> None:
    sim = {"iam": "http://127.0.0.1:4001", "vehicle_api": "http://127.0.0.1:4002"}
    s = from_account_v3(account(simulator=True), sim_urls=sim)
    assert s.iam_url == sim["iam"] and s.management_api_url.startswith("https://")
    with pytest.raises(ConfigError, match="simulator = true"):
        from_account_v3(account(urls={"iam": sim["iam"]}))


def test_connect_url_uses_the_application_id_and_minimal_scopes() -> None:
    s = from_account_v3(account(commands=True))
    q = parse_qs(urlsplit(authorize_url(s, "st")).query)
    assert q["client_id"] == [APP_ID] and q["state"] == ["st"]
    scope = q["scope"][0].split()
    assert "required:read_vin" in scope and "control_security" in scope
    assert "read_location" not in scope  # location is opt-in


def test_redirect_user_id_in_both_spellings_and_errors() -> None:
    assert parse_redirect({"user_id": "u1", "state": "s", "code": "c"}).user_id == "u1"
    assert parse_redirect({"userId": "u2", "state": "s"}).user_id == "u2"
    r = parse_redirect({"error": "access_denied", "error_description": "no", "state": "s"})
    assert r.error == "access_denied" and r.user_id is None
    assert parse_redirect({"code": "c", "state": "s"}).error == "missing_user_id"


@pytest.mark.parametrize(
    ("line", "key", "words"),
    [
        ("token_renew_days = 30", "token_renew_days", "api_version = 2"),
        ('client_id = "has space"', "client_id", "client_"),
        ('application_id = "client_abc"', "application_id", "UUID"),
        ("signals_cost = 0", "signals_cost", "positive"),
        ("command_timeout = nan", "command_timeout", "finite"),
    ],
)
def test_check_config_reports_what_run_reports(
    tmp_path: Path, line: str, key: str, words: str
) -> None:
    """check-config (the loader and preflight) and run (the provider's settings) read a v3 account
    through one model: the same mistake, the same line."""
    from exporter.config import load
    from exporter.preflight import preflight
    from exporter.providers.smartcar.entry import account_settings
    from exporter.tokens import KEY_ENV, generate_key

    ctx = ProviderContext(cast(Any, None), ManualClock(), MemoryTokenStore(), FakeSink())
    path = tmp_path / "config.toml"

    def write(*, bad: bool) -> None:
        body = "".join(f"{k} = {v!r}\n" for k, v in GOOD.items() if not (bad and k == key))
        extra = line + "\n" if bad else ""
        path.write_text(f'[[accounts]]\nprovider = "smartcar"\n{body}{extra}')

    write(bad=False)
    env = {"CARMETRICS_ACCOUNTS__0__CLIENT_SECRET": "cs-1", KEY_ENV: generate_key()}
    cfg = load(path, env)
    preflight(cfg, env)  # the good account passes both
    account_settings(cfg.accounts[0], ctx)
    write(bad=True)
    with pytest.raises(ConfigError) as checked:
        preflight(load(path, env), env)
    msg = str(checked.value)
    assert msg.startswith(f"accounts[0].{key}") and words in msg and "\n" not in msg
    bad = AccountConfig(
        name="a",
        provider="smartcar",
        index=0,
        settings={**cfg.accounts[0].settings, **tomllib.loads(line)},
        secrets=cfg.accounts[0].secrets,
    )
    with pytest.raises(ConfigError) as ran:
        account_settings(bad, ctx)
    assert str(ran.value) == msg
