"""The shipped Prometheus config and alert rules: promtool-valid, and every alert unit-tested.

``promtool test rules`` runs prometheus/tests/alerts_test.yml; this module also makes sure that file
keeps up with alerts.yml (each alert has a case where it fires and one where it must not), and that
the issue's list of alerts is covered.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parent.parent
PROM = ROOT / "prometheus"


def alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load((PROM / "alerts.yml").read_text())
    return [r for g in data["groups"] for r in g["rules"] if "alert" in r]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = require_tool("promtool")
    return subprocess.run([tool, *args], capture_output=True, text=True, check=False, cwd=ROOT)


def test_config_is_valid_and_loads_the_rules() -> None:
    res = promtool("check", "config", str(PROM / "prometheus.yml"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 rule files found" in res.stdout


def test_rules_are_valid() -> None:
    res = promtool("check", "rules", str(PROM / "alerts.yml"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{len(alert_rules())} rules found" in res.stdout


def test_rule_unit_tests_pass() -> None:
    res = promtool("test", "rules", str(PROM / "tests" / "alerts_test.yml"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout


def test_every_alert_is_tested_firing_and_quiet() -> None:
    tests = yaml.safe_load((PROM / "tests" / "alerts_test.yml").read_text())["tests"]
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in tests:
        for check in case.get("alert_rule_test", []):
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {r["alert"] for r in alert_rules()}
    assert names - fires == set(), f"alerts never tested firing: {names - fires}"
    assert names - quiet == set(), f"alerts never tested staying quiet: {names - quiet}"


def test_the_alerts_the_issue_asks_for_exist() -> None:
    exprs = {r["alert"]: r["expr"] for r in alert_rules()}
    wanted = {
        "CarmetricsBatteryLow": "carmetrics_battery_soc_ratio",
        "CarmetricsChargingStoppedBeforeLimit": "carmetrics_charge_limit_ratio",
        "CarmetricsVehicleUnlocked": "carmetrics_locked",
        "CarmetricsOpenWhileParked": "carmetrics_window_open",
        "CarmetricsTyrePressureLow": "carmetrics_tyre_pressure_pascals",
        "CarmetricsVehicleDataStale": "carmetrics_data_age_seconds",
        "CarmetricsReauthRequired": "carmetrics_reauth_required",
        "CarmetricsExporterDown": 'up{job="carmetrics"}',
    }
    for alert, needle in wanted.items():
        assert needle in exprs.get(alert, ""), alert


def test_every_alert_has_severity_and_a_summary_naming_what() -> None:
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, rule["alert"]
        summary = rule["annotations"]["summary"]
        assert "$labels." in summary or "carmetrics" in summary, rule["alert"]
        assert rule["annotations"].get("description"), rule["alert"]


def test_scrape_job_matches_the_alerts_and_dashboards() -> None:
    """The job label the rules and the Exporter-health dashboard filter on is the scrape job."""
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert "carmetrics" in jobs
    # under the 5 min staleness look-back, so instant panels never fall into a gap
    interval = str(jobs["carmetrics"].get("scrape_interval", config["global"]["scrape_interval"]))
    assert interval.endswith("s") and int(interval[:-1]) <= 120
    dashboards = (ROOT / "grafana" / "dashboards" / "exporter.json").read_text()
    assert 'job=\\"carmetrics\\"' in dashboards
