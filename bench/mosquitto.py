"""A real Mosquitto broker on a free loopback port, with a password file and an ACL, for the MQTT
tests and benchmark (Debian package ``mosquitto``).

Three users, as a Home Assistant installation would have them:

- ``carmetrics`` (the exporter): writes everything under its prefix and the discovery prefix,
  reads the command topics and Home Assistant's status;
- ``homeassistant``: reads everything, may write commands (``<prefix>/+/command``) and its status;
- ``observer``: reads everything, writes nothing; a client like it cannot command a car.

The broker's persistence is off, so a restart loses every retained message: the exporter must
publish its cars' state again, which is what a reconnect test wants to see.
"""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import stop_child

USERS = {
    "carmetrics": "exporter-pw-5e1f",
    "homeassistant": "ha-pw-90c2",
    "observer": "observer-pw-77aa",
}

ACL = """\
user carmetrics
topic readwrite {prefix}/#
topic readwrite {discovery}/#

user homeassistant
topic read {prefix}/#
topic write {prefix}/+/command
topic readwrite {discovery}/#

user observer
topic read #
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Broker:
    binary: str
    directory: Path
    port: int = field(default_factory=free_port)
    prefix: str = "carmetrics"
    discovery: str = "homeassistant"
    proc: subprocess.Popen[bytes] | None = None

    def _write_files(self) -> Path:
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        passwd = d / "passwd"
        tool = shutil.which("mosquitto_passwd")
        if tool is None:
            raise RuntimeError("mosquitto_passwd not found (Debian: apt-get install mosquitto)")
        passwd.unlink(missing_ok=True)
        for user, pw in USERS.items():
            args = [tool, "-b", str(passwd), user, pw]
            if not passwd.exists():
                args.insert(1, "-c")
            subprocess.run(args, check=True, capture_output=True)
        passwd.chmod(0o600)
        acl = d / "acl"
        acl.write_text(ACL.format(prefix=self.prefix, discovery=self.discovery))
        acl.chmod(0o600)
        conf = d / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous false\n"
            f"password_file {passwd}\n"
            f"acl_file {acl}\n"
            "persistence false\n"
            # run as whoever started it (as root, mosquitto would switch to its own user and lose
            # access to these files)
            f"user {getpass.getuser()}\n"
            "log_dest stderr\n"
            "log_type error\n"
            "log_type warning\n"
            "max_queued_messages 100000\n"
        )
        return conf

    def start(self, timeout: float = 10.0) -> None:
        conf = self._write_files()
        log = (self.directory / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen([self.binary, "-c", str(conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited with {self.proc.returncode}: "
                    + (self.directory / "mosquitto.log").read_text()[-2000:]
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout} s")

    def stop(self) -> None:
        stop_child(self.proc, signal.SIGTERM, grace=5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"
