"""Every third-party module the code imports is a declared dependency: the package's own modules
need only the core list, tests and benches the core list plus the ``test`` extra. An undeclared
import works here by luck (something else pulled it in) and breaks a fresh install."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Local modules the tests put on sys.path themselves (grafana/ holds the dashboard generator).
LOCAL = {"exporter", "analysis", "tests", "bench", "dashgen", "render_panel"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(reqs: list[str]) -> set[str]:
    return {_norm(re.split(r"[\s<>=!~\[;]", r, maxsplit=1)[0]) for r in reqs}


def _imports(*folders: str) -> dict[str, set[str]]:
    """Top-level third-party module -> files importing it (absolute imports only)."""
    found: dict[str, set[str]] = {}
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top in sys.stdlib_module_names or top in LOCAL:
                        continue
                    if (ROOT / folder / f"{top}.py").exists():  # a sibling script in bench/
                        continue
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _undeclared(imports: dict[str, set[str]], declared: set[str]) -> dict[str, set[str]]:
    dists = packages_distributions()
    missing: dict[str, set[str]] = {}
    for module, files in imports.items():
        owners = {_norm(d) for d in dists.get(module, [module])}
        if not owners & declared:
            missing[module] = files
    return missing


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    meta: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return meta


def test_package_imports_are_core_dependencies(project: dict[str, Any]) -> None:
    """Core, or a user-facing extra (``postgres``): those modules are imported lazily, checked by
    ``test_sqlite_users_never_import_the_postgres_extra``."""
    core = _requirement_names(project["dependencies"])
    extras = {
        name
        for extra, reqs in project["optional-dependencies"].items()
        if extra != "test"
        for name in _requirement_names(reqs)
    }
    missing = _undeclared(_imports("exporter", "analysis"), core | extras)
    assert missing == {}
    optional = _undeclared(_imports("exporter", "analysis"), core)
    assert set(optional) <= {"psycopg", "psycopg_pool", "pyarrow"}


def test_sqlite_users_never_import_the_postgres_extra(tmp_path: Path) -> None:
    """Start-up, a write and an analysis read on SQLite leave psycopg unloaded."""
    code = (
        "import sys; from pathlib import Path\n"
        "import exporter.cli, exporter.runtime, exporter.commands.audit, analysis\n"
        "from exporter.backend import backend\n"
        "from analysis.testing import Car, write_history\n"
        f"db = Path({str(tmp_path / 'h.db')!r})\n"
        "backend(db).preflight()\n"
        "car = Car(vin='V' * 17, now=1_775_000_000.0); car.sample(); car.park(600)\n"
        "write_history(db, [car.frame()])\n"
        "assert len(analysis.load(db)) > 0\n"
        "print(sorted(m for m in sys.modules if m.startswith('psycopg')))\n"
    )
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == "[]"


def test_test_and_bench_imports_are_declared(project: dict[str, Any]) -> None:
    test = _requirement_names(project["optional-dependencies"]["test"])
    declared = _requirement_names(project["dependencies"]) | test
    assert _undeclared(_imports("tests", "bench"), declared) == {}


def test_the_check_sees_an_undeclared_import() -> None:
    # hypothesis is imported by the parser tests; without it declared the check must complain.
    imports = _imports("tests")
    assert "hypothesis" in imports
    assert "hypothesis" in _undeclared(imports, {"pytest"})
