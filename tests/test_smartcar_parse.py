"""Smartcar replies -> canonical values, against the reply shapes recorded in tests/fixtures/smartcar/.

Expected values are computed from each fixture's own fields with the unit a reply states (v2:
``sc-unit-system`` metric km/kPa or imperial miles/psi, fractions 0-1; v3: the body's ``unit``,
percentages 0-100), so a fixture can change without its test being rewritten.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from exporter.providers.smartcar.errors import parse_error
from exporter.providers.smartcar.parse import (
    KM,
    MILE,
    PSI,
    finish_v3,
    parse_time,
    v2_values,
    v3_values,
)
from exporter.providers.smartcar.webhooks import parse_envelope
from exporter.signals import Value

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "smartcar"
BATCHES = ["api_v2/batch-tesla-metric.json", "api_v2/batch-ford-imperial.json"]
SIDES = {"frontLeft": "front_left", "frontRight": "front_right"}
SIDES |= {"backLeft": "rear_left", "backRight": "rear_right"}


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def test_every_fixture_is_listed_in_the_readme() -> None:
    readme = (FIXTURES / "README.md").read_text()
    files = sorted(str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*.json"))
    assert files and all(f"`{f}`" in readme for f in files)


def _batch(name: str) -> tuple[dict[str, Value], dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """What a poll makes of one recorded batch reply: values, good bodies by path, failed items."""
    values: dict[str, Value] = {}
    bodies: dict[str, dict[str, Any]] = {}
    failed = []
    for item in load(name)["responses"]:
        if item["code"] == 200:
            units = item["headers"]["sc-unit-system"]
            values.update(v2_values(item["path"], item["body"], units))
            bodies[item["path"]] = {**item["body"], "_units": units}
        else:
            failed.append(item)
    return values, bodies, failed


@pytest.mark.parametrize("name", BATCHES)
def test_v2_batch_items_in_si_units(name: str) -> None:
    values, bodies, _ = _batch(name)
    assert bodies, "the fixture has successful items"
    for path, body in bodies.items():
        metre = MILE if body["_units"] == "imperial" else KM
        if path == "/battery":
            assert values["battery_soc"] == pytest.approx(body["percentRemaining"])
            assert values["electric_range"] == pytest.approx(body["range"] * metre)
        elif path == "/odometer":
            assert values["odometer"] == pytest.approx(body["distance"] * metre)
        elif path == "/charge/limit":
            assert values["charge_limit"] == pytest.approx(body["limit"])
        elif path == "/charge":
            assert values["charger_connected"] is body["isPluggedIn"]
            want = {"CHARGING": "charging", "FULLY_CHARGED": "complete"}.get(body["state"])
            want = want or ("plugged" if body["isPluggedIn"] else "disconnected")
            assert values["charging_state"] == want
        elif path == "/location":
            assert (values["latitude"], values["longitude"]) == (
                body["latitude"],
                body["longitude"],
            )
        elif path == "/tires/pressure":
            pascal = PSI if body["_units"] == "imperial" else KM
            for key, side in SIDES.items():
                assert values[f"tyre_pressure_{side}"] == pytest.approx(body[key] * pascal)
        elif path == "/security":
            assert values["locked"] is body["isLocked"]
            for kind, items in (("door_open", body["doors"]), ("window_open", body["windows"])):
                for item in items:
                    got = values.get(f"{kind}_{SIDES[item['type']]}")
                    # UNKNOWN is "no value", never a guess
                    assert got is {"OPEN": True, "CLOSED": False}.get(item["status"])
            assert values["door_open_hood"] is False  # storage "front": CLOSED
            assert "door_open_trunk" not in values  # storage "rear": UNKNOWN
    for signal, value in values.items():
        assert value is not None, signal


def test_v2_batch_error_items_parse_to_their_type_and_code() -> None:
    for name in BATCHES:
        _, _, failed = _batch(name)
        assert failed
        for item in failed:
            err = parse_error(item["code"], item["body"])
            body = item["body"]
            if "type" in body:  # a v2 error object
                assert (err.type, err.code, err.status) == (
                    body["type"],
                    body["code"],
                    body["statusCode"],
                )
            else:  # a v1 legacy body, still seen inside batch items
                assert body["error"] == "vehicle_not_capable_error"
                assert err.type == "COMPATIBILITY" and err.status == item["code"]


def test_v2_data_age_is_the_report_time() -> None:
    for item in load(BATCHES[0])["responses"]:
        if item["code"] == 200:
            t = parse_time(item["headers"]["sc-data-age"])
            assert t is not None and t > 1.5e9


def _signals(name: str) -> tuple[dict[str, Value], dict[str, dict[str, Any]]]:
    env = parse_envelope((FIXTURES / name).read_bytes())
    values: dict[str, Value] = {}
    for s in env.signals:
        if s.body is not None:
            values.update(v3_values(s.code, s.body))
    bodies = {s.code: dict(s.body) for s in env.signals if s.body is not None}
    return finish_v3(values), bodies


def test_v3_vehicle_state_signals_in_si_units() -> None:
    values, b = _signals("webhooks_v4/vehicle_state-tesla.json")
    assert values["battery_soc"] == pytest.approx(b["tractionbattery-stateofcharge"]["value"] / 100)
    assert values["electric_range"] == pytest.approx(b["tractionbattery-range"]["value"] * KM)
    assert values["odometer"] == pytest.approx(b["odometer-traveleddistance"]["value"] * KM)
    assert values["charge_limit"] == pytest.approx(b["charge-chargelimits"]["activeLimit"] / 100)
    assert values["charging_power"] == pytest.approx(b["charge-wattage"]["value"])
    assert values["charging_state"] == "charging"
    assert values["charger_connected"] is b["charge-ischargingcableconnected"]["value"]
    assert values["locked"] is b["closure-islocked"]["value"]
    grid = {(0, 0): "front_left", (0, 1): "front_right", (1, 0): "rear_left", (1, 1): "rear_right"}
    for code, kind in (("closure-doors", "door_open"), ("closure-windows", "window_open")):
        for item in b[code]["values"]:
            assert values[f"{kind}_{grid[item['row'], item['column']]}"] is item["isOpen"]
    assert values["door_open_trunk"] is b["closure-reartrunk"]["isOpen"]
    assert values["door_open_hood"] is b["closure-fronttrunk"]["isOpen"]
    where = b["location-preciselocation"]
    assert (values["latitude"], values["longitude"]) == (where["latitude"], where["longitude"])
    assert values["heading"] == where["heading"]
    assert values["speed"] == pytest.approx(b["motion-currentspeed"]["value"] / 3.6)


def test_v3_older_variant_partial_delivery() -> None:
    name = "webhooks_v4/vehicle_state-ford-older_variant.json"
    doc = load(name)
    env = parse_envelope((FIXTURES / name).read_bytes())
    assert env.vehicle_id == doc["data"]["vehicle"]["id"]  # no top-level vehicleId
    assert env.triggers == (doc["triggers"][0]["signal"],)  # top-level, old trigger form
    assert env.delivered_at == parse_time(doc["meta"]["deliveryTime"])
    failed = [s for s in env.signals if s.body is None]
    assert [(s.code, s.error) for s in failed] == [
        ("location-preciselocation", ("COMPATIBILITY", "VEHICLE_NOT_CAPABLE"))
    ]
    values, b = _signals(name)
    assert values["odometer"] == pytest.approx(b["odometer-traveleddistance"]["value"] * KM)
    assert values["charging_state"] == "disconnected"  # not charging, cable not connected
    assert "latitude" not in values


def test_v3_vehicle_error_and_verify() -> None:
    err_doc = load("webhooks_v4/vehicle_error-tesla.json")
    env = parse_envelope((FIXTURES / "webhooks_v4/vehicle_error-tesla.json").read_bytes())
    first, second = env.errors
    want = err_doc["data"]["errors"][0]
    assert (first.type, first.code, first.state) == (want["type"], want["code"], want["state"])
    assert first.resolution == want["resolution"]["type"]
    assert first.signals == tuple(s["code"] for s in want["signals"])
    assert second.code is None and second.resolution is None
    assert second.signals == tuple(err_doc["data"]["errors"][1]["signals"])
    verify = parse_envelope((FIXTURES / "webhooks_v4/verify.json").read_bytes())
    assert verify.event_type == "VERIFY"
    assert verify.challenge == load("webhooks_v4/verify.json")["data"]["challenge"]
