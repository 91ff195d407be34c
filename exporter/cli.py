"""The ``carmetrics`` command line.

Each command states an example in its help. Features in other modules add their commands with one
``cli.add_command(...)`` line at the bottom of this file; the analysis commands (pandas, matplotlib)
are listed in ``ANALYSIS`` instead and imported only when one of them is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import click

from exporter import __version__
from exporter import logs as logsetup
from exporter.commands.cli import command, vehicles
from exporter.config import Config, ConfigError, load
from exporter.dbtarget import DbTarget
from exporter.lazygroup import LazyCommand, LazyGroup
from exporter.tokens_cli import tokens

if TYPE_CHECKING:
    from exporter.backend import Backend

DEFAULT_CONFIG = Path("config.toml")

# Used when no --config is given and ./config.toml does not exist: the embedded demo.
DEMO_TOML = """
[simulator]
enabled = true
[[accounts]]
name = "demo-eu"
provider = "smart"
region = "EU"
simulator = true
"""


def _load_config(
    path: Path | None, env: Mapping[str, str] | None = None, **overrides: Any
) -> Config:
    """The config at ``path`` (else ./config.toml, else the built-in demo) under the environment
    (``env`` adds to ``os.environ``), with the command line's ``overrides`` on top."""
    import os

    environ = {**os.environ, **env} if env else None
    if path is None and DEFAULT_CONFIG.exists():
        path = DEFAULT_CONFIG
    try:
        if path is None:
            import tempfile

            with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as fh:
                fh.write(DEMO_TOML)
            try:
                cfg = load(Path(fh.name), env=environ)
            finally:
                os.unlink(fh.name)
            cfg = replace(cfg, db=Path.cwd() / "carmetrics.db", source="<built-in demo>")
        else:
            cfg = load(path, env=environ)
    except ConfigError as exc:
        raise click.ClickException(f"configuration error: {exc}") from None
    changes = {k: v for k, v in overrides.items() if v is not None}
    if "db" in changes:
        changes["db"] = db_target(changes["db"], cfg)
    return replace(cfg, **changes) if changes else cfg


def db_target(text: str | Path, cfg: Config) -> DbTarget:
    """``--db``: a file (relative to the working directory) or a ``postgresql://`` URL, whose
    password comes from where the configuration's does (CARMETRICS_DB_PASSWORD or the file)."""
    from exporter.dbtarget import parse

    try:
        target = parse(text, where="--db", base=Path.cwd(), password=cfg.db_password)
    except ConfigError as exc:
        raise click.ClickException(f"configuration error: {exc}") from None
    return target.resolve() if isinstance(target, Path) else target


class DbOption(click.ParamType[str]):
    """A history file path or a ``postgresql://`` URL (click.Path would fold the URL's ``//``)."""

    name = "PATH|URL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        return str(value)


DB = DbOption()
DB_HELP = "History: an SQLite file, or a postgresql:// URL (password from CARMETRICS_DB_PASSWORD)."


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Path of config.toml (default: ./config.toml, else the built-in simulator demo).",
)


# The analysis commands, by name: where each lives and its one-line help (kept equal to the
# command's own by tests/test_cli_imports.py), so listing them imports neither pandas nor matplotlib.
ANALYSIS: Final = {
    "battery": LazyCommand(
        "analysis.cli:battery",
        "Usable battery capacity per month, estimated from charging sessions, with its spread.",
    ),
    "charges": LazyCommand(
        "analysis.cli:charges",
        "List charging sessions: start/end, AC/DC, SoC from/to, kWh added, average and peak power.",
    ),
    "drain": LazyCommand(
        "analysis.cli:drain",
        "List idle drain: parked periods with SoC and kWh lost, average W and %/day.",
    ),
    "efficiency": LazyCommand(
        "analysis.cli:efficiency",
        "Consumption (kWh/100 km) by outside-temperature band, speed band and month.",
    ),
    "places": LazyCommand(
        "analysis.cli:places",
        "Places each car keeps returning to, with visits, nights and a [[places]] snippet.",
    ),
    "costs": LazyCommand(
        "analysis.cli:costs",
        "What charging cost per month, by place and AC/DC ([tariffs] and [[places]] in config).",
    ),
    "report": LazyCommand(
        "analysis.cli:report",
        "Write one self-contained HTML report with tables and plots (PNGs also saved alongside).",
    ),
    "summary": LazyCommand(
        "analysis.cli:summary",
        "Totals per day, week or month: distance, drives, energy used and charged, AC/DC share.",
    ),
    "trips": LazyCommand(
        "analysis.cli:trips",
        "List trips: start/end (local time), distance, speed, SoC and energy used, consumption.",
    ),
}
DB_ANALYSIS: Final = {
    "derive": LazyCommand(
        "analysis.cli:derive",
        "Materialise `trips` and `charging_sessions` tables in the history file (incremental).",
    ),
}


