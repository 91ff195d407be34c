"""The compact history layout (schema v2): same information as version 1 in a fraction of the bytes.

Every value must come back within the resolution the signal table declares, the ``samples`` view must
look exactly like version 1's table (so every reader keeps working), and tools writing SI rows into
``samples`` must keep working through its triggers. Expected values come from the signal table, the
version-1 schema function or the snapshots themselves, never from the implementation's output.
"""

from __future__ import annotations

import logging
import math
import random
import sqlite3
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd
import pytest

import analysis
from analysis.load import ANALYSIS_SIGNALS, read_samples
from exporter import history
from exporter import history_layout as layout
from exporter.history import (
    ALL_COLUMNS,
    History,
    _v1,
    connect,
    migrate,
    prune,
    stored_row,
)
from exporter.signals import BY_NAME, SIGNALS, Kind, Signal
from exporter.snapshot import Snapshot

T0 = 1_767_225_600.0
V1, V2 = "HESXR1C4TESTVIN01", "HESXR1C4TESTVIN02"
LATEST = 3  # 3: journal_trips

# A plausible range per unit: every signal gets values across it (and its sign, where it has one).
RANGES = {
    "ratio": (0.0, 1.0),
    "m": (0.0, 2_000_000.0),
    "m/s": (0.0, 60.0),
    "deg": (-180.0, 180.0),
    "C": (-40.0, 90.0),
    "W": (0.0, 350_000.0),
    "V": (0.0, 900.0),
    "A": (0.0, 500.0),
    "Pa": (150_000.0, 350_000.0),
    "s": (-1e7, 1e7),
}


def random_values(rng: random.Random) -> dict[str, Any]:
    vals: dict[str, Any] = {}
    for sig in SIGNALS:
        if rng.random() < 0.1:
            continue  # some unknowns in every report
        if sig.kind is Kind.NUMBER:
            lo, hi = RANGES[sig.unit]
            vals[sig.name] = rng.uniform(lo, hi)
        elif sig.kind is Kind.BOOL:
            vals[sig.name] = rng.random() < 0.5
        elif sig.kind is Kind.ENUM:
            vals[sig.name] = rng.choice(sig.states)
    return vals


def snapshots(n: int, seed: int = 1, vin: str = V1, step: float = 60.0) -> list[Snapshot]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = T0 + step * i + rng.uniform(0, 1)  # sub-second car times, as smart's milliseconds
        out.append(Snapshot.build(vin, "smart", t, t + rng.uniform(0, 600), random_values(rng)))
    return out


def write(path: Path, snaps: list[Snapshot]) -> History:
    h = History(path)
    h.open()
    h.write_now(snaps)
    return h


def view_rows(path: Path, where: str = "") -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as c:
        return c.execute(f"SELECT * FROM samples {where} ORDER BY vin, ts").fetchall()


def v1_columns() -> list[str]:
    c = sqlite3.connect(":memory:")
    _v1(c)
    return [r[1] for r in c.execute("PRAGMA table_info(samples)")]


def assert_within_resolution(got: tuple[Any, ...], snap: Snapshot) -> None:
    row = dict(zip(ALL_COLUMNS, got, strict=True))
    assert row["vin"] == snap.vin and row["provider"] == snap.provider
    assert row["source"] == snap.source
    assert abs(row["ts"] - snap.car_time) <= 0.0005 + 1e-9
    assert abs(row["received_at"] - snap.received_at) <= 0.001 + 1e-9
    for sig in SIGNALS:
        want, have = snap.values.get(sig.name), row[sig.name]
        if want is None:
            assert have is None, sig.name
        elif sig.kind is Kind.NUMBER:
            assert isinstance(have, float), sig.name
            assert abs(have - float(want)) <= sig.step / 2 * (1 + 1e-9) + 1e-9, sig.name
        elif sig.kind is Kind.TIMESTAMP:
            assert abs(have - float(want)) <= 0.001, sig.name
        elif sig.kind is Kind.BOOL:
            assert have == int(bool(want)), sig.name
        else:
            assert have == want, sig.name


# --- round trip -------------------------------------------------------------------------------------


