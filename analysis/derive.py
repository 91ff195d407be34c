"""``carmetrics db derive``: materialise trips and charging sessions as tables in the history file.

Grafana's SQL panels and ad-hoc SQL then read a few thousand session rows instead of scanning years
of samples (TeslaMate's slow dashboards came from scanning ``positions``, logger-anchors §4).

Incremental and idempotent. Per vehicle, rows of earlier runs are final except the last trip and the
last charging session (either may still grow). Each run deletes those, re-reads samples from the
first sample they were built on (``first_sample_ts``: the start anchor, so back-filled starts come
out the same) and detects again on that window, so running it twice changes nothing and running it
after every poll or once a month gives the same tables. Samples that arrive late (``ts`` older than
what was already derived) widen the window back to the session they fall into: the history's writer
(and the ``samples`` insert trigger) marks the earliest such time per vehicle in ``vins``, and a run
clears the mark it has handled unless more late rows came meanwhile (a version-1 file, not upgraded
yet, is compared by rowid instead). A change of detector version or of the settings that shape
results (capacity, timezone, thresholds) rebuilds that vehicle. Raw samples removed by retention are
never needed again: rows older than the oldest sample are kept as they are.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, cast

import numpy as np
import pandas as pd
import sqlite_utils

from exporter import history_layout as layout
from exporter.dbtarget import PgTarget

from .charges import CHARGE_COLUMNS
from .charges import detect as detect_charges
from .load import columns_of, read_samples
from .prep import prepare
from .settings import Settings
from .trips import TRIP_COLUMNS
from .trips import detect as detect_trips

VERSION: Final = 2  # bump when detection changes, so derived tables are rebuilt (2: places, costs)

_TEXT: Final = {
    "vin",
    "start_local",
    "end_local",
    "kind",
    "start_place",
    "end_place",
    "place",
    "currency",
}
_INT: Final = {"samples", "inferred", "ongoing", "unseen"}
TABLES: Final = {
    "trips": TRIP_COLUMNS,
    "charging_sessions": CHARGE_COLUMNS,
}
EXTRA: Final = ("first_sample_ts", "last_sample_ts")


_KEY: Final = ("vin", "start_ts")
_NOT_NULL: Final = {"vin", "start_ts", "end_ts"}
STATE_COLUMNS: Final[dict[str, type]] = {
    "vin": str,
    "version": int,
    "fingerprint": str,
    "max_rowid": int,
    "max_ts": float,
    "derived_at": float,
}


def _types(columns: Iterable[str]) -> dict[str, type]:
    return {c: str if c in _TEXT else int if c in _INT else float for c in (*columns, *EXTRA)}


def _database(conn: sqlite3.Connection) -> sqlite_utils.Database:
    # No plugins and no recursive triggers: the history's own INSTEAD OF triggers on ``samples``
    # must behave exactly as they do for the exporter's writer.
    return sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)


@dataclass(frozen=True)
class DeriveResult:
    vin: str
    samples_read: int
    trips_written: int
    sessions_written: int
    rebuilt: bool


def fingerprint(settings: Settings, vin: str, capacity: float) -> str:
    """A short hash of everything that shapes this vehicle's derived rows."""
    d = asdict(settings)
    d["timezone"] = str(settings.tz(vin))
    d["timezones"] = {}
    d["capacity_kwh"] = capacity
    blob = json.dumps(d, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob + str(VERSION).encode()).hexdigest()[:16]