@click.group(
    cls=LazyGroup,
    lazy=ANALYSIS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="carmetrics")
def cli() -> None:
    """carmetrics: a Prometheus exporter and telemetry logger for connected cars.

    \b
    Quick start (embedded simulator, no account needed):
      carmetrics run            then open http://127.0.0.1:8477/metrics
    """


@cli.command()
@config_option
@click.option(
    "--port", type=int, default=None, help="HTTP port for /metrics (overrides exporter.port)."
)
@click.option("--listen", default=None, help="Address to bind (overrides exporter.listen).")
@click.option("--db", type=DB, default=None, help=DB_HELP)
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]), default=None)
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None)
@click.option(
    "--simulator-url",
    default=None,
    metavar="URL",
    help="Use a standalone simulator (`carmetrics simulate`): the `info` URL of its JSON line, "
    "or a file holding the line (overrides simulator.url).",
)
@click.option(
    "--shard",
    type=click.Choice(["off", "auto"]),
    default=None,
    help="auto: share the accounts with the other instances on the same PostgreSQL --db "
    "(overrides shard.mode; docs/SCALING.md).",
)
def run(
    config_path: Path | None,
    port: int | None,
    listen: str | None,
    db: str | None,
    log_level: str | None,
    log_format: str | None,
    simulator_url: str | None,
    shard: str | None,
) -> None:
    """Poll the configured accounts, serve /metrics and record the history.

    \b
    Example:
      carmetrics run --config config.toml --port 8477 --db /data/carmetrics.db
      carmetrics simulate > sim.json &     # in another process, then:
      carmetrics run --simulator-url "$(jq -r .info sim.json)"
      carmetrics run --config fleet.toml --db postgresql://carmetrics@db/carmetrics --shard auto
    """
    cfg = _load_config(
        config_path,
        env={"CARMETRICS_SIMULATOR__URL": simulator_url} if simulator_url else None,
        port=port,
        listen=listen,
        db=db,
        log_level=log_level,
        log_format=log_format,
    )
    if shard is not None:
        table = dict(cfg.extra.get("shard") or {})
        cfg = replace(cfg, extra={**cfg.extra, "shard": {**table, "mode": shard}})
    logsetup.setup(cfg.log_level, cfg.log_format)
    import logging

    for warning in validate(cfg):
        logging.getLogger("exporter.preflight").warning(warning)
    from exporter.server import serve

    click.echo(
        f"carmetrics {__version__}: serving http://{cfg.listen}:{cfg.port}/metrics (config {cfg.source})",
        err=True,
    )
    from exporter.history import HistoryError

    try:
        serve(cfg)
    except ConfigError as exc:
        raise click.ClickException(f"configuration error: {exc}") from None
    except HistoryError as exc:
        raise click.ClickException(str(exc)) from None


@cli.command()
@config_option
@click.option(
    "--speed", type=float, default=None, help="Simulated seconds per real second (default 60)."
)
@click.option("--seed", type=int, default=None, help="Seed of the simulated fleet.")
@click.option(
    "--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]), default="WARNING"
)
def simulate(
    config_path: Path | None, speed: float | None, seed: int | None, log_level: str
) -> None:
    """Run the cloud simulators standalone and print ONE JSON line with their URLs and demo logins.

    The line's `info` URL serves the same line and `clock` the simulated time; give the first to
    `carmetrics run --simulator-url` (or the line, saved to a file, with its URLs pointed at a
    proxy).

    \b
    Example:
      carmetrics simulate --speed 120 > sim.json
    """
    cfg = _load_config(config_path)
    sim = cfg.simulator
    sim = sim.model_copy(
        update={
            "enabled": True,
            "speed": speed or sim.speed,
            "seed": sim.seed if seed is None else seed,
        }
    )
    logsetup.setup(log_level, "text")
    from exporter.simulator.runner import start_simulator

    async def main() -> None:
        from exporter.simulator.info import InfoHost

        handle = await start_simulator(sim)
        host = InfoHost(handle.info(), handle.clock)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # handlers of our own: SIGTERM (docker stop) closes cleanly too, and SIGINT works even
        # when the parent started us with it ignored (Python then raises no KeyboardInterrupt)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await host.start()
            click.echo(json.dumps(host.info))
            sys.stdout.flush()
            await stop.wait()
        finally:
            await host.close()
            await handle.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


def validate(cfg: Config) -> list[str]:
    """The validation ``run`` does before it starts anything (``check-config`` does the same);
    returns the warnings to show."""
    from exporter.preflight import preflight

    try:
        return preflight(cfg)
    except ConfigError as exc:
        raise click.ClickException(f"configuration error: {exc}") from None


def _validate_analysis(cfg: Config) -> None:
    """[analysis], [[places]] and [tariffs]: read by the analysis commands, not by `run` (so `run`
    never imports pandas), but a typo there should still be found before the first report."""
    from analysis.settings import Settings, SettingsError

    try:
        Settings.from_config(
            cfg.extra.get("analysis"), cfg.extra.get("places"), cfg.extra.get("tariffs")
        )
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None


