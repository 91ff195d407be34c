"""The v3 signal catalogue the simulator serves, each make's capability table, and signal bodies.

Codes, names, groups and body shapes: smartcar-v3.md §3.1-3.3 [DOC schema, signal pages]. The
permission each group needs: §3.4 [3P mapping, wbyoung]. Unit spellings: the simulator picks one per
unit from what real traffic shows (§3.2 "Real traffic shows percent, km, kWh, km/h, watts, ampere,
volts, bar" [3P-LIVE]), so a client must not assume the spec's enum spelling.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from exporter.simulator.smartcar.car import DOORS, WHEELS, Car, CarReading

# code -> (name, group, permission)
CATALOGUE: Final[Mapping[str, tuple[str, str, str]]] = {
    "tractionbattery-stateofcharge": ("StateOfCharge", "TractionBattery", "read_battery"),
    "tractionbattery-range": ("Range", "TractionBattery", "read_battery"),
    "tractionbattery-nominalcapacity": ("NominalCapacity", "TractionBattery", "read_battery"),
    "charge-ischarging": ("IsCharging", "Charge", "read_charge"),
    "charge-ischargingcableconnected": ("IsChargingCableConnected", "Charge", "read_charge"),
    "charge-detailedchargingstatus": ("DetailedChargingStatus", "Charge", "read_charge"),
    "charge-chargelimits": ("ChargeLimits", "Charge", "read_charge"),
    "charge-wattage": ("Wattage", "Charge", "read_charge"),
    "charge-voltage": ("Voltage", "Charge", "read_charge"),
    "charge-amperage": ("Amperage", "Charge", "read_charge"),
    "charge-timetocomplete": ("TimeToComplete", "Charge", "read_charge"),
    "charge-ischargingportflapopen": ("IsChargingPortFlapOpen", "Charge", "read_charge"),
    "closure-islocked": ("IsLocked", "Closure", "read_security"),
    "closure-doors": ("Doors", "Closure", "read_security"),
    "closure-windows": ("Windows", "Closure", "read_security"),
    "closure-sunroof": ("Sunroof", "Closure", "read_security"),
    "closure-reartrunk": ("RearTrunk", "Closure", "read_security"),
    "closure-fronttrunk": ("FrontTrunk", "Closure", "read_security"),
    "location-preciselocation": ("PreciseLocation", "Location", "read_location"),
    "odometer-traveleddistance": ("TraveledDistance", "Odometer", "read_odometer"),
    "motion-currentspeed": ("CurrentSpeed", "Motion", "read_speedometer"),
    "climate-internaltemperature": ("InternalTemperature", "Climate", "read_thermometer"),
    "climate-externaltemperature": ("ExternalTemperature", "Climate", "read_thermometer"),
    "hvac-iscabinhvacactive": ("IsCabinHVACActive", "HVAC", "read_climate"),
    "hvac-cabintargettemperature": ("CabinTargetTemperature", "HVAC", "read_climate"),
    "wheel-tires": ("Tires", "Wheel", "read_tires"),
    "lowvoltagebattery-stateofcharge": ("StateOfCharge", "LowVoltageBattery", "read_battery"),
    "internalcombustionengine-fuellevel": ("FuelLevel", "InternalCombustionEngine", "read_fuel"),
    "internalcombustionengine-range": ("Range", "InternalCombustionEngine", "read_fuel"),
    "internalcombustionengine-oillife": ("OilLife", "InternalCombustionEngine", "read_engine_oil"),
    "vehicleidentification-vin": ("VIN", "VehicleIdentification", "read_vin"),
}

_ELECTRIC_GROUPS: Final = frozenset({"TractionBattery", "Charge"})
_COMBUSTION_GROUPS: Final = frozenset({"InternalCombustionEngine"})

# Per make: signal codes the make does not offer (COMPATIBILITY/VEHICLE_NOT_CAPABLE). Support
# "varies by vehicle" [3P-LIVE dashboard matrix, §3.3: a VW ID. Buzz lacks amperage, HVAC,
# diagnostics, connectivity status and tyres]; the other rows are the simulator's own choice so
# that each demo make exercises a different ERROR set.
NOT_CAPABLE_SIGNALS: Final[Mapping[str, frozenset[str]]] = {
    "TESLA": frozenset(),
    "FORD": frozenset({"hvac-cabintargettemperature", "closure-windows", "closure-sunroof"}),
    "VOLKSWAGEN": frozenset(
        {
            "charge-amperage",
            "hvac-iscabinhvacactive",
            "hvac-cabintargettemperature",
            "wheel-tires",
        }
    ),
}
# Commands per make beyond lock/unlock/charge start/stop/set-limit: the charge-port door commands
# exist in the spec and the dashboard matrix [3P-LIVE §2.5]; only Tesla offers them here.
CHARGE_PORT_MAKES: Final = frozenset({"TESLA"})


def capable(car: Car, code: str) -> bool:
    _, group, _ = CATALOGUE[code]
    electric = car.powertrain in ("BEV", "PHEV")
    combustion = car.powertrain in ("ICE", "PHEV")
    if group in _ELECTRIC_GROUPS and not electric:
        return False
    if group in _COMBUSTION_GROUPS and not combustion:
        return False
    return code not in NOT_CAPABLE_SIGNALS.get(car.make.upper(), frozenset())


def _grid(values: Mapping[str, bool], locks: Mapping[str, bool] | None) -> dict[str, Any]:
    # Row 0 = front, column 0 = left [DOC closure signal page, §3.3]
    items = []
    for i, door in enumerate(DOORS):
        item: dict[str, Any] = {"row": i // 2, "column": i % 2, "isOpen": values.get(door, False)}
        if locks is not None:
            item["isLocked"] = locks.get(door, True)
        items.append(item)
    return {"values": items, "rowCount": 2, "columnCount": 2}


def _distance(m: float, unit: str) -> tuple[str, float]:
    """Metres as the signal carries them: km, or miles once the owner switched the account to
    imperial (smartcar-v3.md §3.2: "Imperial units seen or handled: miles" [3P-LIVE wbyoung])."""
    if unit == "miles":
        return "miles", round(m / 1609.344, 1)
    return "km", round(m / 1000, 1)


def body(code: str, car: Car, r: CarReading, port_open: bool = False) -> dict[str, Any] | None:
    """The body of ``code`` now, or None when the car has no value (UNAVAILABLE)."""
    limit = round(r.charge_limit * 100)
    if code == "tractionbattery-stateofcharge":  # 0-100, not v2's 0-1 [DOC, §3.3]
        # whole percent, as every recorded body ({"unit":"percent","value":75}, live 78:
        # smartcar-api.md §3 signal bodies, smartcar-v3.md §3.3)
        return None if r.soc is None else {"unit": "percent", "value": round(r.soc * 100)}
    if code == "tractionbattery-range":
        if r.range_m is None:
            return None
        unit, km = _distance(r.range_m, r.distance_unit)
        return {  # live shape [3P-LIVE, §3.3]
            "unit": unit,
            "value": km,
            "type": "ESTIMATED",
            "additionalValues": [{"type": "ESTIMATED", "value": km}],
        }
    if code == "tractionbattery-nominalcapacity":
        if r.capacity_kwh is None:
            return None
        return {
            "source": "SMARTCAR",
            "capacity": r.capacity_kwh,
            "availableCapacities": [{"capacity": r.capacity_kwh, "description": None}],
            "unit": "kWh",
        }
    if code == "charge-ischarging":
        return {"value": r.charging}
    if code == "charge-ischargingcableconnected":
        return {"value": r.plugged}
    if code == "charge-detailedchargingstatus":
        return {"value": r.charge_state}
    if code == "charge-chargelimits":  # activeLimit null when not plugged in [DOC, §3.3]
        return {
            "values": [{"type": "GLOBAL", "limit": limit, "condition": None}],
            "activeLimit": limit if r.plugged else None,
            "unit": "percent",
        }
    if code == "charge-wattage":
        return {"unit": "watts", "value": round(r.charge_power_w)}
    if code == "charge-voltage":
        return (
            None if r.charge_voltage_v is None else {"unit": "volts", "value": r.charge_voltage_v}
        )
    if code == "charge-amperage":
        if r.charge_current_a is None:
            return None
        return {"unit": "ampere", "value": round(r.charge_current_a, 1)}
    if code == "charge-timetocomplete":  # minutes [DOC, §3.3]
        if r.time_to_full_min is None or not r.charging:
            return None
        return {"unit": "minutes", "value": round(r.time_to_full_min)}
    if code == "charge-ischargingportflapopen":
        return {"value": port_open or r.plugged}
    if code == "closure-islocked":
        return {"value": r.locked}
    if code == "closure-doors":
        locks = r.door_locked if r.door_locked is not None else dict.fromkeys(DOORS, r.locked)
        return _grid(r.doors_open, locks)
    if code == "closure-windows":
        return _grid(r.windows_open, None)
    if code == "closure-sunroof":
        return None if r.sunroof_open is None else {"isOpen": r.sunroof_open}
    if code == "closure-reartrunk":
        return {"isOpen": r.trunk_open, "isLocked": r.locked}
    if code == "closure-fronttrunk":
        return {"isOpen": r.hood_open, "isLocked": None}  # live: isLocked null [3P-LIVE]
    if code == "location-preciselocation":
        if r.latitude is None or r.longitude is None:
            return None
        loc: dict[str, Any] = {
            "latitude": r.latitude,
            "longitude": r.longitude,
            "locationType": "CURRENT",
        }
        if r.heading is not None:
            loc["heading"] = round(r.heading)
        return loc
    if code == "odometer-traveleddistance":
        unit, value = _distance(r.odometer_m, r.distance_unit)
        return {"unit": unit, "value": value}
    if code == "motion-currentspeed":
        return {"unit": "km/h", "value": round(r.speed_mps * 3.6, 1)}
    if code == "climate-internaltemperature":
        t = r.cabin_temp_c
        return None if t is None else {"unit": "celsius", "value": round(t, 1)}
    if code == "climate-externaltemperature":
        t = r.outside_temp_c
        return None if t is None else {"unit": "celsius", "value": round(t, 1)}
    if code == "hvac-iscabinhvacactive":
        return None if r.climate_on is None else {"value": r.climate_on}
    if code == "hvac-cabintargettemperature":
        t = r.climate_target_c
        return None if t is None else {"unit": "celsius", "value": t}
    if code == "wheel-tires":  # unit "bar" as live traffic labels it [3P-LIVE, §3.3]
        if not r.tyre_pressure_pa:
            return None
        values = [
            {"row": i // 2, "column": i % 2, "tirePressure": round(r.tyre_pressure_pa[w] / 1e5, 2)}
            for i, w in enumerate(WHEELS)
            if w in r.tyre_pressure_pa
        ]
        return {"values": values, "rowCount": 2, "columnCount": 2, "unit": "bar"}
    if code == "lowvoltagebattery-stateofcharge":
        p = r.battery_12v_pct
        return None if p is None else {"unit": "percent", "value": round(p)}
    if code == "internalcombustionengine-fuellevel":
        f = r.fuel_ratio
        return None if f is None else {"unit": "percent", "value": round(f * 100)}
    if code == "internalcombustionengine-range":
        m = r.fuel_range_m
        return None if m is None else {"unit": "km", "value": round(m / 1000, 1)}
    if code == "internalcombustionengine-oillife":
        o = r.oil_life
        return None if o is None else {"unit": "percent", "value": round(o * 100)}
    if code == "vehicleidentification-vin":
        return {"value": car.vin}
    return None
