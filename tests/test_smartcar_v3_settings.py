"""v3 account settings (one line naming the key per mistake) and the v3 Connect URL / redirect."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from exporter.config import AccountConfig, ConfigError, Secret
from exporter.providers.smartcar.v3_connect import authorize_url, parse_redirect
from exporter.providers.smartcar.v3_settings import api_version, from_account_v3

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
