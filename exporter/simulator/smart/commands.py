"""Translate smart telematics command bodies into vehicle-model commands.

In strict mode (the default) :func:`check_strict` first refuses every body that is not one of the
parameter sets of docs/SMART_COMMANDS.md (what pysmarthashtag 0.15 sends, plus the seed's find),
the way the real cloud answers an unknown parameter set with 1400 "Illegal parameter" (reference
§1.1, the 1400 seen for a malformed session body). In lenient mode several dialects reach the same endpoint (reference §3.4, the seed's service table, and what
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
_NO_OP_SERVICES: Final = frozenset(
    {"RSV", "UFR", "RFD_2", "VTM", "RPC", "JOU", "RPP", "RCL", "RDO", "RDC"}
)


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


# ---------------------------------------------------------------------------- strict mode
# The parameter sets of docs/SMART_COMMANDS.md, per service id. Sources: pysmarthashtag 0.15
# control/lock.py, climate.py, charging.py, horn_light.py, windows.py, charging_lid.py and
# telematics.py (operation scheduling); "find" is seed 004's, unconfirmed.
_DEFAULT_SCHED: Final = {"duration": 6, "interval": 0, "occurs": 1, "recurrentOperation": False}
_INSTANT_SCHED: Final = {**_DEFAULT_SCHED, "duration": 0}
_CLIMATE_SCHED: Final = {**_DEFAULT_SCHED, "duration": 180}
_CHARGING_SCHED: Final = {
    "scheduledTime": None,
    "interval": 0,
    "occurs": 1,
    "recurrentOperation": 0,
    "duration": 6,
}
_ZAF_SCHED: Final = {
    "scheduledTime": None,
    "interval": 0,
    "occurs": 0,
    "recurrentOperation": 1,
    "duration": 60,
}
_HEAT_PLACES: Final = frozenset({"front-left", "front-right", "steering_wheel"})
_ZAF_COMFORT: Final = frozenset({"SH.11", "SH.19", "SH.21", "SH.29", "SW", "SV.11", "SV.19"})
_LEVELS: Final = frozenset({"1", "2", "3"})


def _same(sched: Any, want: dict[str, Any]) -> bool:
    """Equal values with equal JSON types (``0`` is not ``False`` on the wire)."""
    if not isinstance(sched, dict) or set(sched) != set(want):
        return False
    return all(type(sched[k]) is type(v) and sched[k] == v for k, v in want.items())


def _temp_ok(value: str) -> bool:
    try:
        temp = float(value)
    except ValueError:
        return False
    return f"{temp:.1f}" == value and 16.0 <= temp <= 30.0


def _rce(command: str, sched: Any, pairs: list[tuple[str, str]]) -> bool:
    keys = [k for k, _ in pairs]
    d = dict(pairs)
    if keys[:2] == ["rce.conditioner", "rce.temp"] and d["rce.conditioner"] == "1":
        # climate on/off, optionally with seat heating pairs (rce.heat, rce.level)*
        rest = pairs[2:]
        heat = all(
            rest[i][0] == "rce.heat"
            and rest[i][1] in _HEAT_PLACES
            and i + 1 < len(rest)
            and rest[i + 1][0] == "rce.level"
            and rest[i + 1][1] in _LEVELS
            for i in range(0, len(rest), 2)
        )
        return heat and _temp_ok(d["rce.temp"]) and _same(sched, _CLIMATE_SCHED)
    if pairs == [("rce.conditioner", "2"), ("rce.level", "2")]:  # windscreen defrost
        duration = 90 if command == "start" else 0
        return _same(sched, {**_CLIMATE_SCHED, "duration": duration})
    if not pairs or not _same(sched, _CLIMATE_SCHED):
        return False
    if command == "start":  # heating only: (rce.heat, rce.level 1..3)+
        return len(pairs) % 2 == 0 and all(
            pairs[i][0] == "rce.heat"
            and pairs[i][1] in _HEAT_PLACES
            and pairs[i + 1][0] == "rce.level"
            and pairs[i + 1][1] in _LEVELS
            for i in range(0, len(pairs), 2)
        )
    # heating stop: every place, then one level 0
    return (
        pairs[-1] == ("rce.level", "0")
        and len(pairs) >= 2
        and all(k == "rce.heat" and v in _HEAT_PLACES for k, v in pairs[:-1])
    )


def _rcs(pairs: list[tuple[str, str]]) -> bool:
    d = dict(pairs)
    if d in ({"operation": "1", "rcs.restart": "1"}, {"operation": "0", "rcs.terminate": "1"}):
        return len(pairs) == 2
    if set(d) == {"soc", "operation", "rcs.setting"} and len(pairs) == 3:
        soc = d["soc"]
        ok = soc.isdigit() and 500 <= int(soc) <= 1000 and int(soc) % 50 == 0
        return ok and d["operation"] == "4" and d["rcs.setting"] == "1"
    return False


def _zaf_ok(pairs: list[tuple[str, str]]) -> bool:
    d = dict(pairs)
    if len(d) != len(pairs) or d.pop("operation", None) != "4":
        return False
    if set(d) == {"DF"}:
        return d["DF"] in {"true", "false"}
    keys = [k for k in d if k in _ZAF_COMFORT]
    if len(keys) != 1:
        return False
    key = keys[0]
    if d[key] == "false":
        return len(d) == 1
    want = {key, f"{key}.level"} | ({f"{key}.duration"} if key.startswith("SH.") else set())
    return (
        d[key] == "true"
        and set(d) == want
        and d[f"{key}.level"] in _LEVELS
        and d.get(f"{key}.duration", "15") == "15"
    )


def check_strict(body: Any) -> None:
    """Raise IllegalParameter unless ``body`` is one of the documented parameter sets."""
    if not isinstance(body, dict):
        raise IllegalParameter("body is not a JSON object")
    service, command = body.get("serviceId"), body.get("command")
    sched, raw = body.get("operationScheduling"), body.get("serviceParameters")
    if body.get("creator") != "tc" or command not in ("start", "stop") or not isinstance(raw, list):
        raise IllegalParameter("creator tc, command start/stop and serviceParameters are required")
    pairs: list[tuple[str, str]] = []
    for item in raw:
        if not isinstance(item, dict) or set(item) != {"key", "value"}:
            raise IllegalParameter("serviceParameters must be a list of {key, value}")
        if not isinstance(item["key"], str) or not isinstance(item["value"], str):
            raise IllegalParameter("service parameter keys and values are strings")
        pairs.append((item["key"], item["value"]))
    camel = service in {"rcs", "ZAF", "RDO", "RDC"}
    stamp = body.get("timeStamp" if camel else "timestamp")
    if not isinstance(stamp, str) or not stamp.isdigit() or ("timestamp" in body) == camel:
        want = "timeStamp" if camel else "timestamp"
        raise IllegalParameter(f"{service} needs its {want} (epoch ms as a string)")
    with_user = service in {"ZAF", "RDO", "RDC"}
    if with_user != isinstance(body.get("userId"), str):
        raise IllegalParameter(f"{service}: userId {'missing' if with_user else 'not expected'}")
    start = command == "start"
    if service in {"RDL_2", "RDU_2"}:
        ok = start and pairs in ([("door", "all")], [("target", "trunk")])
        ok = ok and _same(sched, _DEFAULT_SCHED)
    elif service == "RCE_2":
        ok = _rce(str(command), sched, pairs)
    elif service == "rcs":
        ok = start and _rcs(pairs) and _same(sched, _CHARGING_SCHED)
    elif service == "RHL":
        ok = start and (
            (
                pairs in ([("rhl", "horn")], [("rhl", "light-flash")])
                and _same(sched, _INSTANT_SCHED)
            )
            or (dict(pairs) == {"rhl.horn": "1", "rhl.flash": "1"} and _same(sched, _DEFAULT_SCHED))
        )
    elif service == "RWS_2":
        ok = pairs in ([("target", "ventilate")], [("target", "sunshade")])
        ok = ok and _same(sched, _INSTANT_SCHED)
    elif service == "ZAF":
        ok = start and body.get("latest") is False and _zaf_ok(pairs) and _same(sched, _ZAF_SCHED)
    elif service in {"RDO", "RDC"}:
        ok = start and pairs == [("target", "front-charge-lid")] and _same(sched, _INSTANT_SCHED)
    else:
        raise IllegalParameter(f"serviceId {service!r} is not offered")
    if not ok:
        raise IllegalParameter(f"{service} {command}: not a parameter set this service takes")
