"""The token vault: encrypted at rest, durable, refuses to run without a key for real accounts."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from exporter.config import ConfigError, load
from exporter.providers.base import MemoryTokenStore
from exporter.tokens import (
    KEY_ENV,
    EncryptedTokenStore,
    TokenVaultError,
    generate_key,
    parse_keys,
    tokens_from_config,
)
from exporter.tokens_cli import tokens as tokens_group

SECRET_RT = "rt-0f3b8e42-5c1d-4a8e-9d0f-secretvalue"


def _all_bytes(db: Path) -> bytes:
    out = b""
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(db) + suffix)
        if p.exists():
            out += p.read_bytes()
    return out


def test_roundtrip_and_nothing_in_plaintext_on_disk(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    store = EncryptedTokenStore(db, parse_keys(generate_key(), "k"))
    store.save("smartcar:acc:user1", {"refresh_token": SECRET_RT, "n": 3})
    assert store.load("smartcar:acc:user1") == {"refresh_token": SECRET_RT, "n": 3}
    assert store.load("missing") is None
    raw = _all_bytes(db)
    assert SECRET_RT.encode() not in raw
    assert b"refresh_token" not in raw
    store.delete("smartcar:acc:user1")
    assert store.load("smartcar:acc:user1") is None


def test_save_is_visible_to_a_fresh_connection(tmp_path: Path) -> None:
    """Durability as another process sees it: a second connection reads the committed row."""
    db = tmp_path / "c.db"
    key = generate_key()
    a = EncryptedTokenStore(db, parse_keys(key, "k"))
    a.save("x", {"v": 1})
    b = EncryptedTokenStore(db, parse_keys(key, "k"))
    assert b.load("x") == {"v": 1}
    mode = sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_wrong_key_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    EncryptedTokenStore(db, parse_keys(generate_key(), "k")).save("x", {"v": 1})
    other = EncryptedTokenStore(db, parse_keys(generate_key(), "k"))
    with pytest.raises(TokenVaultError, match="cannot be decrypted"):
        other.check()


def test_blob_moved_to_another_row_does_not_decrypt(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    store = EncryptedTokenStore(db, parse_keys(generate_key(), "k"))
    store.save("alice", {"refresh_token": "a"})
    store.save("bob", {"refresh_token": "b"})
    con = sqlite3.connect(db)
    con.execute(
        "UPDATE oauth_tokens SET blob = (SELECT blob FROM oauth_tokens WHERE name='alice') "
        "WHERE name='bob'"
    )
    con.commit()
    with pytest.raises(TokenVaultError):
        store.load("bob")


def test_key_rotation_with_two_keys_and_rekey(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    old, new = generate_key(), generate_key()
    EncryptedTokenStore(db, parse_keys(old, "k")).save("x", {"v": 1})
    both = EncryptedTokenStore(db, parse_keys(f"{new},{old}", "k"))
    assert both.load("x") == {"v": 1}
    assert both.rekey() == 1
    assert EncryptedTokenStore(db, parse_keys(new, "k")).load("x") == {"v": 1}
    with pytest.raises(TokenVaultError):
        EncryptedTokenStore(db, parse_keys(old, "k")).load("x")


@pytest.mark.parametrize("bad", ["", "short", "!!!!", "a" * 44])
def test_bad_key_formats_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"genkey|32-byte"):
        parse_keys(bad, KEY_ENV)


def _config(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(f'[exporter]\ndb = "{tmp_path / "h.db"}"\n' + body)
    return p


REAL_ACCOUNT = '[[accounts]]\nprovider = "smartcar"\nname = "home"\n'
SIM_ACCOUNT = '[simulator]\nenabled = true\n[[accounts]]\nprovider = "smartcar"\nsimulator = true\n'


def test_real_account_without_key_refuses_to_start(tmp_path: Path) -> None:
    cfg = load(_config(tmp_path, REAL_ACCOUNT), env={})
    with pytest.raises(ConfigError) as exc:
        tokens_from_config(cfg, env={})
    msg = str(exc.value)
    assert "accounts[0]" in msg and KEY_ENV in msg and "\n" not in msg


def test_simulator_only_config_may_use_memory(tmp_path: Path) -> None:
    cfg = load(_config(tmp_path, SIM_ACCOUNT), env={})
    assert isinstance(tokens_from_config(cfg, env={}), MemoryTokenStore)


def test_key_from_env_gives_the_vault_in_the_history_file(tmp_path: Path) -> None:
    env = {KEY_ENV: generate_key()}
    cfg = load(_config(tmp_path, REAL_ACCOUNT), env=env)
    store = tokens_from_config(cfg, env=env)
    assert isinstance(store, EncryptedTokenStore)
    assert store.path == tmp_path / "h.db"


def test_key_file_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "vault.key").write_text(generate_key() + "\n")
    cfg = load(_config(tmp_path, '[tokens]\nkey_file = "vault.key"\n' + REAL_ACCOUNT), env={})
    assert isinstance(tokens_from_config(cfg, env={}), EncryptedTokenStore)


@pytest.mark.parametrize("with_env", [False, True])
def test_key_in_the_toml_file_is_refused(tmp_path: Path, with_env: bool) -> None:
    # also when the environment gives a key too: the one in the file must not stay there unnoticed
    env = {KEY_ENV: generate_key()} if with_env else {}
    cfg = load(_config(tmp_path, f'[tokens]\nkey = "{generate_key()}"\n' + REAL_ACCOUNT), env=env)
    with pytest.raises(ConfigError, match=r"tokens\.key: secrets are not allowed in the config"):
        tokens_from_config(cfg, env=env)


def test_unknown_tokens_key_is_named(tmp_path: Path) -> None:
    cfg = load(_config(tmp_path, "[tokens]\nkeyfile = 'x'\n" + REAL_ACCOUNT), env={})
    with pytest.raises(ConfigError, match=r"tokens\.keyfile: unknown key"):
        tokens_from_config(cfg, env={})


def test_wrong_key_for_an_existing_vault_fails_at_startup(tmp_path: Path) -> None:
    EncryptedTokenStore(tmp_path / "h.db", parse_keys(generate_key(), "k")).save("x", {"v": 1})
    env = {KEY_ENV: generate_key()}
    cfg = load(_config(tmp_path, REAL_ACCOUNT), env=env)
    with pytest.raises(ConfigError, match="cannot be decrypted"):
        tokens_from_config(cfg, env=env)


def test_genkey_cli_prints_a_usable_key(tmp_path: Path) -> None:
    res = CliRunner().invoke(tokens_group, ["genkey"])
    assert res.exit_code == 0, res.output
    assert len(parse_keys(res.output.strip(), "cli")) == 1
    again = CliRunner().invoke(tokens_group, ["genkey"]).output
    assert again != res.output


def test_genkey_cli_writes_a_private_file_and_never_overwrites(tmp_path: Path) -> None:
    out = tmp_path / "s" / "k"
    res = CliRunner().invoke(tokens_group, ["genkey", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert parse_keys(out.read_text().strip(), "file")
    res2 = CliRunner().invoke(tokens_group, ["genkey", "--out", str(out)])
    assert res2.exit_code != 0 and "refusing" in res2.output


def test_rekey_cli(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    old, new = generate_key(), generate_key()
    EncryptedTokenStore(db, parse_keys(old, "k")).save("x", {"v": 2})
    res = CliRunner().invoke(
        tokens_group, ["rekey", "--db", str(db)], env={KEY_ENV: f"{new},{old}"}
    )
    assert res.exit_code == 0, res.output
    assert EncryptedTokenStore(db, parse_keys(new, "k")).load("x") == {"v": 2}
