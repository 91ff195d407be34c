"""Canonical commands -> the telematics bodies the smart app sends (docs/SMART_COMMANDS.md).

Each command is one ``PUT /remote-control/vehicle/telematics/{vin}`` with a compact JSON body naming
a service id and its parameters. Where pysmarthashtag 0.15 (a client working against the real cloud)
implements a command, the body is exactly its body (``pysmarthashtag/control/*.py``): the
parameters, the operation scheduling, the ``timestamp``/``timeStamp`` spelling and the ``userId``
field. Where it has none (find, and the #5's air conditioning) the seed's description is kept and the
docs table says so. Parameters are validated here so an out-of-range request never reaches the car.
"""

from __future__ import annotations

from collections.abc import Mapping
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
# The #5's comfort keys of its ZAF service (pysmarthashtag control/climate.py ZAF_*_KEYS)
ZAF_KEYS: Final = {"front-left": "SH.11", "front-right": "SH.19", "steering_wheel": "SW"}
ZAF_SEAT_DURATION: Final = "15"  # minutes of seat heating (not sent for the steering wheel)

# operationScheduling blocks as pysmarthashtag sends them (control/telematics.py, climate.py,
# charging.py); key order is not significant to the cloud.
DEFAULT_SCHEDULING: Final = {"duration": 6, "interval": 0, "occurs": 1, "recurrentOperation": False}
INSTANT_SCHEDULING: Final = {**DEFAULT_SCHEDULING, "duration": 0}  # horn/lights, windows
CLIMATE_SCHEDULING: Final = {**DEFAULT_SCHEDULING, "duration": 180}
CHARGING_SCHEDULING: Final = {
    "scheduledTime": None,
    "interval": 0,
    "occurs": 1,
    "recurrentOperation": 0,
    "duration": 6,
}
ZAF_SCHEDULING: Final = {
    "scheduledTime": None,
    "interval": 0,
    "occurs": 0,
    "recurrentOperation": 1,
    "duration": 60,
}


@dataclass(frozen=True, slots=True)
class Telematics:
    """One telematics body. ``camel_timestamp``: the ``timeStamp`` spelling of rcs and ZAF;
    ``with_user``: the body carries ``userId`` (ZAF); ``zaf``: the ZAF envelope (``latest``)."""

    service_id: str
    command: str  # "start" | "stop"
    params: tuple[tuple[str, str], ...]
    scheduling: tuple[tuple[str, object], ...] = tuple(DEFAULT_SCHEDULING.items())
    camel_timestamp: bool = False
    with_user: bool = False
    zaf: bool = False

    def body(self, timestamp_ms: str, user_id: str = "") -> dict[str, object]:
        out: dict[str, object] = {
            "creator": "tc",
            "command": self.command,
            "serviceId": self.service_id,
            ("timeStamp" if self.camel_timestamp else "timestamp"): timestamp_ms,
            "operationScheduling": dict(self.scheduling),
            "serviceParameters": [{"key": k, "value": v} for k, v in self.params],
        }
        if self.zaf:
            out["latest"] = False
        if self.with_user:
            out["userId"] = user_id
        return out


def _scheduling(block: Mapping[str, object]) -> tuple[tuple[str, object], ...]:
    return tuple(block.items())


def _number(params: dict[str, object], name: str, default: float | None = None) -> float:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CommandRejected(f"parameter {name!r} must be a number, got {value!r}")
    return float(value)


def _temperature(params: dict[str, object]) -> float:
    temp = _number(params, "temperature", CLIMATE_DEFAULT_C)
    if not CLIMATE_MIN_C <= temp <= CLIMATE_MAX_C:
        raise CommandRejected(
            f"temperature {temp:g} degC outside {CLIMATE_MIN_C:g}..{CLIMATE_MAX_C:g}"
        )
    return temp


def _seat_heating(params: dict[str, object], series: str) -> Telematics:
    seat = SEATS.get(str(params.get("seat", "front_left")))
    level = _number(params, "level")
    if seat is None:
        raise CommandRejected(f"seat {params.get('seat')!r}: expected one of {sorted(SEATS)}")
    if level not in (0, 1, 2, 3):
        raise CommandRejected(f"seat heating level {level:g}: expected 0, 1, 2 or 3")
    lvl = str(int(level))
    if series.upper().startswith("HY"):
        # the #5: one ZAF request per seat; start and stop both say "start" (control/climate.py)
        key = ZAF_KEYS[seat]
        zaf: tuple[tuple[str, str], ...]
        if level == 0:
            zaf = (("operation", "4"), (key, "false"))
        else:
            zaf = (("operation", "4"), (key, "true"), (f"{key}.level", lvl))
            if seat != "steering_wheel":
                zaf += ((f"{key}.duration", ZAF_SEAT_DURATION),)
        return Telematics(
            "ZAF",
            "start",
            zaf,
            _scheduling(ZAF_SCHEDULING),
            camel_timestamp=True,
            with_user=True,
            zaf=True,
        )
    # #1/#3: RCE_2 without rce.conditioner/rce.temp heats without starting the air conditioning;
    # stopping lists the seat, then level 0, as the app does (control/climate.py set_heating)
    command = "start" if level > 0 else "stop"
    return Telematics(
        "RCE_2",
        command,
        (("rce.heat", seat), ("rce.level", lvl)),
        _scheduling(CLIMATE_SCHEDULING),
    )


def build(command: Command, series: str = "") -> Telematics:
    """The telematics call for ``command`` on a car of ``series`` (seriesCodeVs, e.g. ``HY11``);
    CommandRejected for unknown names or bad parameters."""
    name, p = command.name, command.params
    if name in {"lock", "unlock"}:
        service = "RDL_2" if name == "lock" else "RDU_2"
        return Telematics(service, "start", (("door", "all"),))
    if name in {"climate_start", "climate_stop"}:
        # rce.temp travels on stop too: the app repeats the last set temperature
        temp = _temperature(p)
        return Telematics(
            "RCE_2",
            "start" if name == "climate_start" else "stop",
            (("rce.conditioner", "1"), ("rce.temp", f"{temp:.1f}")),
            _scheduling(CLIMATE_SCHEDULING),
        )
    if name in {"charge_start", "charge_stop"}:
        # always "start": the operation parameter decides (control/charging.py)
        params: tuple[tuple[str, str], ...] = (
            (("operation", "1"), ("rcs.restart", "1"))
            if name == "charge_start"
            else (("operation", "0"), ("rcs.terminate", "1"))
        )
        return Telematics(
            "rcs", "start", params, _scheduling(CHARGING_SCHEDULING), camel_timestamp=True
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
        return Telematics(
            "rcs", "start", params, _scheduling(CHARGING_SCHEDULING), camel_timestamp=True
        )
    if name in {"horn", "flash"}:
        action = "horn" if name == "horn" else "light-flash"
        return Telematics("RHL", "start", (("rhl", action),), _scheduling(INSTANT_SCHEDULING))
    if name == "find":
        # no pysmarthashtag counterpart: the seed's horn + flash in one request (unconfirmed)
        return Telematics("RHL", "start", (("rhl.horn", "1"), ("rhl.flash", "1")))
    if name == "windows_close":
        # "stop" of the ventilation target closes the windows (control/windows.py)
        return Telematics(
            "RWS_2", "stop", (("target", "ventilate"),), _scheduling(INSTANT_SCHEDULING)
        )
    if name == "seat_heating":
        return _seat_heating(p, series)
    raise CommandRejected(f"command {name!r} is not supported by the smart cloud")
