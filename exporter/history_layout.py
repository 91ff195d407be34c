"""The history's compact on-disk layout (schema version 2) and the ``samples`` view over it.

Why a second layout: version 1 stored one REAL per signal, a 17-character VIN twice (row and key index)
and TEXT enums: 262 bytes per car report, 44 KB per vehicle-day (docs/BENCHMARKS.md §4). SQLite stores
a small integer in 0-4 bytes but a REAL with a fraction in 8, and every column costs a header byte even
when NULL. So ``sample_data`` keeps every number as an integer count of the resolution the signal
table declares (``Signal.step``), enum states as their index, the car's time as integer milliseconds
and ``received_at`` as milliseconds after it, the VIN as a small vehicle id (``vins``), all booleans
as base-3 digits of one ``flags`` integer (0 unknown, 1 false, 2 true), and is ``WITHOUT ROWID`` so
the (vehicle, ts) key *is* the table.

Readers never see any of that: the ``samples`` view has exactly the version-1 columns, in order, in SI
units with enums as strings, and ``INSTEAD OF`` triggers let tools insert, update and delete through
it. ``sample_columns`` records how each stored value is encoded (step, states, flag digit), so a later
change in ``exporter/signals.py`` re-encodes what is stored instead of silently re-reading it at a new
scale, and a new boolean takes the next free digit (old rows read NULL for it, as for a new column).
Nothing that reaches a row is lost: an unknown enum state or source is kept as its string (those
columns are ``ANY``); only a number no 64-bit integer holds at its resolution (inf; NaN, which SQLite
never stores) becomes NULL, "unknown".
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from exporter.signals import SIGNALS, Kind, Signal
from exporter.snapshot import Snapshot

log = logging.getLogger(__name__)

# The view's columns: exactly version 1's table, in order.
BASE_COLUMNS: Final = ("vin", "ts", "received_at", "provider", "source")
SIGNAL_COLUMNS: Final = tuple(s.name for s in SIGNALS)
VIEW_COLUMNS: Final = BASE_COLUMNS + SIGNAL_COLUMNS

TABLE: Final = "sample_data"
VIEW: Final = "samples"
TRIGGERS: Final = ("samples_insert", "samples_update", "samples_delete")
KEY_COLUMNS: Final = ("vehicle", "ts_ms", "received_delay_ms", "source")
SOURCES: Final = ("poll", "webhook", "command")  # stored by index: append, never reorder
_SOURCE_CODE: Final = {s: i for i, s in enumerate(SOURCES)}
LIMIT: Final = 9.2e18  # a scaled value must stay inside SQLite's 64-bit integers
FLAG_DIGITS: Final = 39  # base-3 digits per flags column: 3**39 < 2**63 < 3**40


def flag_column(flag: int) -> str:
    group = flag // FLAG_DIGITS
    return "flags" if group == 0 else f"flags_{group + 1}"


@dataclass(frozen=True, slots=True)
class Encoding:
    """How one signal is stored (a row of ``sample_columns``)."""

    kind: str  # a Kind value, or "raw" for a version-1 column no signal describes any more
    step: float | None = None  # number: value = stored * step
    states: tuple[str, ...] | None = None  # enum: value = states[stored]
    flag: int | None = None  # bool: base-3 digit in flag_column(flag)

    @staticmethod
    def of(sig: Signal, flag: int | None = None) -> Encoding:
        if sig.kind is Kind.ENUM:
            return Encoding(sig.kind.value, states=sig.states)
        if sig.kind is Kind.NUMBER:
            return Encoding(sig.kind.value, step=sig.step)
        if sig.kind is Kind.BOOL:
            return Encoding(sig.kind.value, flag=flag)
        return Encoding(sig.kind.value)  # timestamp: always milliseconds after the row's time

    @property
    def column(self) -> str | None:
        """Name of the physical column holding the value, unless it is the signal's own."""
        return flag_column(self.flag) if self.flag is not None else None

    @property
    def column_type(self) -> str:
        # ANY keeps an unknown state (or a column of unknown meaning) as given instead of refusing it
        return "ANY" if self.kind in ("enum", "raw") else "INTEGER"

    @property
    def scale(self) -> tuple[float, float]:
        """(multiplier, divisor), one of them 1: stored = round(value * m / d); exact to invert."""
        step = self.step or 1.0
        return (float(round(1 / step)), 1.0) if step < 1 else (1.0, float(step))