def _connect(db_path: Path | str) -> sqlite3.Connection:
    path = Path(db_path)
    if not path.exists():
        raise FileNotFoundError(f"history database {path} does not exist")
    conn = sqlite3.connect(str(path), timeout=10.0)
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the derived tables, or reshape them when an older carmetrics made them with other
    columns: sqlite-utils' ``transform`` adds, drops, retypes and reorders columns in place, so
    rows older than the oldest sample (whose samples retention removed) are kept; every vehicle's
    derive state is then cleared, so this run rebuilds all rows it still has samples for and the
    new columns get values. An up-to-date table is left alone."""
    db = _database(conn)
    reshaped = False
    for table, cols in TABLES.items():
        t, types = db.table(table), _types(cols)
        have = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
        reshaped |= bool(have) and have != list(types)
        t.create(
            types,
            pk=_KEY,
            not_null=_NOT_NULL,
            column_order=list(types),  # documented order (docs/ANALYSIS.md), new columns in place
            strict=True,
            transform=True,
        )
        t.create_index(["vin", "end_ts"], index_name=f"{table}_vin_end", if_not_exists=True)
    state = db.table("derive_state")
    state.create(STATE_COLUMNS, pk="vin", not_null=set(STATE_COLUMNS), strict=True, transform=True)
    if reshaped:
        conn.execute("DELETE FROM derive_state")
    conn.commit()


def derive(
    db_path: Path | str | PgTarget,
    settings: Settings | None = None,
    *,
    vin: str | None = None,
    rebuild: bool = False,
    progress: Callable[[Iterable[str]], Iterable[str]] | None = None,
) -> list[DeriveResult]:
    """Bring the ``trips`` and ``charging_sessions`` tables up to date; returns what was done."""
    s = settings or Settings()
    if isinstance(db_path, PgTarget):
        from .pg_derive import PgStore

        store: Store = PgStore(db_path)
    else:
        store = _Store(_connect(db_path))
    try:
        store.ensure_schema()
        chosen = [v for v in store.vins() if vin is None or v == vin]
        iterator = progress(chosen) if progress is not None else chosen
        return [_derive_vin(store, v, s, rebuild) for v in iterator]
    finally:
        store.close()


class Store:
    """The questions derive asks of a history, and the writes it makes: SQL common to both
    backends lives here (``?`` placeholders; ``_sql`` adapts them), what differs is overridden."""

    conn: Any

    def _sql(self, sql: str) -> str:
        return sql

    def one(self, sql: str, params: Sequence[object] = ()) -> Any:
        return self.conn.execute(self._sql(sql), params).fetchone()

    def all(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        return list(self.conn.execute(self._sql(sql), params).fetchall())

    def run(self, sql: str, params: Sequence[object] = ()) -> None:
        self.conn.execute(self._sql(sql), params)

    def many(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        self.conn.executemany(self._sql(sql), rows)

    def transaction(self) -> AbstractContextManager[Any]:
        return cast(AbstractContextManager[Any], self.conn)

    def close(self) -> None:
        self.conn.close()

    # --- per backend ------------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        raise NotImplementedError

    def vins(self) -> list[str]:
        raise NotImplementedError

    def first(self, vin: str) -> float | None:
        raise NotImplementedError

    def last(self, vin: str) -> float | None:
        raise NotImplementedError

    def last_before(self, vin: str, t: float) -> float | None:
        raise NotImplementedError

    def changes(self, vin: str) -> _Changes:
        raise NotImplementedError

    def late(self, vin: str, ch: _Changes, last_token: int, last_ts: float) -> float | None:
        raise NotImplementedError

    def handled(self, ch: _Changes) -> None:
        raise NotImplementedError

    def read(self, vin: str, since: float | None) -> pd.DataFrame:
        raise NotImplementedError

    def insert(self, table: str, cols: list[str], records: list[tuple[object, ...]]) -> None:
        raise NotImplementedError

    def save_state(self, row: tuple[object, ...]) -> None:
        self.run(
            "INSERT INTO derive_state VALUES (?,?,?,?,?,?) ON CONFLICT(vin) DO UPDATE SET "
            "version=excluded.version, fingerprint=excluded.fingerprint, "
            "max_rowid=excluded.max_rowid, max_ts=excluded.max_ts, derived_at=excluded.derived_at",
            row,
        )

    # --- common -----------------------------------------------------------------------------------
    def vehicle_info(self, vin: str) -> tuple[str | None, str | None]:
        row = self.one("SELECT model, series FROM vehicles WHERE vin = ?", (vin,))
        return (row[0], row[1]) if row else (None, None)


class _Store(Store):
    """The SQLite history: the compact ``sample_data`` (answered by its (vehicle, ts_ms) key,
    never decoding a row) or a version-1 ``samples`` table."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.compact = bool(columns_of(conn, layout.TABLE))

    def ensure_schema(self) -> None:
        ensure_schema(self.conn)

    def vehicle_info(self, vin: str) -> tuple[str | None, str | None]:
        try:
            return super().vehicle_info(vin)
        except sqlite3.OperationalError:
            return None, None

    def read(self, vin: str, since: float | None) -> pd.DataFrame:
        return read_samples(self.conn, vin, since=since)

    def insert(self, table: str, cols: list[str], records: list[tuple[object, ...]]) -> None:
        # Plain executemany: sqlite-utils' insert_all measured ~1.6x slower here (it re-reads the
        # table's shape on each call) for nothing gained; sqlite-utils keeps the schema in shape.
        placeholders = ", ".join("?" for _ in cols)
        names = ", ".join(f'"{c}"' for c in cols)
        self.many(f"INSERT OR REPLACE INTO {table} ({names}) VALUES ({placeholders})", records)

    def vins(self) -> list[str]:
        if self.compact:
            sql = (
                "SELECT DISTINCT vin FROM vins AS v "
                f"WHERE EXISTS (SELECT 1 FROM {layout.TABLE} WHERE vehicle = v.id) ORDER BY vin"
            )
        else:
            sql = "SELECT DISTINCT vin FROM samples ORDER BY vin"
        return [str(r[0]) for r in self.conn.execute(sql)]

    def _ids(self, vin: str) -> list[int]:
        return [int(r[0]) for r in self.conn.execute("SELECT id FROM vins WHERE vin = ?", (vin,))]

    def _ms(self, agg: str, vin: str, below: float | None = None) -> float | None:
        # one query per vehicle id, so SQLite answers min/max from the key alone
        where = "vehicle = ?" + (" AND ts_ms < ?" if below is not None else "")
        got = []
        for vid in self._ids(vin):
            params = (vid,) if below is None else (vid, layout.first_ms(below))
            (v,) = self.conn.execute(
                f"SELECT {agg}(ts_ms) FROM {layout.TABLE} WHERE {where}", params
            ).fetchone()
            if v is not None:
                got.append(int(v))
        if not got:
            return None
        return (min(got) if agg == "min" else max(got)) / 1000.0

    def first(self, vin: str) -> float | None:
        if self.compact:
            return self._ms("min", vin)
        return _opt(self.conn.execute("SELECT min(ts) FROM samples WHERE vin = ?", (vin,)))

    def last(self, vin: str) -> float | None:
        if self.compact:
            return self._ms("max", vin)
        return _opt(self.conn.execute("SELECT max(ts) FROM samples WHERE vin = ?", (vin,)))

    def last_before(self, vin: str, t: float) -> float | None:
        if self.compact:
            return self._ms("max", vin, below=t)
        return _opt(
            self.conn.execute("SELECT max(ts) FROM samples WHERE vin = ? AND ts < ?", (vin, t))
        )

    def changes(self, vin: str) -> _Changes:
        """Where this vehicle's late rows start, read before its samples are."""
        if self.compact:
            marks = self.conn.execute(
                "SELECT id, changed_since, late_writes FROM vins WHERE vin = ?", (vin,)
            ).fetchall()
            since = [int(c) for _, c, _ in marks if c is not None]
            return _Changes(
                token=sum(int(w) for _, _, w in marks),
                late_ms=min(since) if since else None,
                marks=[(int(i), int(w)) for i, _, w in marks],
            )
        (rowid,) = self.conn.execute(
            "SELECT max(rowid) FROM samples WHERE vin = ?", (vin,)
        ).fetchone()
        return _Changes(token=int(rowid or 0), late_ms=None, marks=[])

    def late(self, vin: str, ch: _Changes, last_token: int, last_ts: float) -> float | None:
        """The oldest sample written since the last run that is not newer than what it derived."""
        if self.compact:
            if ch.late_ms is None or ch.late_ms / 1000.0 > last_ts:
                return None
            return ch.late_ms / 1000.0
        return _opt(
            self.conn.execute(
                "SELECT min(ts) FROM samples WHERE vin = ? AND rowid > ? AND ts <= ?",
                (vin, last_token, last_ts),
            )
        )

    def handled(self, ch: _Changes) -> None:
        """Clear the late marks this run has handled, unless more late rows came meanwhile."""
        if not ch.marks:  # a version-1 file has no marks (nor a vins table)
            return
        self.conn.executemany(
            "UPDATE vins SET changed_since = NULL WHERE id = ? AND late_writes = ?", ch.marks
        )


