"""The analysis commands as users run them: through the ``carmetrics`` click group, on a history the
exporter's own writer stored, with a config file in the working directory like a real install."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import sqlite3
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from analysis.charges import CHARGE_COLUMNS
from analysis.cli import parse_when, progress
from analysis.journal import OUTPUT_COLUMNS
from analysis.testing import Car, write_history
from exporter.cli import cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two days of a #1: two trips, an AC charge, a DC charge; config.toml sets the zone."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("CARMETRICS_")]:
        monkeypatch.delenv(name)
    (tmp_path / "config.toml").write_text('[analysis]\ntimezone = "Europe/Berlin"\n')
    car = Car(vin="HESXR1C4CLITEST01", now=pd.Timestamp("2026-02-01T05:00", tz="UTC").timestamp())
    car.sample()
    car.park(2 * 3600).drive(25, 30).park(9 * 3600).drive(25, 30)
    car.park(1800).plug().charge(0.8, 11.0).unplug().park(8 * 3600, drain_w=150)
    car.drive(120, 80).plug(False).charge(0.8, 150.0, every=60, dc=True, taper=True).unplug()
    car.park(3600)
    db = tmp_path / "h.db"
    write_history(db, [car.frame()])
    return db


def run(*args: str) -> str:
    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def test_commands_are_registered() -> None:
    top = CliRunner().invoke(cli, ["--help"]).output
    for name in ("trips", "charges", "drain", "efficiency", "battery", "summary", "report"):
        assert re.search(rf"^\s+{name}\b", top, flags=re.M), name
    assert re.search(r"^\s+derive\b", CliRunner().invoke(cli, ["db", "--help"]).output, re.M)


def test_trips_as_table_json_csv_and_parquet(history: Path, tmp_path: Path) -> None:
    table = run("trips", "--db", str(history))
    lines = [ln for ln in table.splitlines() if ln.startswith("HESXR1C4CLITEST01")]
    assert len(lines) == 3
    assert "2026-02-01 08:00" in table  # 07:00 UTC shown in Berlin time, minutes only
    records = json.loads(run("trips", "--db", str(history), "--format", "json"))
    assert [r["distance_km"] for r in records] == pytest.approx([25, 25, 120], abs=0.01)
    assert set(records[0]) == set(OUTPUT_COLUMNS)
    assert {r["source"] for r in records} == {"poll"}  # this history has no trip journal
    run("trips", "--db", str(history), "--format", "csv", "--out", str(tmp_path / "t.csv"))
    run("trips", "--db", str(history), "--format", "parquet", "--out", str(tmp_path / "t.pq"))
    csv = pd.read_csv(tmp_path / "t.csv")
    pq = pd.read_parquet(tmp_path / "t.pq")
    assert list(csv.columns) == list(pq.columns) == list(OUTPUT_COLUMNS)
    assert csv["distance_km"].tolist() == pytest.approx(pq["distance_km"].tolist())


def test_parquet_needs_a_file(history: Path) -> None:
    res = CliRunner().invoke(cli, ["trips", "--db", str(history), "--format", "parquet"])
    assert res.exit_code != 0
    assert "--out" in res.output


def test_charges_summary_efficiency_drain_battery(history: Path) -> None:
    charges = json.loads(run("charges", "--db", str(history), "--format", "json"))
    assert [c["kind"] for c in charges] == ["ac", "dc"]
    assert set(charges[0]) == set(CHARGE_COLUMNS)
    days = json.loads(run("summary", "--db", str(history), "--period", "day", "--format", "json"))
    assert [d["period"] for d in days] == ["2026-02-01", "2026-02-02"]
    assert sum(d["drives"] for d in days) == 3
    assert sum(d["charges"] for d in days) == 2
    speed = json.loads(run("efficiency", "--db", str(history), "--by", "speed", "--format", "json"))
    assert {r["dimension"] for r in speed} == {"speed"}
    assert sum(r["trips"] for r in speed) == 3
    drain = json.loads(run("drain", "--db", str(history), "--format", "json"))
    assert len(drain) >= 1 and all(d["duration_h"] >= 6 for d in drain)
    longer = json.loads(run("drain", "--db", str(history), "--min-hours", "20", "--format", "json"))
    assert len(longer) < len(drain)
    battery = pd.read_csv(io.StringIO(run("battery", "--db", str(history), "--format", "csv")))
    assert battery["sessions"].sum() == 2
    assert battery["nominal_kwh"].iloc[0] == 62.0


def test_since_and_until_select_by_local_time(history: Path) -> None:
    got = json.loads(
        run("trips", "--db", str(history), "--since", "2026-02-01T12:00", "--format", "json")
    )
    assert len(got) == 2
    got = json.loads(
        run("trips", "--db", str(history), "--until", "2026-02-01T12:00", "--format", "json")
    )
    assert len(got) == 1


def test_parse_when_accepts_dates_and_ages() -> None:
    now = 1_800_000_000.0
    assert parse_when("30d", "UTC", now) == now - 30 * 86400
    assert parse_when("12h", "UTC", now) == now - 12 * 3600
    assert (
        parse_when("2026-03-29T03:30", "Europe/Berlin")
        == pd.Timestamp("2026-03-29T01:30", tz="UTC").timestamp()
    )
    assert parse_when(None, "UTC") is None


def test_report_is_one_self_contained_html_with_plots(history: Path, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    path = Path(run("report", "--db", str(history), "--out", str(out)).strip())
    html = path.read_text(encoding="utf-8")
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == 6  # SoC, DC curve, consumption, monthly, drain, capacity
    assert all(base64.b64decode(i).startswith(PNG_MAGIC) for i in images)
    assert not re.search(r"(src|href)=\"https?://", html)  # nothing fetched from anywhere
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 6 and all(p.read_bytes().startswith(PNG_MAGIC) for p in pngs)
    assert "HESXR1C4CLITEST01" in html and "Charging sessions" in html


def test_db_derive_writes_the_session_tables(history: Path) -> None:
    first = run("db", "derive", "--db", str(history))
    assert "rebuilt" in first
    second = run("db", "derive", "--db", str(history))
    assert "updated" in second
    with sqlite3.connect(history) as conn:
        assert conn.execute("SELECT count(*) FROM trips").fetchone()[0] == 3
        assert conn.execute("SELECT count(*) FROM charging_sessions").fetchone()[0] == 2


def test_capacity_and_timezone_come_from_the_config(history: Path, tmp_path: Path) -> None:
    base = json.loads(run("trips", "--db", str(history), "--format", "json"))
    cfg = tmp_path / "small.toml"
    cfg.write_text('[analysis]\ntimezone = "Asia/Tokyo"\n[analysis.capacity_kwh]\n"#1" = 31.0\n')
    half = json.loads(run("trips", "--config", str(cfg), "--db", str(history), "--format", "json"))
    assert [t["energy_kwh"] for t in half] == pytest.approx([t["energy_kwh"] / 2 for t in base])
    assert half[0]["start_local"].endswith("+09:00")


def test_configuration_errors_name_the_key(history: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[analysis]\ntimezone = "Mars/Olympus"\n')
    res = CliRunner().invoke(cli, ["trips", "--config", str(cfg), "--db", str(history)])
    assert res.exit_code == 1
    assert "analysis.timezone" in res.output and "Mars/Olympus" in res.output
    cfg.write_text("[analysis]\nidle_hour = 6\n")
    res = CliRunner().invoke(cli, ["drain", "--config", str(cfg), "--db", str(history)])
    assert res.exit_code == 1 and "analysis.idle_hour" in res.output


def test_missing_history_and_unknown_vehicle(history: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["trips", "--db", str(tmp_path / "none.db")])
    assert res.exit_code == 1 and "does not exist" in res.output
    res = CliRunner().invoke(cli, ["charges", "--db", str(history), "--vin", "NOPE"])
    assert res.exit_code == 1 and "NOPE" in res.output


def test_progress_bar_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Terminal()
    monkeypatch.setattr(sys, "stderr", tty)
    assert list(progress(["a", "b", "c"], "deriving")) == ["a", "b", "c"]
    assert "deriving" in tty.getvalue()
    piped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", piped)
    assert list(progress(["a", "b", "c"], "deriving")) == ["a", "b", "c"]
    assert piped.getvalue() == ""


def test_environment_overrides_reach_the_analysis(
    history: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.toml").unlink()
    monkeypatch.setenv("CARMETRICS_EXPORTER__DB", str(history))
    monkeypatch.setenv("CARMETRICS_ANALYSIS__TIMEZONE", "Asia/Tokyo")
    got = json.loads(run("trips", "--format", "json"))
    assert len(got) == 3 and got[0]["start_local"].endswith("+09:00")