def test_every_signal_kind_round_trips_within_its_declared_resolution(tmp_path: Path) -> None:
    snaps = snapshots(300)
    write(tmp_path / "h.db", snaps).close()
    rows = view_rows(tmp_path / "h.db")
    assert len(rows) == len(snaps)
    for got, snap in zip(rows, snaps, strict=True):
        assert_within_resolution(got, snap)
        assert got == stored_row(snap)  # the Python decoder (kill -9 drill) agrees with the view


def test_values_on_the_resolution_grid_come_back_exactly(tmp_path: Path) -> None:
    """A cloud's own decimals (on or coarser than the grid) survive as the very same float."""
    rng = random.Random(5)
    snaps = []
    for i in range(100):
        vals: dict[str, Any] = {}
        for sig in SIGNALS:
            if sig.kind is Kind.NUMBER:
                lo, hi = RANGES[sig.unit]
                k = round(rng.uniform(lo, hi) / sig.step)
                # the decimal string a cloud would send, parsed the way a parser does
                digits = max(0, -math.floor(math.log10(sig.step)))
                vals[sig.name] = float(f"{k * sig.step:.{digits}f}")
        t = T0 + 60 * i + rng.randrange(1000) / 1000  # whole milliseconds
        snaps.append(Snapshot.build(V1, "smart", t, t + 2.5, vals))
    write(tmp_path / "h.db", snaps).close()
    for got, snap in zip(view_rows(tmp_path / "h.db"), snaps, strict=True):
        row = dict(zip(ALL_COLUMNS, got, strict=True))
        assert row["ts"] == snap.car_time and row["received_at"] == snap.received_at
        for name, want in snap.values.items():
            assert row[name] == want, name


def test_nulls_stay_null_and_unknown_strings_are_kept(tmp_path: Path) -> None:
    bare = Snapshot.build(V1, "smart", T0, T0, {})
    odd = Snapshot(V1, "smart", T0 + 60, T0 + 60, MappingProxyType({"charging_state": "warp"}))
    odd = replace(odd, source="replay")  # a state/source this version does not know
    write(tmp_path / "h.db", [bare, odd]).close()
    first, second = (dict(zip(ALL_COLUMNS, r, strict=True)) for r in view_rows(tmp_path / "h.db"))
    assert first["last_update"] == T0 and first["source"] == "poll"
    assert all(first[s.name] is None for s in SIGNALS if s.name != "last_update")
    assert second["charging_state"] == "warp" and second["source"] == "replay"


def test_unstorable_numbers_become_null_and_say_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    vals = {"battery_soc": math.nan, "odometer": 1e30, "speed": math.inf, "heading": 90.0}
    snap = Snapshot(V1, "smart", T0, T0, MappingProxyType(vals))
    huge = Snapshot(V1, "smart", T0 + 1, T0 + 1, MappingProxyType({"odometer": 1e15}))
    with caplog.at_level(logging.WARNING):
        write(tmp_path / "h.db", [snap, huge]).close()
    row, big = (dict(zip(ALL_COLUMNS, r, strict=True)) for r in view_rows(tmp_path / "h.db"))
    assert row["battery_soc"] is None and row["odometer"] is None and row["speed"] is None
    assert row["heading"] == 90.0  # the rest of the report is kept
    assert big["odometer"] == 1e15  # large but storable at 1 m: exact
    assert "not storable" in caplog.text
    # the view's insert trigger decides the same way
    with sqlite3.connect(tmp_path / "h.db") as c:
        c.execute(
            "INSERT INTO samples (vin, ts, received_at, provider, odometer, speed) "
            "VALUES (?, ?, ?, 'smart', 1e30, 9e999)",
            (V2, T0, T0),
        )
        assert c.execute("SELECT odometer, speed FROM samples WHERE vin = ?", (V2,)).fetchone() == (
            None,
            None,
        )
    for h in (History(tmp_path / "x.db"), History(tmp_path / "y.db")):
        if h.path.name == "y.db":
            h.open()  # refused on add either way, so the loop's listener learns it at once
        with pytest.raises(ValueError, match="storable time"):
            h.add(replace(snap, car_time=math.inf))
        h.close()


# --- the view ---------------------------------------------------------------------------------------


