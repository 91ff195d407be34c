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

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Final, Literal, Self

from pydantic import Field, model_validator

from exporter.config import API_TOKEN_ENV, Config, ConfigError, Secret
from exporter.settings import Seconds, Section, invalid, missing, read_section

MIN_TOKEN_CHARS: Final = 16
ACCESS: Final = ("read", "command")


def _check_token(token: Secret | None) -> None:
    if token is None:
        return
    raw = token.reveal()
    if len(raw) < MIN_TOKEN_CHARS or any(c.isspace() for c in raw):
        raise invalid(
            f"a command token needs at least {MIN_TOKEN_CHARS} characters and no spaces; "
            "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'",
            field="token",
        )


class ClientSection(Section):
    """``[commands.clients.<name>]``: one more named token."""

    access: Literal["read", "command"] = "read"
    token: Secret | None = None

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.token is None:
            raise missing("token")
        _check_token(self.token)
        return self


class CommandsSection(Section):
    """``[commands]`` as written (see the module docstring)."""

    env_names: ClassVar[dict[str, str]] = {"token": API_TOKEN_ENV}
    token: Secret | None = None
    token_name: str = Field(default="admin", pattern=r"\S", description="a non-empty name")
    clients: dict[str, ClientSection] = Field(
        default_factory=dict, description="tables such as [commands.clients.homeassistant]"
    )
    cooldown: Seconds = 5.0
    verify_delay: Seconds | None = None  # default: poll.after_command
    verify_interval: float = Field(default=10.0, ge=0.1)
    verify_timeout: Seconds = 120.0
    rate_limit: int = Field(default=30, ge=1)
    rate_window: float = Field(default=60.0, ge=0.001)
    max_wait: Seconds = 120.0
    idempotency_ttl: float = Field(default=86400.0, ge=1)

    @model_validator(mode="after")
    def _complete(self) -> Self:
        _check_token(self.token)
        return self


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


def _base(config: Config) -> Path:
    src = Path(config.source)
    return src.resolve().parent if src.is_file() else Path.cwd()


def load_settings(config: Config) -> CommandSettings:
    """Validate ``config.extra['commands']``; ConfigError names the offending key."""
    t = read_section(CommandsSection, config.extra.get("commands"), "commands", base=_base(config))
    tokens: list[TokenEntry] = []
    if t.token is not None:
        tokens.append(TokenEntry(t.token_name, t.token, True))
    for cname, client in t.clients.items():
        if cname == t.token_name:
            raise ConfigError(
                f"commands.clients.{cname}: the name {cname!r} is already used by "
                "commands.token_name"
            )
        assert client.token is not None  # the model requires it
        tokens.append(TokenEntry(cname, client.token, client.access == "command"))
    seen: dict[Secret, str] = {}
    for entry in tokens:
        if entry.secret in seen:
            raise ConfigError(
                f"commands: {seen[entry.secret]!r} and {entry.name!r} share one token; "
                "give every client its own so the audit log can tell them apart"
            )
        seen[entry.secret] = entry.name
    delay = config.poll.after_command if t.verify_delay is None else t.verify_delay
    if t.verify_timeout < delay:
        raise ConfigError(
            f"commands.verify_timeout = {t.verify_timeout:g}: must be at least "
            f"commands.verify_delay ({delay:g})"
        )
    return CommandSettings(
        tokens=tuple(tokens),
        cooldown=t.cooldown,
        verify_delay=delay,
        verify_interval=t.verify_interval,
        verify_timeout=t.verify_timeout,
        rate_limit=t.rate_limit,
        rate_window=t.rate_window,
        max_wait=t.max_wait,
        idempotency_ttl=t.idempotency_ttl,
    )