# --- SQL expressions --------------------------------------------------------------------------------


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def ms_sql(expr: str) -> str:
    return f"CAST(round(({expr}) * 1000.0) AS INTEGER)"


def _to_int(scaled: str) -> str:
    """round() to an INTEGER; NULL when it does not fit (inf) - the writer does the same."""
    return f"CASE WHEN abs({scaled}) < {LIMIT!r} THEN CAST(round({scaled}) AS INTEGER) END"


def _case(expr: str, pairs: Iterable[tuple[str, str]]) -> str:
    whens = " ".join(f"WHEN {a} THEN {b}" for a, b in pairs)
    return f"CASE {expr} {whens} ELSE {expr} END" if whens else expr


def encode_sql(enc: Encoding, expr: str, ts_ms: str) -> str:
    """SQL turning the SI value ``expr`` into what is stored (for a bool: its term of the flags sum;
    ``ts_ms``: the row's stored time)."""
    if enc.kind == "number":
        m, d = enc.scale
        # the writer's float operation exactly (x * m or x / d), so both round alike
        return _to_int(f"({expr}) * {m!r}" if d == 1 else f"({expr}) / {d!r}")
    if enc.kind == "timestamp":
        return f"({_to_int(f'({expr}) * 1000.0')}) - {ts_ms}"
    if enc.kind == "enum":
        return _case(expr, ((_lit(s), str(i)) for i, s in enumerate(enc.states or ())))
    if enc.kind == "bool":
        p = 3 ** ((enc.flag or 0) % FLAG_DIGITS)
        return f"(CASE WHEN {expr} IS NULL THEN 0 WHEN {expr} THEN {2 * p} ELSE {p} END)"
    return expr


def decode_sql(enc: Encoding, col: str, ts_ms: str) -> str:
    """SQL turning the stored ``col`` back into the SI value version 1 stored (for a bool ``col`` is
    its flags column)."""
    if enc.kind == "number":
        m, d = enc.scale
        return f"{col} / {m!r}" if d == 1 else f"{col} * {d!r}"
    if enc.kind == "timestamp":
        return f"({ts_ms} + {col}) / 1000.0"
    if enc.kind == "enum":
        return _case(col, ((str(i), _lit(s)) for i, s in enumerate(enc.states or ())))
    if enc.kind == "bool":
        p = 3 ** ((enc.flag or 0) % FLAG_DIGITS)
        digit = f"{col} / {p} % 3" if p > 1 else f"{col} % 3"
        return f"CASE {digit} WHEN 1 THEN 0 WHEN 2 THEN 1 END"
    return col


def _source_encode(expr: str) -> str:
    return _case(f"coalesce({expr}, 'poll')", ((_lit(s), str(i)) for i, s in enumerate(SOURCES)))


def _source_decode(col: str) -> str:
    return _case(col, ((str(i), _lit(s)) for i, s in enumerate(SOURCES)))


def stored_exprs(
    columns: Sequence[tuple[str, Encoding]], value: Callable[[str], str], ts_ms: str
) -> list[tuple[str, str]]:
    """(physical column, SQL) for every stored column but the key, from SI values ``value(name)``:
    what the migration selects, the insert trigger inserts and the update trigger sets."""
    out: list[tuple[str, str]] = []
    flags: dict[str, list[str]] = {}
    for name, enc in columns:
        sql = encode_sql(enc, value(name), ts_ms)
        if enc.column is not None:
            flags.setdefault(enc.column, []).append(sql)
        else:
            out.append((name, sql))
    out += [(col, " + ".join(terms)) for col, terms in flags.items()]
    return out


