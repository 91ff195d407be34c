"""``journal_trips``: created by migration 3 on an existing file, keyed by the cloud's trip id so a
re-read updates rather than duplicates, routes kept once read; the route encoding round-trips."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from exporter import polyline
from exporter.config import AccountConfig, ConfigError
from exporter.history import History, migrate
from exporter.history_layout import JOURNAL_COLUMNS, JOURNAL_TABLE
from exporter.journal import JournalTrip
from exporter.providers.smart.settings import read_settings


def _trip(**kw: object) -> JournalTrip:
    base: dict[str, object] = {
        "vin": "V1",
        "provider": "smart",
        "trip_id": "42",
        "start_ts": 1000.0,
        "end_ts": 1900.0,
        "distance_m": 12300.0,
        "energy_kwh": 2.1,
    }
    return JournalTrip(**{**base, **kw})  # type: ignore[arg-type]


def _flat(points: object) -> list[float]:
    return [c for p in points for c in p]  # type: ignore[attr-defined]


def test_an_existing_version_2_file_gets_the_table(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    h = History(db)
    h.open()
    h.close()
    with sqlite3.connect(db) as conn:  # as a file written before schema 3
        conn.execute(f"DROP TABLE {JOURNAL_TABLE}")
        conn.execute("PRAGMA user_version=2")
    conn = sqlite3.connect(db)
    try:
        assert migrate(conn) == 3
        cols = [r[1] for r in conn.execute(f"PRAGMA table_info({JOURNAL_TABLE})")]
        assert cols == [n for n, _ in JOURNAL_COLUMNS]
        pk = [r[1] for r in sorted(conn.execute(f"PRAGMA table_info({JOURNAL_TABLE})")) if r[5]]
        assert set(pk) == {"vin", "trip_id"}
    finally:
        conn.close()


def test_a_re_read_updates_in_place_and_keeps_the_route(tmp_path: Path) -> None:
    h = History(tmp_path / "h.db")
    h.open()
    try:
        route = [(48.1, 11.5), (48.12, 11.52), (48.13, 11.55)]
        h.add_journal([_trip(route=route).row(5000.0)])
        h.write_now([])
        h.add_journal([_trip(distance_m=12400.0, start_address="Here").row(6000.0)])
        h.add_journal([_trip(trip_id="43", start_ts=3000.0, end_ts=3600.0).row(6000.0)])
        h.write_now([])
        rows = h.query(
            f"SELECT trip_id, distance_m, route, route_points, start_address, fetched_at "
            f"FROM {JOURNAL_TABLE} ORDER BY start_ts"
        )
    finally:
        h.close()
    assert [r[0] for r in rows] == ["42", "43"]
    _tid, dist, stored, n, addr, fetched = rows[0]
    assert dist == 12400.0 and addr == "Here" and fetched == 6000.0  # the newer read wins
    assert n == 3 and _flat(polyline.decode(stored)) == pytest.approx(
        _flat(route)
    )  # the route stays
    assert rows[1][2] is None  # never read: NULL, not ''


def test_polyline_round_trip_and_refuses_garbage() -> None:
    pts = [(38.5, -120.2), (40.7, -120.95), (43.252, -126.453)]
    assert polyline.encode(pts) == "_p~iF~ps|U_ulLnnqC_mqNvxq`@"  # the format's published example
    assert _flat(polyline.decode(polyline.encode(pts))) == pytest.approx(_flat(pts))
    with pytest.raises(ValueError):
        polyline.decode("_p~iF~ps|U_ulL")  # cut mid-pair
    assert polyline.points_of(None) == () and polyline.points_of("\x01") == ()


def test_journal_interval_is_checked() -> None:
    def account(value: object) -> AccountConfig:
        return AccountConfig(
            name="a",
            provider="smart",
            index=0,
            simulator=True,
            settings={"region": "EU", "username": "u@example.com", "journal_interval": value},
        )

    with pytest.raises(ConfigError) as err:
        read_settings(account(-1), sim_urls=None)
    assert "journal_interval" in str(err.value)


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
async def test_the_writer_loop_stops_when_a_wake_up_comes_with_the_stop(
    tmp_path: Path, turns: int
) -> None:
    """Journal rows (or a full batch) wake the writer; a stop right then must still end its loop
    (Python 3.11's wait_for swallowed such a cancel, and the runtime's stop waited forever)."""
    h = History(tmp_path / "h.db")
    h.open()
    task = asyncio.create_task(h.run())
    try:
        for _ in range(5):
            await asyncio.sleep(0)
        assert h._wake is not None
        h._wake.set()
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=10)  # a hang bound, not a speed target
        assert task in done and task.cancelled()
    finally:
        task.cancel()
        h.close()
