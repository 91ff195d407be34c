"""Configuration: env overrides, secrets policy, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.config import ConfigError, Secret, load

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_shipped_config_loads_and_points_at_the_simulator() -> None:
    cfg = load(ROOT / "config.toml", env={})
    assert cfg.simulator.enabled
    smart = [a for a in cfg.accounts if a.provider == "smart"]
    assert {a.settings.get("region") for a in smart} == {"EU", "INTL"}
    assert [a.provider for a in cfg.accounts].count("smartcar") == 1
    assert all(a.simulator and not a.secrets for a in cfg.accounts)
    assert cfg.simulator.smartcar_vehicles


def test_environment_overrides_any_key(tmp_path: Path) -> None:
    p = write(tmp_path, "[poll]\nparked = 600\n[[accounts]]\nprovider='smart'\n")
    cfg = load(p, env={"CARMETRICS_POLL__PARKED": "300", "CARMETRICS_ACCOUNTS__0__REGION": "INTL"})
    assert cfg.poll.parked == 300
    assert cfg.accounts[0].settings["region"] == "INTL"


def test_secret_in_the_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    p = write(tmp_path, "[[accounts]]\nprovider='smart'\npassword='hunter2'\n")
    with pytest.raises(ConfigError) as err:
        load(p, env={})
    msg = str(err.value)
    assert "accounts[0].password" in msg
    assert "CARMETRICS_ACCOUNTS__0__PASSWORD" in msg
    assert "hunter2" not in msg


def test_secret_from_env_and_from_file_never_shows(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    p = write(tmp_path, "[[accounts]]\nprovider='smart'\npassword_file='pw'\n")
    cfg = load(p, env={})
    secret = cfg.accounts[0].secrets["password"]
    assert isinstance(secret, Secret)
    assert secret.reveal() == "s3cret"
    assert "s3cret" not in repr(cfg)
    cfg2 = load(
        write(tmp_path, "[[accounts]]\nprovider='smart'\n"),
        env={"CARMETRICS_ACCOUNTS__0__PASSWORD": "x1"},
    )
    assert cfg2.accounts[0].secret("password").reveal() == "x1"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "key", "expect"),
    [
        ("[exporter]\nport = 'eighty'\n", "exporter.port", "TCP port"),
        ("[poll]\nparked = -5\n", "poll.parked", ">= 1"),
        ("[poll]\nparkd = 5\n", "poll.parkd", "unknown key"),
        ("[poll]\nrelist = 0\n", "poll.relist", ">= 1"),
        ("[poll]\nrelist = 'daily'\n", "poll.relist", "number"),
        ("[log]\nformat = 'xml'\n", "log.format", "'text' or 'json'"),
        ("[[accounts]]\nprovider = 'tesla'\n", "accounts[0].provider", "smart, smartcar"),
        (
            "[[accounts]]\nprovider='smart'\nsimulator=true\n",
            "accounts[0].simulator",
            "simulator.enabled",
        ),
        (
            "[[accounts]]\nprovider='smart'\npassword_file='/nope/pw'\n",
            "accounts[0].password_file",
            "cannot read",
        ),
        ("[exporter\n", "not valid TOML", ""),
        ("[comands]\ncooldown = 5\n", "comands", "expected one of"),
    ],
)
def test_bad_config_names_the_key_and_what_is_expected(
    tmp_path: Path, text: str, key: str, expect: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, text), env={})
    assert key in str(err.value)
    assert expect in str(err.value)
    assert "\n" not in str(err.value).strip()


def test_missing_secret_names_both_ways_to_give_it() -> None:
    cfg = load(None, env={"CARMETRICS_ACCOUNTS__0__PROVIDER": "smart"})
    with pytest.raises(ConfigError) as err:
        cfg.accounts[0].secret("password")
    assert "CARMETRICS_ACCOUNTS__0__PASSWORD" in str(err.value)
    assert "accounts[0].password_file" in str(err.value)
