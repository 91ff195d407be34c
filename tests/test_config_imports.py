"""The settings path stays light: reading and checking a config imports no provider implementation
(aiohttp, the cloud clients), so ``check-config``, ``--help`` and the analysis commands start fast
(figures in docs/BENCHMARKS.md, "Start-up"). The registry loads an implementation when it builds."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from exporter.config import AccountConfig
from exporter.providers import registry

ROOT = Path(__file__).resolve().parent.parent
HEAVY = (
    "aiohttp",
    "exporter.providers.smart.entry",
    "exporter.providers.smartcar.entry",
    "exporter.providers.smart.provider",
    "exporter.providers.smartcar.v3_provider",
)


def _loaded_after(code: str) -> list[str]:
    probe = textwrap.dedent(code) + textwrap.dedent(
        f"""
        import sys
        print("loaded:" + ",".join(m for m in {HEAVY!r} if m in sys.modules))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=ROOT,
    )
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("loaded:"), out.stdout
    return [m for m in last.removeprefix("loaded:").split(",") if m]


def test_importing_the_config_imports_no_provider() -> None:
    assert _loaded_after("import exporter.config") == []


def test_loading_and_checking_the_shipped_config_imports_no_provider() -> None:
    # the shipped config has smart and Smartcar accounts: both account models are read
    code = """
        from pathlib import Path
        from exporter.config import load
        from exporter.preflight import preflight
        cfg = load(Path("config.toml"), env={})
        assert {a.provider for a in cfg.accounts} == {"smart", "smartcar"}, cfg.accounts
        preflight(cfg, env={})
        """
    assert _loaded_after(code) == []


def test_check_config_imports_no_provider() -> None:
    code = """
        from click.testing import CliRunner
        from exporter.cli import cli
        result = CliRunner().invoke(cli, ["check-config", "--config", "config.toml"])
        assert result.exit_code == 0, result.output
        """
    assert _loaded_after(code) == []


def test_an_analysis_command_imports_no_provider(tmp_path: Path) -> None:
    # `trips` reads config.toml (here the shipped one, with smart and Smartcar accounts)
    code = f"""
        import os, shutil
        from pathlib import Path
        import pandas as pd
        from click.testing import CliRunner
        from analysis.testing import Car, write_history
        from exporter.cli import cli
        shutil.copy("config.toml", {str(tmp_path)!r} + "/config.toml")
        car = Car(vin="HESXR1C4CLITEST01", now=pd.Timestamp("2026-02-01T05:00").timestamp())
        car.sample()
        car.park(3600).drive(25, 30).park(3600)
        write_history(Path({str(tmp_path)!r}) / "h.db", [car.frame()])
        os.chdir({str(tmp_path)!r})
        result = CliRunner().invoke(cli, ["trips", "--db", "h.db"])
        assert result.exit_code == 0, result.output
        assert "HESXR1C4CLITEST01" in result.output, result.output
        """
    assert _loaded_after(code) == []


def test_the_old_package_names_still_import() -> None:
    from exporter.providers.smart import ENTRY as SMART
    from exporter.providers.smart import SmartProvider
    from exporter.providers.smartcar import ENTRY as SMARTCAR
    from exporter.providers.smartcar import SmartcarV3Provider

    assert SmartProvider.__name__ == "SmartProvider"
    assert SmartcarV3Provider.__name__ == "SmartcarV3Provider"
    assert (SMART.name, SMARTCAR.name) == ("smart", "smartcar")
    with pytest.raises(ImportError):
        from exporter.providers.smart import NoSuchName  # type: ignore[attr-defined]  # noqa: F401


@pytest.mark.parametrize("name", ["smart", "smartcar"])
def test_a_shipped_line_loads_the_entry_with_the_same_model(name: str) -> None:
    line = registry.PROVIDERS[name]
    assert isinstance(line, registry.Shipped)
    entry = registry.entry_for(AccountConfig(name="a", provider=name, index=0))
    assert entry.name == name and entry.model is line.model
    assert entry.build is not None and entry.settings is not None
