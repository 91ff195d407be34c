"""Command validation, expectations and the OpenAPI schema agree with each other and with the issue.

The OpenAPI schema and the validator are both generated from ``spec.SPECS``; here an independent
JSON-Schema validator (jsonschema) judges the same bodies as the server's validator, so a body the
document allows is one the server accepts, and the other way round.
"""

from __future__ import annotations

import jsonschema
import pytest
from referencing import Registry
from referencing.jsonschema import DRAFT4

from exporter.commands.expect import expectation
from exporter.commands.openapi import document
from exporter.commands.settings import CommandSettings
from exporter.commands.spec import SPECS, InvalidCommand, validate
from exporter.providers.base import COMMANDS, Command
from exporter.signals import Value
from exporter.snapshot import Snapshot

# the issue's list, typed out independently of the code
ISSUE_COMMANDS = {
    "lock",
    "unlock",
    "climate_start",
    "climate_stop",
    "charge_start",
    "charge_stop",
    "charge_limit",
    "horn",
    "flash",
    "find",
    "windows_close",
    "seat_heating",
}

VALID = [
    {"command": "lock"},
    {"command": "climate_start"},
    {"command": "climate_start", "temperature": 16},
    {"command": "climate_start", "temperature": 30},
    {"command": "climate_start", "temperature": 21.5},
    {"command": "charge_limit", "percent": 50},
    {"command": "charge_limit", "percent": 100},
    {"command": "seat_heating", "seat": "front_left", "level": 0},
    {"command": "seat_heating", "seat": "steering_wheel", "level": 3},
    {"command": "find"},
]
INVALID = [
    {},
    {"command": "open_sesame"},
    {"command": 7},
    {"command": "lock", "force": True},
    {"command": "climate_start", "temperature": 15.9},
    {"command": "climate_start", "temperature": 30.5},
    {"command": "climate_start", "temperature": "21"},
    {"command": "climate_start", "temperature": True},
    {"command": "climate_start", "temprature": 21},
    {"command": "charge_limit"},
    {"command": "charge_limit", "percent": 49},
    {"command": "charge_limit", "percent": 101},
    {"command": "charge_limit", "percent": 80.5},
    {"command": "seat_heating", "seat": "rear_middle", "level": 1},
    {"command": "seat_heating", "seat": "front_left", "level": 4},
    {"command": "seat_heating", "seat": "front_left"},
]


def _schema_validator() -> jsonschema.protocols.Validator:
    doc = document(CommandSettings())
    # OpenAPI 3.0 schemas are a JSON-Schema draft-4 dialect; nullable is not used in requests
    registry = Registry().with_resource("urn:doc", DRAFT4.create_resource(doc))
    schema = {"$ref": "urn:doc#/components/schemas/CommandRequest"}
    return jsonschema.Draft4Validator(schema, registry=registry)


def test_the_table_lists_exactly_the_issues_commands() -> None:
    assert set(SPECS) == ISSUE_COMMANDS
    assert tuple(SPECS) == COMMANDS


@pytest.mark.parametrize("body", VALID, ids=str)
def test_valid_bodies_pass_both_the_validator_and_the_schema(body: dict[str, object]) -> None:
    cmd = validate(body)
    assert cmd.name == body["command"]
    _schema_validator().validate(body)


@pytest.mark.parametrize("body", INVALID, ids=str)
def test_invalid_bodies_fail_both_and_the_message_names_the_problem(
    body: dict[str, object],
) -> None:
    with pytest.raises(InvalidCommand) as info:
        validate(body)
    assert not _schema_validator().is_valid(body)
    msg = str(info.value)
    named = [k for k in body if k != "command"] or ["command"]
    if info.value.code == "invalid_parameter" and len(body) > 1:
        assert any(k in msg for k in named), msg
    elif body.get("command") == "charge_limit":
        assert "percent" in msg
    assert info.value.code in {"unknown_command", "invalid_parameter"}


def test_defaults_are_filled_in_so_a_provider_never_guesses() -> None:
    cmd = validate({"command": "climate_start"})
    assert cmd.params == {"temperature": SPECS["climate_start"].params[0].default}
    assert isinstance(validate({"command": "charge_limit", "percent": 80.0}).params["percent"], int)


def test_non_object_body_is_an_invalid_request() -> None:
    for body in (None, [], "lock", 3):
        with pytest.raises(InvalidCommand) as info:
            validate(body)
        assert info.value.code == "invalid_request"


def _snap(t: float, **values: Value) -> Snapshot:
    return Snapshot.build("VIN", "smart", t, t, values)


@pytest.mark.parametrize(
    ("command", "good", "bad"),
    [
        (Command("lock"), {"locked": True}, {"locked": False}),
        (Command("unlock"), {"locked": False}, {"locked": True}),
        (Command("climate_start"), {"climate_active": True}, {"climate_active": False}),
        (Command("climate_stop"), {"climate_active": False}, {"climate_active": True}),
        (Command("charge_start"), {"charging_state": "dc_charging"}, {"charging_state": "plugged"}),
        (Command("charge_stop"), {"charging_state": "plugged"}, {"charging_state": "charging"}),
        (
            Command("charge_limit", {"percent": 80}),
            {"charge_limit": 0.8},
            {"charge_limit": 0.9},
        ),
        (
            Command("windows_close"),
            {"window_open_front_left": False, "window_open_rear_right": False},
            {"window_open_front_left": False, "window_open_rear_right": True},
        ),
    ],
)
def test_expectations(command: Command, good: dict[str, Value], bad: dict[str, Value]) -> None:
    exp = expectation(command)
    assert exp is not None
    assert exp.check(_snap(1, **good)) is True
    assert exp.check(_snap(1, **bad)) is False
    assert exp.check(_snap(1, battery_soc=0.5)) is None  # the report says nothing about it
    assert exp.observed(_snap(1, **bad))


@pytest.mark.parametrize("name", ["horn", "flash", "find", "seat_heating"])
def test_unobservable_commands_have_no_expectation(name: str) -> None:
    assert expectation(Command(name)) is None