@dataclass(frozen=True)
class _Changes:
    token: int  # stored in derive_state.max_rowid: the rowid (version 1) or late-write count
    late_ms: int | None
    marks: list[tuple[int, int]]  # (vins.id, late_writes) as read


def _opt(cur: sqlite3.Cursor) -> float | None:
    (v,) = cur.fetchone()
    return None if v is None else float(v)


def _derive_vin(store: Store, vin: str, s: Settings, rebuild: bool) -> DeriveResult:
    model, series = store.vehicle_info(vin)
    capacity = s.capacity_for(vin, model, series)
    fp = fingerprint(s, vin, capacity)
    changes = store.changes(vin)
    max_ts = store.last(vin)
    state = store.one(
        "SELECT version, fingerprint, max_rowid, max_ts FROM derive_state WHERE vin = ?", (vin,)
    )
    full = rebuild or state is None or state[0] != VERSION or state[1] != fp
    if full:
        oldest = store.first(vin)
        cut, window = float(oldest if oldest is not None else "-inf"), float("-inf")
    else:
        late = store.late(vin, changes, int(state[2]), float(state[3]))
        cut, window = _window(store, vin, s, last_ts=float(state[3]), late=late)
    df = _read(store, vin, window, model, series)
    p = prepare(df, s)
    new = {
        "trips": detect_trips(p, s),
        "charging_sessions": detect_charges(p, s),
    }
    first = store.first(vin)
    window_is_start = full or not len(df) or (first is not None and p.t[0] <= first)
    written = {}
    with store.transaction():
        for table, cols in TABLES.items():
            store.run(f"DELETE FROM {table} WHERE vin = ? AND start_ts >= ?", (vin, cut))
            rows = new[table]
            # A session cut in half by the window's first sample is a fragment of a final row.
            if not window_is_start and len(rows):
                rows = rows.loc[~((rows["_lo"] == 0) & ~rows["_anchored"].astype(bool))]
            if len(rows):
                rows = rows.assign(
                    first_sample_ts=p.t[rows["_lo"].to_numpy(dtype=np.int64)],
                    last_sample_ts=p.t[rows["_hi"].to_numpy(dtype=np.int64)],
                )
                (kept_end,) = store.one(f"SELECT max(end_ts) FROM {table} WHERE vin = ?", (vin,))
                if kept_end is not None:
                    rows = rows.loc[rows["start_ts"] >= kept_end - 1e-6]
            written[table] = _insert(store, table, [*cols, *EXTRA], rows)
        store.save_state((vin, VERSION, fp, changes.token, float(max_ts or 0.0), time.time()))
        store.handled(changes)
    return DeriveResult(vin, len(df), written["trips"], written["charging_sessions"], full)


