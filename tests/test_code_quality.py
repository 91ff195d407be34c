"""The code base stays ruff- and mypy-clean (the same checks a reviewer runs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_ruff_is_clean() -> None:
    res = run("ruff", "check", "exporter", "analysis", "tests", "bench")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]


def test_mypy_strict_is_clean() -> None:
    res = run("mypy", "--no-error-summary")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]


def test_ruff_format_is_clean() -> None:
    res = run("ruff", "format", "--check", "exporter", "analysis", "tests", "bench")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]


def test_pre_commit_runs_the_same_checks() -> None:
    import yaml

    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {h["id"]: h["entry"] for repo in config["repos"] for h in repo["hooks"]}
    assert set(hooks) == {"ruff", "ruff-format", "mypy"}
    assert hooks["ruff"].split()[1:2] == ["check"] and hooks["ruff-format"].split()[1:2] == [
        "format"
    ]
    assert all(entry.startswith(".venv/bin/") for entry in hooks.values())