# --- the writer's row, built in Python ----------------------------------------------------------------


def ms(t: float) -> int:
    """Unix seconds -> integer milliseconds (the stored time); ValueError for a non-finite time."""
    x = float(t) * 1000.0
    if not -LIMIT < x < LIMIT:
        raise ValueError(f"not a storable time: {t!r}")
    # SQLite's round(): half away from zero, so the writer and the triggers agree on ties
    return int(x + 0.5) if x >= 0 else -int(0.5 - x)


def first_ms(t: float) -> int:
    """The least stored millisecond whose ``ts`` (ms / 1000.0, as the view computes it) is >= t,
    so a range on the key selects exactly the rows ``ts >= t`` on the view would."""
    if not -LIMIT < t * 1000.0 < LIMIT:
        return -(2**62) if t < 0 else 2**62
    k = math.floor(t * 1000.0) - 1
    while k / 1000.0 < t:
        k += 1
    return k


def last_ms(t: float) -> int:
    """The greatest stored millisecond whose ``ts`` is <= t."""
    if not -LIMIT < t * 1000.0 < LIMIT:
        return -(2**62) if t < 0 else 2**62
    k = math.ceil(t * 1000.0) + 1
    while k / 1000.0 > t:
        k -= 1
    return k


_dropped: set[str] = set()


def _unstorable(name: str) -> None:
    if name not in _dropped:  # a parser bug, not a measurement: say so once
        _dropped.add(name)
        log.warning("history: value not storable, kept as NULL", extra={"signal": name})


@dataclass(frozen=True)
class Plan:
    mul: list[tuple[str, int, float]]  # value = stored / f
    div: list[tuple[str, int, float]]  # value = stored * f
    bools: dict[int, list[tuple[str, int]]]  # flags column -> (name, 3**digit)
    enums: list[tuple[str, int, dict[str, int]]]  # value = states[stored], or the stored string
    timestamps: list[tuple[str, int]]  # value = (ts_ms + stored) / 1000


