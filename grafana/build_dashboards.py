"""Write the provisioned dashboards: ``python grafana/build_dashboards.py [OUT_DIR]``.

Edits made in the Grafana UI are overwritten from the files on the next provisioning cycle;
port them back into ``grafana/dashgen/`` and re-run this.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from dashgen import render_all  # noqa: E402


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else HERE / "dashboards"
    out.mkdir(parents=True, exist_ok=True)
    for name, text in render_all().items():
        (out / name).write_text(text, encoding="utf-8")
        print(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