def test_view_has_version_1_columns_in_order_with_the_same_value_types(tmp_path: Path) -> None:
    h = write(tmp_path / "h.db", snapshots(5))
    h.close()
    with sqlite3.connect(tmp_path / "h.db") as c:
        assert [r[1] for r in c.execute("PRAGMA table_info(samples)")] == v1_columns()
        assert c.execute("SELECT type FROM sqlite_master WHERE name = 'samples'").fetchone() == (
            "view",
        )
        row = c.execute("SELECT * FROM samples LIMIT 1").fetchone()
    # the same row stored in a version-1 table: same SQLite value types column by column
    v1 = sqlite3.connect(":memory:")
    _v1(v1)
    v1.execute(f"INSERT INTO samples VALUES ({', '.join('?' for _ in row)})", row)
    typeof = ", ".join(f'typeof("{c}")' for c in ALL_COLUMNS)
    want = v1.execute(f"SELECT {typeof} FROM samples").fetchone()
    with sqlite3.connect(tmp_path / "h.db") as c:
        assert c.execute(f"SELECT {typeof} FROM samples LIMIT 1").fetchone() == want


def test_tools_insert_update_and_delete_through_the_view(tmp_path: Path) -> None:
    snaps = snapshots(20)
    write(tmp_path / "w.db", snaps).close()
    h = History(tmp_path / "v.db")
    h.open()
    h.close()
    rows = view_rows(tmp_path / "w.db")
    marks = ", ".join("?" for _ in ALL_COLUMNS)
    with sqlite3.connect(tmp_path / "v.db") as c:
        c.executemany(f"INSERT INTO samples VALUES ({marks})", rows)
    # the trigger stores exactly what the writer stores for the same reports
    with sqlite3.connect(tmp_path / "w.db") as w, sqlite3.connect(tmp_path / "v.db") as v:
        q = "SELECT * FROM sample_data ORDER BY vehicle, ts_ms"
        assert v.execute(q).fetchall() == w.execute(q).fetchall()
    with sqlite3.connect(tmp_path / "v.db") as c:
        with pytest.raises(sqlite3.IntegrityError):  # a duplicate report, as in version 1
            c.execute(f"INSERT INTO samples VALUES ({marks})", rows[0])
        c.execute(f"INSERT OR IGNORE INTO samples VALUES ({marks})", rows[0])
        changed = list(rows[0])
        changed[ALL_COLUMNS.index("battery_soc")] = 0.25
        c.execute(f"INSERT OR REPLACE INTO samples VALUES ({marks})", changed)
        assert c.execute("SELECT count(*), max(id) FROM vins").fetchone() == (1, 1)  # same id
        assert c.execute("SELECT count(*) FROM samples").fetchone() == (len(rows),)
        key = (rows[1][0], rows[1][1])
        c.execute("UPDATE samples SET locked = 0, speed = 12.5 WHERE vin = ? AND ts = ?", key)
        got = c.execute("SELECT locked, speed FROM samples WHERE vin = ? AND ts = ?", key)
        assert got.fetchone() == (0, 12.5)
        with pytest.raises(sqlite3.IntegrityError, match="identify a report"):
            c.execute("UPDATE samples SET ts = ts + 1 WHERE vin = ? AND ts = ?", key)
        c.execute("DELETE FROM samples WHERE vin = ? AND ts = ?", key)
        assert c.execute("SELECT count(*) FROM sample_data").fetchone() == (len(rows) - 1,)
        first = c.execute("SELECT battery_soc FROM samples ORDER BY vin, ts LIMIT 1").fetchone()
    assert first == (0.25,)


def test_a_minimal_insert_like_the_fixtures_use(tmp_path: Path) -> None:
    h = History(tmp_path / "h.db")
    h.open()
    h.close()
    with sqlite3.connect(tmp_path / "h.db") as c:
        c.execute(
            "INSERT INTO samples (vin, ts, received_at, provider, battery_soc, charging_state) "
            "VALUES ('V', 1.5, 2, 'smartcar', 0.4, 'charging')"
        )
        got = c.execute(
            "SELECT vin, ts, received_at, provider, source, battery_soc, charging_state, locked "
            "FROM samples"
        ).fetchall()
    assert got == [("V", 1.5, 2.0, "smartcar", "poll", 0.4, "charging", None)]


# --- schema changes -----------------------------------------------------------------------------


def older_signals(monkeypatch: pytest.MonkeyPatch, signals: tuple[Signal, ...]) -> None:
    monkeypatch.setattr(layout, "SIGNALS", signals)
    monkeypatch.setattr(history, "SIGNALS", signals)  # the version-1 table of that release
    monkeypatch.setattr(layout, "SIGNAL_COLUMNS", tuple(s.name for s in signals))


