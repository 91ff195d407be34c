"""``carmetrics db info`` speaks human: dates, sizes, and the rows still in the write-ahead log."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from exporter.cli import cli
from exporter.history import History
from exporter.snapshot import Snapshot

T0 = 1_767_225_600.0  # 2026-01-01T00:00Z


def test_db_info_prints_dates_human_sizes_and_counts_wal_rows(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    h = History(db)
    h.open()
    h.write_now(
        Snapshot.build("HESXR1C40PS000001", "smart", T0 + 60 * i, T0 + 60 * i, {"battery_soc": 0.5})
        for i in range(100)
    )  # still open: the rows sit in the WAL, not yet in the main file
    res = CliRunner().invoke(cli, ["db", "info", "--db", str(db)])
    h.close()
    assert res.exit_code == 0, res.output
    first, row = res.output.splitlines()[:2]
    assert re.search(r"schema version \d+, [\d.]+ (KB|MB) \+ [\d.]+ (KB|MB) write-ahead log", first)
    assert "100 rows, 2026-01-01 00:00 UTC .. 2026-01-01 01:39 UTC" in row


def test_db_help_lists_derive() -> None:
    res = CliRunner().invoke(cli, ["db", "--help"])
    assert "derive" in res.output