class Codec:
    """Builds the stored row of a Snapshot for one file's encodings (and decodes it again in Python).

    ``row`` is the writer's hot path (once per car report, on the event loop), so it walks fixed
    per-kind lists with the rounding inlined rather than dispatching per value.
    """

    def __init__(self, encodings: Mapping[str, Encoding]) -> None:
        self.encodings = {s.name: encodings[s.name] for s in SIGNALS}
        own = [n for n, e in self.encodings.items() if e.column is None]
        flags = sorted({e.column for e in self.encodings.values() if e.column is not None})
        # the physical columns a row fills, in order; the row holds (vin, provider) for "vehicle"
        self.columns: tuple[str, ...] = (*KEY_COLUMNS, *own, *flags)
        self.insert_sql = (
            f"INSERT OR IGNORE INTO {TABLE} ({', '.join(_q(c) for c in self.columns)}) "
            f"VALUES ({', '.join('?' for _ in self.columns)})"
        )
        index = {c: i for i, c in enumerate(self.columns)}
        self._width = len(self.columns)
        self._mul: list[tuple[str, int, float]] = []  # stored = round(value * f)
        self._div: list[tuple[str, int, float]] = []  # stored = round(value / f)
        self._ts: list[tuple[str, int]] = []  # stored = ms(value) - ts_ms
        self._enum: list[tuple[str, int, dict[str, int]]] = []  # stored = index, or the string
        self._bool: dict[int, list[tuple[str, int]]] = {}  # flags column -> (name, 3**digit)
        for name, e in self.encodings.items():
            if e.kind == "bool":
                col = index[flag_column(e.flag or 0)]
                self._bool.setdefault(col, []).append((name, 3 ** ((e.flag or 0) % FLAG_DIGITS)))
            elif e.kind == "enum":
                self._enum.append((name, index[name], {s: i for i, s in enumerate(e.states or ())}))
            elif e.kind == "timestamp":
                self._ts.append((name, index[name]))
            else:
                m, d = e.scale
                if d == 1:
                    self._mul.append((name, index[name], m))
                else:
                    self._div.append((name, index[name], d))

    def row(self, snap: Snapshot) -> list[Any]:
        """[(vin, provider), ts_ms, received_delay_ms, source, *stored values]: ``columns``' values
        once the writer has replaced the key with the vehicle id."""
        ts = ms(snap.car_time)
        out: list[Any] = [None] * self._width
        out[0] = (snap.vin, snap.provider)
        out[1] = ts
        out[2] = ms(snap.received_at) - ts
        out[3] = _SOURCE_CODE.get(snap.source, snap.source)
        get = snap.values.get
        for name, i, f in self._mul:
            v = get(name)
            if v is not None:
                x = v * f  # type: ignore[operator]
                if -LIMIT < x < LIMIT:
                    out[i] = int(x + 0.5) if x >= 0 else -int(0.5 - x)  # == SQLite's round()
                else:
                    _unstorable(name)
        for name, i, f in self._div:
            v = get(name)
            if v is not None:
                x = v / f  # type: ignore[operator]
                if -LIMIT < x < LIMIT:
                    out[i] = int(x + 0.5) if x >= 0 else -int(0.5 - x)
                else:
                    _unstorable(name)
        for col, bools in self._bool.items():
            flags = 0
            for name, p in bools:
                v = get(name)
                if v is not None:
                    flags += p + p if v else p
            out[col] = flags
        for name, i, codes in self._enum:
            v = get(name)
            if v is not None:
                out[i] = codes.get(v, v) if isinstance(v, str) else v
        for name, i in self._ts:
            v = get(name)
            if v is not None:
                x = v * 1000.0  # type: ignore[operator]
                if -LIMIT < x < LIMIT:
                    out[i] = (int(x + 0.5) if x >= 0 else -int(0.5 - x)) - ts
                else:
                    _unstorable(name)
        return out

    def plan(self) -> Plan:
        """Where each signal sits in a ``row()`` and how it is scaled, per kind (for writers that
        decode rows in bulk, as the PostgreSQL one does)."""
        return Plan(self._mul, self._div, self._bool, self._enum, self._ts)

    def decode(self, row: Sequence[Any]) -> tuple[Any, ...]:
        """A ``row()`` as the ``samples`` view reads it back (version 1's columns), in Python."""
        (vin, provider), ts, delay, src = row[:4]
        out: list[Any] = [vin, ts / 1000.0, (ts + delay) / 1000.0, provider]
        out.append(SOURCES[src] if isinstance(src, int) and 0 <= src < len(SOURCES) else src)
        value: dict[str, Any] = {}
        for name, i, f in self._mul:
            value[name] = None if row[i] is None else row[i] / f
        for name, i, f in self._div:
            value[name] = None if row[i] is None else row[i] * f
        for col, bools in self._bool.items():
            for name, p in bools:
                digit = row[col] // p % 3
                value[name] = None if digit == 0 else digit - 1
        for name, i, codes in self._enum:
            states = list(codes)
            v = row[i]
            value[name] = states[v] if isinstance(v, int) and 0 <= v < len(states) else v
        for name, i in self._ts:
            value[name] = None if row[i] is None else (ts + row[i]) / 1000.0
        out += [value[s.name] for s in SIGNALS]
        return tuple(out)


def fresh_encodings() -> dict[str, Encoding]:
    """The encodings a new file gets: the signal table's, booleans numbered in table order."""
    bools = iter(range(len(SIGNALS)))
    return {s.name: Encoding.of(s, next(bools) if s.kind is Kind.BOOL else None) for s in SIGNALS}


DEFAULT_CODEC: Final = Codec(fresh_encodings())


def stored_row(snap: Snapshot) -> tuple[Any, ...]:
    """The ``samples`` row ``snap`` reads back as: version 1's columns, values at their resolution."""
    return DEFAULT_CODEC.decode(DEFAULT_CODEC.row(snap))


