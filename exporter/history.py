"""The SQLite history: one row per car report, kept for years.

Design (see docs/ARCHITECTURE.md): one writer thread owns the connection; the event loop only appends
to an in-memory batch; a flush commits the whole batch in one transaction (WAL, synchronous=NORMAL), so
the poll loop never waits on the disk and a crash leaves whole rows or none. The columns are generated
from ``exporter.signals``: a new signal becomes a new column on the next start (a migration adds it),
old rows read NULL for it.

Readers use the ``samples`` view (version 1's columns in SI units); since schema version 2 the rows
live in the compact ``sample_data`` table behind it (integers at each signal's resolution, see
``exporter.history_layout``), which the writer fills directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

from exporter import history_layout as layout
from exporter.history_layout import BASE_COLUMNS, SIGNAL_COLUMNS, VIEW_COLUMNS, stored_row
from exporter.journal import JournalKnown
from exporter.logs import mask_vin
from exporter.signals import SIGNALS
from exporter.snapshot import Snapshot, VehicleInfo

log = logging.getLogger(__name__)

ALL_COLUMNS: Final = VIEW_COLUMNS  # the columns of ``samples``, in order
__all__ = [
    "ALL_COLUMNS",
    "BASE_COLUMNS",
    "MIGRATIONS",
    "SIGNAL_COLUMNS",
    "History",
    "HistoryError",
    "HistoryWriter",
    "backup",
    "connect",
    "create_private",
    "migrate",
    "preflight",
    "prune",
    "stored_row",
]

Migration = Callable[[sqlite3.Connection], None]


def _v1(conn: sqlite3.Connection) -> None:
    cols = ",\n  ".join(f'"{s.name}" {s.sql_type}' for s in SIGNALS)
    conn.execute(
        f"""CREATE TABLE IF NOT EXISTS samples (
  vin TEXT NOT NULL,
  ts REAL NOT NULL,
  received_at REAL NOT NULL,
  provider TEXT NOT NULL,
  source TEXT NOT NULL DEFAULT 'poll',
  {cols},
  PRIMARY KEY (vin, ts)
) STRICT"""
    )
    conn.execute(
        """CREATE TABLE IF NOT EXISTS vehicles (
  vin TEXT PRIMARY KEY,
  provider TEXT NOT NULL,
  make TEXT, model TEXT, year TEXT, series TEXT, account TEXT,
  first_seen REAL NOT NULL,
  last_seen REAL NOT NULL
) STRICT"""
    )


def _v2(conn: sqlite3.Connection) -> None:
    """The compact layout: ``samples`` becomes a view over ``sample_data`` (rows copied over)."""
    layout.convert_v1(conn)


def _v3(conn: sqlite3.Connection) -> None:
    """The car's own trip journal (``journal_trips``), beside the samples."""
    layout.create_journal_table(conn)


# Append-only: (version, migration). Never edit a released entry; add a new one.
# Raw SQL on purpose, not sqlite-utils' table.transform(): a new signal is an O(1) ALTER TABLE ADD
# COLUMN where transform would copy the whole (WITHOUT ROWID, view- and trigger-fronted) sample
# table, and importing sqlite-utils loads pandas into the exporter (~1.4 s at start).
MIGRATIONS: list[tuple[int, Migration]] = [(1, _v1), (2, _v2), (3, _v3)]


class HistoryError(Exception):
    """The history file cannot be used; the message is one line: what, which file, what to do."""


