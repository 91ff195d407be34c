"""Click commands: ``carmetrics trips|charges|drain|efficiency|battery|summary|places|costs|report`` and
``carmetrics db derive``.

``exporter/cli.py`` lists them by name (``ANALYSIS``) and imports this module only when one is used,
so the exporter's own commands never load pandas. They read the history file named by ``--db`` or
the config (``exporter.db``), and the ``[analysis]`` section for capacities and timezones. Work
goes vehicle by vehicle, so memory stays bounded by one vehicle's history and a progress bar (on a
terminal only, on stderr, so piped output stays clean) can show how far a long run got.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
import pandas as pd

from exporter.cli import DB, DB_HELP
from exporter.dbtarget import DbTarget, PgTarget

from .bundle import Analysis
from .derive import derive as derive_tables
from .journal import load_journal
from .load import load, vins
from .output import FORMATS, write
from .settings import Settings, SettingsError

T = TypeVar("T")


@dataclass(frozen=True)
class Context:
    db: DbTarget
    settings: Settings


def _context(config_path: Path | None, db: str | None, tz: str | None = None) -> Context:
    """Config the same way the rest of carmetrics reads it (./config.toml if present)."""
    from exporter.config import ConfigError
    from exporter.config import load as load_config

    path = config_path
    if path is None and Path("config.toml").exists():
        path = Path("config.toml")
    try:
        cfg = load_config(path)  # no file: defaults plus CARMETRICS_* environment overrides
        settings = Settings.from_config(
            cfg.extra.get("analysis"), cfg.extra.get("places"), cfg.extra.get("tariffs")
        )
    except (ConfigError, SettingsError) as exc:
        raise click.ClickException(f"configuration error: {exc}") from None
    if tz is not None:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise click.BadParameter(
                f"{tz!r}: unknown zone; expected an IANA name such as Europe/Berlin",
                param_hint="--tz",
            ) from None
        settings = replace(settings, timezone=tz, timezones={})
    from exporter.cli import db_target

    db_path = db_target(db, cfg) if db is not None else cfg.db
    if isinstance(db_path, PgTarget):
        _check_pg(db_path)
    elif not db_path.exists():
        raise click.ClickException(
            f"history database {db_path} does not exist (run `carmetrics run` first or pass --db)"
        )
    return Context(db_path, settings)


def _check_pg(target: PgTarget) -> None:
    """Reach the database once, so a wrong password or host is one line, not a traceback."""
    from exporter.history import HistoryError

    from .load import pg_connect

    try:
        pg_connect(target).close()
    except HistoryError as exc:
        raise click.ClickException(str(exc)) from None
    except FileNotFoundError as exc:
        raise click.ClickException(f"{exc} (run `carmetrics run --db ...` first)") from None


_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([hdwm])\s*$", re.IGNORECASE)
_UNIT_S = {"h": 3600.0, "d": 86400.0, "w": 7 * 86400.0, "m": 30 * 86400.0}


def parse_when(text: str | None, tz: str, now: float | None = None) -> float | None:
    """Unix seconds from '2026-03-01', '2026-03-01T08:00', '30d', '12h', '2w', '6m' or 'now'."""
    if text is None or text == "":
        return None
    t_now = time.time() if now is None else now
    if text.strip().lower() == "now":
        return t_now
    m = _RELATIVE.match(text)
    if m:
        return t_now - float(m.group(1)) * _UNIT_S[m.group(2).lower()]
    try:
        ts = pd.Timestamp(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: expected a date/time such as 2026-03-01 or 2026-03-01T08:00, "
            "or an age such as 30d, 12h, 2w"
        ) from None
    if ts.tzinfo is None:
        ts = ts.tz_localize(tz, ambiguous=True, nonexistent="shift_forward")
    return float(ts.timestamp())


def progress(items: Iterable[T], label: str, length: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar on stderr when it is a terminal, plainly otherwise."""
    seq = list(items)
    if not sys.stderr.isatty() or len(seq) < 2:
        yield from seq
        return
    with click.progressbar(seq, label=label, file=sys.stderr, length=length) as bar:
        yield from bar


