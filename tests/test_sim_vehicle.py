"""Physics sanity of the vehicle model over simulated weeks on a ManualClock."""

from __future__ import annotations

import itertools
import json
import math

import pytest

from exporter.clock import ManualClock
from exporter.simulator.catalogue import CATALOGUE, spec_for
from exporter.simulator.charging import ac_curve, dc_curve
from exporter.simulator.fleet import Fleet
from exporter.simulator.state import VehicleState

DAY = 86400.0
MODELS = ["#1", "#3", "#5", "Tesla Model 3"]


def _trace(seed: int, days: float, every: float) -> tuple[Fleet, dict[str, list[VehicleState]]]:
    """Read every car every ``every`` simulated seconds; keep each distinct report."""
    clock = ManualClock()
    fleet = Fleet(MODELS, seed=seed, clock=clock)
    end = clock.now() + days * DAY
    seen: dict[str, list[VehicleState]] = {vin: [] for vin in fleet.vins}
    while clock.now() < end:
        clock.advance(min(every, end - clock.now()))
        for vin in fleet.vins:
            s = fleet.state(vin)
            if not seen[vin] or seen[vin][-1].report_time != s.report_time:
                seen[vin].append(s.copy())
    return fleet, seen


@pytest.fixture(scope="module")
def three_weeks() -> tuple[Fleet, dict[str, list[VehicleState]]]:
    return _trace(seed=3, days=21, every=30.0)


def test_soc_bounded_odometer_monotonic_reports_ordered(three_weeks) -> None:  # type: ignore[no-untyped-def]
    _fleet, seen = three_weeks
    for reports in seen.values():
        assert len(reports) > 200
        times = [r.report_time for r in reports]
        assert times == sorted(times) and len(set(times)) == len(times)
        for a, b in itertools.pairwise(reports):
            assert b.odometer_km >= a.odometer_km
        assert all(0.0 <= r.soc <= 100.0 for r in reports)
        assert all(r.range_km >= 0 for r in reports)


def test_consistency_rules_hold_in_every_report(three_weeks) -> None:  # type: ignore[no-untyped-def]
    _fleet, seen = three_weeks
    driving = charging = 0
    for reports in seen.values():
        for r in reports:
            if r.charging:
                charging += 1
                assert r.plugged and not r.driving
            if r.driving:
                driving += 1
                assert r.locked and all(r.door_locked)
                assert r.doors_closed and r.windows_closed
                assert r.climate_on and r.awake
                assert r.power_mode == "driving" and not r.plugged
                assert 0 <= r.speed_kmh < 180
            else:
                assert r.speed_kmh == 0
            if r.charge_power_kw > 0:
                assert r.charging
            assert 11.5 < r.battery_12v_v < 14.6
            assert (r.battery_12v_v > 13.5) == (r.awake or r.charging or r.driving)
            assert all(150 < p < 320 for p in r.tyre_kpa)
            assert -30 < r.outside_temp_c < 40 and -30 < r.cabin_temp_c < 60
    assert driving > 500 and charging > 100  # the model really drove and charged


def test_report_cadence(three_weeks) -> None:  # type: ignore[no-untyped-def]
    _fleet, seen = three_weeks
    for reports in seen.values():
        for a, b in itertools.pairwise(reports):
            gap = b.report_time - a.report_time
            if a.driving and b.driving:
                assert gap == pytest.approx(60.0)  # one upload a minute while driving
            assert gap <= 5.01 * 3600  # even asleep, a report every few hours


def test_ground_truth_matches_trace(three_weeks) -> None:  # type: ignore[no-untyped-def]
    fleet, seen = three_weeks
    for vin, reports in seen.items():
        truth = fleet.ground_truth(vin)
        json.dumps(truth)  # serialisable
        trips, charges = truth["trips"], truth["charges"]
        assert trips and charges
        first, last = reports[0], reports[-1]
        inside = [
            t for t in trips if t["start"] >= first.report_time and t["end"] <= last.report_time
        ]
        # the odometer moves exactly by the distances of the recorded trips
        driven = sum(t["distance_km"] for t in inside)
        assert last.odometer_km - first.odometer_km == pytest.approx(driven, abs=1e-6)
        spec = fleet.vehicle(vin).spec
        for a, b in itertools.pairwise(trips):
            assert a["end"] <= b["start"]
        for t in trips:
            assert t["odometer_to_km"] - t["odometer_from_km"] == pytest.approx(t["distance_km"])
            assert t["soc_to"] < t["soc_from"]
            per_100 = t["energy_kwh"] / t["distance_km"] * 100 if t["distance_km"] > 1 else None
            if per_100 is not None:
                assert 8 < per_100 < 45
            # the battery drop equals the trip energy
            drop = (t["soc_from"] - t["soc_to"]) * spec.battery_kwh / 100
            assert drop == pytest.approx(t["energy_kwh"], rel=1e-6, abs=1e-6)
        for c in charges:
            assert c["end"] > c["start"] and c["soc_to"] > c["soc_from"]
            added = (c["soc_to"] - c["soc_from"]) * spec.battery_kwh / 100
            assert c["energy_added_kwh"] == pytest.approx(added)
            assert c["energy_grid_kwh"] > c["energy_added_kwh"]
            assert c["ended_by"] in {"limit", "unplugged", "stopped"}
        # every report that says "charging" lies inside a recorded charging session
        for r in reports:
            if r.charging:
                assert any(c["start"] <= r.report_time <= c["end"] for c in charges) or any(
                    c["end"] is None for c in fleet.ground_truth(vin, include_open=True)["charges"]
                )
        for r in reports:
            if r.driving:
                assert any(t["start"] <= r.report_time <= t["end"] for t in trips) or (
                    r.report_time >= trips[-1]["end"]
                )


