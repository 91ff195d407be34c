"""The ``[shard]`` table: several identical instances sharing the accounts through PostgreSQL.

    [shard]
    mode = "auto"          # "off" (default): this instance polls every account
    lease = 60             # s an account stays with an instance that stopped renewing it
    heartbeat = 15         # s between renewals (default lease / 4; must be below lease / 2)
    advertise_url = "http://carmetrics-2:8477"   # where the other instances reach this one

``carmetrics run --shard auto`` sets ``mode``; the leases live in the PostgreSQL database given
with ``--db postgresql://...`` (see docs/SCALING.md).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Literal, Self

from pydantic import Field, model_validator

from exporter.config import Config, ConfigError
from exporter.settings import Section, invalid, read_section
from exporter.urls import origin


class ShardSection(Section):
    mode: Literal["off", "auto"] = "off"
    lease: float = Field(default=60.0, ge=1, le=3600, description="seconds, 1..3600")
    heartbeat: float | None = Field(default=None, gt=0, description="seconds greater than 0")
    advertise_url: str | None = Field(
        default=None, min_length=1, description="a URL such as http://carmetrics-2:8477"
    )

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.heartbeat is not None and self.heartbeat >= self.lease / 2:
            raise invalid(
                f"expected less than half of shard.lease ({self.lease:g} s), so a lease survives "
                "one lost renewal",
                field="heartbeat",
                value=self.heartbeat,
            )
        url = self.advertise_url
        if url is not None and (
            not url.startswith(("http://", "https://")) or origin(url) != url.rstrip("/").lower()
        ):
            raise invalid(
                "expected a base URL such as http://carmetrics-2:8477 (no path or query)",
                field="advertise_url",
                value=url,
            )
        return self


@dataclass(frozen=True, slots=True)
class ShardSettings:
    lease: float
    heartbeat: float
    advertise_url: str
    dsn: str


def _own_address(listen: str) -> str:
    """Where the other instances reach this one when no ``advertise_url`` says: the listen address,
    or for a wildcard one the address the host name resolves to (a container's own IP: replicas of
    one compose service share a service name, not a host name another can look up)."""
    if listen not in ("", "0.0.0.0", "::"):
        return f"[{listen}]" if ":" in listen else listen
    name = socket.gethostname()
    try:
        return socket.gethostbyname(name)
    except OSError:
        return name


def dsn_of(config: Config) -> str | None:
    """The libpq connection string of the PostgreSQL database ``--db`` / ``[exporter] db`` names
    (password included, never shown), or None for an SQLite file."""
    conninfo = getattr(config.db, "conninfo", None)
    return str(conninfo()) if callable(conninfo) else None


def load_settings(config: Config) -> ShardSettings | None:
    """None when sharding is off; ConfigError (naming the key) when it cannot work."""
    s = read_section(ShardSection, config.extra.get("shard"), "shard")
    if s.mode == "off":
        return None
    dsn = dsn_of(config)
    if dsn is None:
        raise ConfigError(
            f"shard.mode = {s.mode!r} needs the PostgreSQL database the instances share: "
            "pass --db postgresql://USER@HOST/DB (password in CARMETRICS_DB_PASSWORD)"
        )
    url = (s.advertise_url or f"http://{_own_address(config.listen)}:{config.port}").rstrip("/")
    heartbeat = s.heartbeat if s.heartbeat is not None else s.lease / 4
    return ShardSettings(lease=s.lease, heartbeat=heartbeat, advertise_url=url, dsn=dsn)