def describe(path: Path | str, exc: BaseException) -> HistoryError:
    """Turn what SQLite or the OS said about ``path`` into a line a person can act on."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith("SQLITE_CORRUPT"):
        return HistoryError(
            f"the history file {path} is damaged ({exc}); stop carmetrics, keep a copy of the file, "
            f"then recover it (`sqlite3 {path} .recover | sqlite3 recovered.db`, see docs) or "
            "restore the last `carmetrics db backup` copy"
        )
    if name.startswith("SQLITE_NOTADB"):
        return HistoryError(
            f"{path} is not a carmetrics history (not an SQLite database); point --db / "
            "[exporter] db at the right file, or move this one away to start a new history"
        )
    if name.startswith(("SQLITE_READONLY", "SQLITE_PERM")):
        return HistoryError(
            f"the history file {path} is read-only ({exc}); make it and its directory writable "
            "for the user running carmetrics, or point --db elsewhere"
        )
    if name.startswith("SQLITE_FULL"):
        return HistoryError(f"the disk holding {path} is full; free space, then start again")
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return HistoryError(
        f"cannot open the history file {path} ({reason}); check that the path is right and its "
        "directory exists and is writable, or point --db / [exporter] db elsewhere"
    )


def create_private(path: Path | str) -> None:
    """Create the file owner-only (0600) if it does not exist yet: it holds the full location
    history, the command audit and encrypted tokens. SQLite gives its -wal and -shm files the
    database file's permissions, so they follow."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def preflight(path: Path | str) -> None:
    """Open, check and migrate the history before anything else starts, so a bad file is one clear
    line and a non-zero exit rather than a traceback from deep inside the start-up.

    ``PRAGMA quick_check`` finds a damaged B-tree page now instead of on the first write."""
    p = Path(path)
    try:
        if p.is_dir():
            raise IsADirectoryError(21, "it is a directory", str(p))
        p.parent.mkdir(parents=True, exist_ok=True)
        create_private(p)
        conn = connect(p)
    except (OSError, sqlite3.Error) as exc:
        raise describe(p, exc) from None
    try:
        problems = [str(r[0]) for r in conn.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            err = sqlite3.DatabaseError("; ".join(problems)[:200])
            err.sqlite_errorname = "SQLITE_CORRUPT"
            raise err
        migrate(conn)
        with conn:  # a write, so a read-only file or directory shows now
            conn.execute("CREATE TABLE IF NOT EXISTS _write_probe (x)")
            conn.execute("DROP TABLE _write_probe")
    except sqlite3.Error as exc:
        raise describe(p, exc) from None
    finally:
        conn.close()


def connect(path: Path | str, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection with the pragmas every carmetrics process uses."""
    if readonly:
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, timeout=5.0, check_same_thread=False
        )
    else:
        create_private(path)
        conn = sqlite3.connect(str(path), timeout=5.0, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to date; returns the resulting version. Safe to run on every start."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    for version, fn in sorted(MIGRATIONS, key=lambda m: m[0]):
        if version > current:
            with conn:
                fn(conn)
                conn.execute(f"PRAGMA user_version={int(version)}")
            log.info("history schema migrated", extra={"version": version})
            if version == 2:
                _reclaim(conn)
            current = version
    _sync_signal_columns(conn)
    return int(current)


def _sync_signal_columns(conn: sqlite3.Connection) -> None:
    """Give every signal added since the file was created a column (and a view column); re-encode
    a column whose resolution or states changed in ``exporter.signals``."""
    with conn:
        changes = layout.sync(conn)
    for change in changes:
        log.info("history schema synced", extra={"change": change})


def _reclaim(conn: sqlite3.Connection) -> None:
    """Give the pages of the dropped version-1 table back to the file system, once, after the
    upgrade (without it the file only stops growing until the new rows have reused them)."""
    if not conn.execute("PRAGMA freelist_count").fetchone()[0]:
        return
    try:
        conn.execute("VACUUM")
    except sqlite3.Error as e:  # e.g. a reader holding an old snapshot: harmless, try next upgrade
        log.warning("history VACUUM after the upgrade failed", extra={"error": str(e)})


class HistoryWriter:
    """Batched, single-writer history. ``add`` is cheap and non-blocking; ``flush`` commits.

    The batching, the early rows, the one-timeline rule and the retry of a failed batch are the
    same for every backend; a subclass says how a batch reaches its storage (``_connect``,
    ``_write``, ``_disconnect``) and how its errors read (``_errors``, ``_describe``).
    """

    _errors: tuple[type[BaseException], ...] = ()

    def __init__(
        self,
        target: object,
        *,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        one_timeline: bool = False,
    ) -> None:
        """``one_timeline``: refuse reports older than the file's last row per car (see
        ``_keeps``); on for the embedded demo, whose simulator restarts its own timeline. Off for
        real cars, whose late reports (a webhook retried across a restart) are welcome."""
        self.target = target
        self.one_timeline = one_timeline
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self._pending: list[list[Any]] = []  # Codec.row()s
        self._pending_vehicles: dict[str, tuple[Any, ...]] = {}
        self._pending_journal: list[tuple[Any, ...]] = []  # journal_trips rows
        self._ids: dict[tuple[str, str], int] = {}  # (vin, provider) -> vins.id, committed ones
        self._codec: layout.Codec | None = None  # the file's encodings, known once it is open
        self._early: list[Snapshot] = []  # reports added before open(), encoded by it
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="history")
        self._lock = threading.Lock()
        self._wake: asyncio.Event | None = None
        self.rows_written = 0
        self.write_errors = 0
        self._failing = 0  # consecutive failed flushes
        self._floor: dict[str, int] = {}  # vin -> the newest ts_ms the file held when opened
        self._skip_logged: set[str] = set()
        self.skipped_older = 0
        self.last_write: float | None = None

    # --- what a backend provides --------------------------------------------------------------------
    def _connect(self) -> tuple[layout.Codec, dict[str, int]]:
        """Open and migrate the storage (writer thread); the codec and, with ``one_timeline``,
        the newest stored ts_ms per VIN."""
        raise NotImplementedError

    def _write(self, rows: list[list[Any]], vehicles: list[tuple[Any, ...]]) -> int:
        """Store one batch in one transaction (writer thread); returns the rows newly stored.
        Raises one of ``_errors`` and leaves ``rows`` as they were when the batch failed."""
        raise NotImplementedError

    def _disconnect(self) -> None:
        raise NotImplementedError

    # the car's own trip journal (``journal_trips``): a backend that keeps it says so and provides
    # the two hooks below; the runtime reads journals only into such a backend
    stores_journal: bool = False

    def _write_journal(self, rows: list[tuple[Any, ...]]) -> None:
        """Upsert ``journal_trips`` rows in one transaction (writer thread)."""
        raise NotImplementedError

    def _journal_known(self, vin: str, unrouted_since: float) -> JournalKnown:
        """What ``journal_known`` answers (writer thread)."""
        return JournalKnown(None, frozenset(), None)

    def _describe(self, exc: BaseException) -> HistoryError:
        raise NotImplementedError

    def _prepare_open(self) -> None:
        """Before the writer thread opens the storage (e.g. make the file's directory)."""

    # --- lifecycle --------------------------------------------------------------------------------
    def open(self) -> None:
        """Open and migrate the storage; raises HistoryError (one line: what, where, what to do)."""
        errors: tuple[type[BaseException], ...] = (OSError, *self._errors)
        try:
            self._prepare_open()
            self._executor.submit(self._open).result()
        except errors as exc:
            raise self._describe(exc) from None

    def _open(self) -> None:
        codec, floor = self._connect()
        with self._lock:
            self._codec = codec
            self._floor = floor
            early, self._early = self._early, []
            self._pending[:0] = [r for r in (codec.row(s) for s in early) if self._keeps(r)]

    def _keeps(self, row: list[Any]) -> bool:
        """False for a report not newer than the last row this file held for the car when it was
        opened: within one run the hub passes only newer reports, so such a report comes from a
        source that restarted its own timeline (a fresh demo simulator replaying its first days),
        and storing it would interleave two timelines (trips at 200 km/h). Callers hold the lock."""
        vin = row[0][0]
        last = self._floor.get(vin)
        if last is None or row[1] > last:
            return True
        if row[1] == last:  # the very report the file holds, served again by a resumed source
            return False
        self.skipped_older += 1
        if vin not in self._skip_logged:
            self._skip_logged.add(vin)
            log.warning(
                "report older than the history's last row for this car not stored "
                "(a restarted simulator, or a car clock set back)",
                extra={"vin": mask_vin(vin), "last_row_ms": last, "report_ms": row[1]},
            )
        return False

    async def run(self) -> None:
        """Flush periodically until cancelled; the final flush happens in ``close``."""
        self._wake = asyncio.Event()
        while True:
            # asyncio.wait, not wait_for: Python 3.11's wait_for returns the inner result when the
            # wake-up and a cancel arrive together, swallowing the cancel, and stop() then waits
            # for this loop forever
            waiter = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({waiter}, timeout=self.flush_interval)
            finally:
                waiter.cancel()
            self._wake.clear()
            await self.flush()

    async def flush(self) -> int:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._flush)

    def close(self) -> None:
        """Write everything still pending and close the storage (on shutdown, also on SIGTERM)."""
        self._executor.submit(self._flush).result()
        self._executor.submit(self._disconnect).result()
        self._executor.shutdown(wait=True)

    # --- writing ----------------------------------------------------------------------------------
    def add(self, snap: Snapshot) -> None:
        """Queue one report (a Hub listener). The row is built now, so later mutation can't tear it."""
        codec = self._codec
        row = codec.row(snap) if codec is not None else None
        if row is None:  # before open(): refuse now what could never be stored; open() encodes it
            layout.ms(snap.car_time)
            layout.ms(snap.received_at)
        with self._lock:
            if row is None and self._codec is not None:  # open() finished meanwhile
                row = self._codec.row(snap)
            if row is None:
                self._early.append(snap)
            elif self._keeps(row):
                self._pending.append(row)
            n = len(self._pending)
        if n >= self.batch_size and self._wake is not None:
            self._wake.set()

    def add_vehicle(self, info: VehicleInfo, seen: float | None = None) -> None:
        t = time.time() if seen is None else seen
        with self._lock:
            self._pending_vehicles[info.vin] = (
                info.vin,
                info.provider,
                info.make,
                info.model,
                info.year,
                info.series,
                info.account,
                t,
                t,
            )

    def add_journal(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Queue rows of the car's own trip log (``JournalTrip.row``); written with the next flush.
        A trip already stored is updated in place (its cloud trip id is the key)."""
        with self._lock:
            self._pending_journal.extend(rows)

    async def journal_known(self, vin: str, unrouted_since: float) -> JournalKnown:
        """For ``vin``: the start of the newest stored journal trip, the ids of the trips whose
        route is stored, and the start of the oldest trip started at or after ``unrouted_since``
        whose route is not: where a read resumes, which tracks need no second read, and how far
        back one must reach to ask again for the tracks still missing."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._journal_known, vin, unrouted_since)

    def _flush(self) -> int:
        with self._lock:
            rows, self._pending = self._pending, []
            vehicles, self._pending_vehicles = list(self._pending_vehicles.values()), {}
            journal, self._pending_journal = self._pending_journal, []
        if journal:
            try:
                self._write_journal(journal)
            except self._errors as exc:  # kept for the next flush, as sample rows are
                log.debug("journal rows not written yet", extra={"error": str(exc)})
                with self._lock:
                    self._pending_journal[:0] = journal
        if not rows and not vehicles:
            return 0
        try:
            written = self._write(rows, vehicles)
        except self._errors as exc:
            self.write_errors += 1
            self._failing += 1
            if self._failing == 1:  # once per streak: a damaged file fails every second
                log.error(
                    "history write failed; rows kept for the next attempt: %s",
                    self._describe(exc),
                    extra={"rows": len(rows)},
                )
            else:
                log.debug("history write failed again", extra={"attempt": self._failing})
            with self._lock:
                self._pending[:0] = rows
                for v in vehicles:
                    self._pending_vehicles.setdefault(v[0], v)
            return 0
        if self._failing:
            log.info("history writes resumed", extra={"failed_attempts": self._failing})
            self._failing = 0
        self.rows_written += written
        self.last_write = time.time()
        return written

    def write_now(self, snaps: Iterable[Snapshot]) -> int:
        """Synchronous insert for tools and tests that do not run the event loop."""
        for s in snaps:
            self.add(s)
        return self._executor.submit(self._flush).result()


class History(HistoryWriter):
    """The SQLite history writer (one connection, owned by the writer thread)."""

    _errors = (sqlite3.Error,)

    def __init__(
        self,
        path: Path | str,
        *,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        one_timeline: bool = False,
    ) -> None:
        super().__init__(
            Path(path),
            batch_size=batch_size,
            flush_interval=flush_interval,
            one_timeline=one_timeline,
        )
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None

    def _describe(self, exc: BaseException) -> HistoryError:
        return describe(self.path, exc)

    def _prepare_open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _connect(self) -> tuple[layout.Codec, dict[str, int]]:
        self._conn = connect(self.path)
        migrate(self._conn)
        codec = layout.codec(self._conn)
        floor = last_report_ms(self._conn) if self.one_timeline else {}
        return codec, floor

    def _disconnect(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):  # a damaged file must not crash the shutdown
                self._conn.execute("PRAGMA optimize")
            self._conn.close()
            self._conn = None

    def _write(self, rows: list[list[Any]], vehicles: list[tuple[Any, ...]]) -> int:
        conn = self._conn
        if conn is None:
            raise RuntimeError("history is not open")
        keys: list[tuple[str, str]] = [r[0] for r in rows]
        try:
            with conn:
                if vehicles:
                    conn.executemany(
                        "INSERT INTO vehicles VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(vin) DO UPDATE SET "
                        "provider=excluded.provider, make=excluded.make, model=excluded.model, "
                        "year=excluded.year, series=excluded.series, account=excluded.account, "
                        "last_seen=excluded.last_seen",
                        vehicles,
                    )
                ids = self._vehicle_ids(conn, keys)
                lows: dict[int, int] = {}
                for r, key in zip(rows, keys, strict=True):
                    vid = r[0] = ids[key]
                    if r[1] < lows.get(vid, r[1] + 1):
                        lows[vid] = r[1]
                conn.executemany(layout.MARK_LATE_SQL, [(ts, vid) for vid, ts in lows.items()])
                before = conn.total_changes
                assert self._codec is not None  # rows exist only once the codec does
                conn.executemany(self._codec.insert_sql, rows)
                written = conn.total_changes - before
        except sqlite3.Error:
            for r, key in zip(rows, keys, strict=True):  # ids of a rolled-back batch mean nothing
                r[0] = key
            raise
        self._ids.update(ids)
        return written

    stores_journal = True

    def _write_journal(self, rows: list[tuple[Any, ...]]) -> None:
        conn = self._conn
        if conn is None:
            raise RuntimeError("history is not open")
        with conn:
            conn.executemany(layout.JOURNAL_UPSERT_SQL, rows)

    def _journal_known(self, vin: str, unrouted_since: float) -> JournalKnown:
        conn = self._conn
        if conn is None:
            raise RuntimeError("history is not open")
        newest, unrouted = conn.execute(layout.JOURNAL_KNOWN_SQL, (unrouted_since, vin)).fetchone()
        routed = conn.execute(layout.JOURNAL_ROUTED_SQL, (vin,))
        return JournalKnown(newest, frozenset(r[0] for r in routed), unrouted)

    def _vehicle_ids(
        self, conn: sqlite3.Connection, keys: list[tuple[str, str]]
    ) -> dict[tuple[str, str], int]:
        """Ids of the batch's vehicles, new ones inserted in the batch's transaction (and cached
        only once it commits, so a rolled-back id is never reused)."""
        ids = self._ids
        new: dict[tuple[str, str], int] = {}
        for key in keys:
            if key in ids or key in new:
                continue
            got = conn.execute("SELECT id FROM vins WHERE vin = ? AND provider = ?", key).fetchone()
            if got is None:
                cur = conn.execute("INSERT INTO vins (vin, provider) VALUES (?, ?)", key)
                got = (cur.lastrowid,)
            new[key] = int(got[0])
        return ids | new if new else ids

    # --- reading (tools) --------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        def run() -> list[tuple[Any, ...]]:
            assert self._conn is not None
            return list(self._conn.execute(sql, params))

        return self._executor.submit(run).result()


def last_report_ms(conn: sqlite3.Connection, now: float | None = None) -> dict[str, int]:
    """The newest stored report time per VIN (ms). A row dated after ``now`` plus the hub's skew
    allowance is left out: a report from the future, stored before the hub refused such reports,
    must not hold a car's history back forever."""
    from exporter.hub import MAX_SKEW

    limit = layout.ms((time.time() if now is None else now) + MAX_SKEW)
    if not conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'vins'"
    ).fetchone():
        return {}
    out: dict[str, int] = {}
    rows = conn.execute(
        f"SELECT v.vin, (SELECT max(ts_ms) FROM {layout.TABLE} "
        "WHERE vehicle = v.id AND ts_ms <= ?) FROM vins AS v",
        (limit,),
    )
    for vin, last in rows:
        if last is not None:
            out[vin] = max(out.get(vin, last), int(last))
    return out


def last_report_time(path: Path | str) -> float | None:
    """The newest report the file holds (unix seconds), None for a new or empty file: where a
    restarted demo's clock continues, so the history is not replayed into from weeks back."""
    if not Path(path).exists():
        return None
    conn = connect(path, readonly=True)
    try:
        last = last_report_ms(conn)
    finally:
        conn.close()
    return max(last.values()) / 1000.0 if last else None


def backup(src: Path, dest: Path) -> None:
    """A consistent copy of a live database (SQLite's online backup API; safe while the exporter runs)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    create_private(dest)
    with sqlite3.connect(f"file:{src}?mode=ro", uri=True) as s, sqlite3.connect(str(dest)) as d:
        s.backup(d)


def prune(path: Path, older_than: float, *, now: float | None = None) -> int:
    """Delete raw samples older than ``older_than`` seconds (derived session tables are kept)."""
    cutoff = layout.ms((time.time() if now is None else now) - older_than)
    conn = connect(path)
    try:
        migrate(conn)
        n = 0
        with conn:
            for (vehicle,) in conn.execute("SELECT id FROM vins").fetchall():
                n += conn.execute(  # per vehicle: a range of the primary key, not a table scan
                    f"DELETE FROM {layout.TABLE} WHERE vehicle = ? AND ts_ms < ?",
                    (vehicle, cutoff),
                ).rowcount
        conn.execute("PRAGMA incremental_vacuum")
        return n
    finally:
        conn.close()
