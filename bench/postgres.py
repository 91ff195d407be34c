"""A real PostgreSQL server in a temporary directory on a free loopback port, for the tests and
benchmarks of the PostgreSQL backend (Debian package ``postgresql``).

Debian keeps the server programs off ``PATH`` (``/usr/lib/postgresql/<major>/bin``), so
:func:`find_binaries` looks there too. ``initdb`` and ``postgres`` refuse to run as root; when the
caller is root (CI containers are), the cluster is created and run as an unprivileged system user
(``postgres`` if the package created it, else ``nobody``) that owns the temporary directory.

The cluster is as a production one would be where it matters to carmetrics: password
authentication (scram-sha-256) over TCP, no trust, a named database and role; fsync is off, because
these clusters are thrown away after the run and a test never measures durability.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import stop_child

USER = "carmetrics"
PASSWORD = "pg-test-pw-41c7"  # a throw-away cluster's password, never a real one
DATABASE = "carmetrics"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_binaries() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or None if not installed."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("postgres"):
        return Path(on_path).resolve().parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "postgres").exists():
            return Path(candidate)
    return None


def _run_as() -> pwd.struct_passwd | None:
    """The unprivileged account to run the server as, or None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists")


@dataclass
class Cluster:
    """One throw-away PostgreSQL cluster; :meth:`start` it, read :attr:`dsn`, :meth:`stop` it."""

    bindir: Path
    directory: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def dsn(self) -> str:
        """A URL with the password in it: for tests and benchmarks only (carmetrics reads passwords
        from the environment or a file, never from its config)."""
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def dsn_without_password(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def _popen_kwargs(self) -> dict[str, object]:
        account = _run_as()
        if account is None:
            return {}
        return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}

    def _chown(self, path: Path) -> None:
        account = _run_as()
        if account is not None:
            os.chown(path, account.pw_uid, account.pw_gid)

    def init(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        self._chown(self.directory)
        pwfile = self.directory / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        pwfile.chmod(0o600)
        self._chown(pwfile)
        subprocess.run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                USER,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            **self._popen_kwargs(),  # type: ignore[call-overload]
        )
        pwfile.unlink()

    def start(self, timeout: float = 30.0) -> None:
        if not self.data.exists():
            self.init()
        log = self.directory / "postgres.log"
        handle = log.open("ab")
        self.proc = subprocess.Popen(  # type: ignore[call-overload]
            [
                str(self.bindir / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                str(self.directory),
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            stdout=handle,
            stderr=handle,
            **self._popen_kwargs(),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"postgres exited with {self.proc.returncode}: " + log.read_text()[-2000:]
                )
            if self._ready():
                self._create_database()
                return
            time.sleep(0.1)
        raise RuntimeError(f"postgres did not accept connections on {self.port} within {timeout} s")

    def _psql(self, sql: str, database: str = "postgres") -> subprocess.CompletedProcess[bytes]:
        psql = shutil.which("psql") or str(self.bindir / "psql")
        return subprocess.run(
            [
                psql,
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                USER,
                "-d",
                database,
                "-c",
                sql,
            ],
            capture_output=True,
            env={**os.environ, "PGPASSWORD": PASSWORD, "PGCONNECT_TIMEOUT": "2"},
        )

    def _ready(self) -> bool:
        return self._psql("select 1").returncode == 0

    def _create_database(self) -> None:
        probe = self._psql(f"create database {DATABASE}")
        if probe.returncode != 0 and b"already exists" not in probe.stderr:
            raise RuntimeError(probe.stderr.decode(errors="replace"))

    def stop(self) -> None:
        """Fast shutdown (SIGINT): ends sessions, no waiting for clients."""
        stop_child(self.proc, signal.SIGINT, grace=15)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def reset(self) -> None:
        """Drop and re-create the database: a clean slate for the next test, without a new initdb."""
        self._psql(
            f"select pg_terminate_backend(pid) from pg_stat_activity "
            f"where datname = '{DATABASE}' and pid <> pg_backend_pid()"
        )
        dropped = self._psql(f"drop database if exists {DATABASE}")
        if dropped.returncode != 0:
            raise RuntimeError(dropped.stderr.decode(errors="replace"))
        self._create_database()
