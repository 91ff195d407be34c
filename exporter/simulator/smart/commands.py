"""Translate smart telematics command bodies into vehicle-model commands.

Several dialects reach the same endpoint (reference §3.4, the seed's service table, and what
pysmarthashtag sends): ``rhl.horn=1`` or ``rhl=horn``, ``rws.close=1`` or ``target=ventilate``, the
#5's ``ZAF`` comfort keys, the charge limit through ``rcs`` with ``operation=4``. All are accepted.
The charging service keeps its quirk: it must carry ``timeStamp`` (camelCase) and an *integer*
``recurrentOperation: 0``; a charging body shaped like the other services is an illegal parameter.
"""

from __future__ import annotations

from typing import Any, Final

Command = tuple[str, dict[str, Any]]

_ZAF_SEATS: Final = {
    "SH.11": "front-left",
    "SH.19": "front-right",
    "SH.21": "rear-left",
    "SH.29": "rear-right",
    "SW": "steering_wheel",
}
_NO_OP_SERVICES: Final = frozenset({"RSV", "UFR", "RFD_2", "VTM", "RPC", "JOU", "RPP", "RCL"})


class IllegalParameter(ValueError):
    """The body is not a command the cloud understands (answered with code 1400)."""


def parse(body: Any) -> tuple[str, list[Command]]:
    """(serviceId, model commands) for one telematics PUT body."""
    if not isinstance(body, dict):
        raise IllegalParameter("body is not a JSON object")
    service = body.get("serviceId")
    command = body.get("command")
    sched = body.get("operationScheduling")
    params_raw = body.get("serviceParameters", [])
    if not isinstance(service, str) or command not in ("start", "stop"):
        raise IllegalParameter("serviceId and command (start/stop) are required")
    if not isinstance(sched, dict) or not isinstance(params_raw, list):
        raise IllegalParameter("operationScheduling and serviceParameters are required")
    params: dict[str, str] = {}
    pairs: list[tuple[str, str]] = []
    for item in params_raw:
        if not isinstance(item, dict) or "key" not in item:
            raise IllegalParameter("serviceParameters must be a list of {key, value}")
        key, value = str(item["key"]), str(item.get("value", ""))
        params[key] = value
        pairs.append((key, value))
    start = command == "start"
    if service == "rcs":
        return service, _charging(body, sched, params)
    if service in {"RDL_2", "RDL"}:
        return service, [("lock", {})]
    if service in {"RDU_2", "RDU"}:
        return service, [("unlock", {})]
    if service in {"RCE_2", "RCE"}:
        return service, _climate(start, sched, params, pairs)
    if service == "ZAF":
        return service, _zaf(params)
    if service == "RHL":
        return service, [_horn_light(params)]
    if service in {"RWS_2", "RWS"}:
        return service, _windows(start, params)
    if service == "RSH":
        return service, [
            ("seat_heating", {"seat": params.get("rsh.seat"), "level": params.get("rsh.level")})
        ]
    if service in _NO_OP_SERVICES:
        return service, []
    raise IllegalParameter(f"unknown serviceId {service!r}")


def _charging(body: dict[str, Any], sched: dict[str, Any], params: dict[str, str]) -> list[Command]:
    recurrent = sched.get("recurrentOperation")
    if "timeStamp" not in body or isinstance(recurrent, bool) or recurrent != 0:
        raise IllegalParameter("rcs needs timeStamp and recurrentOperation 0")
    op = params.get("operation")
    if op == "1":
        return [("charge_start", {})]
    if op == "0":
        return [("charge_stop", {})]
    if op == "4" and "soc" in params:
        try:
            percent = int(params["soc"]) / 10.0
        except ValueError:
            raise IllegalParameter("soc must be an integer (percent x 10)") from None
        return [("charge_limit", {"percent": percent})]
    raise IllegalParameter("rcs operation must be 1 (start), 0 (stop) or 4 (limit)")


def _climate(
    start: bool, sched: dict[str, Any], params: dict[str, str], pairs: list[tuple[str, str]]
) -> list[Command]:
    out: list[Command] = []
    seats = [v for k, v in pairs if k == "rce.heat"]
    level = params.get("rce.level")
    conditioner = params.get("rce.conditioner")
    if conditioner in {"1", "2"}:
        if start:
            temp = params.get("rce.temp", "21") if conditioner == "1" else "24"
            duration = sched.get("duration", 30)
            out.append(("climate_start", {"temperature": temp, "duration": duration}))
        else:
            out.append(("climate_stop", {}))
    for seat in seats:
        lvl = level if (start and level is not None) else "0"
        out.append(("seat_heating", {"seat": seat, "level": lvl}))
    if not out:
        raise IllegalParameter("RCE_2 needs rce.conditioner or rce.heat")
    return out


def _zaf(params: dict[str, str]) -> list[Command]:
    out: list[Command] = []
    for key, seat in _ZAF_SEATS.items():
        if key in params:
            on = params[key] == "true"
            level = params.get(f"{key}.level", "2") if on else "0"
            out.append(("seat_heating", {"seat": seat, "level": level}))
    if params.get("DF") == "true":
        out.append(("climate_start", {"temperature": "24", "duration": 15}))
    return out


def _horn_light(params: dict[str, str]) -> Command:
    mode = params.get("rhl", "")
    horn = params.get("rhl.horn") == "1" or mode == "horn"
    flash = params.get("rhl.flash") == "1" or mode in {"light-flash", "flash"}
    if horn and flash:
        return ("find", {})
    if horn:
        return ("horn", {})
    if flash:
        return ("flash", {})
    raise IllegalParameter("RHL needs rhl.horn and/or rhl.flash")


def _windows(start: bool, params: dict[str, str]) -> list[Command]:
    target = params.get("target")
    if params.get("rws.close") == "1" or (target == "ventilate" and not start):
        return [("windows_close", {})]
    if target == "ventilate" and start:
        return [("windows_open", {})]
    if target == "sunshade":
        return []
    raise IllegalParameter("RWS_2 needs rws.close or target")
