"""End to end: every dashboard query and alert rule against a real Prometheus and a real history.

`carmetrics run` on the embedded simulator (a real process, real HTTP), a real Prometheus started
with a test copy of the shipped prometheus.yml (target pointed at the test port, 1 s scrapes, the
shipped alerts.yml loaded), then:

- every PromQL query of every dashboard panel, with the ``vin`` variable as Grafana fills it,
  returns data through Prometheus's HTTP API, and narrows to one vehicle when one is selected;
- every alert rule is loaded and evaluated by Prometheus without error, and every alert expression
  is accepted by the query API;
- every SQL panel query returns rows from the history the run is writing, opened the way Grafana's
  SQLite datasource opens it (read-only, next to the live writer);
- one panel is rendered to PNG with matplotlib from that Prometheus data.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from exporter.signals import CHARGING_STATES, POWER_STATES
from exporter.simulator.smartcar.headless import consent
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
sys.path.insert(0, str(GRAFANA))

from dashgen.kit import CHARGING_CODE, POWER_CODE  # noqa: E402
from dashgen.queries import Query, expand_prom, expand_sql, queries  # noqa: E402
from render_panel import dashed, panel_series, render  # noqa: E402

DASHBOARDS = {
    p.name: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))
}
SCRAPE_S = 1
MIN_SCRAPES = 8
# The demo clock starts SIM_HISTORY_DAYS ago and runs SIM_SPEED times faster: 0.5 d at 600x takes
# 72 s to catch up, longer than the test, so the whole run sees the fast demo: the demo fleet has
# one car charging from the start (for about 15 s real) and one leaving on an errand (trips).
SIM_SPEED = 600
SIM_HISTORY_DAYS = 0.5
CARS = 4  # three smart cars, one connected through Smartcar
COMMAND_TOKEN = secrets.token_urlsafe(24)  # enables the command API for this run only


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:  # loopback only
        return json.load(r)


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:  # loopback only
        return str(r.read().decode())


@dataclass
class Stack:
    prom: str  # base URL
    db: Path
    config: Path
    vins: list[str]
    started: float  # when Prometheus began scraping

    def api(self, path: str, **params: str | float) -> Any:
        reply = get_json(f"{self.prom}/api/v1/{path}?{urllib.parse.urlencode(params)}")
        assert reply["status"] == "success", reply
        return reply["data"]

    def run(self, q: Query, vins: list[str]) -> list[dict[str, Any]]:
        """The panel's query, as Grafana fills it, evaluated at every scrape of the run.

        A stat panel's instant query answered at any moment of the run is data that panel showed
        then; evaluating over the whole window keeps state-dependent panels (time to full exists
        only while a car charges) meaningful without waiting for that state at one chosen instant.
        """
        now = time.time()
        span = max(10, int(now - self.started) + 5)
        expr = expand_prom(
            q.text, vins, rate_interval=f"{4 * SCRAPE_S + 1}s", range_=f"{span}s", interval="1s"
        )
        result: list[dict[str, Any]] = self.api(
            "query_range", query=expr, start=self.started, end=now, step=SCRAPE_S
        )["result"]
        return result


def wait_for(
    what: str, check: Any, timeout: float, proc: subprocess.Popen[bytes], log: Path
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what}: process exited {proc.returncode}\n{log.read_text()[-3000:]}")
        try:
            got = check()
        except OSError:
            got = None
        if got:
            return got
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}\n{log.read_text()[-3000:]}")


def exporter_config(path: Path, port: int) -> None:
    path.write_text(
        f"""
