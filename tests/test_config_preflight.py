"""`check-config` and `run` share one validation: "ok" means `run` will start, and every mistake is
one line naming the key, given before anything is created, bound or started."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner

from exporter import cli as cli_module
from exporter.clock import ManualClock
from exporter.config import AccountConfig, Config, ConfigError, load
from exporter.preflight import preflight
from exporter.runtime import Runtime
from exporter.server import make_app
from exporter.tokens import KEY_ENV, EncryptedTokenStore, generate_key, parse_keys


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("CARMETRICS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def check(tmp_path: Path, text: str | bytes, **env: str) -> tuple[int, str]:
    path = tmp_path / "c.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    result = CliRunner().invoke(
        cli_module.cli, ["check-config", "--config", str(path)], env=env, catch_exceptions=False
    )
    return result.exit_code, result.output


SMART = '[[accounts]]\nprovider = "smart"\nusername = "me@example.org"\n'
PW = {"CARMETRICS_ACCOUNTS__0__PASSWORD": "pw"}


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[poll]\nparked = nan\n", "poll.parked"),
        ("[poll]\ndriving = inf\n", "poll.driving"),
        ("[poll]\nasleep = -inf\n", "poll.asleep"),
        ("[poll]\ntimeout = nan\n", "poll.timeout"),
        ("[poll]\njitter = nan\n", "poll.jitter"),
        ("[exporter]\nmax_data_age = nan\n", "exporter.max_data_age"),
        ("[simulator]\nspeed = nan\n", "simulator.speed"),
        ("[simulator]\nhistory_days = inf\n", "simulator.history_days"),
        ("[commands]\ncooldown = nan\n", "commands.cooldown"),
        ("[commands]\nverify_timeout = inf\n", "commands.verify_timeout"),
        ("[commands]\nmax_wait = nan\n", "commands.max_wait"),
        (SMART + "request_timeout = nan\n", "accounts[0].request_timeout"),
    ],
)
def test_nan_and_inf_are_refused_everywhere(tmp_path: Path, toml: str, key: str) -> None:
    code, out = check(tmp_path, toml, **(PW if toml.startswith(SMART) else {}))
    assert code == 1
    assert f"{key} = " in out and "finite number" in out
    assert len(out.strip().splitlines()) == 1


def test_nan_from_the_environment_is_refused_too(tmp_path: Path) -> None:
    code, out = check(tmp_path, "", CARMETRICS_POLL__PARKED="nan")
    assert code == 1 and "poll.parked = nan" in out


@pytest.mark.parametrize(
    ("toml", "expect"),
    [
        (SMART + 'region = "US"\n', "accounts[0].region = 'US': expected 'EU' or 'INTL'"),
        (SMART + 'regoin = "EU"\n', "accounts[0].regoin: unknown key; did you mean 'region'?"),
        (SMART + "vins = []\n", "accounts[0].vins = []: expected a non-empty list"),
        (
            SMART + '[accounts.hosts]\napi_v1 = "https://api.ecloudeu.com.evil.example"\n',
            "accounts[0].hosts.api_v1 = 'https://api.ecloudeu.com.evil.example': expected https",
        ),
        ('[exporter]\nlisten = "not-an-address"\n', "exporter.listen = 'not-an-address'"),
        ('accounts = "x"\n', "accounts = 'x': expected a list of [[accounts]] tables"),
        ("[[accounts]]\n", "accounts[0].provider = None: expected one of smart, smartcar"),
        ("[poll]\nparkd = 5\n", "poll.parkd: unknown key; did you mean 'parked'?"),
        ('[comands]\ntoken_name = "x"\n', "comands: unknown top-level key or table (did you mean"),
        (b'[log]\nlevel = "\xff"\n', "not valid TOML: the file is not UTF-8 text"),
        (
            '[[accounts]]\nprovider = "smartcar"\nclient_id = "client_c"\n'
            'application_id = "5b2f0c1e-3a4d-4e5f-8a9b-0c1d2e3f4a5b"\n'
            'redirect_uri = "https://x.example/cb"\n',
            "accounts[0].client_secret is missing: set the environment variable "
            "CARMETRICS_ACCOUNTS__0__CLIENT_SECRET",
        ),
    ],
)
def test_check_config_refuses_what_run_would_refuse(
    tmp_path: Path, toml: str | bytes, expect: str
) -> None:
    smart = isinstance(toml, str) and toml.startswith(SMART)
    code, out = check(tmp_path, toml, **(PW if smart else {}))
    assert code == 1, out
    assert expect in out
    assert len(out.strip().splitlines()) == 1 and "Traceback" not in out


def test_missing_password_is_refused_by_check_config_not_only_at_login(tmp_path: Path) -> None:
    code, out = check(tmp_path, SMART)
    assert code == 1
    assert "accounts[0].password is missing" in out and "CARMETRICS_ACCOUNTS__0__PASSWORD" in out


def test_check_config_ok_creates_nothing(tmp_path: Path) -> None:
    code, out = check(tmp_path, SMART, **PW, **{KEY_ENV: generate_key()})
    assert code == 0, out
    assert "ok" in out
    assert list(tmp_path.iterdir()) == [tmp_path / "c.toml"]  # no carmetrics.db


def test_env_override_with_a_gap_names_the_variable_and_the_real_list(tmp_path: Path) -> None:
    four = "".join(SMART + f'name = "a{i}"\n' for i in range(4))
    path = tmp_path / "c.toml"
    path.write_text(four)
    with pytest.raises(ConfigError) as err:
        load(path, env={"CARMETRICS_ACCOUNTS__5__REGION": "INTL"})
    msg = str(err.value)
    assert msg.startswith("CARMETRICS_ACCOUNTS__5__REGION: accounts[5] does not exist")
    assert "indexes 0-3" in msg and "accounts[4]" not in msg
    # the next index adds an account, and its error names that one
    with pytest.raises(ConfigError, match=r"^accounts\[4\]\.provider"):
        load(path, env={"CARMETRICS_ACCOUNTS__4__REGION": "INTL"})
    # a bad value for an existing account names that account
    with pytest.raises(ConfigError, match=r"^accounts\[3\]\.region = 'US'"):
        load(path, env={"CARMETRICS_ACCOUNTS__3__REGION": "US"})


def test_env_indexes_are_applied_in_numeric_order(tmp_path: Path) -> None:
    env = {f"CARMETRICS_ACCOUNTS__{i}__PROVIDER": "smart" for i in range(12)}
    cfg = load(None, env=env)
    assert [a.index for a in cfg.accounts] == list(range(12))


def test_secret_from_env_keeps_its_text(tmp_path: Path) -> None:
    cfg = load(
        None,
        env={
            "CARMETRICS_ACCOUNTS__0__PROVIDER": "smart",
            **{"CARMETRICS_ACCOUNTS__0__PASSWORD": "0012"},
        },
    )
    assert cfg.accounts[0].secrets["password"].reveal() == "0012"  # not the number 12


def test_missing_vault_key_with_stored_tokens_is_said_at_start(tmp_path: Path) -> None:
    db = tmp_path / "carmetrics.db"
    store = EncryptedTokenStore(db, parse_keys(generate_key(), "k"))
    store.save("smartcar:home:index", {"connections": ["c1"]})
    store.save("smartcar:home:conn:c1", {"access_token": "a"})
    store.close()
    cfg = load(None, env={})
    warnings = preflight(cfg, env={})
    assert len(warnings) == 1
    assert "home" in warnings[0] and KEY_ENV in warnings[0] and "tokens.key_file" in warnings[0]
    code, out = check(tmp_path, "")
    assert code == 0 and "warning:" in out and "home" in out
    # another key than the one they were stored with is refused at start, not at first use
    with pytest.raises(ConfigError, match="cannot be decrypted"):
        preflight(cfg, env={KEY_ENV: generate_key()})


def test_run_validates_before_it_starts_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[Any] = []
    monkeypatch.setattr("exporter.server.serve", lambda cfg: started.append(cfg))
    path = tmp_path / "c.toml"
    path.write_text("[simulator]\nenabled = true\n" + SMART + 'region = "US"\n')
    result = CliRunner().invoke(cli_module.cli, ["run", "--config", str(path)], env=PW)
    assert result.exit_code == 1
    assert "accounts[0].region = 'US'" in result.output
    assert started == [] and not (tmp_path / "carmetrics.db").exists()


async def test_a_failed_start_closes_what_it_opened(tmp_path: Path) -> None:
    # a simulator account without a running simulator fails in start(), after the HTTP session
    # and the history were opened: both must be closed (no "Unclosed client session")
    cfg = Config(db=tmp_path / "h.db", accounts=(AccountConfig("a", "smart", 0, simulator=True),))
    rt = await Runtime.create(cfg, ManualClock())
    runner = web.AppRunner(make_app(rt))
    with pytest.raises(ConfigError, match="no simulator is running"):
        await runner.setup()
    assert rt.session.closed
    await runner.cleanup()


def test_run_says_at_start_that_stored_tokens_will_not_be_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[Any] = []
    monkeypatch.setattr("exporter.server.serve", lambda cfg: started.append(cfg))
    store = EncryptedTokenStore(tmp_path / "carmetrics.db", parse_keys(generate_key(), "k"))
    store.save("smartcar:home:index", {"connections": []})
    store.close()
    path = tmp_path / "c.toml"
    path.write_text("")
    result = CliRunner().invoke(cli_module.cli, ["run", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert len(started) == 1
    assert "home" in result.output and KEY_ENV in result.output


SMARTCAR_V3 = (
    '[[accounts]]\nprovider = "smartcar"\nclient_id = "client_abc123"\n'
    'application_id = "5b2f0c1e-3a4d-4e5f-8a9b-0c1d2e3f4a5b"\n'
    'redirect_uri = "https://cars.example.org/connect/smartcar/callback"\n'
)


@pytest.mark.parametrize(
    ("extra", "bad"),
    [
        ('urls = { iam = "https://iam.smartcar.com" }\n', None),
        ('urls = { auth = "https://auth.smartcar.com" }\n', "accounts[0].urls.auth"),
        ('api_version = 2\nurls = { auth = "https://auth.smartcar.com" }\n', None),
        ('api_version = 2\nurls = { iam = "https://iam.smartcar.com" }\n', "accounts[0].urls.iam"),
    ],
)
def test_smartcar_url_keys_follow_the_api_version(
    tmp_path: Path, extra: str, bad: str | None
) -> None:
    toml = SMARTCAR_V3 + extra
    if "api_version = 2" in extra:
        toml = toml.replace('application_id = "5b2f0c1e-3a4d-4e5f-8a9b-0c1d2e3f4a5b"\n', "")
    env = {"CARMETRICS_ACCOUNTS__0__CLIENT_SECRET": "cs-1", KEY_ENV: generate_key()}
    code, out = check(tmp_path, toml, **env)
    if bad is None:
        assert code == 0, out
    else:
        assert code == 1 and bad in out and "unknown host key" in out, out
