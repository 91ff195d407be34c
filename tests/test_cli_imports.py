"""What the command line imports: the exporter's own commands never load pandas or matplotlib, the
analysis commands are listed without importing them, and the static list stays true to them."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import click
import pytest
from click.testing import CliRunner

from exporter import cli as cli_module
from exporter.cli import ANALYSIS, DB_ANALYSIS, cli

HEAVY = ("pandas", "matplotlib", "analysis.cli")


def _loaded_after(code: str) -> list[str]:
    """The heavy modules a fresh interpreter has loaded after running ``code``."""
    probe = textwrap.dedent(code) + textwrap.dedent(
        f"""
        import sys
        print("loaded:" + ",".join(m for m in {HEAVY!r} if m in sys.modules))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("loaded:"), out.stdout
    return [m for m in last.removeprefix("loaded:").split(",") if m]


def _cli(*args: str) -> str:
    return f"""
        from click.testing import CliRunner
        from exporter.cli import cli
        result = CliRunner().invoke(cli, {list(args)!r})
        assert result.exit_code == 0, result.output
        print(result.output)
        """


def test_importing_the_cli_loads_no_analysis_stack() -> None:
    assert _loaded_after("import exporter.cli") == []


@pytest.mark.parametrize(
    "args",
    [("--help",), ("db", "--help"), ("command", "--help"), ("vehicles", "--help"), ("run", "-h")],
)
def test_help_and_exporter_commands_load_no_analysis_stack(args: tuple[str, ...]) -> None:
    assert _loaded_after(_cli(*args)) == []


def test_no_exporter_module_loads_the_analysis_stack() -> None:
    # What `carmetrics run` may import (server, runtime, providers, simulators, web extensions):
    # every module of the exporter package, so a new import of pandas anywhere there fails here.
    code = """
        import importlib, pkgutil, exporter
        for m in pkgutil.walk_packages(exporter.__path__, "exporter."):
            importlib.import_module(m.name)
        """
    assert _loaded_after(code) == []


def test_an_analysis_command_loads_its_module_when_used() -> None:
    loaded = _loaded_after(_cli("trips", "--help"))
    assert "analysis.cli" in loaded and "pandas" in loaded


def test_help_lists_the_analysis_commands_from_the_table() -> None:
    out = CliRunner().invoke(cli, ["--help"], terminal_width=200).output
    for name, entry in ANALYSIS.items():
        assert f"{name} " in out and entry.short_help in out
    db_out = CliRunner().invoke(cli, ["db", "--help"], terminal_width=200).output
    assert DB_ANALYSIS["derive"].short_help in db_out


@pytest.mark.parametrize(
    ("group", "table"), [(cli, ANALYSIS), (cli_module.db, DB_ANALYSIS)], ids=["cli", "db"]
)
def test_lazy_table_matches_the_commands(group: click.Group, table: object) -> None:
    import analysis.cli

    assert isinstance(table, dict)
    for name, entry in table.items():
        cmd = entry.load()
        assert cmd.name == name
        assert entry.short_help == cmd.get_short_help_str(limit=1000)
        assert group.get_command(click.Context(group), name) is cmd
    every = {
        name
        for name, obj in vars(analysis.cli).items()
        if isinstance(obj, click.Command)
        and getattr(obj.callback, "__module__", None) == "analysis.cli"
    }
    listed = {e.target.partition(":")[2] for e in (*ANALYSIS.values(), *DB_ANALYSIS.values())}
    assert every == listed, "a command of analysis.cli is missing from exporter.cli's tables"


def test_a_missing_lazy_module_is_an_error_not_a_skip() -> None:
    from exporter.lazygroup import LazyCommand, LazyGroup

    group = LazyGroup("g", lazy={"gone": LazyCommand("tests.no_such_module:gone", "Gone.")})
    assert "gone" in CliRunner().invoke(group, ["--help"]).output
    result = CliRunner().invoke(group, ["gone"])
    assert isinstance(result.exception, ModuleNotFoundError)
