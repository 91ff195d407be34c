"""Everything ``run`` must know is right before it binds a port or starts the simulator.

``carmetrics check-config`` and ``carmetrics run`` call the same :func:`preflight`, so "ok" means
``run`` will start. It has no side effects: no database is created, no port bound, no simulator
started. What only a running simulator can supply (its URLs and demo logins) is not checked here;
the simulator gives valid ones.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path

from exporter.config import Config, ConfigError


def _check_listen(config: Config) -> None:
    try:
        socket.getaddrinfo(
            config.listen, config.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else "not a valid host name"
        raise ConfigError(
            f"exporter.listen = {config.listen!r}: not an address this machine can listen on "
            f"({reason}); expected an IP address such as 127.0.0.1, 0.0.0.0 or ::"
        ) from None


def preflight(config: Config, env: Mapping[str, str] | None = None) -> list[str]:
    """Validate the whole configuration; ``ConfigError`` (one line) or the warnings to show."""
    from exporter.commands.settings import load_settings
    from exporter.features import FEATURE_SECTIONS
    from exporter.fleet.settings import load_settings as load_shard_settings
    from exporter.providers.registry import PROVIDERS
    from exporter.settings import AccountSection, read_section
    from exporter.tokens import check_vault

    env = os.environ if env is None else env
    _check_listen(config)
    src = Path(config.source)
    base = src.resolve().parent if src.is_file() else Path.cwd()
    for account in config.accounts:
        # credentials too this time: the loader leaves them to the provider's start
        read_section(
            PROVIDERS[account.provider].model or AccountSection, account.raw(), account.where
        )
    for name, model in FEATURE_SECTIONS.items():
        if model is not None:
            read_section(model, config.extra.get(name), name, base=base)
    load_settings(config)  # cross-key rules of [commands]
    load_shard_settings(config)  # sharding needs a PostgreSQL database
    return check_vault(config, env)
