"""The fleet: VINs, remote commands on the model, change notifications, scale."""

from __future__ import annotations

import time

import pytest

from exporter.clock import ManualClock
from exporter.simulator.catalogue import CATALOGUE
from exporter.simulator.fleet import Fleet, vin_check_digit
from exporter.simulator.vehicle import COMMANDS


def _parked_fleet(models: list[str] | None = None, seed: int = 9) -> tuple[Fleet, ManualClock]:
    clock = ManualClock()
    return Fleet(models or ["#1"], seed=seed, clock=clock), clock


def _until(fleet: Fleet, clock: ManualClock, vin: str, pred, limit: float = 3 * 86400) -> None:  # type: ignore[no-untyped-def]
    end = clock.now() + limit
    while not pred(fleet.live_state(vin)):
        assert clock.now() < end, "condition never reached"
        clock.advance(60)


def test_vins_are_deterministic_valid_and_prefixed() -> None:
    a, _ = _parked_fleet(["#1", "#3", "#5"], seed=4)
    b, _ = _parked_fleet(["#1", "#3", "#5"], seed=4)
    c, _ = _parked_fleet(["#1", "#3", "#5"], seed=5)
    assert a.vins == b.vins and a.vins != c.vins
    sc = a.add("Tesla Model 3")
    for vin in [*a.vins]:
        assert len(vin) == 17 and not set(vin) & set("IOQ")
        assert vin[8] == vin_check_digit(vin)
    assert [v[:8] for v in a.vins[:3]] == ["HESXR1C4", "HESXR3C4", "HESXR5C4"]
    assert sc.startswith("0SC") and a.vins_for("smartcar") == [sc]
    assert len(a.vins_for("smart")) == 3
    smart_via_smartcar = a.add("#1", cloud="smartcar")
    assert smart_via_smartcar.startswith("0SC")


def test_lock_unlock_show_in_a_later_report_not_at_once() -> None:
    fleet, clock = _parked_fleet()
    vin = fleet.vins[0]
    assert fleet.state(vin).locked
    before = fleet.state(vin).report_time
    assert fleet.apply_command(vin, "unlock") == (True, "accepted")
    assert fleet.state(vin).locked, "the effect needs a few simulated seconds"
    clock.advance(15)
    after = fleet.state(vin)
    assert not after.locked and not any(after.door_locked)
    assert after.report_time > before
    assert fleet.apply_command(vin, "lock")[0]
    clock.advance(15)
    assert fleet.state(vin).locked
    log = fleet.ground_truth(vin)["commands"]
    assert [(c["name"], c["ok"]) for c in log] == [("unlock", True), ("lock", True)]


def test_charge_commands_need_a_cable_and_respect_the_limit() -> None:
    fleet, clock = _parked_fleet(seed=2)
    vin = fleet.vins[0]
    _until(fleet, clock, vin, lambda s: not s.plugged and not s.driving)
    ok, reason = fleet.apply_command(vin, "charge_start")
    assert not ok and "not plugged" in reason
    assert not fleet.apply_command(vin, "charge_stop")[0]
    assert not fleet.apply_command(vin, "charge_limit", {"percent": 30})[0]
    assert not fleet.apply_command(vin, "charge_limit", {"percent": "lots"})[0]
    assert fleet.apply_command(vin, "charge_limit", {"percent": 70})[0]
    clock.advance(15)
    assert fleet.state(vin).charge_limit == 70
    # wait for a home charging session, then stop and restart it remotely
    _until(fleet, clock, vin, lambda s: s.charging and not s.dc, limit=14 * 86400)
    assert fleet.apply_command(vin, "charge_stop")[0]
    clock.advance(15)
    stopped = fleet.state(vin)
    assert stopped.plugged and not stopped.charging and stopped.charge_power_kw == 0
    assert fleet.ground_truth(vin)["charges"][-1]["ended_by"] == "stopped"
    if stopped.soc < stopped.charge_limit - 1:
        assert fleet.apply_command(vin, "charge_start")[0]
        clock.advance(15)
        assert fleet.state(vin).charging


