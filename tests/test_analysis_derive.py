"""Reading the exporter's SQLite history and materialising trips/charging_sessions tables.

Histories are written through the exporter's own ``History`` (``write_history``), so these tests read
exactly what the pipeline stores. The incremental derive must always equal a derive from scratch.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import analysis
from analysis import Settings
from analysis.charges import CHARGE_COLUMNS
from analysis.derive import EXTRA
from analysis.testing import Car, write_history
from analysis.trips import TRIP_COLUMNS
from exporter.history import prune

S = Settings(timezone="Europe/Berlin")
ROOT = Path(__file__).resolve().parent.parent


def week(vin: str = "HESXR1C4TESTVIN01", seed: int = 0) -> Car:
    rng = np.random.default_rng(seed)
    car = Car(vin=vin, now=pd.Timestamp("2026-04-06T04:00", tz="UTC").timestamp(), soc=0.6)
    car.sample()
    for day in range(7):
        car.park(3 * 3600 + rng.uniform(0, 1800)).drive(rng.uniform(8, 30), 25)
        car.park(8 * 3600).drive(rng.uniform(8, 30), 30)
        if day % 2:
            car.park(1800).plug().charge(0.55, 7.4).park(2 * 3600).charge(0.8, 7.4).unplug()
        car.park(86400 - (car.now - 1775448000.0) % 86400)
    return car


def table(db: Path, name: str) -> pd.DataFrame:
    with sqlite3.connect(db) as conn:
        return pd.read_sql_query(f"SELECT * FROM {name} ORDER BY vin, start_ts", conn)


def test_load_reads_what_the_exporter_wrote(tmp_path: Path) -> None:
    a, b = week("A" * 17), week("B" * 17, seed=1)
    db = tmp_path / "h.db"
    write_history(db, [a.frame(), b.frame()])
    df = analysis.load(db)
    assert set(df["vin"]) == {"A" * 17, "B" * 17}
    # one row per car report: reports sharing a car time are one report (as the hub decides)
    assert len(df) == sum(len({r["ts"] for r in c.rows}) for c in (a, b))
    assert (df["model"] == "#1").all()
    one = analysis.load(db, vin="A" * 17, since="2026-04-08", until="2026-04-09T12:00", tz="UTC")
    assert set(one["vin"]) == {"A" * 17}
    lo, hi = pd.Timestamp("2026-04-08", tz="UTC"), pd.Timestamp("2026-04-09T12:00", tz="UTC")
    assert one["ts"].min() >= lo.timestamp() and one["ts"].max() <= hi.timestamp()
    # the same trips as from the scripted rows themselves
    assert len(analysis.trips(analysis.load(db, vin="A" * 17), S)) == len(a.trips)


def test_load_fails_clearly_for_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        analysis.load(tmp_path / "nope.db")
    assert not (tmp_path / "nope.db").exists()


def test_incremental_derive_equals_a_derive_from_scratch(tmp_path: Path) -> None:
    cars = [week("A" * 17), week("B" * 17, seed=2)]
    one, inc = tmp_path / "one.db", tmp_path / "inc.db"
    write_history(one, [c.frame() for c in cars])
    analysis.derive(one, S)
    frames = [c.frame() for c in cars]
    cuts = np.linspace(0, 1, 12)
    for lo, hi in itertools.pairwise(cuts):
        write_history(inc, [f.iloc[int(lo * len(f)) : int(hi * len(f))] for f in frames])
        analysis.derive(inc, S)
    for name in ("trips", "charging_sessions"):
        want, got = table(one, name), table(inc, name)
        assert len(want) > 0
        pd.testing.assert_frame_equal(got, want)
    assert len(table(one, "trips")) == sum(len(c.trips) for c in cars)


def test_derive_is_idempotent_and_reads_little_the_second_time(tmp_path: Path) -> None:
    car = week()
    db = tmp_path / "h.db"
    write_history(db, [car.frame()])
    first = analysis.derive(db, S)
    before = {n: table(db, n) for n in ("trips", "charging_sessions")}
    again = analysis.derive(db, S)
    for name, frame in before.items():
        pd.testing.assert_frame_equal(table(db, name), frame)
    assert first[0].rebuilt and not again[0].rebuilt
    assert again[0].samples_read < first[0].samples_read / 3


def test_late_samples_are_folded_in(tmp_path: Path) -> None:
    car = week()
    df = car.frame()
    held_back = df.iloc[400:460]  # e.g. webhook events delivered hours late
    inc, one = tmp_path / "inc.db", tmp_path / "one.db"
    write_history(inc, [df.drop(held_back.index)])
    analysis.derive(inc, S)
    write_history(inc, [held_back])
    analysis.derive(inc, S)
    write_history(one, [df])
    analysis.derive(one, S)
    for name in ("trips", "charging_sessions"):
        pd.testing.assert_frame_equal(table(inc, name), table(one, name))


def test_derived_rows_outlive_pruned_samples(tmp_path: Path) -> None:
    car = week()
    df = car.frame()
    db = tmp_path / "h.db"
    half = len(df) // 2
    write_history(db, [df.iloc[:half]])
    analysis.derive(db, S)
    old = table(db, "trips")
    prune(db, 0, now=float(df["ts"].iloc[half - 1]) + 1)  # retention removed every sample so far
    write_history(db, [df.iloc[half:]])
    analysis.derive(db, S)
    kept = table(db, "trips")
    assert len(kept) >= len(old)
    pd.testing.assert_frame_equal(kept.iloc[: len(old) - 1], old.iloc[: len(old) - 1])


def test_changed_settings_rebuild_the_vehicle(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    write_history(db, [week().frame()])
    analysis.derive(db, S)
    e62 = table(db, "trips")["energy_kwh"].sum()
    bigger = Settings(timezone="Europe/Berlin", capacity_kwh={"#1": 124.0})
    (res,) = analysis.derive(db, bigger)
    assert res.rebuilt
    assert table(db, "trips")["energy_kwh"].sum() == pytest.approx(2 * e62)


def test_table_schemas_match_the_documentation(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    write_history(db, [week().frame()])
    analysis.derive(db, S)
    doc = (ROOT / "docs" / "ANALYSIS.md").read_text(encoding="utf-8")
    with sqlite3.connect(db) as conn:
        for name, cols in (("trips", TRIP_COLUMNS), ("charging_sessions", CHARGE_COLUMNS)):
            have = [r[1] for r in conn.execute(f"PRAGMA table_info({name})")]
            assert have == [*cols, *EXTRA]
            section = doc.split(f"### `{name}`", 1)[1].split("###", 1)[0]
            documented = re.findall(r"^\| `(\w+)` \|", section, flags=re.M)
            assert documented == have, name


def test_an_older_derived_table_gains_a_new_column_filled_for_every_row(tmp_path: Path) -> None:
    """A results column added to the analysis reaches existing files without a hand-written
    migration (sqlite-utils ``transform``) and is filled by rebuilding; a table already in shape is
    left alone."""
    db = tmp_path / "h.db"
    write_history(db, [week().frame()])
    analysis.derive(db, S)
    count = "SELECT count(*), count(consumption_kwh_100km), sum(distance_km) FROM trips"
    with sqlite3.connect(db) as conn:
        before = conn.execute(count).fetchone()
        conn.execute("ALTER TABLE trips DROP COLUMN consumption_kwh_100km")  # a file from before it
        assert before[1] > 0
    (result,) = analysis.derive(db, S)  # nothing new, but the reshaped table is rebuilt
    assert result.rebuilt
    with sqlite3.connect(db) as conn:
        assert [r[1] for r in conn.execute("PRAGMA table_info(trips)")] == [*TRIP_COLUMNS, *EXTRA]
        assert conn.execute(count).fetchone() == before
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'trips'").fetchone()[0]
        assert sql.rstrip().endswith("STRICT")
        statements: list[str] = []
        conn.set_trace_callback(statements.append)
        from analysis.derive import ensure_schema

        ensure_schema(conn)
    changes = r"\s*(CREATE TABLE|ALTER|DROP|INSERT|DELETE)"
    assert not [s for s in statements if re.match(changes, s, re.I)]


def test_rows_older_than_the_kept_samples_survive_a_reshape(tmp_path: Path) -> None:
    """Rows whose samples retention removed cannot be rebuilt: a reshape keeps them."""
    db = tmp_path / "h.db"
    write_history(db, [week().frame()])
    analysis.derive(db, S)
    with sqlite3.connect(db) as conn:
        (first_end,) = conn.execute("SELECT min(end_ts) FROM trips").fetchone()
    prune(db, older_than=0, now=first_end + 1)  # the first trip's samples are gone
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE trips DROP COLUMN outside_temp_c")
    analysis.derive(db, S)
    with sqlite3.connect(db) as conn:
        kept = conn.execute("SELECT count(*) FROM trips WHERE end_ts = ?", (first_end,)).fetchone()
        assert kept == (1,)
        assert "outside_temp_c" in [r[1] for r in conn.execute("PRAGMA table_info(trips)")]
