"""Telematics payloads (docs/SMART_COMMANDS.md) and the login circuit breaker's arithmetic."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from exporter.clock import ManualClock
from exporter.providers.base import COMMANDS, Command, CommandRejected, RateLimited
from exporter.providers.smart import breaker as br
from exporter.providers.smart.breaker import BreakerRegistry, LoginBreaker
from exporter.providers.smart.commands import SUPPORTED, build
from exporter.providers.smart.errors import LoginSuppressed


def payload(name: str, **params: Any) -> dict[str, Any]:
    return build(Command(name, params)).body("1706028240000")


def params_of(body: dict[str, Any]) -> dict[str, str]:
    return {p["key"]: p["value"] for p in body["serviceParameters"]}


def test_every_supported_command_is_a_canonical_one() -> None:
    assert set(COMMANDS) >= SUPPORTED


@pytest.mark.parametrize(
    ("name", "params", "service", "command", "duration", "expected"),
    [
        ("lock", {}, "RDL_2", "start", 6, {"door": "all"}),
        ("unlock", {}, "RDU_2", "start", 6, {"door": "all"}),
        (
            "climate_start",
            {"temperature": 22},
            "RCE_2",
            "start",
            180,
            {"rce.conditioner": "1", "rce.temp": "22.0"},
        ),
        ("climate_stop", {}, "RCE_2", "stop", 180, {"rce.conditioner": "1", "rce.temp": "21.0"}),
        ("horn", {}, "RHL", "start", 0, {"rhl": "horn"}),
        ("flash", {}, "RHL", "start", 0, {"rhl": "light-flash"}),
        ("find", {}, "RHL", "start", 6, {"rhl.horn": "1", "rhl.flash": "1"}),  # seed, unconfirmed
        ("windows_close", {}, "RWS_2", "stop", 0, {"target": "ventilate"}),
        (
            "seat_heating",
            {"seat": "front_right", "level": 2},
            "RCE_2",
            "start",
            180,
            {"rce.heat": "front-right", "rce.level": "2"},
        ),
        (
            "seat_heating",
            {"seat": "driver", "level": 0},
            "RCE_2",
            "stop",
            180,
            {"rce.heat": "front-left", "rce.level": "0"},
        ),
    ],
)
def test_standard_payloads(
    name: str,
    params: dict[str, Any],
    service: str,
    command: str,
    duration: int,
    expected: dict[str, str],
) -> None:
    """The bodies of docs/SMART_COMMANDS.md (pysmarthashtag 0.15's, except find)."""
    body = payload(name, **params)
    assert body["creator"] == "tc"
    assert body["serviceId"] == service
    assert body["command"] == command
    assert body["timestamp"] == "1706028240000"
    assert "timeStamp" not in body and "userId" not in body
    sched = body["operationScheduling"]
    assert sched == {"duration": duration, "interval": 0, "occurs": 1, "recurrentOperation": False}
    assert sched["recurrentOperation"] is False
    assert params_of(body) == expected


@pytest.mark.parametrize(
    ("seat", "level", "expected"),
    [
        (
            "driver",
            3,
            [("operation", "4"), ("SH.11", "true"), ("SH.11.level", "3"), ("SH.11.duration", "15")],
        ),
        ("steering_wheel", 1, [("operation", "4"), ("SW", "true"), ("SW.level", "1")]),
        ("passenger", 0, [("operation", "4"), ("SH.19", "false")]),
    ],
)
def test_seat_heating_on_the_5_is_zaf(
    seat: str, level: int, expected: list[tuple[str, str]]
) -> None:
    body = build(Command("seat_heating", {"seat": seat, "level": level}), "HY11").body("17", "42")
    assert body["serviceId"] == "ZAF" and body["command"] == "start"  # stop says start too
    assert body["timeStamp"] == "17" and body["userId"] == "42" and body["latest"] is False
    assert body["operationScheduling"] == {
        "scheduledTime": None,
        "interval": 0,
        "occurs": 0,
        "recurrentOperation": 1,
        "duration": 60,
    }
    assert [(p["key"], p["value"]) for p in body["serviceParameters"]] == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("charge_start", {"operation": "1", "rcs.restart": "1"}),
        ("charge_stop", {"operation": "0", "rcs.terminate": "1"}),
    ],
)
def test_charging_quirks(name: str, expected: dict[str, str]) -> None:
    body = payload(name)
    assert body["serviceId"] == "rcs"
    assert body["command"] == "start"  # for stop too: the operation parameter decides
    assert body["timeStamp"] == "1706028240000"
    assert "timestamp" not in body
    assert body["operationScheduling"]["recurrentOperation"] == 0
    assert body["operationScheduling"]["recurrentOperation"] is not False
    assert body["operationScheduling"]["scheduledTime"] is None  # sent as null
    assert params_of(body) == expected


def test_charge_limit_is_sent_times_ten() -> None:
    body = payload("charge_limit", percent=85)
    assert body["serviceId"] == "rcs"
    assert params_of(body) == {"soc": "850", "operation": "4", "rcs.setting": "1"}


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("climate_start", {"temperature": 35}),
        ("climate_start", {"temperature": "warm"}),
        ("charge_limit", {"percent": 42}),
        ("charge_limit", {"percent": 83}),
        ("charge_limit", {}),
        ("seat_heating", {"seat": "trunk", "level": 1}),
        ("seat_heating", {"level": 7}),
        ("teleport", {}),
    ],
)
def test_invalid_commands_are_rejected_before_sending(name: str, params: dict[str, Any]) -> None:
    with pytest.raises(CommandRejected):
        build(Command(name, params))


# -- breaker -------------------------------------------------------------------------------------


def test_breaker_grows_by_half_from_the_floor_up_to_the_cap() -> None:
    clock, b = ManualClock(), LoginBreaker()
    windows = []
    for _ in range(20):
        b.check(clock)
        windows.append(b.rate_limited(clock, "403"))
        with pytest.raises(LoginSuppressed) as info:
            b.check(clock)
        assert info.value.retry_after == pytest.approx(windows[-1])
        assert isinstance(info.value, RateLimited)
        clock.advance(windows[-1])
    assert windows[0] == br.FLOOR == 120
    assert windows[1] == pytest.approx(180)
    assert windows[2] == pytest.approx(270)
    assert max(windows) == br.CAP == 90 * 60
    assert all(b2 >= b1 for b1, b2 in itertools.pairwise(windows))
    assert b.attempts == 20


def test_breaker_success_shrinks_and_other_failures_pause_a_minute() -> None:
    clock, b = ManualClock(), LoginBreaker()
    for _ in range(3):
        b.rate_limited(clock, "403")
    grown = b.window
    b.succeeded()
    assert b.window == pytest.approx(grown - 60)
    b.check(clock)  # success clears the quiet window
    assert b.failed(clock, "500") == 60
    with pytest.raises(LoginSuppressed):
        b.check(clock)
    clock.advance(60)
    b.check(clock)


def test_registry_shares_state_per_username() -> None:
    reg = BreakerRegistry()
    assert reg.for_user("EU", "A@x.com") is reg.for_user("EU", " a@x.com")
    assert reg.for_user("EU", "a@x.com") is not reg.for_user("INTL", "a@x.com")
    assert reg.for_user("EU", "a@x.com") is not reg.for_user("EU", "b@x.com")