[exporter]
listen = "127.0.0.1"
port = {port}
[log]
level = "WARNING"
[metrics]
export_location = true      # the Overview map reads the position metrics
[simulator]
enabled = true
speed = {SIM_SPEED}
history_days = {SIM_HISTORY_DAYS}
seed = 7
smart_vehicles = ["#1", "#3", "#5"]
smartcar_vehicles = ["Tesla Model 3"]   # budget and re-auth metrics come from Smartcar accounts
fault_rate = 0.05           # some polls fail, so the error panels have series
[[accounts]]
name = "e2e"
provider = "smart"
region = "EU"
simulator = true
[[accounts]]
name = "e2e-smartcar"
provider = "smartcar"
simulator = true
[tariffs]                   # the cost panels read the prices db derive stores
currency = "EUR"
default = "home"
dc = "fast"
[tariffs.home]
price_per_kwh = 0.32
windows = [{{ days = "all", start = "22:00", end = "06:00", price_per_kwh = 0.18 }}]
[tariffs.fast]
price_per_kwh = 0.59
session_fee = 0.5
"""
    )


def connect_smartcar(base: str, attempts: int = 5) -> None:
    """What the owner does once: open Connect from the exporter, press Allow on the (simulated)
    consent page, land on the exporter's callback, which exchanges the code and adds the car.

    This run injects faults into 5 % of simulated cloud calls, Connect's included; an owner who sees
    "Connecting failed" starts again, and so does this helper (a few attempts, then it fails)."""
    for attempt in range(attempts):
        try:
            _connect_once(base)
            return
        except (AssertionError, KeyError, aiohttp.ClientError):  # a fault on the way
            if attempt == attempts - 1:
                raise


def _connect_once(base: str) -> None:
    async def walk() -> None:
        jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            async with session.get(f"{base}/connect/smartcar", allow_redirects=False) as r:
                assert r.status in (302, 303), await r.text()
                authorize = r.headers["Location"]
            callback = await consent(session, authorize)
            async with session.get(callback) as r:
                assert r.status == 200, await r.text()

    asyncio.run(walk())


def command_api(base: str, path: str, body: dict[str, Any] | None = None) -> Any:
    req = urllib.request.Request(
        f"{base}/api/v1/{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {COMMAND_TOKEN}", "Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(req, timeout=30) as r:  # loopback only
        return json.load(r)


def prometheus_config(path: Path, exporter_port: int, prom_port: int) -> None:
    """The shipped prometheus.yml with only the addresses and intervals changed."""
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = f"{SCRAPE_S}s"
    config["global"]["scrape_timeout"] = f"{SCRAPE_S}s"
    config["global"]["evaluation_interval"] = f"{SCRAPE_S}s"
    config["rule_files"] = [str(ROOT / "prometheus" / f) for f in config["rule_files"]]
    targets = {"carmetrics": f"127.0.0.1:{exporter_port}", "prometheus": f"127.0.0.1:{prom_port}"}
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    path.write_text(yaml.safe_dump(config))


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus = require_tool("prometheus")
    tmp = tmp_path_factory.mktemp("dashboards-e2e")
    exporter_port, prom_port = free_port(), free_port()
    exporter_config(tmp / "config.toml", exporter_port)
    db = tmp / "history.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARMETRICS_")}
    env["CARMETRICS_COMMANDS__TOKEN"] = COMMAND_TOKEN
    # Prometheus starts FIRST and scrapes from the exporter's first second on, so states that last
    # only a short while of the fast demo (the car charging at the start: "time to full") are inside
    # the evaluated window however slowly a loaded machine brings the rest of the stack up.
    prometheus_config(tmp / "prometheus.yml", exporter_port, prom_port)
    prom_log = tmp / "prometheus.log"
    with prom_log.open("wb") as out:
        prom = subprocess.Popen(
            [prometheus, f"--config.file={tmp / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    procs = [prom]
    exporter_log = tmp / "carmetrics.log"
    try:
        base = f"http://127.0.0.1:{prom_port}"
        wait_for(
            "Prometheus ready", lambda: "Ready" in fetch(f"{base}/-/ready"), 20, prom, prom_log
        )
        started = time.time()
        with exporter_log.open("wb") as out:
            exporter = subprocess.Popen(
                [sys.executable, "-m", "exporter.cli", "run", "--config", str(tmp / "config.toml"),
                 "--port", str(exporter_port), "--db", str(db)],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        procs.append(exporter)
        metrics_url = f"http://127.0.0.1:{exporter_port}/metrics"

        def vins_with_soc() -> list[str]:
            body = fetch(metrics_url)
            found = {
                line.split('vin="')[1].split('"')[0]
                for line in body.splitlines()
                if line.startswith("carmetrics_battery_soc_ratio{")
            }
            return sorted(found) if len(found) >= CARS else []

        base_url = f"http://127.0.0.1:{exporter_port}"
        wait_for("the exporter", lambda: fetch(f"{base_url}/healthz"), 20, exporter, exporter_log)
        connect_smartcar(base_url)
        vins = wait_for(
            "every simulated car on /metrics", vins_with_soc, 40, exporter, exporter_log
        )
        # one command through the API, so the command-outcome panel has a series
        command = command_api(base_url, f"vehicles/{vins[-1]}/commands", {"command": "lock"})
        s = Stack(base, db, tmp / "config.toml", vins, started)

        def scraped_enough() -> bool:
            got = s.api("query", query='sum_over_time(up{job="carmetrics"}[5m])')["result"]
            return bool(got) and float(got[0]["value"][1]) >= MIN_SCRAPES

        wait_for(f"{MIN_SCRAPES} scrapes", scraped_enough, 30, prom, prom_log)
        done = command_api(base_url, f"commands/{command['id']}?wait=20")
        assert done["status"] == "done", done

        def command_scraped() -> bool:
            q = "count_over_time(carmetrics_commands_total[5m])"
            got = s.api("query", query=q)["result"]
            return bool(got) and float(got[0]["value"][1]) >= 3

        wait_for("the command counter scraped", command_scraped, 10, prom, prom_log)
        yield s
    finally:
        for p in reversed(procs):
            stop(p)


def prom_queries() -> list[Query]:
    return [q for d in DASHBOARDS.values() for q in queries(d) if q.datasource_type == "prometheus"]


def sql_queries() -> list[Query]:
    return [q for d in DASHBOARDS.values() for q in queries(d) if q.datasource_type != "prometheus"]


def test_exporter_target_is_up(stack: Stack) -> None:
    targets = stack.api("targets")["activeTargets"]
    ours = [t for t in targets if t["labels"]["job"] == "carmetrics"]
    assert ours and ours[0]["health"] == "up", ours
    assert ours[0]["lastError"] == ""


def test_vin_variable_lists_every_vehicle(stack: Stack) -> None:
    values = stack.api("label/vin/values", **{"match[]": "carmetrics_vehicle_info"})
    assert sorted(values) == stack.vins


def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    empty = [q.where for q in prom_queries() if not stack.run(q, stack.vins)]
    assert empty == [], f"queries without data: {empty}"


def test_selecting_one_vehicle_narrows_every_query(stack: Stack) -> None:
    """With one vehicle selected, a query returns that vehicle only. The vehicle is one the query
    had data for with *All* (time to full exists only for a car that is charging)."""
    for q in prom_queries():
        if "$vin" not in q.text:
            continue
        seen = {r["metric"]["vin"] for r in stack.run(q, stack.vins) if "vin" in r["metric"]}
        result: list[dict[str, Any]] = []
        for one in sorted(seen) or stack.vins:
            result = stack.run(q, [one])
            if result:
                break
        assert result, f"{q.where}: no data for any single vehicle"
        assert {r["metric"].get("vin", one) for r in result} == {one}, q.where


def test_every_alert_rule_evaluates_without_error(stack: Stack) -> None:
    rules = yaml.safe_load((ROOT / "prometheus" / "alerts.yml").read_text())
    shipped = {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"]}

    def all_evaluated() -> list[dict[str, Any]]:
        loaded = [r for g in stack.api("rules")["groups"] for r in g["rules"]]
        done = [r for r in loaded if r.get("lastEvaluation", "").startswith("0001") is False]
        return loaded if len(done) == len(shipped) else []

    deadline = time.monotonic() + 10
    loaded: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not loaded:
        loaded = all_evaluated()
        time.sleep(0.2)
    assert {r["name"] for r in loaded} == set(shipped)
    bad = [(r["name"], r.get("lastError")) for r in loaded if r["health"] != "ok"]
    assert bad == []
    for name, expr in shipped.items():
        data = stack.api("query", query=expr)
        assert data["resultType"] == "vector", name


def has_data(rows: list[tuple[Any, ...]]) -> bool:
    """At least one row with a non-zero number: an aggregate over nothing (NULL) does not count."""
    return any(isinstance(v, int | float) and v != 0 for row in rows for v in row)


def test_every_sql_panel_returns_rows(stack: Stack) -> None:
    """After `carmetrics db derive`, against the live history, opened read-only and query-only the
    way the Grafana datasource opens it, while the exporter keeps writing."""
    derive = subprocess.run(
        [sys.executable, "-m", "exporter.cli", "db", "derive", "--config", str(stack.config),
         "--db", str(stack.db)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert derive.returncode == 0, derive.stdout + derive.stderr
    conn = sqlite3.connect(f"file:{stack.db}?mode=ro", uri=True, timeout=5)
    try:
        conn.execute("PRAGMA query_only = 1")
        for d in DASHBOARDS.values():
            for var in d["templating"]["list"]:
                if var["datasource"]["type"] != "prometheus":
                    values = [r[0] for r in conn.execute(var["query"])]
                    assert sorted(values) == stack.vins, var["name"]
        now = time.time()
        empty = []
        for q in sql_queries():
            sql = expand_sql(q.text, stack.vins, from_s=now - 30 * 86400, to_s=now)
            if not has_data(conn.execute(sql).fetchall()):
                empty.append(q.where)
        assert sql_queries(), "the Trips & charges dashboard has SQL panels"
        assert empty == [], f"SQL panels without rows: {empty}"
    finally:
        conn.close()


def test_a_panel_renders_to_png(stack: Stack, tmp_path: Path) -> None:
    dashboard = DASHBOARDS["charging.json"]
    panel = next(p for p in dashboard["panels"] if p["title"] == "State of charge and charge limit")
    series = panel_series(stack.prom, panel, stack.vins, stack.started, time.time(), SCRAPE_S)
    names = {name for name, _, _ in series}
    assert {f"{v} state of charge" for v in stack.vins} <= names
    out = Path(os.environ.get("CARMETRICS_DOCS_PNG", tmp_path / "panel.png"))
    title = f"{dashboard['title']}: {panel['title']}"
    render(series, title, panel["fieldConfig"]["defaults"]["unit"], out, dashed(panel))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 10_000


def test_state_code_panels_name_the_current_state(stack: Stack) -> None:
    """The one-number-per-car state panels map back to the state series that is 1."""
    checked = 0
    for code_expr, metric, states in (
        (CHARGING_CODE, "carmetrics_charging_state", CHARGING_STATES),
        (POWER_CODE, "carmetrics_power_state", POWER_STATES),
    ):
        now = time.time()
        expr = expand_prom(code_expr, stack.vins, rate_interval="5s", range_="1m", interval="1s")
        codes = {
            r["metric"]["vin"]: int(float(r["value"][1]))
            for r in stack.api("query", query=expr, time=now)["result"]
        }
        current = {
            r["metric"]["vin"]: r["metric"]["state"]
            for r in stack.api("query", query=f"{metric} == 1", time=now)["result"]
        }
        assert codes, metric
        for vin, code in codes.items():
            assert states[code] == current[vin], (metric, vin)
            checked += 1
    assert checked >= 2 * len(stack.vins) - 1  # a provider may not report a power state
