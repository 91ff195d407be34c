"""Configuration: ``config.toml`` + environment overrides, validated with errors that name the key.

Precedence: built-in defaults < TOML file < environment ``CARMETRICS_<SECTION>__<KEY>`` < CLI flags.
Nested keys and list items use ``__`` as the separator and a 0-based index for lists, e.g.
``CARMETRICS_POLL__PARKED=300`` or ``CARMETRICS_ACCOUNTS__0__PASSWORD=...``.

Every table is a typed model (``exporter.settings.Section``): the core tables here, each provider's
account keys next to the provider (found through ``exporter.providers.registry``) and each feature's
table in its own module (listed in ``exporter.features``). Keys a model types ``Secret`` are refused
in the TOML file, so a config file can be committed or shared safely; they come from the environment
or from a file whose path the TOML names with a ``<key>_file`` entry (Docker/K8s secrets).
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import Field

from exporter.dbtarget import PASSWORD_ENV, DbTarget
from exporter.dbtarget import parse as parse_db
from exporter.settings import (
    ENV_PREFIX,
    AccountSection,
    ConfigError,
    EnvValue,
    Secret,
    Section,
    ShadowingEnvValue,
    env_name,
    read_section,
)

API_TOKEN_ENV: Final = "CARMETRICS_API_TOKEN"  # the command API token (server and client)

__all__ = [
    "API_TOKEN_ENV",
    "ENV_PREFIX",
    "AccountConfig",
    "Config",
    "ConfigError",
    "PollConfig",
    "Secret",
    "SimulatorConfig",
    "load",
]


@dataclass(frozen=True)
class AccountConfig:
    """One cloud account as the file and environment give it: ``settings`` (plain keys) and
    ``secrets``, already checked against the provider's model; the provider validates them again
    with what only the running exporter knows (simulator URLs and demo logins)."""

    name: str
    provider: str
    index: int
    simulator: bool = False
    settings: Mapping[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, Secret] = field(default_factory=dict)

    def key(self, name: str) -> str:
        """The config path of one of this account's keys, for error messages."""
        return f"accounts[{self.index}].{name}"

    @property
    def where(self) -> str:
        return f"accounts[{self.index}]"

    def raw(self) -> dict[str, Any]:
        """Settings and secrets as one table, ready for the provider's model."""
        return {
            "provider": self.provider,
            "name": self.name,
            "simulator": self.simulator,
            **self.settings,
            **self.secrets,
        }

    def secret(self, name: str, *, required: bool = True) -> Secret | None:
        got = self.secrets.get(name)
        if got is None and required:
            raise ConfigError(
                f"{self.key(name)} is missing: set the environment variable "
                f"{env_name(self.key(name))} or point {self.key(name + '_file')} at a file holding it"
            )
        return got


Positive = Annotated[float, Field(ge=1)]
Names = Annotated[tuple[str, ...], Field(strict=False)]


class PollConfig(Section):
    """Seconds between polls per vehicle state; the car is never woken, these only read the cloud."""

    driving: Positive = 60.0
    charging: Positive = 60.0
    parked: Positive = 600.0
    asleep: Positive = 1800.0
    after_command: float = Field(default=8.0, ge=0)
    jitter: float = Field(
        default=0.1, ge=0, lt=1, description="a share below 1 (e.g. 0.1 for +-10%)"
    )
    concurrency: int = Field(default=8, ge=1)
    timeout: float = Field(default=30.0, ge=0.1)
    backoff_base: float = Field(default=30.0, ge=0.1)
    backoff_max: Positive = 3600.0
    # re-read each account's vehicle list this often, in seconds (cars come and go)
    relist: Positive = 21600.0


class SimulatorConfig(Section):
    enabled: bool = False
    speed: float = Field(default=60.0, ge=0.001)
    seed: int = 42
    smart_vehicles: Names = ("#1", "#3", "#5")
    smartcar_vehicles: Names = ()
    fault_rate: float = Field(default=0.0, ge=0, le=1)
    history_days: float = Field(
        default=14.0, ge=0
    )  # the demo clock starts this far back and catches up
    # Where the simulated Smartcar serves Connect (the page a browser is sent to by "Connect a
    # car"): port 0 is a free loopback port, fine when the browser runs on the same host; in a
    # container, a fixed port on 0.0.0.0 that the compose file publishes
    connect_port: int = Field(default=0, ge=0, le=65535, description="a TCP port number 0-65535")
    connect_listen: str = Field(
        default="127.0.0.1", min_length=1, description="an address such as 127.0.0.1"
    )
    # A standalone simulator (`carmetrics simulate`, the "info" URL of its JSON line, or a file
    # holding that line) to use instead of starting one in-process; "" = none
    url: str = ""


