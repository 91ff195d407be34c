"""The PostgreSQL history against a real server: migrations, the writer, partitions, prune, and
the settings that point at it (password from the environment or a file only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.postgres import PASSWORD, Cluster
from exporter.backend import backend
from exporter.config import ConfigError, load
from exporter.dbtarget import PgTarget, mask
from exporter.history import HistoryError
from exporter.history_layout import stored_row
from exporter.settings import Secret
from exporter.signals import SIGNALS
from exporter.snapshot import Snapshot, VehicleInfo

VIN = "HESXR1C4PGTEST001"
JAN = 1_767_225_600.0  # 2026-01-01T00:00Z


def target(pg: Cluster) -> PgTarget:
    return PgTarget(pg.dsn_without_password, Secret(PASSWORD))


def snap(t: float, soc: float = 0.5, vin: str = VIN, **extra: object) -> Snapshot:
    values = {"battery_soc": soc, "odometer": 1234.5678, **extra}
    return Snapshot.build(vin, "smart", t, t + 2.5, values)  # type: ignore[arg-type]


def test_migrations_are_idempotent_and_recorded(postgres: Cluster) -> None:
    store = backend(target(postgres))
    assert store.migrate() == 2
    assert store.migrate() == 2
    import psycopg

    with psycopg.connect(postgres.dsn) as c:
        assert c.execute("SELECT version, name FROM schema_migrations ORDER BY 1").fetchall() == [
            (1, "initial schema"),
            (2, "journal_trips"),
        ]
        cols = [
            r[0]
            for r in c.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'samples' ORDER BY ordinal_position"
            )
        ]
    assert cols == ["vin", "ts", "received_at", "provider", "source", *(s.name for s in SIGNALS)]


def test_a_newer_schema_is_refused_with_one_line(postgres: Cluster) -> None:
    store = backend(target(postgres))
    store.migrate()
    import psycopg

    with psycopg.connect(postgres.dsn) as c:
        c.execute("INSERT INTO schema_migrations (version, name) VALUES (99, 'from the future')")
    with pytest.raises(HistoryError, match=r"schema version 99, newer than .* upgrade carmetrics"):
        store.preflight()


def test_rows_read_back_as_sqlite_stores_them(postgres: Cluster) -> None:
    t = target(postgres)
    h = backend(t).writer()
    h.open()
    snaps = [
        snap(JAN + 60 * i, soc=0.5 + i / 1000, charger_connected=i % 2 == 0, power_state="on")
        for i in range(5)
    ]
    snaps.append(snap(JAN + 400, power_state="off", locked=None))
    h.add_vehicle(VehicleInfo(VIN, "smart", model="#1"), seen=JAN)
    assert h.write_now(snaps) == 6
    assert h.write_now([snap(JAN + 60)]) == 0  # a report stored already: skipped, not an error
    h.close()
    import psycopg

    with psycopg.connect(postgres.dsn) as c:
        rows = c.execute("SELECT * FROM samples ORDER BY ts").fetchall()
        assert c.execute("SELECT model FROM vehicles").fetchall() == [("#1",)]
    want = [stored_row(s) for s in snaps]
    got = [tuple(int(v) if isinstance(v, bool) else v for v in r) for r in rows]
    assert got == want


def test_late_reports_are_marked_for_derive(postgres: Cluster) -> None:
    h = backend(target(postgres)).writer()
    h.open()
    h.write_now([snap(JAN + 600)])
    h.write_now([snap(JAN + 300), snap(JAN + 900)])
    h.close()
    import psycopg

    with psycopg.connect(postgres.dsn) as c:
        got = c.execute("SELECT changed_since, late_writes, last_ts FROM vins").fetchone()
    assert got == (JAN + 300, 1, JAN + 900)


def test_months_get_partitions_and_prune_drops_whole_ones(postgres: Cluster) -> None:
    t = target(postgres)
    h = backend(t).writer()
    h.open()
    day = 86400.0
    h.write_now([snap(JAN + d * day) for d in range(0, 100, 3)])  # Jan .. Apr 2026
    h.close()
    import psycopg

    with psycopg.connect(postgres.dsn) as c:
        parts = {
            r[0]
            for r in c.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            )
        }
        assert {f"sample_data_2026_{m:02d}" for m in (1, 2, 3, 4)} <= parts
        before = c.execute("SELECT count(*) FROM sample_data").fetchone()[0]
    cut = JAN + 45 * day  # mid-February
    n = backend(t).prune(older_than=10 * day, now=cut + 10 * day)
    with psycopg.connect(postgres.dsn) as c:
        left = c.execute("SELECT count(*), min(ts) FROM sample_data").fetchone()
        parts_after = {
            r[0]
            for r in c.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            )
        }
    assert "sample_data_2026_01" not in parts_after and "sample_data_2026_02" in parts_after
    assert left[0] == before - n and left[1] >= cut
    assert n == len([d for d in range(0, 100, 3) if JAN + d * day < cut])


def test_password_in_the_url_is_refused_naming_the_key_and_fix(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[exporter]\ndb = "postgresql://carmetrics:hunter2@db.example/cm"\n')
    with pytest.raises(ConfigError) as err:
        load(cfg, env={})
    line = str(err.value)
    assert line.startswith("exporter.db: a password in the PostgreSQL URL is not allowed")
    assert "CARMETRICS_DB_PASSWORD" in line and "db_password_file" in line
    assert "hunter2" not in line and "\n" not in line
    cfg.write_text('[exporter]\ndb = "postgresql://cm@db/cm?password=hunter2"\n')
    with pytest.raises(ConfigError, match="not allowed"):
        load(cfg, env={})


def test_password_from_env_or_file_and_libpq_parameters_pass_through(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[exporter]\ndb = "postgresql://cm@db.example:5433/cm?sslmode=verify-full"\n'
        'db_password_file = "pw"\n'
    )
    (tmp_path / "pw").write_text("from-a-file\n")
    got = load(cfg, env={}).db
    assert isinstance(got, PgTarget)
    info = got.conninfo()
    assert "sslmode=verify-full" in info and "password=from-a-file" in info
    assert "from-a-file" not in str(got) and "from-a-file" not in repr(got)
    env = load(cfg, env={"CARMETRICS_DB_PASSWORD": "from-env"}).db
    assert isinstance(env, PgTarget) and "password=from-env" in env.conninfo()
    cfg.write_text('[exporter]\ndb = "postgresql://cm@db/cm"\ndb_password = "x"\n')
    with pytest.raises(ConfigError, match="secrets are not allowed in the config file"):
        load(cfg, env={})


def test_mask_hides_passwords() -> None:
    assert mask("postgresql://u:secret@h/db?password=p2&sslmode=require") == (
        "postgresql://u:***@h/db?password=***&sslmode=require"
    )


def test_db_commands_on_postgresql(
    postgres: Cluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import re

    from click.testing import CliRunner

    from exporter.cli import cli

    monkeypatch.setenv("CARMETRICS_DB_PASSWORD", PASSWORD)
    monkeypatch.chdir(tmp_path)
    url = postgres.dsn_without_password
    h = backend(target(postgres)).writer()
    h.open()
    h.add_vehicle(VehicleInfo(VIN, "smart", model="#1"), seen=JAN)
    h.write_now([snap(JAN + 86400.0 * d) for d in range(0, 62, 2)])  # January and February
    h.close()

    def run(*args: str) -> str:
        res = CliRunner().invoke(cli, list(args))
        assert res.exit_code == 0, res.output
        return res.output

    assert run("db", "migrate", "--db", url).strip() == f"{url}: schema version 2"
    info = run("db", "info", "--db", url)
    assert f"{VIN}: 31 rows, 2026-01-01 00:00 UTC .. 2026-03-02 00:00 UTC" in info
    assert re.search(r"^  table sample_data: 31 rows, [\d.]+ (KB|MB)$", info, re.M)
    assert re.search(r"^  table vehicles: 1 rows", info, re.M)
    assert re.search(r"^  table journal_trips: 0 rows", info, re.M)
    assert PASSWORD not in info
    res = CliRunner().invoke(cli, ["db", "backup", "--db", url, "out.dump"])
    assert res.exit_code == 1 and "pg_dump" in res.output and not Path("out.dump").exists()
    days = (1_800_000_000.0 - (JAN + 31 * 86400.0)) / 86400.0  # the cut: 2026-02-01 in 2027
    import time

    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.0)
    assert run("db", "prune", "--db", url, "--older-than-days", str(days)).strip() == (
        "deleted 16 samples"
    )
    assert "sample_data: 15 rows" in run("db", "info", "--db", url)


def test_a_server_restart_loses_no_row(postgres: Cluster) -> None:
    """Batches that fail while the server is away stay queued and are written once it is back."""
    h = backend(target(postgres)).writer()
    h.open()
    assert h.write_now([snap(JAN + 60 * i) for i in range(5)]) == 5
    postgres.stop()
    try:
        assert h.write_now([snap(JAN + 600 + 60 * i) for i in range(5)]) == 0
        assert h.write_errors == 1
        assert h.write_now([snap(JAN + 1200)]) == 0  # still away: kept, tried again, kept
    finally:
        postgres.start()  # the server is shared by the session's other tests
    assert h.write_now([]) == 6  # the queued reports, in one batch
    h.close()
    import psycopg

    with psycopg.connect(postgres.dsn) as c:
        assert c.execute("SELECT count(*) FROM samples").fetchone()[0] == 11


async def test_the_command_audit_keeps_its_rows_in_postgresql(postgres: Cluster) -> None:
    from dataclasses import replace

    from exporter.commands.audit import AuditLog
    from exporter.commands.record import CommandRecord, Outcome, Status

    log = AuditLog(target(postgres))
    assert log.open(now=JAN, keep_keys_since=JAN - 3600, in_flight_for=720) == []
    rec = CommandRecord(
        id="c1", vin=VIN, provider="smart", account="a", command="lock", params={"x": 1},
        caller="ops", requested_at=JAN, idempotency_key="k1",
    )  # fmt: skip
    log.write(rec)
    log.write(replace(rec, status=Status.SENT, sent_at=JAN + 1, cloud_accepted=True))
    await log.flush()
    got = await log.get("c1")
    assert got is not None and got.status is Status.SENT and got.cloud_accepted is True
    assert [r.id for r in await log.recent(VIN, 5)] == ["c1"]
    log.close()
    # another instance starting on the shared table leaves a command that may still be in
    # another instance's hands alone...
    other = AuditLog(target(postgres))
    kept = other.open(now=JAN + 60, keep_keys_since=JAN - 3600, in_flight_for=720)
    assert [(r.id, r.status) for r in kept] == [("c1", Status.SENT)]
    other.close()
    # ...and closes it out once no instance can still be working on it; the key's record stays
    again = AuditLog(target(postgres))
    kept = again.open(now=JAN + 721, keep_keys_since=JAN - 3600, in_flight_for=720)
    assert [(r.id, r.status, r.outcome) for r in kept] == [
        ("c1", Status.DONE, Outcome.NOT_VERIFIED)
    ]
    again.close()


def test_a_month_pruned_while_the_writer_runs_is_made_again(postgres: Cluster) -> None:
    """A late report for a month ``db prune`` dropped behind the running writer's back is
    stored (its partition made again), not retried forever."""
    h = backend(target(postgres)).writer()
    h.open()
    h.write_now([snap(JAN + 40 * 86400.0)])  # February
    h.write_now([snap(JAN + 60)])  # January: the writer now knows both months
    assert backend(target(postgres)).prune(older_than=0.0, now=JAN + 32 * 86400.0) == 1
    assert h.write_now([snap(JAN + 120)]) == 1  # a late January report
    assert h.write_errors == 0
    h.close()


def test_tokens_rekey_on_postgresql(postgres: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from exporter.cli import cli
    from exporter.tokens import EncryptedTokenStore, TokenVaultError, generate_key, parse_keys

    old, new = generate_key(), generate_key()
    store = EncryptedTokenStore(backend(target(postgres)).token_rows(), parse_keys(old, "k"))
    store.save("smart:a", {"v": 1})
    store.close()
    monkeypatch.setenv("CARMETRICS_DB_PASSWORD", PASSWORD)
    monkeypatch.setenv("CARMETRICS_TOKENS__KEY", f"{new},{old}")
    res = CliRunner().invoke(cli, ["tokens", "rekey", "--db", postgres.dsn_without_password])
    assert res.exit_code == 0 and "re-encrypted 1 token record(s)" in res.output, res.output
    only_new = EncryptedTokenStore(backend(target(postgres)).token_rows(), parse_keys(new, "k"))
    assert only_new.load("smart:a") == {"v": 1}
    only_new.close()
    only_old = EncryptedTokenStore(backend(target(postgres)).token_rows(), parse_keys(old, "k"))
    with pytest.raises(TokenVaultError):
        only_old.load("smart:a")
    only_old.close()


def test_two_writers_on_one_database_store_each_report_once(postgres: Cluster) -> None:
    """Instances handing a car over may both write its reports for a moment: new months, new
    vehicle ids and the same reports arrive from two writers at once; nothing fails, nothing
    doubles."""
    import threading

    writers = [backend(target(postgres)).writer() for _ in range(2)]
    for w in writers:
        w.open()
    month = 31 * 86400.0
    shared = [snap(JAN + 5 * month + 600 * i, vin=f"HESXR1C4PGTEST{i % 3:03d}") for i in range(60)]
    errors: list[BaseException] = []

    def work(w: object, reports: list[Snapshot]) -> None:
        try:
            for i in range(0, len(reports), 10):
                w.write_now(reports[i : i + 10])  # type: ignore[attr-defined]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w, shared)) for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and all(w.write_errors == 0 for w in writers)
    assert sum(w.rows_written for w in writers) == len(shared)
    for w in writers:
        w.close()
    import psycopg

    with psycopg.connect(postgres.dsn) as c:
        assert c.execute("SELECT count(*) FROM samples").fetchone()[0] == len(shared)
        assert c.execute("SELECT count(*) FROM vins").fetchone()[0] == 3
