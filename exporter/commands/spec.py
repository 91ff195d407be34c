"""What each command takes, checked before anything leaves the exporter.

This table is the single source for request validation, the OpenAPI schema and the CLI options, so
the three cannot drift apart. Parameters are provider-neutral (degrees Celsius, percent, canonical
seat names); each provider translates them into its cloud's encoding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from exporter.providers.base import COMMANDS, Command

SEATS: Final = ("front_left", "front_right", "steering_wheel")


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of a command. ``default`` None means the caller must give it."""

    name: str
    kind: Literal["number", "integer", "choice"]
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    default: float | int | str | None = None
    unit: str = ""

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True, slots=True)
class CommandSpec:
    name: str
    summary: str
    params: tuple[Param, ...] = ()


SPECS: Final[Mapping[str, CommandSpec]] = {
    s.name: s
    for s in (
        CommandSpec("lock", "Lock the doors."),
        CommandSpec("unlock", "Unlock the doors."),
        CommandSpec(
            "climate_start",
            "Start climate control (pre-conditioning) at a cabin temperature.",
            (
                Param(
                    "temperature",
                    "number",
                    "Target cabin temperature",
                    minimum=16,
                    maximum=30,
                    default=21.0,
                    unit="degC",
                ),
            ),
        ),
        CommandSpec("climate_stop", "Stop climate control."),
        CommandSpec("charge_start", "Start charging (the cable must be plugged in)."),
        CommandSpec("charge_stop", "Stop charging."),
        CommandSpec(
            "charge_limit",
            "Set the target state of charge.",
            (Param("percent", "integer", "Charge limit", minimum=50, maximum=100, unit="%"),),
        ),
        CommandSpec("horn", "Sound the horn."),
        CommandSpec("flash", "Flash the lights."),
        CommandSpec("find", "Sound the horn and flash the lights."),
        CommandSpec("windows_close", "Close all windows."),
        CommandSpec(
            "seat_heating",
            "Set a seat heater's level (0 = off).",
            (
                Param("seat", "choice", "Which seat", choices=SEATS),
                Param("level", "integer", "Heating level", minimum=0, maximum=3),
            ),
        ),
    )
}


class InvalidCommand(ValueError):
    """A request that must not reach the car; ``code`` is the API error code."""

    def __init__(self, code: str, message: str, **extra: object) -> None:
        super().__init__(message)
        self.code = code
        self.extra = extra


def _shown(value: object) -> str:
    """A value as an error message quotes it: short, whatever the caller sent (a 400-digit
    integer must give a one-line answer, not a page or an exception)."""
    try:
        text = repr(value)
    except ValueError:  # an int beyond Python's str() digit limit
        text = "<a very large number>"
    return text if len(text) <= 40 else text[:37] + "..."


def _check(spec: CommandSpec, p: Param, value: object) -> float | int | str:
    where = f"{spec.name}.{p.name}"
    if p.kind == "choice":
        if not isinstance(value, str) or value not in p.choices:
            raise InvalidCommand(
                "invalid_parameter",
                f"{where} = {_shown(value)}: expected one of {', '.join(p.choices)}",
                parameter=p.name,
            )
        return value
    # JSON true/false are not numbers, however Python sees them; an int is compared exactly (as a
    # float a huge one would overflow), a float must be finite
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and not math.isfinite(value))
    ):
        raise InvalidCommand(
            "invalid_parameter", f"{where} = {_shown(value)}: expected a number", parameter=p.name
        )
    if p.kind == "integer" and isinstance(value, float) and not value.is_integer():
        raise InvalidCommand(
            "invalid_parameter",
            f"{where} = {_shown(value)}: expected a whole number",
            parameter=p.name,
        )
    lo = -math.inf if p.minimum is None else p.minimum
    hi = math.inf if p.maximum is None else p.maximum
    if not lo <= value <= hi:
        raise InvalidCommand(
            "invalid_parameter",
            f"{where} = {_shown(value)}: expected {p.minimum:g}..{p.maximum:g} {p.unit}".rstrip(),
            parameter=p.name,
        )
    return int(value) if p.kind == "integer" else float(value)


def validate(body: object) -> Command:
    """Turn a request body ``{"command": ..., **params}`` into a Command with defaults filled in.

    Unknown parameters are errors rather than ignored: a typo such as ``temprature`` must not turn
    into a silent default."""
    if not isinstance(body, dict):
        raise InvalidCommand("invalid_request", "the body must be a JSON object")
    name = body.get("command")
    if not isinstance(name, str) or name not in SPECS:
        raise InvalidCommand(
            "unknown_command",
            f"command = {name!r}: expected one of {', '.join(COMMANDS)}",
            commands=list(COMMANDS),
        )
    spec = SPECS[name]
    known = {p.name for p in spec.params}
    unknown = sorted(str(k) for k in body if k != "command" and k not in known)
    if unknown:
        allowed = ", ".join(sorted(known)) or "none"
        raise InvalidCommand(
            "invalid_parameter",
            f"{name}: unknown parameter {', '.join(unknown)}; allowed: {allowed}",
            parameter=unknown[0],
        )
    params: dict[str, object] = {}
    for p in spec.params:
        if p.name in body:
            params[p.name] = _check(spec, p, body[p.name])
        elif p.required:
            raise InvalidCommand(
                "invalid_parameter", f"{name}: parameter {p.name} is required", parameter=p.name
            )
        else:
            params[p.name] = p.default
    return Command(name, params)
