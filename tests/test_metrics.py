"""/metrics: names from the signal table, base units, unknown values absent, promtool-clean."""

from __future__ import annotations

import subprocess

from prometheus_client.parser import text_string_to_metric_families

from exporter.clock import ManualClock
from exporter.health import Health
from exporter.hub import Hub
from exporter.metrics import VehicleCollector, make_registry, render_exposition
from exporter.signals import SIGNALS
from exporter.snapshot import Snapshot, VehicleInfo
from tests.conftest import require_tool

VIN = "HESXR1C40PS000001"


def build(
    export_location: bool = False, max_age: float = 7 * 86400
) -> tuple[Hub, ManualClock, Health, str]:
    clock = ManualClock()
    hub, health = Hub(), Health()
    hub.register(VehicleInfo(VIN, "smart", "smart", "#1", "2024", "HX11", "demo"))
    t = clock.now() - 30
    values = {
        "battery_soc": 0.47,
        "electric_range": 128_000.0,
        "odometer": 500_000.0,
        "charging_state": "dc_charging",
        "charger_connected": True,
        "tyre_pressure_front_left": 241_648.0,
        "latitude": 49.65,
        "door_open_trunk": False,
    }
    hub.publish(Snapshot.build(VIN, "smart", t, t + 1, values))
    h = health.vehicle(VIN)
    h.provider, h.polls, h.last_success, h.last_duration = "smart", 3, clock.now(), 0.2
    h.errors[("upstream", "8153")] += 2
    health.api_up[("smart", "demo")] = True
    coll = VehicleCollector(
        hub, health, clock, export_location=export_location, max_data_age=max_age
    )
    body = b"".join(render_exposition(make_registry(coll), coll)).decode()
    return hub, clock, health, body


def samples(body: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def test_fixed_metric_names_and_units() -> None:
    *_, body = build()
    s = samples(body)
    assert s[("carmetrics_battery_soc_ratio", frozenset({("vin", VIN)}))] == 0.47
    assert s[("carmetrics_range_meters", frozenset({("vin", VIN)}))] == 128_000
    assert s[("carmetrics_odometer_meters", frozenset({("vin", VIN)}))] == 500_000
    assert ("carmetrics_last_update_timestamp_seconds", frozenset({("vin", VIN)})) in s
    info = frozenset(
        {
            ("vin", VIN),
            ("provider", "smart"),
            ("make", "smart"),
            ("model", "#1"),
            ("year", "2024"),
            ("series", "HX11"),
            ("account", "demo"),
        }
    )
    assert s[("carmetrics_vehicle_info", info)] == 1
    assert (
        s[("carmetrics_tyre_pressure_pascals", frozenset({("vin", VIN), ("tyre", "front_left")}))]
        == 241_648
    )
    assert (
        s[
            (
                "carmetrics_poll_errors_total",
                frozenset(
                    {("vin", VIN), ("provider", "smart"), ("reason", "upstream"), ("code", "8153")}
                ),
            )
        ]
        == 2
    )
    assert s[("carmetrics_data_age_seconds", frozenset({("vin", VIN)}))] == 30


def test_enum_is_a_state_set_with_every_state() -> None:
    *_, body = build()
    s = samples(body)
    states = {dict(k[1])["state"]: v for k, v in s.items() if k[0] == "carmetrics_charging_state"}
    assert states["dc_charging"] == 1
    assert sum(states.values()) == 1
    assert len(states) == 6


def test_unknown_values_are_absent_not_zero() -> None:
    *_, body = build()
    assert "carmetrics_cabin_temperature_celsius{" not in body
    assert 'carmetrics_tyre_pressure_pascals{tyre="front_right"' not in body


def test_location_is_opt_in() -> None:
    *_, body = build()
    assert "carmetrics_location_latitude_degrees{" not in body
    *_, body = build(export_location=True)
    assert "carmetrics_location_latitude_degrees{" in body


def test_a_car_silent_past_max_data_age_drops_out_but_keeps_its_info() -> None:
    *_, body = build(max_age=10)
    assert "carmetrics_battery_soc_ratio{" not in body
    assert "carmetrics_vehicle_info{" in body


def test_every_metric_name_follows_the_naming_rules() -> None:
    units = (
        "_ratio",
        "_meters",
        "_seconds",
        "_watts",
        "_volts",
        "_amperes",
        "_pascals",
        "_celsius",
        "_degrees",
        "_meters_per_second",
    )
    for sig in SIGNALS:
        m = sig.full_metric
        assert m.startswith("carmetrics_") and m == m.lower()
        assert not any(bad in m for bad in ("_km", "_kwh", "_percent", "_kpa", "_bar", "_total"))
        if sig.kind.value in ("number", "timestamp"):
            assert m.endswith(units), m


def test_exposition_passes_promtool() -> None:
    promtool = require_tool("promtool")
    *_, body = build(export_location=True)
    res = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stdout + res.stderr