# --- schema -----------------------------------------------------------------------------------------

# Before a batch is inserted: a row older than the vehicle's newest stored row is "late"; remember
# the earliest such time so ``analysis.derive`` re-derives from there (it used to compare rowids).
MARK_LATE_SQL: Final = (
    "UPDATE vins SET changed_since = min(coalesce(changed_since, ?1), ?1), "
    "late_writes = late_writes + 1 "
    f"WHERE id = ?2 AND ?1 < (SELECT max(ts_ms) FROM {TABLE} WHERE vehicle = ?2)"
)


def create_tables(conn: sqlite3.Connection, extra: Sequence[str] = ()) -> None:
    """The version-2 tables for the current signals plus ``extra`` (old columns kept as they are)."""
    conn.execute(
        """CREATE TABLE IF NOT EXISTS vins (
  id INTEGER PRIMARY KEY,
  vin TEXT NOT NULL,
  provider TEXT NOT NULL,
  changed_since INTEGER,
  late_writes INTEGER NOT NULL DEFAULT 0,
  UNIQUE (vin, provider)
) STRICT"""
    )
    conn.execute(
        """CREATE TABLE IF NOT EXISTS sample_columns (
  name TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  step REAL,
  states TEXT,
  flag INTEGER
) STRICT"""
    )
    encs = fresh_encodings() | {c: Encoding("raw") for c in extra}
    own = [f"{_q(n)} {e.column_type}" for n, e in encs.items() if e.column is None]
    flags = sorted({e.column for e in encs.values() if e.column is not None})
    own += [f"{_q(c)} INTEGER NOT NULL DEFAULT 0" for c in flags]
    cols = ",\n  ".join(own)
    conn.execute(
        f"""CREATE TABLE IF NOT EXISTS {TABLE} (
  vehicle INTEGER NOT NULL,
  ts_ms INTEGER NOT NULL,
  received_delay_ms INTEGER NOT NULL,
  source ANY NOT NULL DEFAULT 0,
  {cols},
  PRIMARY KEY (vehicle, ts_ms)
) STRICT, WITHOUT ROWID"""
    )
    for name, enc in encs.items():
        _record(conn, name, enc)


# The car's own trip log (a cloud's trip journal, e.g. smart's journalLogV4), one row per trip the car
# recorded, keyed by the cloud's trip id so a re-fetch updates instead of duplicating. SI units as in
# ``samples`` (s, m, m/s), energy in kWh; ``route`` is the trip's track as an encoded polyline
# (``exporter.polyline``), NULL until its trackpoints were read, '' when the cloud has none.
JOURNAL_TABLE: Final = "journal_trips"
JOURNAL_COLUMNS: Final = (
    ("vin", "TEXT NOT NULL"),
    ("provider", "TEXT NOT NULL"),
    ("trip_id", "TEXT NOT NULL"),
    ("start_ts", "REAL NOT NULL"),
    ("end_ts", "REAL NOT NULL"),
    ("start_odometer_m", "REAL"),
    ("end_odometer_m", "REAL"),
    ("distance_m", "REAL"),
    ("avg_speed_mps", "REAL"),
    ("energy_kwh", "REAL"),
    ("regen_kwh", "REAL"),
    ("start_latitude", "REAL"),
    ("start_longitude", "REAL"),
    ("end_latitude", "REAL"),
    ("end_longitude", "REAL"),
    ("start_address", "TEXT"),
    ("end_address", "TEXT"),
    ("route", "TEXT"),
    ("route_points", "INTEGER"),
    ("fetched_at", "REAL NOT NULL"),
)
JOURNAL_KEY: Final = ("vin", "trip_id")


def create_journal_table(conn: sqlite3.Connection) -> None:
    cols = ",\n  ".join(f"{_q(n)} {t}" for n, t in JOURNAL_COLUMNS)
    conn.execute(
        f"""CREATE TABLE IF NOT EXISTS {JOURNAL_TABLE} (
  {cols},
  PRIMARY KEY ({", ".join(JOURNAL_KEY)})
) STRICT"""
    )
    conn.execute(
        f"CREATE INDEX IF NOT EXISTS {JOURNAL_TABLE}_start ON {JOURNAL_TABLE} (vin, start_ts)"
    )


