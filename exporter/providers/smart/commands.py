"""Canonical commands -> the telematics payloads of the smart cloud (seed "Vehicle Commands").

Each command is one ``PUT /remote-control/vehicle/telematics/{vin}`` with a compact JSON body naming
a service id and its parameters. Charging is the odd one: it always says ``command: start`` (the
``operation`` parameter decides), spells ``timeStamp`` in camelCase and sends ``recurrentOperation``
as the integer 0. Parameters are validated here so an out-of-range request never reaches the car.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from exporter.providers.base import COMMANDS, Command, CommandRejected

SUPPORTED: Final = frozenset(COMMANDS)  # the smart cloud has a service id for each of them
CLIMATE_MIN_C: Final = 16.0
CLIMATE_MAX_C: Final = 30.0
CLIMATE_DEFAULT_C: Final = 21.0
LIMIT_MIN: Final = 50
LIMIT_MAX: Final = 100
LIMIT_STEP: Final = 5
SEATS: Final = {
    "front_left": "front-left",
    "front-left": "front-left",
    "driver": "front-left",
    "front_right": "front-right",
    "front-right": "front-right",
    "passenger": "front-right",
    "steering_wheel": "steering_wheel",
}


@dataclass(frozen=True, slots=True)
class Telematics:
    service_id: str
    command: str  # "start" | "stop"
    params: tuple[tuple[str, str], ...]
    duration: int = 6
    charging: bool = False  # the rcs quirks: timeStamp key, recurrentOperation 0

    def body(self, timestamp_ms: str) -> dict[str, object]:
        scheduling: dict[str, object] = {
            "duration": self.duration,
            "interval": 0,
            "occurs": 1,
            "recurrentOperation": 0 if self.charging else False,
        }
        return {
            "creator": "tc",
            "command": self.command,
            "serviceId": self.service_id,
            ("timeStamp" if self.charging else "timestamp"): timestamp_ms,
            "operationScheduling": scheduling,
            "serviceParameters": [{"key": k, "value": v} for k, v in self.params],
        }


def _number(params: dict[str, object], name: str, default: float | None = None) -> float:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CommandRejected(f"parameter {name!r} must be a number, got {value!r}")
    return float(value)


def build(command: Command) -> Telematics:
    """The telematics call for ``command``; CommandRejected for unknown names or bad parameters."""
    name, p = command.name, command.params
    if name == "lock":
        return Telematics("RDL_2", "start", ())
    if name == "unlock":
        return Telematics("RDU_2", "start", ())
    if name == "climate_start":
        temp = _number(p, "temperature", CLIMATE_DEFAULT_C)
        if not CLIMATE_MIN_C <= temp <= CLIMATE_MAX_C:
            raise CommandRejected(
                f"temperature {temp:g} degC outside {CLIMATE_MIN_C:g}..{CLIMATE_MAX_C:g}"
            )
        return Telematics(
            "RCE_2", "start", (("rce.conditioner", "1"), ("rce.temp", f"{temp:.1f}")), duration=30
        )
    if name == "climate_stop":
        return Telematics("RCE_2", "stop", (("rce.conditioner", "1"),), duration=30)
    if name == "charge_start":
        return Telematics("rcs", "start", (("operation", "1"), ("rcs.restart", "1")), charging=True)
    if name == "charge_stop":
        return Telematics(
            "rcs", "start", (("operation", "0"), ("rcs.terminate", "1")), charging=True
        )
    if name == "charge_limit":
        percent = _number(p, "percent")
        if (
            not percent.is_integer()
            or not LIMIT_MIN <= percent <= LIMIT_MAX
            or int(percent) % LIMIT_STEP
        ):
            raise CommandRejected(
                f"charge limit {percent:g} %: expected {LIMIT_MIN}..{LIMIT_MAX} in steps of "
                f"{LIMIT_STEP}"
            )
        # The limit travels x10, as status/soc reports it; operation 4 = "setting".
        params = (("soc", str(int(percent) * 10)), ("operation", "4"), ("rcs.setting", "1"))
        return Telematics("rcs", "start", params, charging=True)
    if name in {"horn", "flash", "find"}:
        rhl = tuple(
            (k, "1")
            for k, on in (("rhl.horn", name != "flash"), ("rhl.flash", name != "horn"))
            if on
        )
        return Telematics("RHL", "start", rhl)
    if name == "windows_close":
        return Telematics("RWS_2", "start", (("rws.close", "1"),))
    if name == "seat_heating":
        seat = SEATS.get(str(p.get("seat", "front_left")))
        level = _number(p, "level")
        if seat is None:
            raise CommandRejected(f"seat {p.get('seat')!r}: expected one of {sorted(SEATS)}")
        if level not in (0, 1, 2, 3):
            raise CommandRejected(f"seat heating level {level:g}: expected 0, 1, 2 or 3")
        return Telematics("RSH", "start", (("rsh.seat", seat), ("rsh.level", str(int(level)))))
    raise CommandRejected(f"command {name!r} is not supported by the smart cloud")
