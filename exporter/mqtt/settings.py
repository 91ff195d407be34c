"""The ``[mqtt]`` config table: a settings model (``exporter.settings``), errors name the key.

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

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final, Self
from urllib.parse import SplitResult, urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator

from exporter.config import ENV_PREFIX, Config, Secret
from exporter.settings import Section, invalid, read_section

SECTION: Final = "mqtt"
_PORTS: Final = {"mqtt": 1883, "mqtts": 8883}
_URL: Final = "expected mqtt://host[:port] or mqtts://host[:port]"
_TOPIC: Final = "a topic (levels separated by '/')"


def _key(name: str) -> str:
    return f"{SECTION}.{name}"


def _check_topic(value: str, default: object) -> str:
    """A topic prefix: one or more non-empty levels, no wildcards (they are not valid in a
    published topic), no leading/trailing slash."""
    if any(not level for level in value.split("/")) or any(c in value for c in "+#\0"):
        raise invalid(
            f"expected a topic such as {default!r} "
            "(levels separated by '/', no '+', '#' or empty level)"
        )
    return value


FilePath = Annotated[str, Field(min_length=1, description="the path of a file")]


def _split(url: str) -> SplitResult | None:
    """``url`` parsed if it is mqtt(s)://host[:port] (with or without credentials), else None."""
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        return None
    if parts.scheme not in _PORTS or not parts.hostname or parts.path not in ("", "/"):
        return None
    return parts


class MqttSection(Section):
    """``[mqtt]`` as written (see the module docstring). Off (nothing else checked but each key's
    type) unless ``url`` is set."""

    url: str | None = Field(default=None, description="mqtt://host[:port] or mqtts://host[:port]")
    username: str | None = Field(default=None, min_length=1, description="a non-empty name")
    password: Secret | None = None
    tls_ca_file: FilePath | None = None
    tls_cert_file: FilePath | None = None
    tls_key_file: FilePath | None = None
    topic_prefix: str = Field(default="carmetrics", min_length=1, description=_TOPIC)
    discovery_prefix: str = Field(default="homeassistant", min_length=1, description=_TOPIC)
    discovery: bool = True
    commands: bool = False  # like the HTTP API: nobody commands a car unless the owner says so
    qos: int = Field(default=1, ge=0, le=2, description="0, 1 or 2")
    retain: bool = True
    client_id: str = Field(
        default="carmetrics", min_length=1, max_length=92, description="a short non-empty name"
    )
    keepalive: float = Field(default=60, ge=5)
    reconnect_min: float = Field(default=1.0, ge=0.01)
    reconnect_max: float = Field(default=60.0, ge=0.01)
    status_interval: float = Field(default=60.0, ge=1)

    @field_validator("topic_prefix", "discovery_prefix")
    @classmethod
    def _topic(cls, value: str, info: ValidationInfo) -> str:
        return _check_topic(value, cls.model_fields[str(info.field_name)].default)

    @model_validator(mode="after")
    def _complete(self, info: ValidationInfo) -> Self:
        if self.url is None:
            return self
        parts = _split(self.url)
        if parts is None:
            raise invalid(_URL, field="url", value=self.url)
        if parts.username or parts.password:
            raise invalid(
                f"put no credentials in the URL; use {_key('username')} and "
                f"{ENV_PREFIX}MQTT__PASSWORD or {_key('password_file')}",
                field="url",
            )
        if self.password is not None and self.username is None:
            raise invalid(f"a password needs {_key('username')} as well", field="password")
        given = {k: v for k, v in self.files(_base(info)).items() if v is not None}
        for key, path in given.items():
            if not path.is_file():
                raise invalid("no such file", field=key, value=getattr(self, key))
        if given and parts.scheme != "mqtts":
            raise invalid("TLS options need an mqtts:// url", field=next(iter(given)))
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            has, lacks = ("tls_cert_file", "tls_key_file")[
                :: 1 if self.tls_key_file is None else -1
            ]
            raise invalid(
                f"needs {_key(lacks)} as well (a client certificate and its key: both or neither)",
                field=has,
            )
        if self.topic_prefix == self.discovery_prefix:
            raise invalid(
                f"must differ from {_key('discovery_prefix')}",
                field="topic_prefix",
                value=self.topic_prefix,
            )
        if self.commands and self.username is None and self.tls_cert_file is None:
            raise invalid(
                f"turning commands on needs {_key('username')} (or a TLS client certificate): commands are "
                "authorised by the broker's logins and ACL, and an anonymous client cannot be "
                "told apart from any other",
                field="commands",
            )
        if self.reconnect_max < self.reconnect_min:
            raise invalid(
                f"must be at least {_key('reconnect_min')} ({self.reconnect_min:g})",
                field="reconnect_max",
                value=self.reconnect_max,
            )
        return self

    def files(self, base: Path) -> dict[str, Path | None]:
        """The TLS files, relative paths taken from the config file's folder."""
        out: dict[str, Path | None] = {}
        for key in ("tls_ca_file", "tls_cert_file", "tls_key_file"):
            value: str | None = getattr(self, key)
            out[key] = None if value is None else base / value  # an absolute path stays itself
        return out


def _base(info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base")
    return Path(base) if base is not None else Path.cwd()


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
    commands: bool = False
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


def config_base(config: Config) -> Path:
    """Where relative paths of the config point from: the config file's folder (as preflight)."""
    src = Path(config.source)
    return src.resolve().parent if src.is_file() else Path.cwd()


def load_settings(config: Config) -> MqttSettings:
    """Validate ``config.extra['mqtt']`` (the same check ``check-config`` and ``run`` make, in
    ``exporter.preflight``); ConfigError names the offending key."""
    base = config_base(config)
    m = read_section(MqttSection, config.extra.get(SECTION), SECTION, base=base)
    parts = _split(m.url) if m.url is not None else None
    if parts is None or parts.hostname is None:
        return MqttSettings()
    files = m.files(base)
    return MqttSettings(
        host=parts.hostname,
        port=parts.port or _PORTS[parts.scheme],
        tls=parts.scheme == "mqtts",
        username=m.username,
        password=m.password,
        tls_ca_file=files["tls_ca_file"],
        tls_cert_file=files["tls_cert_file"],
        tls_key_file=files["tls_key_file"],
        topic_prefix=m.topic_prefix,
        discovery_prefix=m.discovery_prefix,
        discovery=m.discovery,
        commands=m.commands,
        qos=m.qos,
        retain=m.retain,
        client_id=m.client_id,
        keepalive=int(m.keepalive),
        reconnect_min=m.reconnect_min,
        reconnect_max=m.reconnect_max,
        status_interval=m.status_interval,
    )
