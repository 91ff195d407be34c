"""``carmetrics db info``: every table with its rows and bytes, read-only, on a real history file."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from click.testing import CliRunner

import analysis
from analysis.testing import Car, write_history
from exporter.cli import cli
from exporter.history_info import tables


def _history(tmp_path: Path) -> Path:
    car = Car(vin="HESXR1C4INFO00001", now=1_775_448_000.0, soc=0.6)
    car.sample()
    car.park(3600).drive(12.0, 30).park(1800).plug().charge(0.8, 7.4).unplug().park(3600)
    db = tmp_path / "h.db"
    write_history(db, [car.frame()])
    analysis.derive(db, analysis.Settings(timezone="UTC"))
    return db


def test_every_table_with_its_rows_and_bytes(tmp_path: Path) -> None:
    db = _history(tmp_path)
    before = db.read_bytes()
    result = CliRunner().invoke(cli, ["db", "info", "--db", str(db)])
    assert result.exit_code == 0, result.output
    listed = dict(re.findall(r"^  table (\w+): ([\d,]+) rows", result.output, flags=re.M))
    with sqlite3.connect(db) as conn:
        names = {
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
        assert set(listed) == names and {"sample_data", "trips", "charging_sessions"} <= names
        for name, rows in listed.items():
            assert (
                int(rows.replace(",", ""))
                == conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
            )
        assert int(listed["trips"].replace(",", "")) >= 1
    assert db.read_bytes() == before  # read-only


def test_sizes_add_up_to_at_most_the_file(tmp_path: Path) -> None:
    db = _history(tmp_path)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        info = tables(conn)
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    finally:
        conn.close()
    sizes = [t.bytes for t in info]
    if any(s is None for s in sizes):  # an SQLite without dbstat: sizes are left out, not guessed
        assert all(s is None for s in sizes)
        return
    assert all(s is not None and s > 0 and s % page == 0 for s in sizes)
    assert sum(s for s in sizes if s is not None) <= page * pages
