"""The settings mechanism as a feature uses it: declare a model, read a table, get one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.settings import (
    ConfigError,
    EnvValue,
    Field,
    Seconds,
    Secret,
    Section,
    ShadowingEnvValue,
    read_section,
)


class Broker(Section):
    """What a new feature writes (e.g. an ``[mqtt]`` table)."""

    host: str = Field(default="127.0.0.1", min_length=1, description="the broker's host name")
    port: int = Field(default=1883, ge=1, le=65535)
    interval: Seconds = 30.0
    password: Secret | None = None


def test_defaults_and_values() -> None:
    b = read_section(Broker, {"port": 8883, "interval": 5}, "mqtt")
    assert (b.host, b.port, b.interval, b.password) == ("127.0.0.1", 8883, 5.0, None)


@pytest.mark.parametrize(
    ("table", "line"),
    [
        ({"port": 0}, "mqtt.port = 0: expected a number >= 1"),
        ({"port": "1883"}, "mqtt.port = '1883': expected a whole number"),
        ({"port": True}, "mqtt.port = True: expected a whole number"),
        ({"interval": float("nan")}, "mqtt.interval = nan: expected a finite number"),
        ({"interval": -1}, "mqtt.interval = -1: expected a number >= 0"),
        ({"host": ""}, "mqtt.host = '': expected a non-empty string"),
        ({"host": 5}, "mqtt.host = 5: expected the broker's host name"),
        ({"intervall": 5}, "mqtt.intervall: unknown key; did you mean 'interval'?"),
        ({"password": "hunter2"}, "mqtt.password: secrets are not allowed in the config file"),
        (
            {"password": ShadowingEnvValue("from-env")},
            "mqtt.password: secrets are not allowed in the config file; set CARMETRICS_MQTT__PASSWORD",
        ),
        (
            {"password_file": "/nonexistent/pw"},
            "mqtt.password_file = '/nonexistent/pw': cannot read",
        ),
    ],
)
def test_every_mistake_is_one_line_naming_the_key(table: dict[str, object], line: str) -> None:
    with pytest.raises(ConfigError) as err:
        read_section(Broker, table, "mqtt")
    msg = str(err.value)
    assert msg.startswith(line), msg
    assert "\n" not in msg and "hunter2" not in msg and "from-env" not in msg


def test_secrets_come_from_env_or_a_file(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    from_file = read_section(Broker, {"password_file": "pw"}, "mqtt", base=tmp_path)
    assert from_file.password == Secret("s3cret")
    assert "s3cret" not in repr(from_file)
    from_env = read_section(Broker, {"password": EnvValue("0012")}, "mqtt")
    assert from_env.password is not None and from_env.password.reveal() == "0012"


def test_env_text_is_read_as_the_field_wants() -> None:
    b = read_section(
        Broker,
        {"port": EnvValue("8883"), "host": EnvValue("1234"), "interval": EnvValue("2.5")},
        "mqtt",
    )
    assert (b.port, b.host, b.interval) == (8883, "1234", 2.5)
    with pytest.raises(ConfigError, match=r"^mqtt\.port = 'many': expected a whole number"):
        read_section(Broker, {"port": EnvValue("many")}, "mqtt")


def test_a_table_that_is_not_a_table() -> None:
    with pytest.raises(ConfigError, match=r"^mqtt = 'on': expected a table \(\[mqtt\]\)"):
        read_section(Broker, "on", "mqtt")


class Limits(Section):
    per_vin: dict[str, float] = Field(default_factory=dict)
    names: list[str] = Field(default_factory=list)


def test_env_text_inside_tables_and_lists_is_read_for_its_type() -> None:
    t = read_section(
        Limits, {"per_vin": {"v1": EnvValue("2.5")}, "names": [EnvValue("007")]}, "limits"
    )
    assert t.per_vin == {"v1": 2.5} and t.names == ["007"]
