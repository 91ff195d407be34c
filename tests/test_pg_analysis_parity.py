"""The same simulated history in SQLite and in PostgreSQL gives identical analysis: the loaded
frame, the car's own trip journal, every listing command's JSON (trips from the journal and from
polling), ``db derive``'s tables (also incrementally, with a late report in between) and the HTML
report's tables."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from click.testing import CliRunner

import analysis
from analysis.journal import load_journal
from analysis.testing import Car, commuter, write_history
from bench.postgres import PASSWORD, Cluster
from exporter.backend import backend
from exporter.cli import cli
from exporter.dbtarget import PgTarget
from exporter.journal import JournalTrip
from exporter.settings import Secret
from exporter.snapshot import Snapshot

COMMANDS = ("trips", "charges", "drain", "efficiency", "battery", "summary", "places", "costs")


@pytest.fixture(scope="module")
def histories(
    tmp_path_factory: pytest.TempPathFactory, postgres_cluster: Cluster
) -> tuple[Path, PgTarget]:
    """Written once for the module (the derive test adds the same late report to both)."""
    postgres_cluster.reset()
    tmp_path = tmp_path_factory.mktemp("parity")
    (tmp_path / "config.toml").write_text('[analysis]\ntimezone = "Europe/Berlin"\n')
    cars = [
        commuter(days=21, every=300, seed=1, vin="HESXR1C4PARITY001"),
        commuter(days=14, every=600, seed=2, vin="HESXR1C4PARITY002"),
    ]
    frames = [c.frame() for c in cars]
    db = tmp_path / "h.db"
    pg = PgTarget(postgres_cluster.dsn_without_password, Secret(PASSWORD))
    write_history(db, frames)
    write_history(pg, frames)
    journal = _journal(cars[0])
    for target in (db, pg):
        h = backend(target).writer()
        h.open()
        h.add_journal(journal)
        h.write_now([])
        h.close()
    return db, pg


def _journal(car: Car) -> list[tuple[object, ...]]:
    """Every other trip of the first car as its journal holds it (exact times, distance and
    energy, some with a route and an address), so its trip list mixes both sources."""
    rows = []
    for i, t in enumerate(car.trips[::2]):
        trip = JournalTrip(
            vin=car.vin,
            provider="smart",
            trip_id=f"trip-{i}",
            start_ts=t.start,
            end_ts=t.end,
            distance_m=t.distance_m,
            energy_kwh=t.energy_kwh,
            avg_speed_mps=t.distance_m / (t.end - t.start) if i % 3 else None,
            start_address="Home" if i % 4 == 0 else None,
            route=[(52.52, 13.40), (52.53 + i / 1000, 13.41)] if i % 2 else None,
        )
        rows.append(trip.row(t.end + 600.0))
    return rows


@pytest.fixture
def both(
    histories: tuple[Path, PgTarget], monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, PgTarget]:
    monkeypatch.chdir(histories[0].parent)
    for name in [n for n in os.environ if n.startswith("CARMETRICS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CARMETRICS_DB_PASSWORD", PASSWORD)
    return histories


def run(*args: str) -> str:
    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def test_the_loaded_frames_are_identical(both: tuple[Path, PgTarget]) -> None:
    db, pg = both
    lite, post = analysis.load(db), analysis.load(pg)
    assert len(lite) > 5_000
    pd.testing.assert_frame_equal(lite, post)
    pd.testing.assert_frame_equal(analysis.load(db, raw=True), analysis.load(pg, raw=True))
    assert analysis.vins(db) == analysis.vins(pg)
    pd.testing.assert_frame_equal(
        analysis.vehicles(db).drop(columns=["first_seen", "last_seen"]),
        analysis.vehicles(pg).drop(columns=["first_seen", "last_seen"]),
        check_dtype=False,
    )


def test_the_journals_are_identical(both: tuple[Path, PgTarget]) -> None:
    db, pg = both
    lite, post = load_journal(db), load_journal(pg)
    assert len(lite) > 5 and lite["route"].notna().any() and lite["route"].isna().any()
    pd.testing.assert_frame_equal(lite, post)
    vin, since = "HESXR1C4PARITY001", float(lite["start_ts"].iloc[3])
    pd.testing.assert_frame_equal(
        load_journal(db, vin=vin, since=since), load_journal(pg, vin=vin, since=since)
    )


def test_every_listing_command_says_the_same(both: tuple[Path, PgTarget]) -> None:
    db, pg = both
    for command in COMMANDS:
        lite = run(command, "--db", str(db), "--format", "json")
        post = run(command, "--db", pg.url, "--format", "json")
        assert json.loads(lite) == json.loads(post), command
        assert lite == post, command
    rows = json.loads(run("trips", "--db", pg.url, "--format", "json"))
    assert len(rows) > 10  # a history with something in it
    sources = {(r["vin"], r["source"]) for r in rows}
    assert ("HESXR1C4PARITY001", "journal") in sources  # the car's own trips, from PostgreSQL
    assert ("HESXR1C4PARITY001", "poll") in sources  # and polling's between them
    assert ("HESXR1C4PARITY002", "journal") not in sources


def _derived(db: Path, pg: PgTarget) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    out = []
    with sqlite3.connect(db) as lc, psycopg.connect(pg.conninfo()) as pc:
        for table in ("trips", "charging_sessions"):
            sql = f"SELECT * FROM {table} ORDER BY vin, start_ts"
            lite = pd.read_sql_query(sql, lc)
            cur = pc.execute(sql)
            post = pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])
            out.append((lite, post.astype(lite.dtypes.to_dict())))
    return out


def test_derive_gives_identical_tables_also_incrementally(both: tuple[Path, PgTarget]) -> None:
    db, pg = both
    assert "HESXR1C4PARITY002: rebuilt" in run("db", "derive", "--db", pg.url)
    run("db", "derive", "--db", str(db))
    for lite, post in _derived(db, pg):
        assert len(lite) > 0
        pd.testing.assert_frame_equal(lite, post)
    # a late report inside an already derived trip: both backends re-derive from there
    trips = _derived(db, pg)[0][0]
    t = float(trips["start_ts"].iloc[3]) + 30.0
    late = Snapshot.build("HESXR1C4PARITY001", "smart", t, t, {"battery_soc": 0.5})
    for target in (db, pg):
        from exporter.backend import backend

        h = backend(target).writer()
        h.open()
        assert h.write_now([late]) == 1
        h.close()
    first_lite = analysis.derive(db, analysis.Settings(timezone="Europe/Berlin"))
    first_pg = analysis.derive(pg, analysis.Settings(timezone="Europe/Berlin"))
    assert [(r.vin, r.samples_read, r.trips_written) for r in first_lite] == [
        (r.vin, r.samples_read, r.trips_written) for r in first_pg
    ]
    assert any(r.samples_read > 0 for r in first_pg)
    for lite, post in _derived(db, pg):
        pd.testing.assert_frame_equal(lite, post)


def test_report_tables_are_identical(both: tuple[Path, PgTarget], tmp_path: Path) -> None:
    db, pg = both
    a = Path(run("report", "--db", str(db), "--out", str(tmp_path / "a")).strip())
    b = Path(run("report", "--db", pg.url, "--out", str(tmp_path / "b")).strip())

    def tables(html: str) -> list[str]:
        return [part.split("</table>")[0] for part in html.split("<table")[1:]]

    ta, tb = tables(a.read_text()), tables(b.read_text())
    assert len(ta) >= 3 and ta == tb
