"""The config loader under arbitrary input: a clear ConfigError line or a Config, never a traceback."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.config import Config, ConfigError, _apply_env, _build

KEYS = st.sampled_from(
    [
        "exporter", "poll", "simulator", "log", "metrics", "commands", "tokens", "accounts",
        "provider", "region", "username", "password", "password_file", "vins", "hosts",
        "parked", "driving", "jitter", "port", "listen", "cooldown", "token", "clients", "key",
        "client_id", "urls", "api", "webhooks", "simulator", "enabled", "speed", "level", "x",
    ]
)  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["smart", "smartcar", "EU", "INTL", "https://api.ecloudeu.com", "nan"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=5)),
    max_leaves=25,
)
ENV_NAMES = st.lists(
    st.one_of(KEYS, st.integers(min_value=0, max_value=6).map(str)), min_size=1, max_size=4
).map(lambda parts: "CARMETRICS_" + "__".join(parts).upper())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.dictionaries(KEYS, VALUES, max_size=6),
    env=st.dictionaries(ENV_NAMES, st.text(max_size=10), max_size=4),
)
def test_any_input_gives_a_config_or_one_line(data: dict[str, Any], env: dict[str, str]) -> None:
    try:
        cfg = _build(_apply_env(data, env), Path("/nonexistent"), "<fuzz>")
    except ConfigError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg.strip()
        assert "Traceback" not in msg
        return
    assert isinstance(cfg, Config)
    for value in (cfg.poll.parked, cfg.poll.timeout, cfg.max_data_age, cfg.simulator.speed):
        assert math.isfinite(value)
