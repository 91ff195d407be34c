"""The ``data`` of the smart cloud's trip journal and track replies, rendered from the fleet.

The HTTP handlers in ``api.py`` serve these after the gateway checks and the grant; the accuracy
bench (bench/accuracy_journal.py) calls them in-process, so the journal it scores is the one the
simulated cloud serves at that moment, not a second rendering that could drift from it. ``None``
means the cloud answers 8153 (nothing in this window, no more pages, no track).
"""

from __future__ import annotations

from typing import Any

from exporter.simulator.fleet import Fleet
from exporter.simulator.smart import render


def listed_trips(fleet: Fleet, vin: str, start: float, end: float) -> list[dict[str, Any]]:
    """The trips the cloud lists for a window, newest first: finished (the car uploads a trip when
    it parks), started inside [start, end], and started while the car's trip recording was on;
    their odometers as the car's own unit counted them (after a reset: the new unit's)."""
    car = fleet.vehicle(vin)
    trips = [
        t
        for t in fleet.ground_truth(vin)["trips"]
        if t["end"] is not None and start <= t["start"] <= end and car.journal_recording(t["start"])
    ]
    for t in trips:  # fresh copies from ground_truth: the truth itself keeps the physical count
        t["odometer_from_km"] = car.odometer_shown(t["odometer_from_km"], t["start"])
        t["odometer_to_km"] = car.odometer_shown(t["odometer_to_km"], t["end"])
    trips.reverse()
    return trips


def journal_page(
    fleet: Fleet, vin: str, start: float, end: float, page: int, size: int
) -> dict[str, Any] | None:
    """One ``journalLogV4`` page (reference §3.2; pysmarthashtag account.py get_trip_journal):
    newest first, ``totleSize`` (sic) in the pagination block; None past the last page."""
    trips = listed_trips(fleet, vin, start, end)
    chunk = trips[(page - 1) * size : page * size]
    if not chunk:
        return None
    pagination = {
        "pageIndex": page,
        "sortField": "startTime",
        "start": (page - 1) * size + 1,
        "pageSize": size,
        "totleSize": len(trips),
        "direction": "desc",
    }
    return {"pagination": pagination, "list": [journal_item(t) for t in chunk]}


def track_page(
    fleet: Fleet, vin: str, start: float, end: float, size: int, delay: float = 0.0
) -> dict[str, Any] | None:
    """One trip's GPS track (reference §3.2, journal-service history): newest first, at most
    ``size`` points, each only a position in integer milli-arc-seconds (pysmarthashtag
    vehicle/trackpoints.py and its recorded trackpoints_response.json); None when there is none,
    and while the trip ended less than ``delay`` ago (``SmartCloudConfig.track_delay``)."""
    fleet.state(vin)
    points = [p for p in fleet.vehicle(vin).trackpoints if start <= p[0] <= end]
    if not points or fleet.clock.now() < end + delay:
        return None
    points.reverse()
    items = [
        {
            "basicVehicleStatus": {
                "position": {
                    "latitude": round(lat * render.MAS_PER_DEGREE),
                    "longitude": round(lon * render.MAS_PER_DEGREE),
                }
            }
        }
        for _t, lat, lon, _alt in points[:size]
    ]
    pagination = {
        "pageIndex": 1,
        "sortField": "startTime",
        "start": 1,
        "pageSize": size,
        "totleSize": len(points),
        "direction": "desc",
    }
    return {"pagination": pagination, "list": items}


def journal_item(t: dict[str, Any]) -> dict[str, Any]:
    """One journalLogV4 entry. Field names from pysmarthashtag's recorded journal_response.json;
    every value a string (seed 004 "Data Types": all API responses encode values as strings);
    ``electricConsumption`` is kWh/100 km (pysmarthashtag vehicle/journal.py). The car's odometer
    and distance come with one decimal, the trackpoints are the trip's two ends."""
    km = t["distance_km"]

    def pos(lat: float, lon: float) -> dict[str, Any]:
        return {
            "position": {
                "altitude": "0",
                "latitude": str(round(lat * render.MAS_PER_DEGREE)),
                "longitude": str(round(lon * render.MAS_PER_DEGREE)),
                "posCanBeTrusted": "true",
                "marsCoordinates": "false",
            }
        }

    return {
        "tripId": str(int(t["start"])),
        "startTime": str(int(t["start"] * 1000)),
        "endTime": str(int(t["end"] * 1000)),
        "startOdometer": f"{t['odometer_from_km']:.1f}",
        "endOdometer": f"{t['odometer_to_km']:.1f}",
        "traveledDistance": f"{km:.1f}",
        "avgSpeed": f"{t['avg_speed_kmh']:.1f}",
        "electricConsumption": f"{t['energy_kwh'] / km * 100.0:.1f}" if km > 0 else "0.0",
        "tripStartAddr": None,  # EU: the cloud almost never fills these (vehicle/journal.py)
        "tripEndAddr": None,
        "tripRemark": None,
        "tripLabel": None,
        "trackpoints": [pos(t["start_lat"], t["start_lon"]), pos(t["end_lat"], t["end_lon"])],
        "regeneratedEnergy": f"{t['energy_kwh'] * 0.08:.1f}",
    }
