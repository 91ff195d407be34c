"""Configuration: ``config.toml`` + environment overrides, validated with errors that name the key.

Precedence: built-in defaults < TOML file < environment ``CARMETRICS_<SECTION>__<KEY>`` < CLI flags.
Nested keys and list items use ``__`` as the separator and a 0-based index for lists, e.g.
``CARMETRICS_POLL__PARKED=300`` or ``CARMETRICS_ACCOUNTS__0__PASSWORD=...``.

Secrets (any key named password, token, secret, client_secret, management_token, key, ...) are
refused in the TOML file, so a config file can be committed or shared safely. They come from the
environment, or from a file whose path the TOML names with a ``<key>_file`` entry (Docker/K8s secrets).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

ENV_PREFIX: Final = "CARMETRICS_"
API_TOKEN_ENV: Final = "CARMETRICS_API_TOKEN"  # the command API token (server and client)
SECRET_KEYS: Final = frozenset(
    {
        "password",
        "token",
        "secret",
        "client_secret",
        "management_token",
        "api_token",
        "access_token",
        "refresh_token",
        "encryption_key",
        "webhook_secret",
    }
)
PROVIDERS: Final = ("smart", "smartcar")


class ConfigError(ValueError):
    """A single, user-facing line: which key, what was wrong, what is expected."""


class Secret:
    """A string that never shows itself in repr/str/logs; ``reveal()`` is the only way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class AccountConfig:
    """One cloud account. Provider-specific keys live in ``settings`` and are validated by the
    provider itself (with ``ConfigError`` naming ``accounts[i].<key>``); secrets in ``secrets``."""

    name: str
    provider: str
    index: int
    simulator: bool = False
    settings: Mapping[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, Secret] = field(default_factory=dict)

    def key(self, name: str) -> str:
        """The config path of one of this account's keys, for error messages."""
        return f"accounts[{self.index}].{name}"

    def setting(
        self, name: str, default: Any = None, *, kind: type | tuple[type, ...] | None = None
    ) -> Any:
        value = self.settings.get(name, default)
        if kind is not None and value is not None and not isinstance(value, kind):
            want = (
                kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            )
            raise ConfigError(f"{self.key(name)} = {value!r}: expected {want}")
        return value

    def secret(self, name: str, *, required: bool = True) -> Secret | None:
        got = self.secrets.get(name)
        if got is None and required:
            env = f"{ENV_PREFIX}ACCOUNTS__{self.index}__{name.upper()}"
            raise ConfigError(
                f"{self.key(name)} is missing: set the environment variable {env} "
                f"or point {self.key(name + '_file')} at a file holding it"
            )
        return got


@dataclass(frozen=True)
class PollConfig:
    """Seconds between polls per vehicle state; the car is never woken, these only read the cloud."""

    driving: float = 60.0
    charging: float = 60.0
    parked: float = 600.0
    asleep: float = 1800.0
    after_command: float = 8.0
    jitter: float = 0.1  # +- share of the interval
    concurrency: int = 8
    timeout: float = 30.0
    backoff_base: float = 30.0
    backoff_max: float = 3600.0
    relist: float = 21600.0  # re-read each account's vehicle list this often (cars come and go)


@dataclass(frozen=True)
class SimulatorConfig:
    enabled: bool = False
    speed: float = 60.0
    seed: int = 42
    smart_vehicles: tuple[str, ...] = ("#1", "#3", "#5")
    smartcar_vehicles: tuple[str, ...] = ()
    fault_rate: float = 0.0
    history_days: float = 14.0  # the demo clock starts this far in the past and catches up


@dataclass(frozen=True)
class Config:
    listen: str = "127.0.0.1"
    port: int = 8477
    db: Path = Path("carmetrics.db")
    log_level: str = "INFO"
    log_format: str = "text"
    export_location: bool = False
    max_data_age: float = 7 * 86400.0
    poll: PollConfig = field(default_factory=PollConfig)
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    accounts: tuple[AccountConfig, ...] = ()
    # sections owned by later features (commands, smartcar web, retention ...), validated by them
    extra: Mapping[str, Any] = field(default_factory=dict)
    source: str = "<defaults>"


# ------------------------------------------------------------------------------------------------

_KNOWN_TOP: Final = {"exporter", "log", "metrics", "poll", "simulator", "accounts"}
# Tables owned (and validated in detail) by features: commands API, token vault, analysis.
FEATURE_SECTIONS: Final = {"commands", "tokens", "analysis", "places", "tariffs", "mqtt"}