# Samples read beyond --since/--until, so trips and sessions that start in the window come out
# whole (a charge that runs past midnight, a start anchor before the first report in the window).
MARGIN_S = 2 * 86400.0


def _analyses(
    ctx: Context, vin: str | None, since: str | None, until: str | None, label: str
) -> Iterator[Analysis]:
    zone = ctx.settings.timezone_name("")  # the pinned zone, else the machine's
    lo = parse_when(since, zone)
    hi = parse_when(until, zone)
    chosen = [v for v in vins(ctx.db) if vin is None or v == vin]
    if vin is not None and not chosen:
        raise click.ClickException(f"no samples for vehicle {vin} in {ctx.db}")
    read_lo = None if lo is None else lo - MARGIN_S
    read_hi = None if hi is None else hi + MARGIN_S
    for v in progress(chosen, label):
        df = load(ctx.db, vin=v, since=read_lo, until=read_hi)
        journal = load_journal(ctx.db, vin=v, since=read_lo, until=read_hi)
        yield Analysis(df, ctx.settings, window=(lo, hi), journal=journal)


def _emit(df: pd.DataFrame, fmt: str, out: Path | None, kind: str) -> None:
    try:
        text = write(df, fmt, out, kind)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if text is not None:
        click.echo(text, nl=False)
    else:
        click.echo(f"{len(df)} rows written to {out}", err=True)


TZ_OPTION = click.option(
    "--tz",
    default=None,
    metavar="ZONE",
    help="Show local times in this IANA zone (e.g. Europe/Berlin) instead of where each car was.",
)


