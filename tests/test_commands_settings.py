"""The [commands] table and bearer tokens: secrets only from env or files, errors name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.commands.auth import Authenticator
from exporter.commands.settings import load_settings
from exporter.config import ConfigError, load

TOKEN = "full-access-token-0123456789"
READ = "read-only-token-abcdefghijkl"


def _cfg(tmp_path: Path, toml: str, env: dict[str, str] | None = None) -> object:
    path = tmp_path / "config.toml"
    path.write_text(toml)
    return load(path, env or {})


def test_no_token_means_disabled(tmp_path: Path) -> None:
    s = load_settings(_cfg(tmp_path, "[commands]\ncooldown = 3\n"))  # type: ignore[arg-type]
    assert not s.enabled
    assert s.cooldown == 3


def test_env_token_and_defaults(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "[poll]\nafter_command = 12\n", {"CARMETRICS_COMMANDS__TOKEN": TOKEN})
    s = load_settings(cfg)  # type: ignore[arg-type]
    assert s.enabled
    assert [(t.name, t.can_command) for t in s.tokens] == [("admin", True)]
    assert s.cooldown == 5  # the default
    assert s.verify_delay == 12  # follows poll.after_command unless set
    assert TOKEN not in repr(s)


def test_one_env_name_for_the_token_on_server_and_client(tmp_path: Path) -> None:
    from exporter.commands.cli import ENV_TOKEN

    cfg = _cfg(tmp_path, "", {ENV_TOKEN: TOKEN})  # the name `carmetrics command` reads
    s = load_settings(cfg)  # type: ignore[arg-type]
    assert [t.secret.reveal() for t in s.tokens] == [TOKEN]
    old = _cfg(tmp_path, "", {"CARMETRICS_COMMANDS__TOKEN": TOKEN})  # the old name still works
    assert load_settings(old).enabled  # type: ignore[arg-type]


def test_token_files_and_named_read_clients(tmp_path: Path) -> None:
    (tmp_path / "main").write_text(TOKEN + "\n")
    (tmp_path / "ro").write_text(READ)
    cfg = _cfg(
        tmp_path,
        '[commands]\ntoken_file = "main"\ntoken_name = "cron"\n'
        '[commands.clients.grafana]\ntoken_file = "ro"\n',
    )
    s = load_settings(cfg)  # type: ignore[arg-type]
    auth = Authenticator(s.tokens)
    cron = auth.identify(f"Bearer {TOKEN}")
    ro = auth.identify(f"bearer {READ}")
    assert cron is not None and cron.name == "cron" and cron.can_command
    assert ro is not None and ro.name == "grafana" and not ro.can_command
    assert auth.identify(f"Bearer {TOKEN[:-1]}") is None
    assert auth.identify(f"Basic {TOKEN}") is None
    assert auth.identify(None) is None
    assert auth.identify("Bearer ") is None


def test_client_token_from_env(tmp_path: Path) -> None:
    cfg = _cfg(
        tmp_path,
        '[commands.clients.ha]\naccess = "command"\n',
        {"CARMETRICS_COMMANDS__CLIENTS__HA__TOKEN": READ},
    )
    s = load_settings(cfg)  # type: ignore[arg-type]
    assert [(t.name, t.can_command) for t in s.tokens] == [("ha", True)]


@pytest.mark.parametrize(
    ("toml", "env", "names"),
    [
        (f'[commands]\ntoken = "{TOKEN}"\n', {}, "commands.token"),
        (f'[commands.clients.x]\ntoken = "{READ}"\n', {}, "commands.clients.x.token"),
        ("[commands]\ncooldown = -1\n", {}, "commands.cooldown"),
        ('[commands]\nverify_timeout = "long"\n', {}, "commands.verify_timeout"),
        ("[commands]\nverify_delay = 30\nverify_timeout = 10\n", {}, "commands.verify_timeout"),
        ("[commands]\nrate_limit = 0\n", {}, "commands.rate_limit"),
        ("[commands]\ncooldwn = 5\n", {}, "commands.cooldwn"),
        ('[commands]\ntoken_file = "missing"\n', {}, "commands.token_file"),
        ("[commands]\n", {"CARMETRICS_COMMANDS__TOKEN": "short"}, "commands.token"),
        ('[commands.clients.x]\naccess = "root"\n', {}, "commands.clients.x.access"),
        ("[commands.clients.x]\n", {}, "commands.clients.x"),
        (
            "[commands.clients.x]\n",
            {"CARMETRICS_COMMANDS__TOKEN": TOKEN, "CARMETRICS_COMMANDS__CLIENTS__X__TOKEN": TOKEN},
            "share one token",
        ),
    ],
)
def test_errors_name_the_key(tmp_path: Path, toml: str, env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(_cfg(tmp_path, toml, env))  # type: ignore[arg-type]
    assert names in str(info.value)
    assert TOKEN not in str(info.value) and READ not in str(info.value)