def _coerce_env(raw: str) -> Any:
    """Environment values are strings; read them as TOML scalars when they parse as one."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        node: Any = data
        for i, part in enumerate(path[:-1]):
            nxt_is_index = path[i + 1].isdigit()
            if isinstance(node, list):
                idx = int(part)
                while len(node) <= idx:
                    node.append({})
                node = node[idx]
                continue
            if part not in node:
                node[part] = [] if nxt_is_index else {}
            node = node[part]
        leaf = path[-1]
        value = raw if leaf in SECRET_KEYS else _coerce_env(raw)
        if isinstance(node, list):
            idx = int(leaf)
            while len(node) <= idx:
                node.append({})
            node[idx] = value
        elif isinstance(node, dict):
            node[leaf] = value
    return data


def _num(
    section: Mapping[str, Any], key: str, path: str, default: float, *, minimum: float = 0.0
) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{path}.{key} = {value!r}: expected a number (seconds or count)")
    if value < minimum:
        raise ConfigError(f"{path}.{key} = {value!r}: expected a number >= {minimum}")
    return float(value)


def _check_keys(section: Mapping[str, Any], allowed: set[str], path: str) -> None:
    for key in section:
        if key not in allowed:
            near = ", ".join(sorted(allowed))
            raise ConfigError(f"{path}.{key}: unknown key; expected one of: {near}")


def _read_secret_file(path_value: Any, key: str, base: Path) -> Secret:
    if not isinstance(path_value, str) or not path_value:
        raise ConfigError(f"{key} = {path_value!r}: expected the path of a file holding the secret")
    p = Path(path_value)
    if not p.is_absolute():
        p = base / p
    try:
        text = p.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"{key} = {path_value!r}: cannot read the secret file ({exc.strerror})"
        ) from None
    if not text:
        raise ConfigError(f"{key} = {path_value!r}: the secret file is empty")
    return Secret(text)


def _account(raw: Any, index: int, base: Path, from_file: set[str]) -> AccountConfig:
    path = f"accounts[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a table ([[accounts]])")
    provider = raw.get("provider")
    if provider not in PROVIDERS:
        raise ConfigError(f"{path}.provider = {provider!r}: expected one of {', '.join(PROVIDERS)}")
    name = raw.get("name", f"{provider}-{index}")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{path}.name = {name!r}: expected a non-empty string")
    simulator = raw.get("simulator", False)
    if not isinstance(simulator, bool):
        raise ConfigError(f"{path}.simulator = {simulator!r}: expected true or false")
    settings: dict[str, Any] = {}
    secrets: dict[str, Secret] = {}
    for key, value in raw.items():
        if key in {"provider", "name", "simulator"}:
            continue
        if key in SECRET_KEYS:
            if f"{path}.{key}" in from_file:
                raise ConfigError(
                    f"{path}.{key}: secrets are not allowed in the config file; set "
                    f"{ENV_PREFIX}ACCOUNTS__{index}__{key.upper()} or {path}.{key}_file instead"
                )
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{path}.{key}: expected a non-empty string")
            secrets[key] = Secret(value)
        elif key.endswith("_file") and key[: -len("_file")] in SECRET_KEYS:
            secrets[key[: -len("_file")]] = _read_secret_file(value, f"{path}.{key}", base)
        else:
            settings[key] = value
    return AccountConfig(name, provider, index, simulator, settings, secrets)


def _secret_paths(data: Mapping[str, Any]) -> set[str]:
    """Every secret key present in the file itself (as opposed to the environment)."""
    found: set[str] = set()
    for section, body in data.items():
        if section == "accounts" and isinstance(body, list):
            for i, acc in enumerate(body):
                if isinstance(acc, dict):
                    found.update(f"accounts[{i}].{k}" for k in acc if k in SECRET_KEYS)
        elif isinstance(body, dict):
            found.update(f"{section}.{k}" for k in body if k in SECRET_KEYS)
    return found


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
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not valid TOML: the file is not UTF-8 text") from None
        base = path.resolve().parent
        source = str(path)
    in_file = _secret_paths(data)
    for sec_path in sorted(in_file):
        if not sec_path.startswith("accounts["):
            section, key = sec_path.split(".", 1)
            raise ConfigError(
                f"{sec_path}: secrets are not allowed in the config file; set "
                f"{ENV_PREFIX}{section.upper()}__{key.upper()} or {sec_path}_file instead"
            )
    if API_TOKEN_ENV in env and f"{ENV_PREFIX}COMMANDS__TOKEN" not in env:
        # one name for the command API token on the server and in `carmetrics command`; the
        # generic override CARMETRICS_COMMANDS__TOKEN stays accepted
        env = {**env, f"{ENV_PREFIX}COMMANDS__TOKEN": env[API_TOKEN_ENV]}
    data = _apply_env(data, env)
    return _build(data, base, in_file, source)


def _build(data: dict[str, Any], base: Path, in_file: set[str], source: str) -> Config:
    for key in data:
        if key not in _KNOWN_TOP and key not in FEATURE_SECTIONS:
            known = ", ".join(sorted(_KNOWN_TOP | FEATURE_SECTIONS))
            raise ConfigError(f"{key}: unknown top-level key or table; expected one of {known}")
    exp = data.get("exporter", {})
    _check_keys(exp, {"listen", "port", "db", "max_data_age"}, "exporter")
    port = exp.get("port", 8477)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"exporter.port = {port!r}: expected a TCP port number 0-65535")
    listen = exp.get("listen", "127.0.0.1")
    if not isinstance(listen, str) or not listen:
        raise ConfigError(f"exporter.listen = {listen!r}: expected an address such as 127.0.0.1")
    db = exp.get("db", "carmetrics.db")
    if not isinstance(db, str) or not db:
        raise ConfigError(f"exporter.db = {db!r}: expected a file path")
    db_path = Path(db) if Path(db).is_absolute() else base / db

    log = data.get("log", {})
    _check_keys(log, {"level", "format"}, "log")
    level = str(log.get("level", "INFO")).upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError(
            f"log.level = {log.get('level')!r}: expected DEBUG, INFO, WARNING or ERROR"
        )
    fmt = log.get("format", "text")
    if not isinstance(fmt, str) or fmt not in {"text", "json"}:
        raise ConfigError(f"log.format = {fmt!r}: expected 'text' or 'json'")

    met = data.get("metrics", {})
    _check_keys(met, {"export_location"}, "metrics")
    export_location = met.get("export_location", False)
    if not isinstance(export_location, bool):
        raise ConfigError(f"metrics.export_location = {export_location!r}: expected true or false")

    p = data.get("poll", {})
    defaults = PollConfig()
    _check_keys(p, set(PollConfig.__dataclass_fields__), "poll")
    poll = PollConfig(
        driving=_num(p, "driving", "poll", defaults.driving, minimum=1),
        charging=_num(p, "charging", "poll", defaults.charging, minimum=1),
        parked=_num(p, "parked", "poll", defaults.parked, minimum=1),
        asleep=_num(p, "asleep", "poll", defaults.asleep, minimum=1),
        after_command=_num(p, "after_command", "poll", defaults.after_command),
        jitter=_num(p, "jitter", "poll", defaults.jitter),
        concurrency=int(_num(p, "concurrency", "poll", defaults.concurrency, minimum=1)),
        timeout=_num(p, "timeout", "poll", defaults.timeout, minimum=0.1),
        backoff_base=_num(p, "backoff_base", "poll", defaults.backoff_base, minimum=0.1),
        backoff_max=_num(p, "backoff_max", "poll", defaults.backoff_max, minimum=1),
        relist=_num(p, "relist", "poll", defaults.relist, minimum=1),
    )
    if poll.jitter >= 1:
        raise ConfigError(
            f"poll.jitter = {poll.jitter!r}: expected a share below 1 (e.g. 0.1 for +-10%)"
        )

    s = data.get("simulator", {})
    _check_keys(s, set(SimulatorConfig.__dataclass_fields__), "simulator")
    sd = SimulatorConfig()
    enabled = s.get("enabled", sd.enabled)
    if not isinstance(enabled, bool):
        raise ConfigError(f"simulator.enabled = {enabled!r}: expected true or false")
    seed = s.get("seed", sd.seed)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"simulator.seed = {seed!r}: expected an integer")
    vehicles: dict[str, tuple[str, ...]] = {}
    for key in ("smart_vehicles", "smartcar_vehicles"):
        v = s.get(key, getattr(sd, key))
        if not isinstance(v, list | tuple) or not all(isinstance(x, str) for x in v):
            raise ConfigError(f"simulator.{key} = {v!r}: expected a list of model names")
        vehicles[key] = tuple(v)
    sim = SimulatorConfig(
        enabled=enabled,
        speed=_num(s, "speed", "simulator", sd.speed, minimum=0.001),
        seed=seed,
        smart_vehicles=vehicles["smart_vehicles"],
        smartcar_vehicles=vehicles["smartcar_vehicles"],
        fault_rate=_num(s, "fault_rate", "simulator", sd.fault_rate),
        history_days=_num(s, "history_days", "simulator", sd.history_days),
    )

    raw_accounts = data.get("accounts", [])
    if not isinstance(raw_accounts, list):
        raise ConfigError("accounts: expected a list of [[accounts]] tables")
    accounts = tuple(_account(a, i, base, in_file) for i, a in enumerate(raw_accounts))
    names = [a.name for a in accounts]
    for n in names:
        if names.count(n) > 1:
            raise ConfigError(
                f"accounts: the name {n!r} is used twice; give each account a unique name"
            )
    for a in accounts:
        if a.simulator and not sim.enabled:
            raise ConfigError(
                f"{a.key('simulator')} = true but simulator.enabled is false; "
                "enable the embedded simulator or point the account at a real cloud"
            )

    extra = {k: v for k, v in data.items() if k not in _KNOWN_TOP}
    return Config(
        listen=listen,
        port=port,
        db=db_path,
        log_level=level,
        log_format=fmt,
        export_location=export_location,
        max_data_age=_num(exp, "max_data_age", "exporter", 7 * 86400.0, minimum=60),
        poll=poll,
        simulator=sim,
        accounts=accounts,
        extra=extra,
        source=source,
    )