# A re-fetched trip replaces what the cloud may have corrected (addresses arrive late); a route once
# read is kept when the new row has none (track calls are made once per trip).
JOURNAL_KEPT: Final = ("route", "route_points", "start_address", "end_address")


def journal_upsert_sql(placeholder: str = "?", stored: str = "") -> str:
    """``journal_trips``' upsert in either dialect: ``placeholder`` is the driver's parameter mark,
    ``stored`` what names the stored row's columns (PostgreSQL calls an unqualified column in
    ``DO UPDATE SET`` ambiguous, SQLite reads it as the stored row)."""
    return (
        f"INSERT INTO {JOURNAL_TABLE} ({', '.join(_q(n) for n, _ in JOURNAL_COLUMNS)}) "
        f"VALUES ({', '.join(placeholder for _ in JOURNAL_COLUMNS)}) "
        f"ON CONFLICT ({', '.join(JOURNAL_KEY)}) DO UPDATE SET "
        + ", ".join(
            f"{_q(n)} = coalesce(excluded.{_q(n)}, {stored}{_q(n)})"
            if n in JOURNAL_KEPT
            else f"{_q(n)} = excluded.{_q(n)}"
            for n, _ in JOURNAL_COLUMNS
            if n not in JOURNAL_KEY
        )
    )


JOURNAL_UPSERT_SQL: Final = journal_upsert_sql()
# what a journal read needs to know (``HistoryWriter.journal_known``), in either dialect with the
# parameter mark swapped: the newest trip's start and the oldest un-routed one's since a time,
# then the trips whose route is stored
JOURNAL_KNOWN_SQL: Final = (
    "SELECT max(start_ts), min(CASE WHEN route IS NULL AND start_ts >= ? THEN start_ts END) "
    f"FROM {JOURNAL_TABLE} WHERE vin = ?"
)
JOURNAL_ROUTED_SQL: Final = (
    f"SELECT trip_id FROM {JOURNAL_TABLE} WHERE vin = ? AND route IS NOT NULL"
)


def _record(conn: sqlite3.Connection, name: str, enc: Encoding) -> None:
    states = json.dumps(list(enc.states)) if enc.states is not None else None
    conn.execute(
        "INSERT INTO sample_columns VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
        "kind = excluded.kind, step = excluded.step, states = excluded.states, "
        "flag = excluded.flag",
        (name, enc.kind, enc.step, states, enc.flag),
    )


def encodings(conn: sqlite3.Connection) -> dict[str, Encoding]:
    """What ``sample_columns`` says each stored signal holds, in the file's column order."""
    return {
        name: Encoding(kind, step, tuple(json.loads(states)) if states is not None else None, flag)
        for name, kind, step, states, flag in conn.execute(
            "SELECT name, kind, step, states, flag FROM sample_columns ORDER BY rowid"
        )
    }