def test_a_new_signal_adds_a_column_and_a_view_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    added = ("aux_battery_voltage", "window_open_rear_left", "power_state")  # number, bool, enum
    with monkeypatch.context() as m:  # a file written by a release that lacked them
        older_signals(m, tuple(s for s in SIGNALS if s.name not in added))
        old = write(tmp_path / "h.db", snapshots(3))
        old.close()
        with sqlite3.connect(tmp_path / "h.db") as c:
            before = {r[1] for r in c.execute("PRAGMA table_info(sample_data)")}
            assert not set(added) & {r[1] for r in c.execute("PRAGMA table_info(samples)")}
    snaps = snapshots(3, seed=2, vin=V2)
    write(tmp_path / "h.db", snaps).close()
    with sqlite3.connect(tmp_path / "h.db") as c:
        after = {r[1] for r in c.execute("PRAGMA table_info(sample_data)")}
        assert [r[1] for r in c.execute("PRAGMA table_info(samples)")] == v1_columns()
        cols = ", ".join(f'"{a}"' for a in added)
        old_rows = c.execute(f"SELECT {cols} FROM samples WHERE vin = ?", (V1,)).fetchall()
    # the number and the enum got a column; the boolean a digit of the existing flags column
    assert after - before == {"aux_battery_voltage", "power_state"}
    assert old_rows == [(None, None, None)] * 3  # rows from before read "unknown"
    for got, snap in zip(view_rows(tmp_path / "h.db", f"WHERE vin = '{V2}'"), snaps, strict=True):
        assert_within_resolution(got, snap)


def test_a_changed_resolution_or_state_order_re_encodes_what_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snaps = snapshots(50)
    write(tmp_path / "h.db", snaps).close()
    coarser = {
        "battery_soc": replace(BY_NAME["battery_soc"], resolution=0.01),
        "charging_state": replace(
            BY_NAME["charging_state"], states=tuple(reversed(BY_NAME["charging_state"].states))
        ),
    }
    older_signals(monkeypatch, tuple(coarser.get(s.name, s) for s in SIGNALS))
    conn = connect(tmp_path / "h.db")
    migrate(conn)
    conn.close()
    rows = view_rows(tmp_path / "h.db")
    i_soc, i_state = ALL_COLUMNS.index("battery_soc"), ALL_COLUMNS.index("charging_state")
    for got, snap in zip(rows, snaps, strict=True):
        want = snap.values.get("battery_soc")
        if want is not None:
            assert abs(got[i_soc] - float(want)) <= 0.005 + 1e-4 / 2 + 1e-9
        assert got[i_state] == snap.values.get("charging_state")


