"""A history file that cannot be used is one clear line and a non-zero exit, never a traceback; the
file is private to its owner (issue 15)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from exporter.clock import ManualClock
from exporter.config import Config
from exporter.history import History, HistoryError, preflight
from exporter.runtime import Runtime
from exporter.snapshot import Snapshot

VIN = "HESXR1C40PS000001"


def _history_with_rows(path: Path, n: int = 3000) -> None:
    h = History(path)
    h.open()
    t0 = 1_767_225_600.0
    h.write_now(
        Snapshot.build(VIN, "smart", t0 + 60 * i, t0 + 60 * i, {"battery_soc": (i % 100) / 100})
        for i in range(n)
    )
    h.close()


def _corrupt(path: Path, everything: bool = False) -> None:
    """Overwrite a page in the middle of the file (a B-tree page of the samples) with garbage, or
    every page after the header."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    with path.open("r+b") as fh:
        fh.seek(page * (1 if everything else pages // 2))
        fh.write(os.urandom(page * (pages - 1 if everything else 1)))


def _cli(*args: str, cwd: Path, db: Path) -> subprocess.CompletedProcess[str]:
    cfg = cwd / "config.toml"
    cfg.write_text(f'[exporter]\nport = 0\ndb = "{db}"\n')
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from exporter.cli import main; main()",
            *args,
            "--config",
            str(cfg),
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )


def _one_clear_line(res: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1, res.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


@pytest.mark.parametrize(
    ("make", "needles"),
    [
        (lambda p: p.write_text("hello, I am a text file\n" * 200), ("not a carmetrics history",)),
        (lambda p: p.mkdir(), ("cannot open the history file", "directory")),
        (
            lambda p: (p.parent / "afile").write_text("x"),
            ("cannot open the history file", "--db"),
        ),
        (lambda p: (_history_with_rows(p), _corrupt(p)), ("damaged", "carmetrics db backup")),
    ],
    ids=["not-a-database", "a-directory", "unopenable", "corrupt-page"],
)
def test_a_bad_history_file_is_one_line_and_exit_1(
    tmp_path: Path, make: Callable[[Path], object], needles: tuple[str, ...]
) -> None:
    db = tmp_path / "h.db"
    make(db)
    if (tmp_path / "afile").exists():
        db = tmp_path / "afile" / "h.db"  # a path under a file: cannot exist
    with pytest.raises(HistoryError) as exc:
        preflight(db)
    assert "\n" not in str(exc.value) and str(db) in str(exc.value)
    res = _cli("run", cwd=tmp_path, db=db)
    _one_clear_line(res, str(db), *needles)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory an unprivileged user can enter (pytest's tmp_path is root-only)."""
    d = Path(tempfile.mkdtemp(prefix="carmetrics-ro-"))
    d.chmod(0o755)
    yield d
    d.chmod(0o755)
    shutil.rmtree(d)


def _unprivileged(fn: Callable[[], str]) -> str:
    """Run ``fn`` where file permissions bind: as is, or (as root) in a child that dropped root."""
    if os.geteuid() != 0:
        return fn()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(r)
        try:
            os.setgid(65534)
            os.setuid(65534)
            out = fn()
        except BaseException as exc:
            out = f"child failed: {exc!r}"
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as fh:
        got = fh.read()
    os.waitpid(pid, 0)
    return got


def test_a_read_only_history_is_one_clear_line(shared_dir: Path) -> None:
    db = shared_dir / "h.db"
    _history_with_rows(db, 10)
    for p in shared_dir.iterdir():
        p.chmod(0o444)
    shared_dir.chmod(0o555)

    def attempt() -> str:
        try:
            preflight(db)
        except HistoryError as exc:
            return str(exc)
        return "no error"

    got = _unprivileged(attempt)
    assert "read-only" in got and str(db) in got, got


def test_the_history_and_its_wal_and_shm_are_created_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        db = tmp_path / "h.db"
        h = History(db)
        h.open()
        h.write_now([Snapshot.build(VIN, "smart", 1_767_225_600.0, 1_767_225_600.0, {})])
        files = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}
        h.close()
    finally:
        os.umask(old)
    assert modes == {"h.db": 0o600, "h.db-wal": 0o600, "h.db-shm": 0o600}


async def test_the_runtime_refuses_a_corrupt_file_before_opening_anything(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    _history_with_rows(db)
    _corrupt(db)
    with pytest.raises(HistoryError, match="damaged"):
        await Runtime.create(Config(db=db), ManualClock())


def test_a_file_damaged_while_running_logs_one_line_and_shuts_down_cleanly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "h.db"
    _history_with_rows(db)
    h = History(db)
    h.open()
    _corrupt(db, everything=True)
    t = 1_767_225_600.0 + 60 * 1500 + 30  # between rows stored on the damaged pages
    with caplog.at_level("DEBUG", logger="exporter.history"):
        for i in range(5):
            h.write_now([Snapshot.build(VIN, "smart", t + i, t + i, {"battery_soc": 0.5})])
        h.close()  # must not raise
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert h.write_errors >= 1
    assert len(errors) == 1 and errors[0].exc_info is None
    assert "damaged" in errors[0].getMessage()
