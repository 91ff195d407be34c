"""Start-up cost of the commands that only read the configuration (docs/BENCHMARKS.md §8).

``carmetrics --help``, ``check-config`` and the analysis commands load the configuration and
nothing of the exporter's running parts; what they import decides how fast they answer. Each
figure is the median of ``--runs`` fresh interpreters started in ``--tree`` (a checkout of
carmetrics: its ``exporter`` package is the one imported), so two trees can be compared in one
run, e.g. ``git archive <rev> | tar -x -C /tmp/old`` against this one::

    python -m bench.startup --tree /tmp/old --tree . --runs 7
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

from bench.common import median, table

# what each probe runs in a fresh interpreter; the last line it prints says whether aiohttp loaded
PROBES: Final = {
    "import exporter.config": "import exporter.config",
    "load(config.toml)": (
        "from pathlib import Path\nfrom exporter.config import load\n"
        "load(Path('config.toml'), env={})"
    ),
    "carmetrics --help": (
        "import sys\nfrom exporter.cli import cli\nsys.argv = ['carmetrics', '--help']\n"
        "try:\n    cli()\nexcept SystemExit:\n    pass"
    ),
    "carmetrics check-config": (
        "import sys\nfrom exporter.cli import cli\n"
        "sys.argv = ['carmetrics', 'check-config', '--config', 'config.toml']\n"
        "try:\n    cli()\nexcept SystemExit:\n    pass"
    ),
}
TAIL: Final = "\nimport sys as _s\nprint('aiohttp:', 'aiohttp' in _s.modules)"


def probe(tree: Path, code: str) -> tuple[float, bool]:
    """Wall seconds of one fresh interpreter running ``code`` in ``tree``, and whether it loaded
    aiohttp."""
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code + TAIL],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    took = time.perf_counter() - start
    last = out.stdout.strip().splitlines()[-1]
    return took, last == "aiohttp: True"


def import_ms(tree: Path) -> float:
    """``python -X importtime -c "import exporter.config"``: the cumulative µs of that import."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import exporter.config"],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    line = [x for x in out.stderr.splitlines() if x.rstrip().endswith("| exporter.config")][-1]
    return int(line.split("|")[1]) / 1000


def measure(trees: list[Path], runs: int) -> list[list[object]]:
    """Every probe ``runs`` times per tree, the trees taking turns (a load spike on the shared
    machine then hits both sides of a comparison alike)."""
    for tree in trees:  # compile each tree's bytecode once, outside the figures
        probe(tree, "import exporter.config")
    imports: dict[Path, list[float]] = {tree: [] for tree in trees}
    walls: dict[tuple[Path, str], list[tuple[float, bool]]] = {}
    for _ in range(runs):
        for tree in trees:
            imports[tree].append(import_ms(tree))
            for name, code in PROBES.items():
                walls.setdefault((tree, name), []).append(probe(tree, code))
    rows: list[list[object]] = []
    for tree in trees:
        rows.append([str(tree), "-X importtime: exporter.config (ms)", median(imports[tree]), "–"])
        for name in PROBES:
            got = walls[(tree, name)]
            ms = median([t * 1000 for t, _ in got])
            rows.append([str(tree), f"{name} (ms, whole process)", ms, any(a for _, a in got)])
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", type=Path, action="append", help="a carmetrics checkout (repeat)")
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args(argv)
    trees: list[Path] = args.tree or [Path(__file__).resolve().parent.parent]
    rows = measure([tree.resolve() for tree in trees], args.runs)
    print(table(["tree", "what", "median", "aiohttp loaded"], rows))


if __name__ == "__main__":
    main()