def test_migration_from_version_1_keeps_every_row(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    snaps = snapshots(200, vin=V1) + snapshots(150, seed=3, vin=V2)
    conn = sqlite3.connect(path)
    with conn:
        _v1(conn)
        # a column a later release dropped from the signal table: kept, shown last
        conn.execute("ALTER TABLE samples ADD COLUMN retired_signal REAL")
        conn.execute("PRAGMA user_version=1")
        cols = ", ".join(f'"{c}"' for c in ALL_COLUMNS)
        marks = ", ".join("?" for _ in ALL_COLUMNS)
        for s in snaps:  # what the version-1 writer stored: SI values, REALs, TEXT enums
            row = [s.vin, s.car_time, s.received_at, s.provider, s.source]
            for sig in SIGNALS:
                v = s.values.get(sig.name)
                row.append(int(v) if sig.kind is Kind.BOOL and v is not None else v)
            conn.execute(f"INSERT INTO samples ({cols}) VALUES ({marks})", row)
        conn.execute(
            "UPDATE samples SET charging_state = 'warp', retired_signal = 7.5 WHERE rowid = 1"
        )
        conn.execute("INSERT INTO vehicles VALUES (?, 'smart', '', '#1', '', '', '', 0, 0)", (V1,))
    conn.close()
    conn = connect(path)
    assert migrate(conn) == LATEST
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("PRAGMA freelist_count").fetchone() == (0,)  # the old pages went back
    assert conn.execute("SELECT type FROM sqlite_master WHERE name = 'samples'").fetchone() == (
        "view",
    )
    names = [r[1] for r in conn.execute("PRAGMA table_info(samples)")]
    assert names == [*v1_columns(), "retired_signal"]
    rows = conn.execute("SELECT * FROM samples ORDER BY vin, ts").fetchall()
    conn.close()
    assert len(rows) == len(snaps)
    by_key = {(s.vin, round(s.car_time * 1000)): s for s in snaps}
    odd = [r for r in rows if r[ALL_COLUMNS.index("charging_state")] == "warp"]
    assert len(odd) == 1 and odd[0][-1] == 7.5
    for r in rows:
        snap = by_key[r[0], round(r[1] * 1000)]
        if r is odd[0]:
            snap = replace(snap, values=MappingProxyType(snap.values | {"charging_state": "warp"}))
        assert_within_resolution(r[:-1], snap)
    # and the migrated file keeps working for the writer
    h = write(path, snapshots(3, seed=9, vin=V1, step=7.0))
    assert h.rows_written == 3
    h.close()


def test_prune_deletes_old_rows_of_every_vehicle(tmp_path: Path) -> None:
    a, b = snapshots(30, vin=V1), snapshots(30, seed=2, vin=V2)
    write(tmp_path / "h.db", a + b).close()
    cutoff = a[10].car_time
    n = prune(tmp_path / "h.db", older_than=100.0, now=cutoff + 100.0)
    kept = view_rows(tmp_path / "h.db")
    want = [s for s in a + b if s.car_time >= cutoff]
    assert n == 60 - len(want) > 0
    assert len(kept) == len(want)
    assert {v: sum(r[0] == v for r in kept) for v in (V1, V2)} == {
        v: sum(s.vin == v for s in want) for v in (V1, V2)
    }
    assert min(r[1] for r in kept) >= cutoff - 0.0005
    with sqlite3.connect(tmp_path / "h.db") as c:
        assert c.execute("SELECT count(*) FROM vins").fetchone() == (2,)


# --- the writer -------------------------------------------------------------------------------------


def test_late_rows_are_marked_for_derive_and_in_order_rows_are_not(tmp_path: Path) -> None:
    snaps = snapshots(10)
    h = write(tmp_path / "h.db", snaps[5:])
    assert h.query("SELECT changed_since, late_writes FROM vins") == [(None, 0)]
    h.write_now(snaps[:5])  # reports delivered late, older than what is stored
    mark = h.query("SELECT changed_since, late_writes FROM vins")
    h.close()
    assert mark == [(layout.ms(snaps[0].car_time), 1)]
    with sqlite3.connect(tmp_path / "h.db") as c:  # the insert trigger marks the same way
        c.execute("UPDATE vins SET changed_since = NULL")
        c.execute(
            "INSERT INTO samples (vin, ts, received_at, provider) VALUES (?, ?, ?, 'smart')",
            (V1, snaps[2].car_time + 1, T0),
        )
        got = c.execute("SELECT changed_since, late_writes FROM vins").fetchone()
    assert got == (layout.ms(snaps[2].car_time + 1), 2)


def test_a_failed_flush_does_not_leave_a_half_known_vehicle(tmp_path: Path) -> None:
    h = History(tmp_path / "h.db")
    h.open()
    lock = connect(tmp_path / "h.db")
    lock.execute("BEGIN EXCLUSIVE")
    h._executor.submit(lambda: h._conn.execute("PRAGMA busy_timeout=0")).result()  # type: ignore[union-attr]
    assert h.write_now(snapshots(3, vin=V2)) == 0 and h.write_errors == 1
    lock.rollback()
    lock.close()
    assert h.write_now([]) == 3
    assert h.query("SELECT vin FROM vins") == [(V2,)]
    h.close()


def test_reports_added_before_open_are_written(tmp_path: Path) -> None:
    h = History(tmp_path / "h.db")
    snaps = snapshots(4)
    for s in snaps[:2]:
        h.add(s)
    h.open()
    assert h.write_now(snaps[2:]) == 4
    h.close()


# --- readers ----------------------------------------------------------------------------------------


def test_load_reads_the_compact_table_as_the_view_reads(tmp_path: Path) -> None:
    snaps = snapshots(120, vin=V1) + snapshots(80, seed=4, vin=V2)
    write(tmp_path / "h.db", snaps).close()
    stored = view_rows(tmp_path / "h.db")
    lo, hi = stored[30][1], stored[90][1]  # bounds exactly on stored times: inclusive
    cols = list(ANALYSIS_SIGNALS)
    with sqlite3.connect(tmp_path / "h.db") as c:
        fast = read_samples(c, [V1, V2], since=lo, until=hi)
        want = pd.read_sql_query(
            f"SELECT vin, ts, {', '.join(cols)} FROM samples WHERE ts >= ? AND ts <= ? "
            "ORDER BY vin, ts",
            c,
            params=(lo, hi),
        )
    assert len(fast) == len(want) > 0
    assert fast["ts"].min() == lo and fast["ts"].max() == hi
    pd.testing.assert_frame_equal(
        fast[["vin", "ts", *cols]].astype(object).where(fast[["vin", "ts", *cols]].notna(), None),
        want.astype(object).where(want.notna(), None),
        check_dtype=False,
    )
    assert analysis.vins(tmp_path / "h.db") == [V1, V2]


def test_an_unupgraded_version_1_file_still_loads(tmp_path: Path) -> None:
    snaps = snapshots(60)
    write(tmp_path / "v2.db", snaps).close()
    conn = sqlite3.connect(tmp_path / "v1.db")
    with conn:
        _v1(conn)
        conn.execute("ATTACH DATABASE ? AS src", (str(tmp_path / "v2.db"),))
        conn.execute("INSERT INTO main.samples SELECT * FROM src.samples")
    conn.close()
    old, new = analysis.load(tmp_path / "v1.db"), analysis.load(tmp_path / "v2.db")
    pd.testing.assert_frame_equal(old, new)


def test_derive_carries_on_across_the_upgrade(tmp_path: Path) -> None:
    """Derive on a version-1 file (rowids), late rows, the upgrade, more late rows: the derived
    tables end up equal to a derive from scratch of all rows on a compact file."""
    from analysis.testing import commuter, write_history

    settings = analysis.Settings(timezone="Europe/Berlin")
    frame = commuter(days=10, every=300.0, seed=3, vin=V1).frame()
    late_a, late_b = frame.iloc[500:560], frame.iloc[1500:1560]  # reports delivered late
    write_history(tmp_path / "all.db", [frame])
    write_history(tmp_path / "src.db", [frame.drop(late_a.index).drop(late_b.index)])
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old)  # the same rows as the version-1 writer kept them
    with conn:
        _v1(conn)
        conn.execute("ATTACH DATABASE ? AS src", (str(tmp_path / "src.db"),))
        conn.execute("INSERT INTO main.samples SELECT * FROM src.samples ORDER BY vin, ts")
        conn.execute("INSERT INTO main.vehicles SELECT * FROM src.vehicles")
        conn.execute("PRAGMA user_version=1")
    conn.close()
    analysis.derive(old, settings)
    write_history(tmp_path / "late.db", [late_a])
    with sqlite3.connect(old) as c:  # a version-1 tool appends late rows: new rowids
        c.execute("ATTACH DATABASE ? AS late", (str(tmp_path / "late.db"),))
        c.execute("INSERT INTO main.samples SELECT * FROM late.samples")
    analysis.derive(old, settings)
    c = connect(old)
    assert migrate(c) == LATEST
    with c:
        assert layout.sync(c) == []  # the next start finds nothing to change
        marked = c.execute("SELECT changed_since FROM vins").fetchall()
    c.close()
    assert marked == [(layout.ms(float(frame["ts"].iloc[0])),)]  # redo from the first sample once
    analysis.derive(old, settings)
    write_history(old, [late_b])  # late rows through the compact writer
    with sqlite3.connect(old) as c:
        assert c.execute("SELECT changed_since FROM vins").fetchall() == [
            (layout.ms(float(late_b["ts"].iloc[0])),)
        ]
    analysis.derive(old, settings)
    analysis.derive(tmp_path / "all.db", settings)
    for name in ("trips", "charging_sessions"):
        with sqlite3.connect(old) as a, sqlite3.connect(tmp_path / "all.db") as b:
            q = f"SELECT * FROM {name} ORDER BY vin, start_ts"
            got, want = pd.read_sql_query(q, a), pd.read_sql_query(q, b)
        assert len(want) > 0
        pd.testing.assert_frame_equal(got, want)
    with sqlite3.connect(old) as c:
        assert c.execute("SELECT changed_since FROM vins").fetchall() == [(None,)]
