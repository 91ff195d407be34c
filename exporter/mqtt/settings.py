"""The ``[mqtt]`` config table, validated with errors that name the key.

MQTT is off unless ``url`` is set. The broker password, like every secret, comes only from the
environment or a file; who may send commands is the broker's business (its password file and ACL),
so the exporter has no token of its own for MQTT.

    [mqtt]
    url = "mqtt://127.0.0.1:1883"     # or mqtts://host:8883 (TLS); absent: MQTT off
    username = "carmetrics"
    password_file = "/run/secrets/mqtt"  # or CARMETRICS_MQTT__PASSWORD
    tls_ca_file = "/etc/ssl/broker-ca.pem"  # mqtts: the CA to trust (default: the system's)
    tls_cert_file = "client.pem"       # mqtts: a client certificate ...
    tls_key_file = "client.key"        # ... and its key, for brokers that ask for one
    topic_prefix = "carmetrics"        # <prefix>/<vin>/<signal>
    discovery_prefix = "homeassistant" # Home Assistant's discovery prefix
    discovery = true                   # publish Home Assistant discovery configs
    commands = false                   # true: accept commands on <prefix>/<vin>/command
    qos = 1                            # 0, 1 or 2, for everything published
    retain = true                      # state topics retained (discovery is always retained)
    client_id = "carmetrics"
    keepalive = 60                     # s
    reconnect_min = 1                  # s; the wait after a lost connection doubles ...
    reconnect_max = 60                 # ... up to this
    status_interval = 60               # s (clock time): per-car availability and data age
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from exporter.config import ENV_PREFIX, Config, ConfigError, Secret
from exporter.settings import EnvValue, ShadowingEnvValue

SECTION: Final = "mqtt"
_KEYS: Final = frozenset(
    {
        "url",
        "username",
        "password",
        "password_file",
        "tls_ca_file",
        "tls_cert_file",
        "tls_key_file",
        "topic_prefix",
        "discovery_prefix",
        "discovery",
        "commands",
        "qos",
        "retain",
        "client_id",
        "keepalive",
        "reconnect_min",
        "reconnect_max",
        "status_interval",
    }
)
_PORTS: Final = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str = ""
    port: int = 1883
    tls: bool = False
    username: str | None = None
    password: Secret | None = None
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    topic_prefix: str = "carmetrics"
    discovery_prefix: str = "homeassistant"
    discovery: bool = True
    commands: bool = False  # like the HTTP API: nobody commands a car unless the owner says so
    qos: int = 1
    retain: bool = True
    client_id: str = "carmetrics"
    keepalive: int = 60
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    status_interval: float = 60.0

    @property
    def enabled(self) -> bool:
        return bool(self.host)


def _key(name: str) -> str:
    return f"{SECTION}.{name}"


def _bool(t: Mapping[str, Any], name: str, default: bool) -> bool:
    value = t.get(name, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{_key(name)} = {value!r}: expected true or false")
    return value


def _number(t: Mapping[str, Any], name: str, default: float, *, minimum: float) -> float:
    value = t.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise ConfigError(f"{_key(name)} = {value!r}: expected a number >= {minimum:g}")
    return float(value)


def _prefix(t: Mapping[str, Any], name: str, default: str) -> str:
    """A topic prefix: one or more non-empty levels, no wildcards (they are not valid in a
    published topic), no leading/trailing slash."""
    value = t.get(name, default)
    if (
        not isinstance(value, str)
        or not value
        or any(not level for level in value.split("/"))
        or any(c in value for c in "+#\0")
    ):
        raise ConfigError(
            f"{_key(name)} = {value!r}: expected a topic such as {default!r} "
            "(levels separated by '/', no '+', '#' or empty level)"
        )
    return value


def _path(t: Mapping[str, Any], name: str, base: Path) -> Path | None:
    value = t.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{_key(name)} = {value!r}: expected the path of a file")
    p = Path(value)
    p = p if p.is_absolute() else base / p
    if not p.is_file():
        raise ConfigError(f"{_key(name)} = {value!r}: no such file")
    return p


def _password(t: Mapping[str, Any], base: Path) -> Secret | None:
    raw = t.get("password")
    if raw is not None and (not isinstance(raw, EnvValue) or isinstance(raw, ShadowingEnvValue)):
        raise ConfigError(
            f"{_key('password')}: secrets are not allowed in the config file; set "
            f"{ENV_PREFIX}MQTT__PASSWORD or point {_key('password_file')} at a file holding it"
        )
    if raw is None and "password_file" in t:
        path = _path(t, "password_file", base)
        assert path is not None
        try:
            raw = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"{_key('password_file')} = {t['password_file']!r}: cannot read it ({exc.strerror})"
            ) from None
        if not raw:
            raise ConfigError(
                f"{_key('password_file')} = {t['password_file']!r}: the file is empty"
            )
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw:
        raise ConfigError(f"{ENV_PREFIX}MQTT__PASSWORD: expected a non-empty password")
    return Secret(raw)


def _base(config: Config) -> Path:
    src = Path(config.source)
    return src.resolve().parent if src.is_file() else Path.cwd()


def load_settings(config: Config) -> MqttSettings:
    """Validate ``config.extra['mqtt']``; ConfigError names the offending key. (A password written
    into the TOML file itself is refused earlier, by the config loader.)"""
    t = config.extra.get(SECTION, {})
    if not isinstance(t, dict):
        raise ConfigError(f"{SECTION}: expected a table ([{SECTION}])")
    for key in t:
        if key not in _KEYS:
            raise ConfigError(
                f"{_key(key)}: unknown key; expected one of: {', '.join(sorted(_KEYS))}"
            )
    d = MqttSettings()
    url = t.get("url")
    if url is None:
        return d
    parts = urlsplit(url) if isinstance(url, str) else None
    try:
        port = parts.port if parts is not None else None
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in _PORTS
        or not parts.hostname
        or parts.path not in ("", "/")
    ):
        raise ConfigError(
            f"{_key('url')} = {url!r}: expected mqtt://host[:port] or mqtts://host[:port]"
        )
    if parts.username or parts.password:
        raise ConfigError(
            f"{_key('url')}: put no credentials in the URL; use {_key('username')} and "
            f"{ENV_PREFIX}MQTT__PASSWORD or {_key('password_file')}"
        )
    tls = parts.scheme == "mqtts"
    base = _base(config)
    username = t.get("username")
    if username is not None and (not isinstance(username, str) or not username):
        raise ConfigError(f"{_key('username')} = {username!r}: expected a non-empty name")
    password = _password(t, base)
    if password is not None and username is None:
        raise ConfigError(f"{_key('password')}: a password needs {_key('username')} as well")
    files = {k: _path(t, k, base) for k in ("tls_ca_file", "tls_cert_file", "tls_key_file")}
    given = [k for k, v in files.items() if v is not None]
    if given and not tls:
        raise ConfigError(f"{_key(given[0])}: TLS options need an mqtts:// url")
    if (files["tls_cert_file"] is None) != (files["tls_key_file"] is None):
        raise ConfigError(
            f"{_key('tls_cert_file')} and {_key('tls_key_file')}: give both or neither"
        )
    qos = t.get("qos", d.qos)
    if qos not in (0, 1, 2) or isinstance(qos, bool):
        raise ConfigError(f"{_key('qos')} = {qos!r}: expected 0, 1 or 2")
    client_id = t.get("client_id", d.client_id)
    if not isinstance(client_id, str) or not 0 < len(client_id) <= 23 * 4:
        raise ConfigError(f"{_key('client_id')} = {client_id!r}: expected a short non-empty name")
    topic_prefix = _prefix(t, "topic_prefix", d.topic_prefix)
    discovery_prefix = _prefix(t, "discovery_prefix", d.discovery_prefix)
    if topic_prefix == discovery_prefix:
        raise ConfigError(
            f"{_key('topic_prefix')} = {topic_prefix!r}: must differ from {_key('discovery_prefix')}"
        )
    s = MqttSettings(
        host=parts.hostname,
        port=port or _PORTS[parts.scheme],
        tls=tls,
        username=username,
        password=password,
        tls_ca_file=files["tls_ca_file"],
        tls_cert_file=files["tls_cert_file"],
        tls_key_file=files["tls_key_file"],
        topic_prefix=topic_prefix,
        discovery_prefix=discovery_prefix,
        discovery=_bool(t, "discovery", d.discovery),
        commands=_bool(t, "commands", d.commands),
        qos=int(qos),
        retain=_bool(t, "retain", d.retain),
        client_id=client_id,
        keepalive=int(_number(t, "keepalive", d.keepalive, minimum=5)),
        reconnect_min=_number(t, "reconnect_min", d.reconnect_min, minimum=0.01),
        reconnect_max=_number(t, "reconnect_max", d.reconnect_max, minimum=0.01),
        status_interval=_number(t, "status_interval", d.status_interval, minimum=1),
    )
    if s.commands and s.username is None and s.tls_cert_file is None:
        raise ConfigError(
            f"{_key('commands')} = true needs {_key('username')} (or a TLS client certificate): "
            "commands are authorised by the broker's logins and ACL, and an anonymous client "
            "cannot be told apart from any other"
        )
    if s.reconnect_max < s.reconnect_min:
        raise ConfigError(
            f"{_key('reconnect_max')} = {s.reconnect_max:g}: must be at least "
            f"{_key('reconnect_min')} ({s.reconnect_min:g})"
        )
    return s