def convert_v1(conn: sqlite3.Connection) -> None:
    """Copy a version-1 ``samples`` table into the compact layout and drop it (in the caller's
    transaction). Columns no signal describes any more are kept as they were (``raw``)."""
    old = [r[1] for r in conn.execute(f"PRAGMA table_info({VIEW})")]
    extra = [c for c in old if c not in BASE_COLUMNS and c not in SIGNAL_COLUMNS]
    create_tables(conn, extra)
    # Every vehicle counts as changed from its first sample: analysis.derive kept its place with
    # rowids, which the new table has not, so its next run re-derives each vehicle once.
    conn.execute(
        "INSERT INTO vins (vin, provider, changed_since, late_writes) "
        f"SELECT vin, provider, {ms_sql('min(ts)')}, 1 FROM {VIEW} "
        "GROUP BY vin, provider ORDER BY vin, provider"
    )
    ts = ms_sql("s.ts")
    have = set(old)
    columns = list(encodings(conn).items())
    pairs = [
        ("vehicle", "v.id"),
        ("ts_ms", ts),
        ("received_delay_ms", f"{ms_sql('s.received_at')} - {ts}"),
        ("source", _source_encode("s.source")),
        *stored_exprs(columns, lambda n: f"s.{_q(n)}" if n in have else "NULL", ts),
    ]
    before = conn.execute(f"SELECT count(*) FROM {VIEW}").fetchone()[0]
    cur = conn.execute(
        f"INSERT OR IGNORE INTO {TABLE} ({', '.join(_q(c) for c, _ in pairs)}) "
        f"SELECT {', '.join(e for _, e in pairs)} FROM {VIEW} AS s "
        "JOIN vins AS v ON v.vin = s.vin AND v.provider = s.provider ORDER BY v.id, s.ts"
    )
    if cur.rowcount != before:  # only reports less than a millisecond apart can collide
        log.warning(
            "history upgrade merged reports less than 1 ms apart",
            extra={"rows": before, "kept": cur.rowcount},
        )
    conn.execute(f"DROP TABLE {VIEW}")
    sync(conn)


def sync(conn: sqlite3.Connection) -> list[str]:
    """Make what is stored match ``exporter.signals`` and (re)create the view and its triggers.

    A new signal gets a column (a boolean: the next flags digit); a signal whose resolution or states
    changed has its stored values re-encoded; the view is rebuilt only when its SQL changed (a
    rebuild makes every other connection re-prepare). Returns what changed, for the log. Runs in the
    caller's transaction.
    """
    stored = encodings(conn)
    physical = [r[1] for r in conn.execute(f"PRAGMA table_info({TABLE})")]
    flags = [e.flag for e in stored.values() if e.flag is not None]
    next_flag = max(flags) + 1 if flags else 0
    changes: list[str] = []
    for sig in SIGNALS:
        have = stored.get(sig.name)
        if have is None:
            want = Encoding.of(sig, next_flag if sig.kind is Kind.BOOL else None)
            next_flag += want.flag is not None
            col = want.column or sig.name
            if col not in physical:
                default = " NOT NULL DEFAULT 0" if want.column else ""
                conn.execute(
                    f"ALTER TABLE {TABLE} ADD COLUMN {_q(col)} {want.column_type}{default}"
                )
                physical.append(col)
            changes.append(f"added {sig.name}")
        else:
            want = Encoding.of(sig, have.flag)
            if have != want:
                _reencode(conn, sig.name, have, want)
                changes.append(f"re-encoded {sig.name}")
        if have != want:
            _record(conn, sig.name, want)
            stored[sig.name] = want
    columns = [(s.name, stored[s.name]) for s in SIGNALS]
    columns += [(n, e) for n, e in stored.items() if n not in SIGNAL_COLUMNS]
    wanted = schema_sql(columns)
    have_sql = dict(
        conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE name IN (?, ?, ?, ?)", (VIEW, *TRIGGERS)
        ).fetchall()
    )
    if have_sql != wanted:
        conn.execute(f"DROP VIEW IF EXISTS {VIEW}")  # drops its triggers too
        for name in (VIEW, *TRIGGERS):
            conn.execute(wanted[name])
        changes.append("view rebuilt")
    return changes


def _reencode(conn: sqlite3.Connection, name: str, have: Encoding, want: Encoding) -> None:
    declared = {r[1]: r[2] for r in conn.execute(f"PRAGMA table_info({TABLE})")}.get(name)
    moved = have.kind != want.kind and "bool" in (have.kind, want.kind)  # own column <-> flags
    if moved or (declared != "ANY" and want.column_type == "ANY"):
        raise RuntimeError(
            f"history column {name!r} changed from {have.kind} to {want.kind}; the stored values "
            "cannot follow. Give the signal a new name instead."
        )
    col = _q(name)
    conn.execute(
        f"UPDATE {TABLE} SET {col} = {encode_sql(want, decode_sql(have, col, 'ts_ms'), 'ts_ms')} "
        f"WHERE {col} IS NOT NULL"
    )


