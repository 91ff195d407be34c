"""Places and costs where a user looks: `carmetrics places`, `costs`, `charges`, `summary`, `report`
and `db derive`, on a history the exporter's writer stored and a config.toml like the README's."""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from analysis.testing import Car, write_history
from exporter.cli import cli

BERLIN = ZoneInfo("Europe/Berlin")
HOME = (52.5200, 13.4000)

# The README's worked example, verbatim in spirit: a home tariff with a cheap night window.
CONFIG = """
[analysis]
timezone = "Europe/Berlin"

[[places]]
name = "Home"
latitude = 52.52
longitude = 13.40
tariff = "home"

[tariffs]
currency = "EUR"
default = "public"

[tariffs.home]
price_per_kwh = 0.32
windows = [{ days = "all", start = "22:00", end = "06:00", price_per_kwh = 0.18 }]

[tariffs.public]
price_per_kwh = 0.49
session_fee = 1.00
"""


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp()


@pytest.fixture
def history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Eight nights at home (charged overnight twice), commutes to the same office, one public charge."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("CARMETRICS_")]:
        monkeypatch.delenv(name)
    (tmp_path / "config.toml").write_text(CONFIG)
    car = Car(
        vin="HESXR1C4PLACES001", lat=HOME[0], lon=HOME[1], soc=0.5, now=at("2026-03-02T06:00")
    )
    car.sample()
    for day in range(8):
        car.park(at(f"2026-03-{2 + day:02d}T07:30") - car.now)
        car.drive(5.76, 15, heading_deg=46.3)
        car.park(9 * 3600)
        car.drive(5.76, 15, heading_deg=226.3)
        if day in (2, 5):
            car.park(at(f"2026-03-{2 + day:02d}T23:00") - car.now)
            car.plug()
            car.charge(0.8, 7.4)
            car.unplug()
    car.park(3600)
    car.drive(30, 30, heading_deg=90)  # to a public charger, nowhere configured
    car.plug()
    car.charge(0.9, 11.0)
    car.unplug()
    car.park(3600)
    db = tmp_path / "h.db"
    write_history(db, [car.frame()])
    return db


def run(*args: str) -> str:
    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def test_places_lists_home_by_name_and_suggests_the_office(history: Path) -> None:
    rows = json.loads(run("places", "--db", str(history), "--format", "json"))
    names = {r["place"] for r in rows}
    assert "Home" in names  # configured, so shown under its name
    office = [r for r in rows if r["place"] != "Home"]
    assert len(office) == 1 and office[0]["visits"] >= 7 and office[0]["nights"] == 0
    table = run("places", "--db", str(history))
    assert "[[places]]" in table and f"latitude = {office[0]['latitude']}" in table


def test_charges_carry_place_grid_energy_and_cost(history: Path) -> None:
    rows = json.loads(run("charges", "--db", str(history), "--format", "json"))
    home = [r for r in rows if r["place"] == "Home"]
    public = [r for r in rows if r["place"] is None]
    assert len(home) == 2 and len(public) == 1
    for r in home:  # 23:00 to past midnight: all inside the 0.18 window
        assert r["cost"] == round(r["energy_grid_kwh"] * 0.18, 2)
        assert r["currency"] == "EUR"
    assert public[0]["cost"] == round(public[0]["energy_grid_kwh"] * 0.49 + 1.00, 2)
    table = run("charges", "--db", str(history))
    assert "place" in table.splitlines()[0] and "cost" in table.splitlines()[0]


def test_costs_and_summary_add_up(history: Path) -> None:
    charges = json.loads(run("charges", "--db", str(history), "--format", "json"))
    monthly = json.loads(run("costs", "--db", str(history), "--format", "json"))
    assert {(m["place"], m["kind"]) for m in monthly} == {("Home", "ac"), ("other", "ac")}
    total = round(sum(r["cost"] for r in charges), 2)
    assert round(sum(m["cost"] for m in monthly), 2) == total
    summary = json.loads(run("summary", "--db", str(history), "--format", "json"))
    assert len(summary) == 1
    assert summary[0]["cost"] == total
    assert summary[0]["cost_per_100km"] == pytest.approx(total / summary[0]["distance_km"] * 100)


def test_report_has_a_cost_section(history: Path, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    run("report", "--db", str(history), "--out", str(out))
    page = (out / "report.html").read_text()
    assert "<h3>Costs</h3>" in page and "charging cost" in page
    assert any(p.name.endswith("_costs.png") for p in out.iterdir())


def test_derive_stores_places_and_costs_for_grafana(history: Path) -> None:
    run("db", "derive", "--db", str(history))
    with sqlite3.connect(history) as conn:
        trips = conn.execute(
            "SELECT start_place, end_place FROM trips WHERE start_place IS NOT NULL"
        ).fetchall()
        sessions = conn.execute(
            "SELECT place, cost, currency FROM charging_sessions ORDER BY start_ts"
        ).fetchall()
    assert ("Home", None) in trips or (None, "Home") in trips
    assert [s[0] for s in sessions] == ["Home", "Home", None]
    assert all(s[1] is not None and s[2] == "EUR" for s in sessions)


def test_changing_a_tariff_rebuilds_the_derived_costs(history: Path, tmp_path: Path) -> None:
    run("db", "derive", "--db", str(history))
    (tmp_path / "config.toml").write_text(CONFIG.replace("0.18", "0.10"))
    run("db", "derive", "--db", str(history))
    with sqlite3.connect(history) as conn:
        rows = conn.execute(
            "SELECT cost, energy_grid_kwh FROM charging_sessions WHERE place = 'Home'"
        ).fetchall()
    assert rows and all(cost == round(kwh * 0.10, 2) for cost, kwh in rows)


def test_a_bad_tariff_names_its_key(history: Path, tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(CONFIG.replace('start = "22:00"', 'start = "22h"'))
    res = CliRunner().invoke(cli, ["charges", "--db", str(history)])
    assert res.exit_code != 0
    assert "tariffs.home.windows[0].start = '22h'" in res.output


def test_the_readme_worked_example_costs_what_it_says(tmp_path: Path) -> None:
    import re
    import tomllib

    from analysis import charges
    from analysis.settings import Settings

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Places and costs", 1)[1].split("\n## ", 1)[0]
    cfg = tomllib.loads(re.search(r"```toml\n(.*?)```", section, re.S).group(1))  # type: ignore[union-attr]
    s = Settings.from_config({"timezone": "Europe/Berlin"}, cfg["places"], cfg["tariffs"])
    home = cfg["places"][0]
    car = Car(lat=home["latitude"], lon=home["longitude"], soc=0.30, now=at("2026-03-04T20:00"))
    car.sample()
    car.park(3600)
    car.plug()
    car.charge(0.80, 11.0)
    car.park(3600)
    car.unplug()
    row = charges(car.frame(), s).iloc[0]
    assert row["place"] == "Home"
    assert row["energy_added_kwh"] == pytest.approx(31.0, abs=0.05)
    assert "**7.91 EUR**" in section and row["cost"] == 7.91
    assert "3.77 EUR per 100 km" in section
    assert round(row["cost_per_100km_range"], 2) == 3.77


def test_check_config_finds_a_bad_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.toml").write_text(CONFIG)
    assert CliRunner().invoke(cli, ["check-config"]).exit_code == 0
    (tmp_path / "config.toml").write_text(CONFIG.replace("latitude = 52.52", "latitude = 152.52"))
    res = CliRunner().invoke(cli, ["check-config"])
    assert res.exit_code != 0 and "places[0].latitude = 152.52" in res.output
