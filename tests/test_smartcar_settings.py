"""Smartcar account settings: every mistake stops start-up with one line naming the key; the
Connect URL carries exactly the minimal, documented parameters; secrets never show."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from exporter.config import AccountConfig, ConfigError, Secret, load
from exporter.providers.smartcar import scopes
from exporter.providers.smartcar.client import SmartcarClient
from exporter.providers.smartcar.settings import from_account

GOOD: dict[str, Any] = {
    "client_id": "0f1e2d3c-client",
    "redirect_uri": "https://cars.example.org/connect/smartcar/callback",
}


def account(
    simulator: bool = False, secrets: dict[str, str] | None = None, **settings: Any
) -> AccountConfig:
    return AccountConfig(
        name="home",
        provider="smartcar",
        index=2,
        simulator=simulator,
        settings={**GOOD, **settings},
        secrets={
            k: Secret(v)
            for k, v in (secrets if secrets is not None else {"client_secret": "cs-1"}).items()
        },
    )


def test_defaults_are_live_smartcar_hosts() -> None:
    s = from_account(account())
    assert s.mode == "live" and s.api_url == "https://api.smartcar.com"
    assert s.token_url == "https://auth.smartcar.com/oauth/token"
    assert s.callback_path == "/connect/smartcar/callback"
    assert s.budget_calls_per_vehicle == 500 and not s.webhooks
    assert "cs-1" not in repr(s)  # secrets never print


@pytest.mark.parametrize(
    ("change", "key", "hint"),
    [
        ({"client_id": ""}, "accounts[2].client_id", "Client ID"),
        ({"mode": "production"}, "accounts[2].mode", "'live', 'simulated' or 'test'"),
        ({"redirect_uri": "http://cars.example.org/cb"}, "accounts[2].redirect_uri", "https"),
        ({"redirect_uri": None}, "accounts[2].redirect_uri", "registered"),
        ({"urls": {"api": "https://evil.example.org"}}, "accounts[2].urls.api", "smartcar.com"),
        ({"urls": {"api": "http://127.0.0.1:8080"}}, "accounts[2].urls.api", "simulator"),
        ({"urls": {"apii": "https://api.smartcar.com"}}, "accounts[2].urls.apii", "connect, auth"),
        ({"budget_calls_per_vehicle": 0}, "accounts[2].budget_calls_per_vehicle", "positive"),
        ({"budget_reserve_calls": 600}, "accounts[2].budget_reserve_calls", "fewer than"),
        ({"token_renew_days": 60}, "accounts[2].token_renew_days", "60 days"),
        ({"webhooks": "yes"}, "accounts[2].webhooks", "true or false"),
        ({"scopes": "read_vin"}, "accounts[2].scopes", "list"),
        ({"polling": 5}, "accounts[2].polling", "unknown key"),
    ],
)
def test_each_mistake_names_its_key(change: dict[str, Any], key: str, hint: str) -> None:
    settings = {**GOOD, **change}
    acc = AccountConfig("home", "smartcar", 2, False, settings, {"client_secret": Secret("x")})
    with pytest.raises(ConfigError) as exc:
        from_account(acc)
    msg = str(exc.value)
    assert msg.startswith(key) and hint in msg and "\n" not in msg


def test_missing_secrets_say_where_to_put_them() -> None:
    with pytest.raises(ConfigError, match=r"CARMETRICS_ACCOUNTS__2__CLIENT_SECRET"):
        from_account(account(secrets={}))
    with pytest.raises(ConfigError, match=r"accounts\[2\]\.management_token"):
        from_account(account(webhooks=True))
    s = from_account(
        account(webhooks=True, secrets={"client_secret": "a", "management_token": "b"})
    )
    assert s.management_token is not None and s.management_token.reveal() == "b"


def test_secrets_in_the_toml_file_are_refused(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text(
        '[[accounts]]\nprovider = "smartcar"\nclient_id = "x"\nclient_secret = "in-the-file"\n'
    )
    with pytest.raises(ConfigError, match="not allowed in the config file"):
        load(p, env={})


def test_simulator_account_takes_loopback_urls_and_a_default_redirect() -> None:
    acc = AccountConfig(
        "sim", "smartcar", 0, True, {"client_id": "c"}, {"client_secret": Secret("s")}
    )
    s = from_account(
        acc,
        sim_urls={
            "connect": "http://127.0.0.1:1001",
            "auth": "http://127.0.0.1:1002",
            "api": "http://127.0.0.1:1003",
        },
        default_redirect="http://127.0.0.1:8477/connect/smartcar/callback",
    )
    assert s.mode == "simulated" and s.connect_url == "http://127.0.0.1:1001"
    assert s.redirect_uri.endswith("/connect/smartcar/callback")


def test_connect_url_parameters() -> None:
    s = from_account(account(mode="test", make="tesla", single_select=True))
    q = {k: v[0] for k, v in parse_qs(urlsplit(scopes.authorize_url(s, "st4te")).query).items()}
    assert q["response_type"] == "code" and q["client_id"] == GOOD["client_id"]
    assert q["redirect_uri"] == GOOD["redirect_uri"] and q["state"] == "st4te"
    assert q["mode"] == "test" and q["make"] == "TESLA" and q["single_select"] == "true"
    assert q["approval_prompt"] == "auto"
    perms = q["scope"].split()
    assert perms[:2] == ["required:read_vehicle_info", "required:read_vin"]
    assert "required:read_odometer" in perms and "read_battery" in perms
    assert len(perms) == len(set(perms))
    forced = scopes.authorize_url(s, "x", single_select_vin="0SC123", force=True)
    fq = parse_qs(urlsplit(forced).query)
    assert fq["single_select_vin"] == ["0SC123"] and fq["approval_prompt"] == ["force"]


def test_explicit_scopes_override_and_required_subset() -> None:
    s = from_account(
        account(scopes=["read_vin", "read_odometer", "read_battery"], required_scopes=["read_vin"])
    )
    assert scopes.scope_string(s) == "required:read_vin read_odometer read_battery"
    assert scopes.paths_for(["read_odometer", "read_battery"], s) == ("/battery", "/odometer")


async def test_client_never_sends_credentials_elsewhere() -> None:
    from exporter.providers.base import BadReply

    client = SmartcarClient(None, from_account(account()), None)  # type: ignore[arg-type]
    with pytest.raises(BadReply, match="refusing"):
        client._check("https://evil.example.org/oauth/token")
    assert client._check("https://api.smartcar.com/v2.0/user")