def test_dc_taper_and_ac_flat(three_weeks) -> None:  # type: ignore[no-untyped-def]
    fleet, seen = three_weeks
    checked = 0
    for vin, reports in seen.items():
        peak = fleet.vehicle(vin).spec.max_dc_kw
        dc = [(r.soc, r.charge_power_kw) for r in reports if r.charging and r.dc]
        for r in reports:
            if r.charging and not r.dc and r.charge_power_kw > 0 and r.soc < 90:
                assert r.charge_power_kw <= 22.0 + 1e-6
                # U x I (x sqrt3 on three phases) gives the reported power
                factor = math.sqrt(3) if r.charge_phases == 3 else 1.0
                assert r.charge_voltage_v * r.charge_current_a * factor / 1000 == pytest.approx(
                    r.charge_power_kw
                )
        assert all(kw <= peak + 1e-6 for _, kw in dc)
        lows = [kw for soc, kw in dc if soc < 45]
        highs = [kw for soc, kw in dc if soc > 75]
        if lows and highs:
            checked += 1
            assert max(highs) <= max(lows)
    assert checked, "the 3 weeks include long trips with fast charging"


def test_dc_curve_shape() -> None:
    curve = dc_curve(62.0, 150.0, 350.0, 55.0, temp_c=25.0)
    assert curve.power(30.0) == pytest.approx(150.0)
    assert curve.power(55.0) == pytest.approx(150.0)
    assert curve.power(90.0) == pytest.approx(0.2 * 150.0)
    assert curve.power(96.0) < 0.2 * 150.0
    powers = [curve.power(s) for s in range(55, 101)]
    assert powers == sorted(powers, reverse=True)
    capped = dc_curve(62.0, 150.0, 50.0, 55.0, temp_c=25.0)
    assert max(capped.power(s) for s in range(0, 101)) == pytest.approx(50.0)
    cold = dc_curve(62.0, 150.0, 350.0, 55.0, temp_c=-10.0)
    assert cold.power(30.0) < 0.7 * 150.0


def test_charge_curve_closed_form_matches_numeric_integration() -> None:
    for curve in (
        ac_curve(62.0, 22 * 0.92, 11 * 0.92),
        dc_curve(94.0, 400.0, 150.0, 60.0, temp_c=5.0),
        dc_curve(62.0, 150.0, 300.0, 55.0, temp_c=20.0),
    ):
        soc, t, dt = 12.0, 0.0, 1.0
        while soc < 79.0:
            soc += curve.power(soc) * dt / 3600 / curve.capacity_kwh * 100
            t += dt
        assert curve.seconds_to(12.0, soc) == pytest.approx(t, rel=2e-3)
        assert curve.soc_after(12.0, t, 100.0) == pytest.approx(soc, abs=0.02)
        assert curve.soc_after(12.0, 10 * t, 80.0) == 80.0


def test_reads_do_not_change_the_cars_life() -> None:
    dense_fleet, dense = _trace(seed=5, days=4, every=60.0)
    sparse_fleet, sparse = _trace(seed=5, days=4, every=5 * 3600.0)
    for vin in dense:
        assert dense_fleet.ground_truth(vin) == sparse_fleet.ground_truth(vin)
        by_time = {r.report_time: r for r in dense[vin]}
        for r in sparse[vin]:
            assert by_time[r.report_time] == r


def test_cold_weather_costs_energy() -> None:
    spec = spec_for("#1")
    from exporter.simulator import physics

    scale = physics.traction_scale(spec)
    warm = physics.step_energy_kwh(spec, scale, 90, 90, 3600, 20.0, 21.0)
    cold = physics.step_energy_kwh(spec, scale, 90, 90, 3600, -5.0, 21.0)
    fast = physics.step_energy_kwh(spec, scale, 130, 130, 3600, 20.0, 21.0)
    # 90 km/h for an hour at 20 °C: the catalogue consumption
    assert warm / 0.9 == pytest.approx(spec.consumption_kwh_100km, rel=0.05)
    assert cold > warm * 1.15 and fast / 1.3 > warm / 0.9


def test_catalogue_has_the_three_smarts_and_generic_makes() -> None:
    assert {CATALOGUE[k].series for k in ("#1", "#3", "#5")} == {"HX11", "HC11", "HY11"}
    assert spec_for("#5").proprietary_platform == 1 and spec_for("#1").proprietary_platform == 0
    assert {s.cloud for s in CATALOGUE.values()} == {"smart", "smartcar"}
    with pytest.raises(ValueError, match="unknown simulated vehicle"):
        spec_for("Trabant")


def test_the_simulated_car_knows_every_command_the_exporter_can_send() -> None:
    from exporter.providers.base import COMMANDS
    from exporter.simulator import vehicle

    assert set(COMMANDS) <= set(vehicle.COMMANDS)
    assert "windows_open" in vehicle.COMMANDS  # and what only the maker's app does
