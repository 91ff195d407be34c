"""A PostgreSQL history that cannot be used is one clear line and a non-zero exit, never a
traceback, and never shows the password: an unreachable server, a wrong password, a database
that does not exist, no password at all."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.postgres import DATABASE, PASSWORD, USER, Cluster, free_port
from exporter.cli import cli

COMMANDS = (
    ["db", "info"],
    ["db", "migrate"],
    ["db", "prune", "--older-than-days", "30"],
    ["db", "derive"],
    ["trips"],
    ["report", "--out", "r"],
    ["check-config"],
)


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith(("CARMETRICS_", "PG"))]:
        monkeypatch.delenv(name)


def one_line_failure(args: list[str], url: str, password: str | None, *expect: str) -> str:
    env = {"CARMETRICS_DB_PASSWORD": password} if password else {}
    if args[0] == "check-config":
        Path("config.toml").write_text(f'[exporter]\ndb = "{url}"\n')
        full = args
    else:
        full = [*args, "--db", url]
    res = CliRunner().invoke(cli, full, env=env)
    out = res.output.strip()
    assert res.exit_code != 0, (args, out)
    assert res.exception is None or isinstance(res.exception, SystemExit), (args, res.exception)
    assert "Traceback" not in out and len(out.splitlines()) == 1, (args, out)
    assert out.startswith("Error: "), out
    if password:
        assert password not in out
    for word in expect:
        assert word in out, (args, out)
    return out


def test_unreachable_server() -> None:
    url = f"postgresql://{USER}@127.0.0.1:{free_port()}/{DATABASE}?connect_timeout=2"
    for args in COMMANDS:
        one_line_failure(args, url, "whatever", "cannot reach PostgreSQL", "server runs")


def test_wrong_password_missing_password_and_missing_database(postgres: Cluster) -> None:
    url = postgres.dsn_without_password
    for args in COMMANDS:
        one_line_failure(args, url, "not-the-password", "refused the password")
        one_line_failure(args, url, None, "CARMETRICS_DB_PASSWORD")
        missing = url.rsplit("/", 1)[0] + "/no_such_db"
        one_line_failure(args, missing, PASSWORD, '"no_such_db" does not exist', "createdb")


def test_run_fails_the_same_way(postgres: Cluster) -> None:
    line = one_line_failure(["run"], postgres.dsn_without_password, "nope", "refused the password")
    assert "nope" not in line


def test_a_password_on_the_command_line_is_refused() -> None:
    res = CliRunner().invoke(
        cli, ["db", "info", "--db", "postgresql://u:hunter2@127.0.0.1/x"], env={}
    )
    assert res.exit_code != 0 and "hunter2" not in res.output
    assert "--db: a password in the PostgreSQL URL is not allowed" in res.output


def test_without_psycopg_the_line_says_what_to_install(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from click.testing import CliRunner\n"
        "from exporter.cli import cli\n"
        "r = CliRunner().invoke(cli, ['db', 'info', '--db', 'postgresql://u@127.0.0.1/x'])\n"
        "print(r.exit_code, r.output.strip())\n"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True
    ).stdout.strip()
    assert out.startswith("1 Error: ") and "pip install 'carmetrics[postgres]'" in out, out
    assert len(out.splitlines()) == 1