def codec(conn: sqlite3.Connection) -> Codec:
    """The row builder for this (synced) file."""
    return Codec(encodings(conn))


def schema_sql(columns: Sequence[tuple[str, Encoding]]) -> dict[str, str]:
    """CREATE statements of the view and its three triggers, keyed by name."""
    select = [
        "v.vin AS vin",
        "d.ts_ms / 1000.0 AS ts",
        "(d.ts_ms + d.received_delay_ms) / 1000.0 AS received_at",
        "v.provider AS provider",
        f"{_source_decode('d.source')} AS source",
    ]
    select += [
        f"{decode_sql(e, 'd.' + _q(e.column or n), 'd.ts_ms')} AS {_q(n)}" for n, e in columns
    ]
    view = (
        f"CREATE VIEW {VIEW} AS SELECT\n  "
        + ",\n  ".join(select)
        + f"\nFROM {TABLE} AS d JOIN vins AS v ON v.id = d.vehicle"
    )
    ts = ms_sql("NEW.ts")
    pairs = [
        ("vehicle", "(SELECT id FROM vins WHERE vin = NEW.vin AND provider = NEW.provider)"),
        ("ts_ms", ts),
        ("received_delay_ms", f"{ms_sql('NEW.received_at')} - {ts}"),
        ("source", _source_encode("NEW.source")),
        *stored_exprs(columns, lambda n: f"NEW.{_q(n)}", ts),
    ]
    # A NOT EXISTS guard, not INSERT OR IGNORE: an outer INSERT OR REPLACE would turn that into a
    # REPLACE, giving the vehicle a new id and orphaning its rows.
    insert = f"""CREATE TRIGGER samples_insert INSTEAD OF INSERT ON {VIEW} BEGIN
  INSERT INTO vins (vin, provider) SELECT NEW.vin, NEW.provider
    WHERE NOT EXISTS (SELECT 1 FROM vins WHERE vin = NEW.vin AND provider = NEW.provider);
  UPDATE vins SET changed_since = min(coalesce(changed_since, {ts}), {ts}),
    late_writes = late_writes + 1
    WHERE vin = NEW.vin AND provider = NEW.provider
      AND {ts} < (SELECT max(ts_ms) FROM {TABLE} WHERE vehicle = vins.id);
  INSERT INTO {TABLE} ({", ".join(_q(c) for c, _ in pairs)})
    VALUES ({", ".join(e for _, e in pairs)});
END"""
    old_vehicle = "(SELECT id FROM vins WHERE vin = OLD.vin AND provider = OLD.provider)"
    where = f"WHERE vehicle = {old_vehicle} AND ts_ms = {ms_sql('OLD.ts')}"
    sets = [
        ("received_delay_ms", f"{ms_sql('NEW.received_at')} - ts_ms"),
        ("source", _source_encode("NEW.source")),
        *stored_exprs(columns, lambda n: f"NEW.{_q(n)}", "ts_ms"),
    ]
    update = f"""CREATE TRIGGER samples_update INSTEAD OF UPDATE ON {VIEW} BEGIN
  SELECT RAISE(ABORT, 'samples: vin, provider and ts identify a report; delete and insert it')
    WHERE NEW.vin IS NOT OLD.vin OR NEW.provider IS NOT OLD.provider OR NEW.ts IS NOT OLD.ts;
  UPDATE {TABLE} SET {", ".join(f"{_q(c)} = {e}" for c, e in sets)}
    {where};
END"""
    delete = f"""CREATE TRIGGER samples_delete INSTEAD OF DELETE ON {VIEW} BEGIN
  DELETE FROM {TABLE} {where};
END"""
    return {
        VIEW: view,
        "samples_insert": insert,
        "samples_update": update,
        "samples_delete": delete,
    }
