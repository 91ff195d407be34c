"""Structural checks of the provisioned Grafana dashboards, without a Grafana.

Grafana is not in Debian, so what Grafana would reject or silently break is checked here: stale
generated JSON, duplicate or malformed uids, datasources that are not provisioned (the classic
``${DS_PROMETHEUS}`` import placeholder), panels without a unit, a missing ``vin`` variable, queries
that ignore it, metric names carmetrics does not export, and PromQL that does not parse (checked by
promtool, which parses every expression of a rule file). The end-to-end test runs the same queries
against real data.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.signals import SIGNALS
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "grafana"
sys.path.insert(0, str(GRAFANA))

from dashgen import render_all  # noqa: E402
from dashgen.queries import expand_prom, expand_sql, queries  # noqa: E402

DASHBOARD_DIR = GRAFANA / "dashboards"
FILES = sorted(DASHBOARD_DIR.glob("*.json"))

# Unit ids of Grafana's unit picker that these dashboards may use; a typo renders raw numbers.
KNOWN_UNITS = {
    "none",
    "short",
    "percent",
    "percentunit",
    "lengthm",
    "lengthkm",
    "velocitykmh",
    "velocityms",
    "watt",
    "kwatt",
    "kwatth",
    "joule",
    "volt",
    "amp",
    "celsius",
    "pressurebar",
    "pressurepa",
    "s",
    "dtdurations",
    "dateTimeFromNow",
    "dateTimeAsIso",
    "bytes",
}

# The exporter's own metrics (issue 2 fixes these names) next to the signal metrics of signals.py.
SELF_METRICS = {
    "carmetrics_vehicle_info",
    "carmetrics_build_info",
    "carmetrics_poll_duration_seconds",
    "carmetrics_poll_interval_seconds",
    "carmetrics_poll_errors_total",
    "carmetrics_polls_total",
    "carmetrics_last_successful_poll_timestamp_seconds",
    "carmetrics_data_age_seconds",
    "carmetrics_next_poll_timestamp_seconds",
    "carmetrics_api_up",
    "carmetrics_db_rows_written_total",
    "carmetrics_db_write_errors_total",
    "carmetrics_db_last_write_timestamp_seconds",
    "carmetrics_reauth_required",
    "carmetrics_commands_total",
    "carmetrics_api_calls_total",
    "carmetrics_api_budget_used_calls",
    "carmetrics_api_budget_limit_calls",
    "carmetrics_api_min_poll_interval_seconds",
    # a fleet instance's health (exporter/fleet/metrics.py; tests/test_fleet_routing.py reads them)
    "carmetrics_shard_accounts_configured",
    "carmetrics_shard_accounts_held",
    "carmetrics_shard_database_up",
    "carmetrics_shard_takeovers_total",
}
KNOWN_METRICS = SELF_METRICS | {s.full_metric for s in SIGNALS}
METRIC_NAME = re.compile(r"\bcarmetrics_[a-z0-9_]+")
# Metrics carrying a vin label: every selector of one of these must be filtered by the variable.
PER_VEHICLE = {s.full_metric for s in SIGNALS} | {
    m
    for m in SELF_METRICS
    if m
    not in {
        "carmetrics_build_info",
        "carmetrics_api_up",
        "carmetrics_db_rows_written_total",
        "carmetrics_db_write_errors_total",
        "carmetrics_db_last_write_timestamp_seconds",
    }
    and not m.startswith("carmetrics_shard_")
}


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: load(p) for p in FILES}


@pytest.fixture(scope="module")
def provisioned_datasources() -> dict[str, str]:
    """uid -> type of every provisioned datasource."""
    out: dict[str, str] = {}
    for path in (GRAFANA / "provisioning" / "datasources").glob("*.yml"):
        for ds in yaml.safe_load(path.read_text())["datasources"]:
            out[ds["uid"]] = ds["type"]
    return out


def test_committed_json_is_what_the_generator_writes() -> None:
    rendered = render_all()
    assert sorted(rendered) == [p.name for p in FILES], "run: python grafana/build_dashboards.py"
    for name, text in rendered.items():
        committed = (DASHBOARD_DIR / name).read_text(encoding="utf-8")
        assert committed == text, f"{name} is stale: run python grafana/build_dashboards.py"


def test_the_five_dashboards_of_the_issue_exist(dashboards: dict[str, dict[str, Any]]) -> None:
    titles = {d["title"].split(" / ", 1)[1] for d in dashboards.values()}
    assert titles == {
        "Overview",
        "Battery & charging",
        "Vehicle status",
        "Trips & charges",
        "Exporter health",
    }


def test_uids_titles_and_no_import_placeholders(dashboards: dict[str, dict[str, Any]]) -> None:
    uids = [d["uid"] for d in dashboards.values()]
    assert len(set(uids)) == len(uids)
    assert all(re.fullmatch(r"[a-z0-9-]{8,40}", u) for u in uids), uids
    titles = [d["title"] for d in dashboards.values()]
    assert len(set(titles)) == len(titles)
    for name, d in dashboards.items():
        text = (DASHBOARD_DIR / name).read_text()
        assert "__inputs" not in d and "${DS_" not in text, name
        assert d["id"] is None, f"{name}: provisioned dashboards carry id null"
        assert d["schemaVersion"] >= 39, name


def test_panel_ids_unique_and_grid_without_overlap(dashboards: dict[str, dict[str, Any]]) -> None:
    for name, d in dashboards.items():
        ids = [p["id"] for p in d["panels"]]
        assert len(set(ids)) == len(ids), name
        cells: set[tuple[int, int]] = set()
        for p in d["panels"]:
            g = p["gridPos"]
            assert g["w"] > 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, (name, p["title"])
            mine = {
                (x, y)
                for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])
            }
            assert not (mine & cells), f"{name}: {p['title']} overlaps another panel"
            cells |= mine


def test_every_datasource_reference_is_provisioned(
    dashboards: dict[str, dict[str, Any]], provisioned_datasources: dict[str, str]
) -> None:
    assert set(provisioned_datasources) == {"prometheus", "carmetrics-sqlite"}
    for name, d in dashboards.items():
        refs = [v["datasource"] for v in d["templating"]["list"]]
        for p in d["panels"]:
            refs.append(p["datasource"])
            refs.extend(t["datasource"] for t in p["targets"])
        for ref in refs:
            assert provisioned_datasources.get(ref["uid"]) == ref["type"], (name, ref)


def test_every_panel_has_a_unit_and_targets(dashboards: dict[str, dict[str, Any]]) -> None:
    for name, d in dashboards.items():
        for p in d["panels"]:
            unit = p["fieldConfig"]["defaults"].get("unit")
            known = unit in KNOWN_UNITS or str(unit).startswith("suffix:")
            assert known, (name, p["title"], unit)
            for o in p["fieldConfig"]["overrides"]:
                for prop in o["properties"]:
                    if prop["id"] == "unit":
                        assert prop["value"] in KNOWN_UNITS, (name, p["title"], prop)
            assert p["targets"], (name, p["title"])
            ref_ids = [t["refId"] for t in p["targets"]]
            assert len(set(ref_ids)) == len(ref_ids), (name, p["title"])


def test_every_dashboard_has_the_vin_variable_and_uses_it(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    for name, d in dashboards.items():
        variables = {v["name"]: v for v in d["templating"]["list"]}
        assert "vin" in variables, name
        assert variables["vin"]["multi"] and variables["vin"]["includeAll"], name
        for q in queries(d):
            if q.datasource_type == "prometheus":
                for m in re.finditer(r"\b(carmetrics_[a-z0-9_]+)(\{[^}]*\})?", q.text):
                    if m.group(1) in PER_VEHICLE:
                        assert m.group(2) and 'vin=~"$vin"' in m.group(2), (q.where, m.group(0))
            else:
                assert "${vin:singlequote}" in q.text, q.where


def test_every_metric_name_is_one_carmetrics_exports(dashboards: dict[str, dict[str, Any]]) -> None:
    used: set[str] = set()
    for d in dashboards.values():
        for q in queries(d):
            if q.datasource_type == "prometheus":
                used |= set(METRIC_NAME.findall(q.text))
    rules = (ROOT / "prometheus" / "alerts.yml").read_text()
    used |= set(METRIC_NAME.findall(rules))
    # the test file of the rules uses the same names as input series
    assert not used - KNOWN_METRICS, sorted(used - KNOWN_METRICS)
    assert len(used) > 30  # the check itself found the queries


def test_every_promql_expression_parses(
    dashboards: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """promtool parses every expression of a rule file, so each panel query becomes a rule."""
    promtool = require_tool("promtool")
    rules = []
    for d in dashboards.values():
        for q in queries(d):
            if q.datasource_type == "prometheus":
                expr = expand_prom(
                    q.text, ["VIN1", "VIN2"], rate_interval="4m", range_="1d", interval="1m"
                )
                rules.append({"record": f"dashboard:query:{len(rules)}", "expr": expr})
    assert len(rules) > 40
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    res = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_sql_expansion_matches_grafana() -> None:
    q = "SELECT 1 FROM t WHERE vin IN (${vin:singlequote}) AND ts >= $__from / 1000 AND ts < $__to"
    out = expand_sql(q, ["A1", "O'B"], from_s=10, to_s=20.5)
    assert out == "SELECT 1 FROM t WHERE vin IN ('A1','O''B') AND ts >= 10000 / 1000 AND ts < 20500"
    with pytest.raises(ValueError, match="unknown Grafana variable"):
        expand_sql("SELECT $other", ["A"], from_s=0, to_s=1)
    with pytest.raises(ValueError, match="unknown Grafana variable"):
        expand_prom('x{a="$job"}', ["V"], rate_interval="1m", range_="1h", interval="1m")


def test_generator_and_renderer_are_lint_and_type_clean() -> None:
    """grafana/ is not a package of the project, so the project-wide checks do not see it."""
    files = ["grafana/dashgen", "grafana/build_dashboards.py", "grafana/render_panel.py"]
    env = {**os.environ, "MYPYPATH": str(GRAFANA)}
    for args in (
        ["ruff", "check", *files],
        ["ruff", "format", "--check", *files],
        ["mypy", "--strict", "--no-error-summary", *files],
    ):
        res = subprocess.run(
            [sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True,
            check=False,
        )  # fmt: skip
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
