"""The ``[commands]`` config table, validated with errors that name the key.

A command can unlock a car, so the API is off unless a token is configured, tokens come only from
the environment or a file (never the TOML itself), and a token too short to resist guessing is
refused.

    [commands]
    token_file = "/run/secrets/carmetrics_command_token"  # or CARMETRICS_API_TOKEN
    token_name = "admin"        # the caller name written to the audit log for that token
    cooldown = 5                # seconds between two commands to the same vehicle
    verify_delay = 8            # seconds before the first check (default: poll.after_command)
    verify_interval = 10        # seconds between checks
    verify_timeout = 120        # give up (outcome not_verified) this long after sending
    rate_limit = 30             # at most this many commands ...
    rate_window = 60            # ... per this many seconds, over all vehicles
    max_wait = 120              # longest ?wait= a caller may block for
    idempotency_ttl = 86400     # how long an Idempotency-Key is remembered

    [commands.clients.homeassistant]  # more named tokens; token from
    access = "read"                   # CARMETRICS_COMMANDS__CLIENTS__HOMEASSISTANT__TOKEN
    token_file = "/run/secrets/ha"    # or token_file; access "read" (list, status) or "command"
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from exporter.config import API_TOKEN_ENV, ENV_PREFIX, Config, ConfigError, Secret

MIN_TOKEN_CHARS: Final = 16
_KEYS: Final = frozenset(
    {
        "token",
        "token_file",
        "token_name",
        "clients",
        "cooldown",
        "verify_delay",
        "verify_interval",
        "verify_timeout",
        "rate_limit",
        "rate_window",
        "max_wait",
        "idempotency_ttl",
    }
)
_CLIENT_KEYS: Final = frozenset({"token", "token_file", "access"})
ACCESS: Final = ("read", "command")


@dataclass(frozen=True, slots=True)
class TokenEntry:
    name: str
    secret: Secret
    can_command: bool


@dataclass(frozen=True, slots=True)
class CommandSettings:
    tokens: tuple[TokenEntry, ...] = ()
    cooldown: float = 5.0
    verify_delay: float = 8.0
    verify_interval: float = 10.0
    verify_timeout: float = 120.0
    rate_limit: int = 30
    rate_window: float = 60.0
    max_wait: float = 120.0
    idempotency_ttl: float = 86400.0

    @property
    def enabled(self) -> bool:
        """No token, no API: an exporter must never accept commands from anyone by default."""
        return bool(self.tokens)


def _number(t: Mapping[str, Any], key: str, default: float, *, minimum: float = 0.0) -> float:
    value = t.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"commands.{key} = {value!r}: expected a number of seconds")
    if value < minimum:
        raise ConfigError(f"commands.{key} = {value!r}: expected a number >= {minimum:g}")
    return float(value)


def _base(config: Config) -> Path:
    src = Path(config.source)
    return src.resolve().parent if src.is_file() else Path.cwd()


def _from_file(config: Config) -> Mapping[str, Any]:
    """The [commands] table as written in the TOML file, without environment overrides, so a token
    pasted into the file is refused even where the loader's own check does not look (sub-tables)."""
    src = Path(config.source)
    if not src.is_file():
        return {}
    try:
        with src.open("rb") as fh:
            got = tomllib.load(fh).get("commands", {})
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    return got if isinstance(got, dict) else {}