def test_climate_horn_windows_seats() -> None:
    fleet, clock = _parked_fleet(seed=3)
    vin = fleet.vins[0]
    _until(fleet, clock, vin, lambda s: not s.driving and s.outside_temp_c < 15)
    assert not fleet.apply_command(vin, "climate_start", {"temperature": 40})[0]
    assert fleet.apply_command(vin, "climate_start", {"temperature": 22, "duration": 10})[0]
    clock.advance(15)
    on = fleet.state(vin)
    assert on.climate_on and on.climate_target_c == 22 and on.power_mode == "accessory"
    clock.advance(8 * 60)
    warm = fleet.live_state(vin)
    assert warm.cabin_temp_c > on.cabin_temp_c + 3  # the heater works
    clock.advance(5 * 60)
    assert not fleet.state(vin).climate_on  # switched itself off after the duration
    assert fleet.apply_command(vin, "flash")[0]
    clock.advance(15)
    assert fleet.state(vin).lights_flashing
    assert fleet.apply_command(vin, "windows_open")[0]
    clock.advance(15)
    assert fleet.state(vin).window_open == (10.0, 10.0, 10.0, 10.0)
    assert fleet.apply_command(vin, "windows_close")[0]
    assert fleet.apply_command(vin, "seat_heating", {"seat": "front-left", "level": 3})[0]
    assert not fleet.apply_command(vin, "seat_heating", {"seat": "roof", "level": 1})[0]
    clock.advance(15)
    s = fleet.state(vin)
    assert s.windows_closed and s.seat_heating[0] == 3
    assert not fleet.apply_command(vin, "self_destruct")[0]


def test_commands_refused_while_driving() -> None:
    fleet, clock = _parked_fleet(seed=4)
    vin = fleet.vins[0]
    _until(fleet, clock, vin, lambda s: s.driving)
    for name in ("unlock", "horn", "find", "windows_open"):
        ok, reason = fleet.apply_command(vin, name)
        assert not ok and "in motion" in reason
    assert fleet.apply_command(vin, "windows_close")[0]


def test_on_change_hears_new_reports_and_unsubscribes() -> None:
    fleet, clock = _parked_fleet(["#1", "#3"], seed=6)
    heard: list[str] = []
    stop = fleet.on_change(heard.append)
    fleet.on_change(lambda vin: 1 / 0)  # a broken listener must not break the fleet
    clock.advance(2 * 86400)
    assert fleet.tick() > 0
    assert set(heard) == set(fleet.vins)
    clock.advance(600)
    fleet.tick()
    assert fleet.tick() == 0  # nothing new without time passing
    stop()
    n = len(heard)
    clock.advance(86400)
    assert fleet.tick() > 0
    assert len(heard) == n


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_name_is_understood(name: str) -> None:
    fleet, _clock = _parked_fleet(seed=8)
    params = {"percent": 80, "seat": "front-left", "level": 1, "temperature": 21}
    ok, reason = fleet.apply_command(fleet.vins[0], name, params)
    assert "unknown command" not in reason
    if name not in {"charge_start", "charge_stop"}:
        assert ok, reason


def test_many_cars_are_cheap_to_read() -> None:
    """2,000 cars read every 10 simulated minutes for 12 hours: a few seconds at most."""
    clock = ManualClock()
    keys = list(CATALOGUE)
    fleet = Fleet([keys[i % len(keys)] for i in range(2000)], seed=1, clock=clock)
    started = time.perf_counter()
    for _ in range(72):
        clock.advance(600)
        for vin in fleet.vins:
            fleet.state(vin)
    elapsed = time.perf_counter() - started
    assert elapsed < 20.0, f"{elapsed:.1f}s for 144,000 reads"


def test_plug_in_control_starts_charging_at_once() -> None:
    fleet, clock = _parked_fleet(seed=12)
    vin = fleet.vins[0]
    _until(fleet, clock, vin, lambda s: not s.plugged and not s.driving and s.soc < 85)
    assert fleet.plug_in(vin, "DC")
    clock.advance(20)
    s = fleet.state(vin)
    assert s.plugged and s.charging and s.dc and s.charge_power_kw > 0
    assert s.time_to_full_min is not None and s.time_to_full_min > 0
    assert not fleet.plug_in(vin, "AC")  # already plugged
