"""One wall clock for real accounts: a real account never runs on the embedded demo's clock.

The demo's ScaledClock starts ``history_days`` in the past; a real account signed by it sent
timestamps 14 days old. Such a mix is refused at start-up with one line naming the account's key
and the fixes, and the CLI prints that line instead of starting.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from exporter.cli import cli
from exporter.clock import ScaledClock
from exporter.config import ConfigError, load
from exporter.runtime import Runtime
from exporter.tokens import KEY_ENV, generate_key

MIXED = """
[exporter]
db = "{db}"
[simulator]
enabled = true
{extra}
[[accounts]]
name = "demo"
provider = "smart"
region = "EU"
simulator = true
[[accounts]]
name = "mine"
provider = "smart"
region = "EU"
username = "me@example.com"
"""


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(MIXED.format(db=tmp_path / "h.db", extra=extra))
    return path


async def test_a_real_account_beside_the_demo_clock_is_refused(tmp_path: Path) -> None:
    cfg = load(_config(tmp_path), env={"CARMETRICS_ACCOUNTS__1__PASSWORD": "x" * 12})
    with pytest.raises(ConfigError) as info:
        await Runtime.create(cfg)
    line = str(info.value)
    assert "\n" not in line
    assert line.startswith("accounts[1].simulator = false")
    assert "simulator.enabled = false" in line and "simulator.speed = 1" in line


async def test_the_demo_on_wall_time_may_hold_a_real_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, generate_key())  # the real account's tokens need the vault
    extra = "speed = 1\nhistory_days = 0"
    cfg = load(_config(tmp_path, extra), env={"CARMETRICS_ACCOUNTS__1__PASSWORD": "x" * 12})
    rt = await Runtime.create(cfg)
    try:
        assert isinstance(rt.clock, ScaledClock)
        assert abs(rt.clock.now() - time.time()) < 5  # requests are signed with wall time
    finally:
        await rt.session.close()


def test_the_cli_says_why_in_one_line(tmp_path: Path) -> None:
    path = _config(tmp_path)
    res = CliRunner().invoke(
        cli,
        ["run", "--config", str(path)],
        env={"CARMETRICS_ACCOUNTS__1__PASSWORD": "x" * 12, KEY_ENV: generate_key()},
    )
    assert res.exit_code != 0
    assert "configuration error: accounts[1].simulator = false" in res.output
