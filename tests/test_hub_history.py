"""Reports become rows exactly once; late and repeated reports never duplicate or go back in time."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from exporter.history import ALL_COLUMNS, MIGRATIONS, History, backup, connect, migrate, prune
from exporter.hub import Hub, Outcome
from exporter.signals import SIGNALS, Value
from exporter.snapshot import Snapshot, VehicleInfo


def snap(
    t: float,
    soc: float = 0.5,
    vin: str = "VIN00000000000001",
    source: str = "poll",
    **extra: Value,
) -> Snapshot:
    return Snapshot.build(vin, "smart", t, t + 1, {"battery_soc": soc, **extra}, source=source)


def test_hub_classifies_new_refresh_and_stale_reports() -> None:
    hub = Hub()
    seen: list[float] = []
    hub.subscribe(lambda s: seen.append(s.car_time))
    assert hub.publish(snap(100)) is Outcome.NEW
    assert hub.publish(snap(100, soc=0.6)) is Outcome.REFRESH
    assert hub.publish(snap(90)) is Outcome.STALE
    assert hub.publish(snap(200)) is Outcome.NEW
    assert seen == [100, 200]
    latest = hub.latest("VIN00000000000001")
    assert latest is not None and latest.car_time == 200


def test_forgetting_a_vehicle_tells_its_listeners_once() -> None:
    hub = Hub()
    removed: list[str] = []
    hub.on_vehicle_removed(removed.append)
    hub.register(VehicleInfo("VIN00000000000001", "smart"))
    hub.publish(snap(100))
    hub.forget("VIN00000000000001")
    hub.forget("VIN00000000000001")  # already gone: nothing to tell
    hub.forget("VIN00000000000002")  # never known
    assert removed == ["VIN00000000000001"]
    assert hub.latest("VIN00000000000001") is None
    assert "VIN00000000000001" not in hub.vehicles


def test_webhook_reports_fill_missing_signals_from_the_last_known() -> None:
    hub = Hub()
    hub.publish(snap(100, soc=0.5, locked=True))
    partial = Snapshot.build(
        "VIN00000000000001", "smartcar", 150, 151, {"battery_soc": 0.55}, source="webhook"
    )
    assert hub.publish(partial) is Outcome.NEW
    latest = hub.latest("VIN00000000000001")
    assert latest is not None
    assert latest.values["battery_soc"] == 0.55
    assert latest.values["locked"] is True


def test_history_writes_one_row_per_report_with_every_signal_column(tmp_path: Path) -> None:
    h = History(tmp_path / "h.db")
    h.open()
    hub = Hub()
    hub.subscribe(h.add)
    hub.on_vehicle(h.add_vehicle)
    hub.register(VehicleInfo("VIN00000000000001", "smart", "smart", "#1", series="HX11"))
    for t in (100, 100, 160, 130, 220):  # one repeat and one late report
        hub.publish(snap(t, soc=t / 1000, charging_state="plugged", charger_connected=True))
    h.write_now([])
    rows = h.query(
        "SELECT ts, battery_soc, charging_state, charger_connected FROM samples ORDER BY ts"
    )
    assert rows == [
        (100.0, 0.1, "plugged", 1),
        (160.0, 0.16, "plugged", 1),
        (220.0, 0.22, "plugged", 1),
    ]
    assert h.rows_written == 3
    cols = [r[1] for r in h.query("PRAGMA table_info(samples)")]
    assert cols == list(ALL_COLUMNS)
    assert h.query("SELECT model, series FROM vehicles") == [("#1", "HX11")]
    h.close()


def test_migrations_are_versioned_and_add_new_signal_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    # a file from an older release that lacked the last signal's column
    conn.execute(
        "CREATE TABLE samples (vin TEXT NOT NULL, ts REAL NOT NULL, received_at REAL NOT NULL, provider TEXT NOT NULL, source TEXT NOT NULL DEFAULT 'poll', battery_soc REAL, PRIMARY KEY (vin, ts)) STRICT"
    )
    conn.execute(
        "INSERT INTO samples (vin, ts, received_at, provider, battery_soc) VALUES ('V', 1, 1, 'smart', 0.4)"
    )
    conn.commit()
    conn.close()
    conn = connect(path)
    latest = max(v for v, _ in MIGRATIONS)
    assert migrate(conn) == latest
    cols = {r[1] for r in conn.execute("PRAGMA table_info(samples)")}
    assert {s.name for s in SIGNALS} <= cols
    assert conn.execute("SELECT battery_soc FROM samples").fetchall() == [(0.4,)]
    assert migrate(conn) == latest  # idempotent
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_a_failed_write_keeps_the_rows_for_the_next_flush(tmp_path: Path) -> None:
    h = History(tmp_path / "h.db")
    h.open()
    h.add(snap(100))
    lock = connect(tmp_path / "h.db")
    lock.execute("PRAGMA busy_timeout=0")
    lock.execute("BEGIN EXCLUSIVE")
    h._executor.submit(lambda: h._conn.execute("PRAGMA busy_timeout=0")).result()  # type: ignore[union-attr]
    assert h._executor.submit(h._flush).result() == 0
    assert h.write_errors == 1
    lock.rollback()
    lock.close()
    assert h._executor.submit(h._flush).result() == 1
    h.close()


def test_backup_and_prune(tmp_path: Path) -> None:
    h = History(tmp_path / "h.db")
    h.open()
    h.write_now([snap(t) for t in (100, 200, 300)])
    h.close()
    backup(tmp_path / "h.db", tmp_path / "b.db")
    c = sqlite3.connect(tmp_path / "b.db")
    assert c.execute("SELECT count(*) FROM samples").fetchone()[0] == 3
    c.close()
    assert prune(tmp_path / "h.db", older_than=150, now=400) == 2


def test_bad_values_are_refused_before_they_reach_a_row() -> None:
    with pytest.raises(ValueError, match="unknown state"):
        Snapshot.build("V", "smart", 1, 1, {"charging_state": "warp"})
    with pytest.raises(ValueError, match="expected a number"):
        Snapshot.build("V", "smart", 1, 1, {"battery_soc": "47"})
    for not_finite in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(ValueError, match="finite"):
            Snapshot.build("V", "smart", 1, 1, {"odometer": not_finite})