class ExporterSection(Section):
    env_names: ClassVar[dict[str, str]] = {"db_password": PASSWORD_ENV}
    listen: str = Field(
        default="127.0.0.1", min_length=1, description="an address such as 127.0.0.1"
    )
    port: int = Field(default=8477, ge=0, le=65535, description="a TCP port number 0-65535")
    db: str = Field(
        default="carmetrics.db",
        min_length=1,
        description="a file path or a postgresql:// URL (without a password)",
    )
    # the PostgreSQL password: CARMETRICS_DB_PASSWORD or db_password_file, never the file
    db_password: Secret | None = None
    max_data_age: float = Field(default=7 * 86400.0, ge=60)


class LogSection(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class MetricsSection(Section):
    export_location: bool = False


@dataclass(frozen=True)
class Config:
    listen: str = "127.0.0.1"
    port: int = 8477
    db: DbTarget = Path("carmetrics.db")  # a file, or a PostgreSQL database (exporter.dbtarget)
    db_password: Secret | None = None  # for a --db URL given on the command line
    log_level: str = "INFO"
    log_format: str = "text"
    export_location: bool = False
    max_data_age: float = 7 * 86400.0
    poll: PollConfig = field(default_factory=lambda: PollConfig())
    simulator: SimulatorConfig = field(default_factory=lambda: SimulatorConfig())
    accounts: tuple[AccountConfig, ...] = ()
    # the tables owned by features (exporter.features), validated by their own models
    extra: Mapping[str, Any] = field(default_factory=dict)
    source: str = "<defaults>"


# ------------------------------------------------------------------------------------------------


def _index_order(item: tuple[str, str]) -> list[tuple[int, int | str]]:
    """Sort env names so list items are created in index order (ACCOUNTS__2 before ACCOUNTS__10)."""
    return [(0, int(p)) if p.isdigit() else (1, p) for p in item[0].split("__")]


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Overlay ``CARMETRICS_<PATH>`` variables. Values stay text (``EnvValue``) until the model of
    their table says what they are. A list index may extend a list only by its next item, so a
    mistyped index never creates empty items that an error would then name instead."""
    for name, raw in sorted(env.items(), key=_index_order):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        node: Any = data
        where = ""
        for i, part in enumerate(path):
            last = i == len(path) - 1
            if isinstance(node, list):
                if not part.isdigit():
                    raise ConfigError(f"{name}: {where} is a list; expected an index after it")
                idx = int(part)
                if idx > len(node):
                    have = (
                        f"{where} has {len(node)} item(s), indexes 0-{len(node) - 1}"
                        if node
                        else f"{where} is empty"
                    )
                    raise ConfigError(
                        f"{name}: {where}[{idx}] does not exist ({have}); "
                        f"use index {len(node)} to add one"
                    )
                where = f"{where}[{idx}]"
                if last:
                    node[idx : idx + 1] = [EnvValue(raw)]
                    break
                if idx == len(node):
                    node.append({})
                node = node[idx]
                continue
            if not isinstance(node, dict):
                raise ConfigError(f"{name}: {where} = {node!r} is not a table")
            where = f"{where}.{part}" if where else part
            if last:
                old = node.get(part)
                shadow = old is not None and not isinstance(old, EnvValue)
                node[part] = ShadowingEnvValue(raw) if shadow else EnvValue(raw)
                break
            if part not in node:
                node[part] = [] if path[i + 1].isdigit() else {}
            node = node[part]
    return data


def load(path: Path | None, env: Mapping[str, str] | None = None) -> Config:
    """Read, merge and validate the configuration. Raises ConfigError with one clear line."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    base = Path.cwd()
    source = "<defaults>"
    if path is not None:
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist (pass --config PATH)") from None
        except IsADirectoryError:
            raise ConfigError(f"config file {path} is a directory (pass --config PATH)") from None
        except PermissionError:
            raise ConfigError(
                f"config file {path} is not readable (check its permissions)"
            ) from None
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{path}: not valid TOML: the file is not UTF-8 text (byte {exc.start})"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        base = path.resolve().parent
        source = str(path)
    if API_TOKEN_ENV in env and f"{ENV_PREFIX}COMMANDS__TOKEN" not in env:
        # one name for the command API token on the server and in `carmetrics command`; the
        # generic override CARMETRICS_COMMANDS__TOKEN stays accepted
        env = {**env, f"{ENV_PREFIX}COMMANDS__TOKEN": env[API_TOKEN_ENV]}
    if PASSWORD_ENV in env and f"{ENV_PREFIX}EXPORTER__DB_PASSWORD" not in env:
        env = {**env, f"{ENV_PREFIX}EXPORTER__DB_PASSWORD": env[PASSWORD_ENV]}
    data = _apply_env(data, env)
    return _build(data, base, source)


def _scalars(value: Any) -> Any:
    """Environment text in a table without a model, read as a TOML scalar where it is one (text
    stays an ``EnvValue``, so a secret given there is still told apart from one in the file)."""
    if isinstance(value, dict):
        return {k: _scalars(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scalars(v) for v in value]
    if isinstance(value, EnvValue):
        try:
            got = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            return value
        return value if isinstance(got, str) else got
    return value


def _unknown_section(key: str, known: list[str]) -> ConfigError:
    near = difflib.get_close_matches(key, known, n=1)
    maybe = f" (did you mean {near[0]!r}?)" if near else ""
    return ConfigError(
        f"{key}: unknown top-level key or table{maybe}; expected one of {', '.join(known)}"
    )


def _build(data: dict[str, Any], base: Path, source: str) -> Config:
    from exporter.features import FEATURE_SECTIONS
    from exporter.providers.registry import PROVIDERS

    known = sorted({"exporter", "log", "metrics", "poll", "simulator", "accounts"})
    known = sorted({*known, *FEATURE_SECTIONS})
    for key in data:
        if key not in known:
            raise _unknown_section(key, known)
    exp = read_section(ExporterSection, data.get("exporter"), "exporter", base=base)
    log = read_section(LogSection, data.get("log"), "log", base=base)
    metrics = read_section(MetricsSection, data.get("metrics"), "metrics", base=base)
    poll = read_section(PollConfig, data.get("poll"), "poll", base=base)
    sim = read_section(SimulatorConfig, data.get("simulator"), "simulator", base=base)
    db_path = parse_db(exp.db, where="exporter.db", base=base, password=exp.db_password)

    raw_accounts = data.get("accounts", [])
    if not isinstance(raw_accounts, list):
        raise ConfigError(f"accounts = {raw_accounts!r}: expected a list of [[accounts]] tables")
    accounts: list[AccountConfig] = []
    for index, raw in enumerate(raw_accounts):
        where = f"accounts[{index}]"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where} = {raw!r}: expected a table ([[accounts]])")
        provider = raw.get("provider")
        entry = PROVIDERS.get(provider) if isinstance(provider, str) else None
        if entry is None:
            raise ConfigError(
                f"{where}.provider = {provider!r}: expected one of {', '.join(PROVIDERS)}"
            )
        model = read_section(entry.model or AccountSection, raw, where, base=base, partial=True)
        settings = {
            k: getattr(model, k)
            for k in model.model_fields_set
            if k not in ("provider", "name", "simulator")
            and not isinstance(getattr(model, k), Secret)
        }
        secrets = {
            k: v for k in model.model_fields_set if isinstance(v := getattr(model, k), Secret)
        }
        accounts.append(
            AccountConfig(
                name=model.name or f"{provider}-{index}",
                provider=entry.name,
                index=index,
                simulator=model.simulator,
                settings=settings,
                secrets=secrets,
            )
        )
    names = [a.name for a in accounts]
    for n in names:
        if names.count(n) > 1:
            raise ConfigError(
                f"accounts: the name {n!r} is used twice; give each account a unique name"
            )
    for a in accounts:
        if a.simulator and not (sim.enabled or sim.url):
            raise ConfigError(
                f"{a.key('simulator')} = true but simulator.enabled is false; "
                "enable the embedded simulator (or give simulator.url of a standalone one) "
                "or point the account at a real cloud"
            )

    extra = {
        k: v if FEATURE_SECTIONS[k] is not None else _scalars(v)
        for k, v in data.items()
        if k in FEATURE_SECTIONS
    }
    return Config(
        listen=exp.listen,
        port=exp.port,
        db=db_path,
        db_password=exp.db_password,
        log_level=log.level,
        log_format=log.format,
        export_location=metrics.export_location,
        max_data_age=exp.max_data_age,
        poll=poll,
        simulator=sim,
        accounts=tuple(accounts),
        extra=extra,
        source=source,
    )
