"""The simulated reports are as coarse and messy as real ones, and the rare events happen: each
behaviour the accuracy bench relies on is checked here on a few simulated weeks."""

from __future__ import annotations

import itertools

from exporter.clock import ManualClock
from exporter.simulator.fleet import Fleet
from exporter.simulator.quirks import Quirks
from exporter.simulator.smart import render
from exporter.simulator.smartcar.fleet_adapter import FleetCar
from exporter.simulator.smartcar.v3_signals import body
from exporter.simulator.state import VehicleState

DAY = 86400.0


def reports(fleet: Fleet, vin: str, days: float, every: float = 60.0) -> list[VehicleState]:
    out: list[VehicleState] = []
    end = fleet.clock.now() + days * DAY
    while fleet.clock.now() < end:
        fleet.clock.advance(every)  # type: ignore[attr-defined]
        s = fleet.state(vin)
        if not out or out[-1].report_time != s.report_time:
            out.append(s.copy())
    return out


def test_range_is_the_cars_estimate_not_soc_times_a_constant() -> None:
    fleet = Fleet(["#1"], seed=4, clock=ManualClock())
    seen = reports(fleet, fleet.vins[0], 7)
    ratios = {round(s.range_km / s.range_at_full_km / (s.soc / 100.0), 3) for s in seen if s.soc}
    assert len(ratios) > 5  # it moves with recent consumption and temperature
    assert max(ratios) - min(ratios) > 0.02  # by more than the rounding of whole kilometres


def test_the_smart_odometer_is_whole_kilometres() -> None:
    fleet = Fleet(["#3"], seed=4, clock=ManualClock())
    vin = fleet.vins[0]
    s = reports(fleet, vin, 2)[-1]
    odo = render.vehicle_status(vin, fleet.vehicle(vin).spec, s)["vehicleStatus"][
        "additionalVehicleStatus"
    ]["maintenanceStatus"]["odometer"]
    assert odo.endswith(".000") and float(odo) == int(s.odometer_km)


def test_short_hops_and_paused_charges_happen() -> None:
    fleet = Fleet(["#1", "#3", "#5"], seed=2, clock=ManualClock())
    seen = {vin: reports(fleet, vin, 30) if i == 0 else [] for i, vin in enumerate(fleet.vins)}
    for vin in fleet.vins[1:]:  # the clock has moved on: the other cars catch up in one read
        fleet.state(vin)
    truth = {v: fleet.ground_truth(v) for v in fleet.vins}
    trips = [t for gt in truth.values() for t in gt["trips"]]
    assert any(t["distance_km"] < 1.0 for t in trips)
    assert any(1.0 <= t["distance_km"] < 2.0 for t in trips)
    # a paused session is one truth record with a plugged, not charging report inside it
    vin = fleet.vins[0]
    paused = [
        c
        for c in truth[vin]["charges"]
        if any(c["start"] < s.report_time < c["end"] and not s.charging for s in seen[vin])
    ]
    assert paused and all(c["kind"] == "AC" for c in paused)


def test_an_odometer_reset_shows_in_reports_and_not_in_the_truth() -> None:
    clock = ManualClock()
    fleet = Fleet((), seed=1, clock=clock)
    vin = fleet.add("#1", quirks=Quirks(odometer_reset_at=clock.now() + 3 * DAY))
    seen = reports(fleet, vin, 6)
    drops = [b.odometer_km - a.odometer_km for a, b in itertools.pairwise(seen)]
    assert min(drops) < -1000  # one step down, for good
    assert sum(1 for d in drops if d < 0) == 1
    trips = fleet.ground_truth(vin)["trips"]
    assert all(t["odometer_to_km"] >= t["odometer_from_km"] for t in trips)


def test_a_holiday_is_days_without_a_drive_or_an_upload() -> None:
    clock = ManualClock()
    fleet = Fleet((), seed=1, clock=clock)
    t0 = clock.now()
    q = Quirks(holiday_from=t0 + 2 * DAY, holiday_until=t0 + 7 * DAY)
    vin = fleet.add("#1", quirks=q)
    seen = reports(fleet, vin, 9, every=300.0)
    gaps = [b.report_time - a.report_time for a, b in itertools.pairwise(seen)]
    assert max(gaps) > 2 * DAY  # deep sleep: the cloud keeps serving the same old report
    trips = fleet.ground_truth(vin)["trips"]
    assert not [t for t in trips if t0 + 2.6 * DAY < t["start"] < t0 + 7 * DAY]


def test_a_switch_to_miles_reaches_the_smartcar_v3_signal() -> None:
    clock = ManualClock()
    fleet = Fleet((), seed=1, clock=clock)
    vin = fleet.add("Tesla Model 3", quirks=Quirks(miles_from=clock.now() + DAY))
    car = FleetCar(fleet, vin)
    before = body("odometer-traveleddistance", car, car.read())
    clock.advance(2 * DAY)
    after = body("odometer-traveleddistance", car, car.read())
    assert before is not None and before["unit"] == "km"
    assert after is not None and after["unit"] == "miles"
    assert after["value"] * 1.609344 >= before["value"] - 1.0
