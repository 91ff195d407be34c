"""Generator of the provisioned Grafana dashboards (``grafana/dashboards/*.json``).

Why generated: five dashboards share one datasource convention, one ``vin`` variable and one panel
style, and every panel must carry a unit and a query the end-to-end test can run. Thousands of
lines of hand-written JSON drift; here each panel is one call. The JSON files are committed (Grafana
reads them and they diff readably), and ``tests/test_grafana_dashboards.py`` fails when they differ
from what this package produces. Edit the modules here, then run
``python grafana/build_dashboards.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Final

from dashgen.charging import charging
from dashgen.exporter import exporter_health
from dashgen.kit import Dashboard
from dashgen.overview import overview
from dashgen.sessions import sessions
from dashgen.status import status

DASHBOARDS: Final[dict[str, Callable[[], Dashboard]]] = {
    "overview.json": overview,
    "charging.json": charging,
    "status.json": status,
    "sessions.json": sessions,
    "exporter.json": exporter_health,
}


def render_all() -> dict[str, str]:
    """File name -> JSON text, exactly as committed."""
    return {
        name: json.dumps(build().render(), indent=2, ensure_ascii=False) + "\n"
        for name, build in DASHBOARDS.items()
    }
