"""Where the history lives: an SQLite file (the default) or a PostgreSQL database.

``[exporter] db`` and ``--db`` take either a file path or a ``postgresql://`` URL. The URL never
carries the password: it would sit in the config file, in the process list (``--db``) and in every
log line that names the database. The password comes from ``CARMETRICS_DB_PASSWORD`` or
``[exporter] db_password_file`` (the ``Secret`` mechanism of ``exporter.settings``); every other
libpq parameter (``sslmode``, ``sslrootcert``, ``target_session_attrs``, ...) passes through as a
query parameter. Nothing here imports psycopg, so an SQLite user never loads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from exporter.settings import ConfigError, Secret

PASSWORD_ENV: Final = "CARMETRICS_DB_PASSWORD"
SCHEMES: Final = ("postgresql", "postgres")


def is_postgres(text: str | Path) -> bool:
    """True for a ``postgresql://`` (or ``postgres://``) URL."""
    return isinstance(text, str) and text.split("://", 1)[0].lower() in SCHEMES and "://" in text


@dataclass(frozen=True)
class PgTarget:
    """A PostgreSQL history: the URL (never with a password) and the password, kept apart."""

    url: str
    password: Secret | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return mask(self.url)

    @property
    def name(self) -> str:
        """A short label (report titles): the database name."""
        return urlsplit(self.url).path.lstrip("/") or "postgres"

    def conninfo(self) -> str:
        """The libpq connection string with the password added (for psycopg only, never shown)."""
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        params = conninfo_to_dict(self.url)
        params.setdefault("connect_timeout", "10")
        params.setdefault("application_name", "carmetrics")
        if self.password is not None:
            params["password"] = self.password.reveal()
        return make_conninfo("", **params)


DbTarget = Path | PgTarget


def mask(url: str) -> str:
    """The URL with any password replaced by ``***`` (for logs and errors)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<an unreadable database URL>"
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        if ":" in user:
            user = user.split(":", 1)[0] + ":***"
        netloc = f"{user}@{host}"
    query = "&".join(
        f"{k}={'***' if k.lower() == 'password' else v}"
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def parse(text: str | Path, *, where: str, base: Path, password: Secret | None) -> DbTarget:
    """A file path (relative to ``base``) or a PostgreSQL target. ``where`` names the setting in
    errors (``exporter.db``, ``--db``); a password written into the URL is refused."""
    if not is_postgres(str(text)):
        p = Path(text)
        return p if p.is_absolute() else base / p
    url = str(text)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ConfigError(f"{where} = {mask(url)!r}: not a valid PostgreSQL URL ({exc})") from None
    in_query = any(k.lower() == "password" for k, _ in parse_qsl(parts.query))
    if parts.password is not None or in_query:
        raise ConfigError(
            f"{where}: a password in the PostgreSQL URL is not allowed (it would show in the "
            f"config file, the process list and logs); remove it and set {PASSWORD_ENV} or "
            "point exporter.db_password_file at a file holding it"
        )
    return PgTarget(url, password)