def _common(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--config --db --vin --since --until --format --out, shared by every listing command."""
    options = [
        click.option(
            "--config",
            "config_path",
            type=click.Path(path_type=Path, dir_okay=False),
            default=None,
            help="Path of config.toml (default: ./config.toml if present).",
        ),
        click.option(
            "--db",
            type=DB,
            default=None,
            help="History: an SQLite file or a postgresql:// URL (default: exporter.db from "
            "the config, else ./carmetrics.db).",
        ),
        click.option("--vin", default=None, help="Only this vehicle (default: all)."),
        click.option(
            "--since", default=None, help="From this local date/time, or an age: 30d, 12h, 2w."
        ),
        click.option("--until", default=None, help="Up to this local date/time (inclusive)."),
        click.option(
            "--format",
            "fmt",
            type=click.Choice(FORMATS),
            default="table",
            show_default=True,
            help="Output format; parquet needs --out and pyarrow.",
        ),
        click.option(
            "--out",
            type=click.Path(path_type=Path, dir_okay=False),
            default=None,
            help="Write to this file instead of stdout.",
        ),
        TZ_OPTION,
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def _concat(frames: list[pd.DataFrame], empty: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else empty()


@click.command("trips")
@_common
def trips(
    config_path: Path | None,
    db: str | None,
    vin: str | None,
    since: str | None,
    until: str | None,
    fmt: str,
    out: Path | None,
    tz: str | None,
) -> None:
    """List trips: start/end (local time), distance, speed, SoC and energy used, consumption.

    \b
    Example:
      carmetrics trips --since 30d
      carmetrics trips --vin HX1ABC0123456789 --format csv --out trips.csv
    """
    from .trips import empty

    ctx = _context(config_path, db, tz)
    frames = [a.trips for a in _analyses(ctx, vin, since, until, "trips")]
    _emit(_concat(frames, empty), fmt, out, "trips")


@click.command("charges")
@_common
def charges(
    config_path: Path | None,
    db: str | None,
    vin: str | None,
    since: str | None,
    until: str | None,
    fmt: str,
    out: Path | None,
    tz: str | None,
) -> None:
    """List charging sessions: start/end, AC/DC, SoC from/to, kWh added, average and peak power.

    Sessions seen only as an SoC rise between two reports are flagged "unseen".

    \b
    Example:
      carmetrics charges --since 2026-01-01 --format json
    """
    from .charges import empty

    ctx = _context(config_path, db, tz)
    frames = [a.charges for a in _analyses(ctx, vin, since, until, "charges")]
    _emit(_concat(frames, empty), fmt, out, "charges")


@click.command("drain")
@_common
@click.option(
    "--min-hours",
    type=float,
    default=None,
    help="Shortest parked period counted (default: analysis.idle_hours, 6).",
)
def drain(
    config_path: Path | None,
    db: str | None,
    vin: str | None,
    since: str | None,
    until: str | None,
    fmt: str,
    out: Path | None,
    tz: str | None,
    min_hours: float | None,
) -> None:
    """List idle drain: parked periods with SoC and kWh lost, average W and %/day.

    \b
    Example:
      carmetrics drain --min-hours 12
    """
    from dataclasses import replace

    from .drain import empty

    ctx = _context(config_path, db, tz)
    if min_hours is not None:
        if min_hours <= 0:
            raise click.BadParameter("must be positive", param_hint="--min-hours")
        ctx = Context(ctx.db, replace(ctx.settings, idle_hours=min_hours))
    frames = [a.drain for a in _analyses(ctx, vin, since, until, "drain")]
    _emit(_concat(frames, empty), fmt, out, "drain")


@click.command("efficiency")
@_common
@click.option(
    "--by",
    type=click.Choice(["temperature", "speed", "month"]),
    default=None,
    help="One dimension only (default: all three).",
)
def efficiency(
    config_path: Path | None,
    db: str | None,
    vin: str | None,
    since: str | None,
    until: str | None,
    fmt: str,
    out: Path | None,
    tz: str | None,
    by: str | None,
) -> None:
    """Consumption (kWh/100 km) by outside-temperature band, speed band and month.

    \b
    Example:
      carmetrics efficiency --by temperature
    """
    from .efficiency import empty

    ctx = _context(config_path, db, tz)
    frames = [a.efficiency(by) for a in _analyses(ctx, vin, since, until, "efficiency")]
    _emit(_concat(frames, empty), fmt, out, "efficiency")


@click.command("battery")
@_common
def battery(
    config_path: Path | None,
    db: str | None,
    vin: str | None,
    since: str | None,
    until: str | None,
    fmt: str,
    out: Path | None,
    tz: str | None,
) -> None:
    """Usable battery capacity per month, estimated from charging sessions, with its spread.

    \b
    Example:
      carmetrics battery --format csv
    """
    from .battery import empty

    ctx = _context(config_path, db, tz)
    frames = [a.battery for a in _analyses(ctx, vin, since, until, "battery")]
    _emit(_concat(frames, empty), fmt, out, "battery")


@click.command("summary")
@_common
@click.option(
    "--period",
    type=click.Choice(["day", "week", "month"]),
    default="month",
    show_default=True,
    help="Bucket size (the vehicle's local calendar).",
)
def summary(
    config_path: Path | None,
    db: str | None,
    vin: str | None,
    since: str | None,
    until: str | None,
    fmt: str,
    out: Path | None,
    tz: str | None,
    period: str,
) -> None:
    """Totals per day, week or month: distance, drives, energy used and charged, AC/DC share.

    \b
    Example:
      carmetrics summary --period week --since 12w
    """
    from .summary import empty

    ctx = _context(config_path, db, tz)
    frames = [a.summary(period) for a in _analyses(ctx, vin, since, until, "summary")]
    _emit(_concat(frames, empty), fmt, out, "summary")


@click.command("places")
@_common
@click.option(
    "--min-visits",
    type=click.IntRange(2, 1000),
    default=5,
    show_default=True,
    help="Parked this many times within ~100 m makes a place.",
)
def places(
    config_path: Path | None,
    db: str | None,
    vin: str | None,
    since: str | None,
    until: str | None,
    fmt: str,
    out: Path | None,
    tz: str | None,
    min_visits: int,
) -> None:
    """Places each car keeps returning to, with visits, nights and a [[places]] snippet.

    Found by density clustering (DBSCAN, haversine) of where the car parked; a place already in
    [[places]] is shown under its name. Paste a suggested snippet into config.toml to name it:
    trips then show it, and its tariff prices the charges there.

    \b
    Example:
      carmetrics places --since 90d
    """
    from .places import PLACE_COLUMNS, discover, stops
    from .zones import zones

    ctx = _context(config_path, db, tz)
    frames = []
    for a in _analyses(ctx, vin, since, until, "places"):
        st = stops(a.trips, a.charges)
        if st.empty:
            continue
        zone = zones(
            st["vin"].to_numpy(),
            st["latitude"].to_numpy(),
            st["longitude"].to_numpy(),
            ctx.settings,
        )
        zone_of = {str(v): str(z) for v, z in zip(st["vin"], zone, strict=True)}
        frames.append(
            discover(st, known=ctx.settings.places, min_visits=min_visits, zone_of=zone_of)
        )
    found = _concat(frames, lambda: pd.DataFrame(columns=list(PLACE_COLUMNS)))
    _emit(found, fmt, out, "places")
    if fmt == "table" and out is None:
        for snippet in found.get("suggestion", pd.Series(dtype=object)):
            if snippet:
                click.echo("\n" + str(snippet))


@click.command("costs")
@_common
def costs(
    config_path: Path | None,
    db: str | None,
    vin: str | None,
    since: str | None,
    until: str | None,
    fmt: str,
    out: Path | None,
    tz: str | None,
) -> None:
    """What charging cost per month, by place and AC/DC ([tariffs] and [[places]] in config).

    \b
    Example:
      carmetrics costs --since 6m
    """
    from .costs import MONTHLY_COLUMNS, monthly_costs

    ctx = _context(config_path, db, tz)
    frames = [
        monthly_costs(a.charges, ctx.settings) for a in _analyses(ctx, vin, since, until, "costs")
    ]
    _emit(_concat(frames, lambda: pd.DataFrame(columns=list(MONTHLY_COLUMNS))), fmt, out, "costs")


@click.command("report")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Path of config.toml (default: ./config.toml if present).",
)
@click.option("--db", type=DB, default=None, help=DB_HELP)
@click.option("--vin", default=None, help="Only this vehicle (default: all).")
@click.option("--since", default=None, help="From this local date/time, or an age: 30d, 12h.")
@click.option("--until", default=None, help="Up to this local date/time (inclusive).")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Directory for report.html and its PNG plots (created if missing).",
)
@TZ_OPTION
def report(
    config_path: Path | None,
    db: str | None,
    vin: str | None,
    since: str | None,
    until: str | None,
    out: Path,
    tz: str | None,
) -> None:
    """Write one self-contained HTML report with tables and plots (PNGs also saved alongside).

    \b
    Example:
      carmetrics report --since 90d --out report/
    """
    from .report import write_report

    ctx = _context(config_path, db, tz)
    analyses = list(_analyses(ctx, vin, since, until, "analysing"))
    path = write_report(analyses, out, title=f"carmetrics report: {ctx.db.name}", progress=progress)
    click.echo(str(path))


@click.command("derive")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Path of config.toml (default: ./config.toml if present).",
)
@click.option("--db", type=DB, default=None, help=DB_HELP)
@click.option("--vin", default=None, help="Only this vehicle (default: all).")
@click.option("--rebuild", is_flag=True, help="Recompute everything instead of only new data.")
@TZ_OPTION
def derive(
    config_path: Path | None, db: str | None, vin: str | None, rebuild: bool, tz: str | None
) -> None:
    """Materialise `trips` and `charging_sessions` tables in the history file (incremental).

    Safe to run often (e.g. from cron every few minutes) and while the exporter runs; only samples
    newer than the last run are analysed. Table schemas: docs/ANALYSIS.md.

    \b
    Example:
      carmetrics db derive --db carmetrics.db
    """
    ctx = _context(config_path, db, tz)
    started = time.monotonic()
    results = derive_tables(
        ctx.db,
        ctx.settings,
        vin=vin,
        rebuild=rebuild,
        progress=lambda items: progress(items, "deriving"),
    )
    took = time.monotonic() - started
    for r in results:
        how = "rebuilt" if r.rebuilt else "updated"
        click.echo(
            f"{r.vin}: {how} from {r.samples_read} samples; "
            f"{r.trips_written} trips, {r.sessions_written} charging sessions written"
        )
    click.echo(f"derive done in {took:.1f} s", err=True)
