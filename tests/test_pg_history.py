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
    assert store.migrate() == 1
    assert store.migrate() == 1
    import psycopg

    with psycopg.connect(postgres.dsn) as c:
        assert c.execute("SELECT version, name FROM schema_migrations").fetchall() == [
            (1, "initial schema")
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

    assert run("db", "migrate", "--db", url).strip() == f"{url}: schema version 1"
    info = run("db", "info", "--db", url)
    assert f"{VIN}: 31 rows, 2026-01-01 00:00 UTC .. 2026-03-02 00:00 UTC" in info
    assert re.search(r"^  table sample_data: 31 rows, [\d.]+ (KB|MB)$", info, re.M)
    assert re.search(r"^  table vehicles: 1 rows", info, re.M)
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