def _window(
    store: Store,
    vin: str,
    s: Settings,
    *,
    last_ts: float,
    late: float | None,
) -> tuple[float, float]:
    """(cut, window): rows starting at/after ``cut`` are replaced; samples from ``window`` re-read.

    The last row of a table is still open while it is ongoing or so recent that what comes next
    could join it (a trip within ``stop_merge_s``, a charge within ``merge_pause_s``); open rows are
    redone from their first sample. With nothing open, reading starts one sample before the end of
    the last rows, so only new samples (plus that anchor) are read. ``late``: the oldest sample
    written since the last run at or before ``last_ts``, if any.
    """
    horizon = {"trips": s.stop_merge_s + 60.0, "charging_sessions": s.merge_pause_s}
    starts: list[float] = []
    firsts: list[float] = []
    ends: list[float] = []
    for table in TABLES:
        row = store.one(
            f"SELECT start_ts, end_ts, first_sample_ts, last_sample_ts, ongoing FROM {table} "
            "WHERE vin = ? ORDER BY start_ts DESC LIMIT 1",
            (vin,),
        )
        if row is None:
            continue
        start, end, first, last, ongoing = row
        if ongoing or last_ts - end <= horizon[table]:
            starts.append(start)
            firsts.append(first)
        else:
            ends.append(last)
    if late is not None:
        # Rows the late sample may belong to, or that follow it, are redone from their anchors.
        for table in TABLES:
            row = store.one(
                f"SELECT min(start_ts), min(first_sample_ts) FROM {table} "
                "WHERE vin = ? AND end_ts >= ?",
                (vin, late),
            )
            if row[0] is not None:
                starts.append(row[0])
                firsts.append(row[1])
        before = store.last_before(vin, late)
        starts.append(late)
        firsts.append(before if before is not None else late)
    if starts:
        return float(min(starts)), float(min(firsts))
    if ends:
        before = store.last_before(vin, min(ends))
        return float("inf"), float(before if before is not None else min(ends))
    # Nothing derived yet for this vehicle (it never moved or charged): read everything.
    return float("-inf"), float("-inf")


def _read(
    store: Store, vin: str, since: float, model: str | None, series: str | None
) -> pd.DataFrame:
    df = store.read(vin, since if since > float("-inf") else None)
    df["model"] = model
    df["series"] = series
    return df


def _insert(store: Store, table: str, cols: list[str], rows: pd.DataFrame) -> int:
    if rows.empty:
        return 0
    out = rows[cols].copy()
    for c in cols:
        if c in _INT:
            out[c] = out[c].astype("int64")
    records = [
        tuple(None if (isinstance(v, float) and np.isnan(v)) else _py(v) for v in rec)
        for rec in out.itertuples(index=False, name=None)
    ]
    store.insert(table, cols, records)
    return len(records)


def _py(v: object) -> object:
    if isinstance(v, np.integer | np.bool_):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v
