"""``journal_trips`` in PostgreSQL: migration 2 adds it to a database made by an older carmetrics,
the writer upserts as SQLite's does (a re-read updates the trip, a route once read is kept), and
``journal_known`` and the analysis read the same from either backend; the runtime reads the
journal of a simulated car into it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import psycopg
import pytest

from analysis.journal import load_journal
from bench.demo_runtime import advance, smart_demo_config, started
from bench.postgres import PASSWORD, Cluster
from exporter.backend import backend
from exporter.clock import ManualClock
from exporter.dbtarget import PgTarget
from exporter.history import HistoryWriter
from exporter.history_layout import JOURNAL_COLUMNS, JOURNAL_TABLE
from exporter.journal import JournalKnown, JournalTrip
from exporter.pg import schema
from exporter.settings import Secret
from exporter.snapshot import Snapshot

VIN = "HESXR1C4PGJOURN01"
JAN = 1_767_225_600.0  # 2026-01-01T00:00Z


def target(pg: Cluster) -> PgTarget:
    return PgTarget(pg.dsn_without_password, Secret(PASSWORD))


def trip(**kw: Any) -> JournalTrip:
    base: dict[str, Any] = {
        "vin": VIN,
        "provider": "smart",
        "trip_id": "42",
        "start_ts": JAN + 1000.0,
        "end_ts": JAN + 1900.0,
        "distance_m": 12300.0,
        "energy_kwh": 2.1,
        "start_odometer_m": 10_000_000.0,
        "end_odometer_m": 10_012_300.0,
    }
    return JournalTrip(**{**base, **kw})


def test_a_version_1_database_gets_the_table_and_keeps_its_rows(
    postgres: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = target(postgres)
    with monkeypatch.context() as m:  # the carmetrics before this table
        m.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
        m.setattr(schema, "LATEST", 1)
        h = backend(t).writer()
        h.open()
        assert h.write_now([Snapshot.build(VIN, "smart", JAN, JAN, {"battery_soc": 0.5})]) == 1
        h.close()
    with psycopg.connect(postgres.dsn) as c:
        assert c.execute("SELECT to_regclass(%s)", (JOURNAL_TABLE,)).fetchone() == (None,)
    assert backend(t).migrate() == 2
    with psycopg.connect(postgres.dsn) as c:
        cols = c.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_name = %s ORDER BY ordinal_position",
            (JOURNAL_TABLE,),
        ).fetchall()
        pk = c.execute(
            "SELECT a.attname FROM pg_index AS i JOIN pg_attribute AS a "
            "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = to_regclass(%s) AND i.indisprimary",
            (JOURNAL_TABLE,),
        ).fetchall()
        indexed = c.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = %s AND NOT indexdef LIKE '%%pkey%%'",
            (JOURNAL_TABLE,),
        ).fetchall()
        assert c.execute("SELECT count(*) FROM samples").fetchone() == (1,)
    assert [c[0] for c in cols] == [n for n, _ in JOURNAL_COLUMNS]
    types = {n: ty for n, ty, _ in cols}
    assert types["start_ts"] == types["distance_m"] == types["fetched_at"] == "double precision"
    assert types["route"] == "text" and types["route_points"] == "bigint"
    nullable = {n: null == "YES" for n, _, null in cols}
    assert nullable == {n: "NOT NULL" not in decl for n, decl in JOURNAL_COLUMNS}
    assert {r[0] for r in pk} == {"vin", "trip_id"}
    assert len(indexed) == 1 and "(vin, start_ts)" in indexed[0][0]


def _write(h: HistoryWriter, rows: list[tuple[Any, ...]]) -> None:
    h.add_journal(rows)
    h.write_now([])


def _stored(target: Path | PgTarget) -> list[dict[str, Any]]:
    j = load_journal(target)
    return [
        {k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
        for r in j.to_dict("records")
    ]


def test_a_re_read_updates_in_place_on_both_backends_alike(
    postgres: Cluster, tmp_path: Path
) -> None:
    route = [(48.1, 11.5), (48.12, 11.52), (48.13, 11.55)]
    stored = []
    for where in (tmp_path / "h.db", target(postgres)):
        h = backend(where).writer()
        h.open()
        try:
            _write(h, [trip(route=route).row(JAN + 5000.0)])
            # the same trip read again: new values, no route and no address this time
            _write(h, [trip(distance_m=12400.0, start_address="Here").row(JAN + 6000.0)])
            _write(h, [trip(end_address=None).row(JAN + 7000.0)])
            _write(  # twice in one batch: the later read wins
                h,
                [
                    trip(trip_id="43", start_ts=JAN + 3000.0, end_ts=JAN + 3600.0).row(JAN + 7000),
                    trip(trip_id="43", start_ts=JAN + 3000.0, end_ts=JAN + 3660.0).row(JAN + 7001),
                ],
            )
            _write(h, [trip(trip_id="44", start_ts=JAN + 4000.0, route=[]).row(JAN + 7000)])
        finally:
            h.close()
        stored.append(_stored(where))
    lite, post = stored
    assert post == lite
    assert [r["trip_id"] for r in post] == ["42", "43", "44"]  # one row per trip
    first = post[0]
    assert first["distance_m"] == 12300.0 and first["fetched_at"] == JAN + 7000.0  # newest read
    assert first["start_address"] == "Here"  # an address once read is kept
    assert first["route_points"] == 3 and first["route"]  # and so is the route
    assert post[1]["end_ts"] == JAN + 3660.0 and post[1]["route"] is None  # never read: NULL
    assert post[2]["route"] == "" and post[2]["route_points"] == 0  # the cloud has none


def test_journal_known_says_the_same_on_both_backends(postgres: Cluster, tmp_path: Path) -> None:
    rows = [
        trip(trip_id="1", start_ts=JAN + 100.0, route=[(48.0, 11.0)]).row(JAN),
        trip(trip_id="2", start_ts=JAN + 900.0).row(JAN),  # not routed yet
        trip(trip_id="3", start_ts=JAN + 500.0, route=[]).row(JAN),  # the cloud has none
        trip(trip_id="4", start_ts=JAN + 50.0).row(JAN),  # not routed, older
        trip(vin="OTHER", trip_id="9", start_ts=JAN + 9000.0, route=[(1.0, 1.0)]).row(JAN),
    ]

    async def known(h: HistoryWriter) -> list[JournalKnown]:
        asks = [(VIN, 0.0), (VIN, JAN + 50.0), (VIN, JAN + 51.0), (VIN, JAN + 901.0)]
        asks += [("OTHER", 0.0), ("NONE", 0.0)]
        return [await h.journal_known(v, since) for v, since in asks]

    got = []
    for where in (tmp_path / "h.db", target(postgres)):
        h = backend(where).writer()
        h.open()
        try:
            assert h.stores_journal
            _write(h, rows)
            got.append(asyncio.run(known(h)))
        finally:
            h.close()
    lite, post = got
    assert post == lite
    routed = frozenset({"1", "3"})
    assert post[0] == (JAN + 900.0, routed, JAN + 50.0)
    assert post[1] == (JAN + 900.0, routed, JAN + 50.0)  # from the asked time on, inclusive
    assert post[2] == (JAN + 900.0, routed, JAN + 900.0)
    assert post[3] == (JAN + 900.0, routed, None)
    assert post[4] == (JAN + 9000.0, frozenset({"9"}), None)
    assert post[5] == (None, frozenset(), None)


def test_analysis_reads_no_journal_from_a_database_without_the_table(
    postgres: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:
        m.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
        m.setattr(schema, "LATEST", 1)
        backend(target(postgres)).migrate()
    j = load_journal(target(postgres), vin=VIN)
    assert j.empty and {"vin", "trip_id", "start_ts", "end_ts", "route"} <= set(j.columns)


async def _run_a_day(db: PgTarget) -> tuple[str, list[dict[str, Any]]]:
    """The real runtime on a PostgreSQL history: one recording smart car, one simulated day."""
    clock = ManualClock(JAN)
    rt = await started(smart_demo_config(db, seed=3, models=("#1",)), clock)
    try:
        await advance(rt, clock, JAN + 86400.0)
        assert rt.journal is not None  # PostgreSQL keeps journals: the reader runs
        (vin,) = rt.scheduler.vins
        assert await rt.journal.fetch(vin)  # a last read now, so every finished trip is in
        assert rt.journal.failures == 0
        await rt.history.flush()
        trips = [t for t in rt.simulator.fleet.ground_truth(vin)["trips"] if t["end"] is not None]
    finally:
        await rt.stop()
    return vin, trips


def test_the_runtime_reads_the_journal_into_postgresql(postgres: Cluster) -> None:
    pg = target(postgres)
    vin, truth = asyncio.run(_run_a_day(pg))
    j = load_journal(pg, vin=vin)
    assert len(j) == len(truth) > 1
    assert list(j["start_ts"].round(3)) == [round(t["start"], 3) for t in truth]
    assert (j["route_points"] >= 1).all()
