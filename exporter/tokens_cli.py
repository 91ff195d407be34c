"""``carmetrics tokens ...``: key management for the token vault.

Kept out of ``exporter/cli.py`` so the vault's commands live next to nothing but the vault; the main
CLI adds this group with one ``cli.add_command(tokens)`` line.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from exporter.tokens import KEY_ENV, EncryptedTokenStore, generate_key, parse_keys


@click.group("tokens")
def tokens() -> None:
    """Manage the encryption key of the OAuth token vault.

    \b
    Example:
      export CARMETRICS_TOKENS__KEY="$(carmetrics tokens genkey)"
    """


@tokens.command("genkey")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the key to this file (mode 0600) instead of printing it; for [tokens] key_file.",
)
def genkey(out: Path | None) -> None:
    """Print a new 256-bit vault key (URL-safe base64).

    \b
    Examples:
      carmetrics tokens genkey                      # print; put it in CARMETRICS_TOKENS__KEY
      carmetrics tokens genkey --out secrets/tokens.key
    """
    key = generate_key()
    if out is None:
        click.echo(key)
        return
    if out.exists():
        raise click.ClickException(f"{out} exists; refusing to overwrite a key in use")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key + "\n")
    click.echo(f"wrote a new key to {out}; set [tokens] key_file = {str(out)!r}")


@tokens.command("rekey")
@click.option(
    "--db",
    "db",
    required=True,
    help="The history holding the vault: an SQLite file or a postgresql:// URL.",
)
def rekey(db: str) -> None:
    """Re-encrypt every stored token with the first key of CARMETRICS_TOKENS__KEY.

    \b
    Rotation: put the new key first and the old one second, run this, then drop the old key:
      CARMETRICS_TOKENS__KEY="$NEW,$OLD" carmetrics tokens rekey --db carmetrics.db
    """
    raw = os.environ.get(KEY_ENV, "")
    if not raw:
        raise click.ClickException(f"{KEY_ENV} is not set")
    from exporter.backend import backend
    from exporter.cli import _load_config
    from exporter.history import HistoryError

    keys = parse_keys(raw, KEY_ENV)
    target = _load_config(None, db=db).db
    if isinstance(target, Path) and not target.is_file():
        raise click.ClickException(f"{target} does not exist")
    try:
        store = EncryptedTokenStore(backend(target).token_rows(), keys)
        try:
            n = store.rekey()
        finally:
            store.close()
    except HistoryError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"re-encrypted {n} token record(s)")