@cli.command("check-config")
@config_option
def check_config(config_path: Path | None) -> None:
    """Validate the configuration and print what would run (secrets masked).

    \b
    Example:
      CARMETRICS_ACCOUNTS__0__PASSWORD=... carmetrics check-config --config config.toml
    """
    cfg = _load_config(config_path)
    warnings = validate(cfg)
    try:
        _validate_analysis(cfg)  # not read by `run`, but found here before the first report
    except ConfigError as exc:
        raise click.ClickException(f"configuration error: {exc}") from None
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"config {cfg.source}: ok")
    click.echo(f"  listen {cfg.listen}:{cfg.port}, history {cfg.db}")
    if cfg.simulator.url:
        click.echo(f"  simulator: standalone at {cfg.simulator.url}")
    else:
        click.echo(f"  simulator {'on' if cfg.simulator.enabled else 'off'}")
    for a in cfg.accounts:
        secrets = ", ".join(f"{k}=***" for k in a.secrets) or "none"
        click.echo(
            f"  account {a.name}: {a.provider}{' (simulator)' if a.simulator else ''}, secrets: {secrets}"
        )


# --- db -------------------------------------------------------------------------------------------


@cli.group(cls=LazyGroup, lazy=DB_ANALYSIS)
def db() -> None:
    """Maintain the history, SQLite or PostgreSQL (migrate, backup, prune, info, derive)."""


def _backend(config_path: Path | None, db_path: str | None) -> Backend:
    from exporter.backend import backend

    return backend(_load_config(config_path, db=db_path).db)


@contextlib.contextmanager
def _one_line() -> Iterator[None]:
    """A history that cannot be used is one line and exit 1, never a traceback."""
    from exporter.history import HistoryError

    try:
        yield
    except HistoryError as exc:
        raise click.ClickException(str(exc)) from None


@db.command("migrate")
@config_option
@click.option("--db", "db_path", type=DB, default=None, help=DB_HELP)
def db_migrate(config_path: Path | None, db_path: str | None) -> None:
    """Create or upgrade the history schema.

    \b
    Example:
      carmetrics db migrate --db carmetrics.db
    """
    with _one_line():
        store = _backend(config_path, db_path)
        click.echo(f"{store.target}: schema version {store.migrate()}")


@db.command("backup")
@config_option
@click.option("--db", "db_path", type=DB, default=None, help=DB_HELP)
@click.argument("dest", type=click.Path(path_type=Path, dir_okay=False))
def db_backup(config_path: Path | None, db_path: str | None, dest: Path) -> None:
    """Write a consistent one-file copy of the history (safe while the exporter runs; for
    PostgreSQL use pg_dump).

    \b
    Example:
      carmetrics db backup /backups/carmetrics-$(date +%F).db
    """
    with _one_line():
        _backend(config_path, db_path).backup(dest)
    click.echo(f"backup written to {dest}")


@db.command("prune")
@config_option
@click.option("--db", "db_path", type=DB, default=None, help=DB_HELP)
@click.option(
    "--older-than-days", type=float, required=True, help="Delete raw samples older than this."
)
def db_prune(config_path: Path | None, db_path: str | None, older_than_days: float) -> None:
    """Delete raw samples older than N days (derived trips/charging sessions are kept; in
    PostgreSQL whole monthly partitions are dropped).

    \b
    Example:
      carmetrics db prune --older-than-days 730
    """
    with _one_line():
        n = _backend(config_path, db_path).prune(older_than_days * 86400)
    click.echo(f"deleted {n} samples")


@db.command("info")
@config_option
@click.option("--db", "db_path", type=DB, default=None, help=DB_HELP)
def db_info(config_path: Path | None, db_path: str | None) -> None:
    """Print schema version, rows and bytes per table, and the time span per vehicle.

    \b
    Example:
      carmetrics db info --db carmetrics.db
    """
    with _one_line():
        info = _backend(config_path, db_path).info()
    size = f", {info.size}" if info.size else ""
    click.echo(f"{info.where}: schema version {info.version}{size}")
    for vin, n, t0, t1 in info.vehicles:
        click.echo(f"  {vin}: {n} rows, {_utc(t0)} .. {_utc(t1)}")
    for t in info.tables:
        on_disk = "" if t.bytes is None else f", {_human_size(t.bytes)}"
        click.echo(f"  table {t.name}: {t.rows:,} rows{on_disk}")


def _human_size(n: float) -> str:
    from exporter.sqlite_backend import human_size

    return human_size(n)


def _utc(t: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")


def main() -> None:
    cli()


# --- commands contributed by other modules ---------------------------------------------------------
cli.add_command(tokens)
cli.add_command(command)
cli.add_command(vehicles)


if __name__ == "__main__":
    main()