def _secret(
    table: Mapping[str, Any], key: str, env: str, base: Path, in_file: Mapping[str, Any]
) -> Secret | None:
    if "token" in in_file:
        raise ConfigError(
            f"{key}.token: secrets are not allowed in the config file; set {env} "
            f"or point {key}.token_file at a file holding it"
        )
    raw = table.get("token")
    where = f"{key}.token"
    if raw is None and "token_file" in table:
        path_value = table["token_file"]
        where = f"{key}.token_file"
        if not isinstance(path_value, str) or not path_value:
            raise ConfigError(f"{where} = {path_value!r}: expected the path of a file")
        p = Path(path_value)
        p = p if p.is_absolute() else base / p
        try:
            raw = p.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"{where} = {path_value!r}: cannot read it ({exc.strerror})"
            ) from None
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(f"{where}: the token is empty")
    raw = raw.strip()
    if len(raw) < MIN_TOKEN_CHARS or any(c.isspace() for c in raw):
        raise ConfigError(
            f"{where}: a command token needs at least {MIN_TOKEN_CHARS} characters and no spaces; "
            "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return Secret(raw)


def load_settings(config: Config) -> CommandSettings:
    """Validate ``config.extra['commands']``; ConfigError names the offending key."""
    t = config.extra.get("commands", {})
    if not isinstance(t, dict):
        raise ConfigError("commands: expected a table ([commands])")
    for key in t:
        if key not in _KEYS:
            raise ConfigError(
                f"commands.{key}: unknown key; expected one of: {', '.join(sorted(_KEYS))}"
            )
    base = _base(config)
    in_file = _from_file(config)
    tokens: list[TokenEntry] = []
    name = t.get("token_name", "admin")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"commands.token_name = {name!r}: expected a non-empty name")
    main = _secret(t, "commands", API_TOKEN_ENV, base, {})
    if main is not None:
        tokens.append(TokenEntry(name, main, True))

    clients = t.get("clients", {})
    if not isinstance(clients, dict):
        raise ConfigError(
            "commands.clients: expected tables such as [commands.clients.homeassistant]"
        )
    file_clients = in_file.get("clients", {})
    for cname, body in clients.items():
        key = f"commands.clients.{cname}"
        if not isinstance(body, dict):
            raise ConfigError(f"{key}: expected a table with access and token_file")
        for k in body:
            if k not in _CLIENT_KEYS:
                raise ConfigError(
                    f"{key}.{k}: unknown key; expected one of: {', '.join(sorted(_CLIENT_KEYS))}"
                )
        access = body.get("access", "read")
        if access not in ACCESS:
            raise ConfigError(f"{key}.access = {access!r}: expected 'read' or 'command'")
        env = f"{ENV_PREFIX}COMMANDS__CLIENTS__{cname.upper()}__TOKEN"
        raw_file_body = file_clients.get(cname, {}) if isinstance(file_clients, dict) else {}
        secret = _secret(
            body, key, env, base, raw_file_body if isinstance(raw_file_body, dict) else {}
        )
        if secret is None:
            raise ConfigError(f"{key}: no token; set {env} or {key}.token_file")
        if cname == name:
            raise ConfigError(f"{key}: the name {cname!r} is already used by commands.token_name")
        tokens.append(TokenEntry(cname, secret, access == "command"))
    seen: dict[Secret, str] = {}
    for entry in tokens:
        if entry.secret in seen:
            raise ConfigError(
                f"commands: {seen[entry.secret]!r} and {entry.name!r} share one token; "
                "give every client its own so the audit log can tell them apart"
            )
        seen[entry.secret] = entry.name

    d = CommandSettings()
    rate_limit = t.get("rate_limit", d.rate_limit)
    if isinstance(rate_limit, bool) or not isinstance(rate_limit, int) or rate_limit < 1:
        raise ConfigError(f"commands.rate_limit = {rate_limit!r}: expected a whole number >= 1")
    s = CommandSettings(
        tokens=tuple(tokens),
        cooldown=_number(t, "cooldown", d.cooldown),
        verify_delay=_number(t, "verify_delay", config.poll.after_command),
        verify_interval=_number(t, "verify_interval", d.verify_interval, minimum=0.1),
        verify_timeout=_number(t, "verify_timeout", d.verify_timeout),
        rate_limit=rate_limit,
        rate_window=_number(t, "rate_window", d.rate_window, minimum=0.001),
        max_wait=_number(t, "max_wait", d.max_wait),
        idempotency_ttl=_number(t, "idempotency_ttl", d.idempotency_ttl, minimum=1),
    )
    if s.verify_timeout < s.verify_delay:
        raise ConfigError(
            f"commands.verify_timeout = {s.verify_timeout:g}: must be at least "
            f"commands.verify_delay ({s.verify_delay:g})"
        )
    return s
