"""Render the provider-neutral vehicle state as the smart cloud shapes it.

Reference §3.3 and the recorded replies shipped in the pysmarthashtag wheel are the template:
almost every leaf is a JSON *string* ("47", "12.400", "false"), coordinates are integer
milli-arc-seconds, a missing GPS fix is "" (not null), 2047 means "no time-to-full estimate", 101
marks a sunroof that is not fitted, timestamps are milliseconds except ``notification.time``
(seconds). Two leaves are real JSON booleans (``fragActive``, ``preClimateActive``), as in the
captures. The #5 (v2 API) reports the DC current in deci-amperes.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Final

from exporter.simulator.catalogue import VehicleSpec
from exporter.simulator.state import VehicleState

MAS_PER_DEGREE: Final = 3_600_000  # milli-arc-seconds
COLORS: Final = (
    ("G68 SPECTRUM BLUE", "087"),
    ("Z17 ATOMIC GREY", "017"),
    ("W01 DIGITAL WHITE", "001"),
    ("R35 SOLAR RED", "035"),
)


def _s(v: float, digits: int) -> str:
    return f"{v:.{digits}f}"


def _b(v: bool) -> str:
    return "true" if v else "false"


def _i(v: float) -> str:
    return str(round(v))


def _digest(vin: str, salt: str, n: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{salt}/{vin}".encode()).digest()[:8], "big") % n


def mat_code(vin: str, spec: VehicleSpec) -> str:
    """Material code: series prefix, trim code at positions 5-6, then digits (as in captures)."""
    return f"{spec.mat_prefix}H2D3B6{_digest(vin, 'mat', 10**9):09d}"


def vehicle_list_item(
    vin: str, spec: VehicleSpec, *, current: bool, intl: bool, created_ms: int
) -> dict[str, Any]:
    """One ``data.list[]`` entry of ``GET /device-platform/user/vehicle/secure``."""
    color, code = COLORS[_digest(vin, "color", len(COLORS))]
    series = spec.series + ("_IL" if intl else "")
    return {
        "factoryCode": "1234",
        "colorName": color,
        "isIHUConfirm": False,
        "temId": f"{_digest(vin, 'tem', 16**24):024x}",
        "ihuPlatform": "tsp",
        "ihuId": f"{_digest(vin, 'ihu', 16**24):024x}",
        "carProveStatus": "N",
        "fuelTankCapacity": "0",
        "seriesCodeVs": series,
        "iccid": f"8949{_digest(vin, 'iccid', 10**16):016d}",
        "current": current,
        "modelCode": spec.model_code,
        "vehicleOwnerLastTime": created_ms + 86_400_000,
        "vin": vin,
        "fccode": "1234",
        "id": 1_000_000 + _digest(vin, "id", 8_999_999),
        "msisdn": f"{_digest(vin, 'msisdn', 10**15):015d}",
        "vehicleType": 0,
        "engineNo": f"E{_digest(vin, 'engine', 10**8):08d}",
        "temType": "",
        "plateNo": "",
        "tboxPlatform": "tsp",
        "seriesName": series,
        "updateTime": created_ms + 3_600_000,
        "vehiclePhotoSmall": "",
        "modelName": spec.model_code,
        "proprietaryPlatform": spec.proprietary_platform,
        "recordTime": created_ms,
        "createTime": created_ms,
        "simActivited": 0,
        "vehiclePhotoBig": "",
        "loginInfo": {"isLogined": 0, "loginUid": ""},
        "colorCode": code,
        "defaultVehicle": current,
        "matCode": mat_code(vin, spec),
        "shareStatus": "N",
    }


def _position(s: VehicleState) -> dict[str, str]:
    if not s.gps_fix:
        return {
            "altitude": "",
            "posCanBeTrusted": "",
            "latitude": "",
            "carLocatorStatUploadEn": "true",
            "marsCoordinates": "",
            "longitude": "",
        }
    return {
        "altitude": _i(s.altitude_m),
        "posCanBeTrusted": "true",
        "latitude": str(round(s.lat * MAS_PER_DEGREE)),
        "carLocatorStatUploadEn": "true",
        "marsCoordinates": "false",
        "longitude": str(round(s.lon * MAS_PER_DEGREE)),
    }


def _ev(s: VehicleState, spec: VehicleSpec) -> dict[str, str]:
    ac = s.charging and not s.dc and s.charge_power_kw > 0
    dc = s.charging and s.dc and s.charge_power_kw > 0
    if dc:
        state, conn = "15", "1"
    elif ac:
        state, conn = "2", "3"
    else:
        state, conn = "0", ("2" if s.plugged else "0")
    dc_amps = -s.charge_current_a if dc else 0.0
    if spec.proprietary_platform:  # the v2 API reports deci-amperes here
        dc_amps *= 10.0
    ttf = "2047" if s.time_to_full_min is None or not s.charging else _i(s.time_to_full_min)
    cons = s.range_at_full_km and spec.battery_kwh / s.range_at_full_km * 100.0
    return {
        "disChargeUAct": "0.0",
        "disChargeSts": "0",
        "wptFineAlignt": "0",
        "chargeLidAcStatus": "2",
        "distanceToEmptyOnBatteryOnly": _i(s.range_km),
        "distanceToEmptyOnBattery100Soc": _i(s.range_at_full_km),
        "chargeSts": "0",
        "averPowerConsumption": _s(-cons * 5.0, 1),
        "chargerState": state,
        "timeToTargetDisCharged": "2047",
        "distanceToEmptyOnBattery20Soc": _i(s.range_at_full_km * 0.2),
        "disChargeConnectStatus": "1" if dc else "0",
        "chargeLidDcAcStatus": "1" if s.plugged else "2",
        "dcChargeSts": "0",
        "ptReady": "1" if s.driving else "0",
        "chargeLevel": _i(s.soc),
        "statusOfChargerConnection": conn,
        "dcDcActvd": "1",
        "indPowerConsumption": "1000",
        "dcDcConnectStatus": "3" if dc else "0",
        "disChargeIAct": "0.0",
        "dcChargeIAct": _s(dc_amps, 1),
        "chargeUAct": _s(s.charge_voltage_v if ac else 0.0, 1),
        "bookChargeSts": "1"
        if s.plugged and not s.charging and s.soc < s.charge_limit - 1
        else "0",
        "chargeIAct": _s(s.charge_current_a if ac else 0.0, 3),
        "timeToFullyCharged": ttf,
    }


def _maintenance(s: VehicleState, spec: VehicleSpec) -> dict[str, Any]:
    names = ("Driver", "Passenger", "DriverRear", "PassengerRear")
    out: dict[str, Any] = {
        "daysToService": _i(max(s.service_days, 0)),
        "engineHrsToService": "500",
        # whole kilometres with three zero decimals, as every recorded reply has it ("2701.000",
        # pysmarthashtag tests/replys/vehicle_info_dc_charging.json; "500.000" in vehicle_info.json;
        # smart-cloud-api.md §3.3 "Odometer"): the cluster counts in km and truncates
        "odometer": _s(math.floor(s.odometer_km + 1e-9), 3),
        "brakeFluidLevelStatus": "3",
        "mainBatteryStatus": {
            "stateOfCharge": "1",
            "chargeLevel": _s(s.battery_12v_pct, 1),
            "energyLevel": "0",
            "stateOfHealth": "0",
            "powerLevel": "0",
            "voltage": _s(s.battery_12v_v, 3),
        },
        "distanceToService": _i(max(s.service_km, 0)),
        "serviceWarningStatus": "1" if s.service_km < 1000 or s.service_days < 30 else "0",
        # the #5 does not report its washer fluid: the "unknown" sentinel 7 clients must expect
        "washerFluidLevelStatus": "7" if spec.proprietary_platform else "1",
    }
    for name, kpa, temp in zip(names, s.tyre_kpa, s.tyre_temp_c, strict=True):
        out[f"tyreStatus{name}"] = _s(kpa, 3)
        out[f"tyreTemp{name}"] = _s(round(temp), 3)
        out[f"tyrePreWarning{name}"] = "1" if kpa < 200.0 else "0"
        out[f"tyreTempWarning{name}"] = "1" if temp > 90.0 else "0"
    return out


def _climate(s: VehicleState) -> dict[str, Any]:
    win = ("Driver", "Passenger", "DriverRear", "PassengerRear")
    heat = s.seat_heating
    out: dict[str, Any] = {
        "drvHeatSts": "1" if heat[0] else "0",
        "drvHeatDetail": str(heat[0]),
        "passHeatingSts": "1" if heat[1] else "0",
        "passHeatingDetail": str(heat[1]),
        "rlHeatingSts": "1" if heat[2] else "0",
        "rlHeatingDetail": str(heat[2]),
        "rrHeatingSts": "1" if heat[3] else "0",
        "rrHeatingDetail": str(heat[3]),
        "steerWhlHeatingSts": str(heat[4]),
        "drvVentSts": "0",
        "drvVentDetail": "0",
        "passVentSts": "0",
        "passVentDetail": "0",
        "rlVentSts": "0",
        "rlVentDetail": "0",
        "rrVentSts": "0",
        "rrVentDetail": "0",
        "interiorTemp": _s(s.cabin_temp_c, 3),
        "exteriorTemp": _s(s.outside_temp_c, 3),
        "cdsClimateActive": _b(s.climate_on and s.driving),
        "preClimateActive": s.climate_on and not s.driving,
        "airBlowerActive": _b(s.climate_on),
        "defrost": "false",
        "climateOverHeatProActive": "false",
        "fragActive": False,
    }
    for name, pct in zip(win, s.window_open, strict=True):
        out[f"winStatus{name}"] = "1" if pct > 0 else "2"
        out[f"winPos{name}"] = _i(pct)
    if s.sunroof_fitted:
        roof_status, roof_pos = ("1", "100") if s.sunroof_open else ("2", "0")
    else:
        roof_status, roof_pos = "1", "101"
    out.update(
        sunroofOpenStatus=roof_status,
        sunroofPos=roof_pos,
        curtainOpenStatus=roof_status,
        curtainPos=roof_pos,
        sunCurtainRearOpenStatus="1",
        sunCurtainRearPos="101",
    )
    return out


def _safety(s: VehicleState) -> dict[str, Any]:
    names = ("Driver", "Passenger", "DriverRear", "PassengerRear")
    out: dict[str, Any] = {
        "srsCrashStatus": "0",
        "electricParkBrakeStatus": "0" if s.driving else "1",
        "tankFlapStatus": "2",
        "vehicleAlarm": {"alrmTrgSrc": "0"},
        "centralLockingStatus": "2" if s.locked else "0",
        "trunkLockStatus": "1" if s.trunk_locked else "0",
        "trunkOpenStatus": "1" if s.trunk_open else "0",
        "engineHoodOpenStatus": "1" if s.hood_open else "0",
        "seatBeltStatusDriver": _b(s.driving),
        "seatBeltStatusPassenger": "false",
        "seatBeltStatusDriverRear": "false",
        "seatBeltStatusPassengerRear": "false",
        "seatBeltStatusMidRear": "false",
        "seatBeltStatusThDriverRear": "false",
        "seatBeltStatusThPassengerRear": "false",
    }
    for name, is_open, locked in zip(names, s.door_open, s.door_locked, strict=True):
        out[f"doorLockStatus{name}"] = "1" if locked else "0"
        out[f"doorOpenStatus{name}"] = "1" if is_open else "0"
        out[f"doorPos{name}"] = "1" if is_open else "0"
    return out


_LIGHTS: Final = (
    *("ahbc", "goodbye", "homeSafe", "cornrgLi", "frntFog", "stopLi", "approach", "hiBeam"),
    *("loBeam", "posLiRe", "ltgShow", "welcome", "drl", "ahl", "trunIndrLe", "trunIndrRi"),
    *("afs", "dbl", "posLiFrnt", "reverseLi", "hwl", "reFog", "allwl"),
)


def _running(s: VehicleState) -> dict[str, str]:
    out = dict.fromkeys(_LIGHTS, "0")
    if s.driving:
        out["drl"] = "1"
    out.update(
        tripMeter1=_s(s.trip_km, 1),
        tripMeter2=_s(s.odometer_km % 1000.0, 1),
        engineCoolantLevelStatus="3",
        avgSpeed=_i(s.avg_speed_kmh),
        flash="1" if s.lights_flashing else "0",
        indFuelConsumption="0",
        fuelEnLevel="0",
        fuelLevelPct="0",
        fuelEnCns="0",
        fuelEnCnsFild="0",
    )
    return out


def vehicle_status(vin: str, spec: VehicleSpec, s: VehicleState) -> dict[str, Any]:
    """``data`` of ``GET /remote-control/vehicle/status/{vin}`` for one report."""
    ms = round(s.report_time * 1000)
    return {
        "result": {
            "serviceResult": {"error": None, "operationResult": 1},
            "sessionId": f"PS{_digest(vin, 'ps', 10**30):030d}",
        },
        "vehicleStatus": {
            "basicVehicleStatus": {
                "usageMode": "2" if s.driving or s.charging else "1",
                "engineStatus": "engine_running" if s.driving else "engine_off",
                "position": _position(s),
                "carMode": "0",
                "speed": _s(s.speed_kmh, 1),
                "speedValidity": _b(s.driving),
                "direction": _i(s.heading_deg) if s.gps_fix else "",
            },
            "notification": {
                "notifForEmgyCallStatus": "0",
                "reason": "1",
                "time": str(int(s.park_since)),
                "parameters": (
                    '{"key":"New VIN number","stringVal":"' + vin + '"},'
                    '{"key":"Previous VIN number","stringVal":"null"}'
                ),
            },
            "eg": {"enableRunning": "false", "blocked": {"status": "0"}, "panicStatus": "false"},
            "parkTime": {"status": str(int(s.park_since * 1000))},
            "configuration": {"propulsionType": "4", "fuelType": "4", "vin": vin},
            "updateTime": str(ms),
            "additionalVehicleStatus": {
                "maintenanceStatus": _maintenance(s, spec),
                "electricVehicleStatus": _ev(s, spec),
                "chargeHvSts": "1",
                "drivingBehaviourStatus": {
                    "gearAutoStatus": "4" if s.driving else "0",
                    "gearManualStatus": "0",
                    "engineSpeed": "0.000",
                },
                "runningStatus": _running(s),
                "trailerStatus": {
                    "trailerTurningLampSts": "0",
                    "trailerFogLampSts": "0",
                    "trailerBreakLampSts": "0",
                    "trailerReversingLampSts": "0",
                    "trailerPosLampSts": "0",
                },
                "climateStatus": _climate(s),
                "drivingSafetyStatus": _safety(s),
                "pollutionStatus": {
                    "interiorPM25": "1",
                    "interiorSecondPM25Level": "0",
                    "interiorPM25Level": "0",
                    "relHumSts": "55",
                    "exteriorPM25Level": "0",
                },
            },
            "temStatus": {
                "swVersion": None,
                "serialNumber": None,
                "powerSource": None,
                "networkAccessStatus": {
                    "mobileNetwork": None,
                    "simInfo": {"iccId": None, "imsi": None, "msisdn": None},
                },
                "mcuVersion": None,
                "mpuVersion": None,
                "backupBattery": {"stateOfCharge": None, "stateOfHealth": None, "voltage": None},
                "hwVersion": None,
                "powerMode": None,
                "healthStatus": None,
                "sleepCycleNextWakeupTime": None,
                "imei": None,
                "state": None,
                "connectivityStatus": None,
                "rvsEnable": "true",
            },
        },
    }


def soc_setting(s: VehicleState, limit_set_at: float) -> dict[str, str]:
    """``data`` of ``GET /remote-control/vehicle/status/soc/{vin}?setting=charging``."""
    return {"socTime": str(int(limit_set_at * 1000)), "soc": str(round(s.charge_limit * 10))}


POWER_MODE: Final = {"off": "0", "accessory": "1", "on": "2", "driving": "2"}


def vehicle_state(
    vin: str, s: VehicleState, next_wakeup: float, *, journal: bool = True
) -> dict[str, Any]:
    """``data`` of ``GET /remote-control/vehicle/status/state/{vin}`` (flat flags)."""
    return {
        "journalLogState": 1 if journal else 0,
        "positionUploadState": 1,
        "carLocatorActive": 1,
        "engineState": 1 if s.driving else 0,
        "engineStatus": "engine_running" if s.driving else "engine_off",
        "powerMode": POWER_MODE.get(s.power_mode, "0"),
        "speed": _s(s.speed_kmh, 1),
        "usageMode": "2" if s.driving or s.charging else "1",
        "carMode": "0",
        "nextWakeupTime": str(int(next_wakeup * 1000)),
        "valetModeState": 0,
        "campingModeActive": 0,
        "driftModeActive": 0,
        "washCarModeActive": 0,
        "chatVideoMainActive": 0,
        "parkComfortState": 1,
        "privacyMode": 0,
        "pulseHeatActive": 0,
        "overheatState": 0,
        "btActive": 0,
        "btTempActive": 0,
        "svtState": 1,
        "pncStatus": 0,
        "vstdState": 2,
        "vin": vin,
    }


def dc_charge_info(s: VehicleState) -> dict[str, str]:
    """``data`` of the #5's ``qrvs`` endpoint: raw current (offset 16380, deci-A) and voltage ×4."""
    dc = s.charging and s.dc and s.charge_power_kw > 0
    amps = s.charge_current_a if dc else 0.0
    volts = s.charge_voltage_v if dc else 0.0
    return {"chargeI": str(round(16380 + amps * 10)), "chargeU": str(round(volts * 4))}


def tbox_info(vin: str, s: VehicleState) -> dict[str, Any]:
    """``data`` of ``GET /remote-control/vehicle/telematics/{vin}``."""
    return {
        "swVersion": "SW-TBOX-2.3.8",
        "hwVersion": "HW-TBOX-B1",
        "imei": f"35{_digest(vin, 'imei', 10**13):013d}",
        "connectivityStatus": "connected",
        "powerMode": POWER_MODE.get(s.power_mode, "0"),
        "backupBattery": {"voltage": "3.900", "stateOfCharge": "98"},
    }


def ota_info(spec: VehicleSpec, intl: bool) -> dict[str, Any]:
    """The flat (not enveloped) ``GET {ota}/app/info/{vin}`` reply."""
    region = "IL" if intl else "EU"
    current = f"smart OS 1.5.2 {region}" if spec.series != "HY11" else f"smart OS 2.1.0 {region}"
    notes = [
        {"language": "1", "description": "1. Improved app connectivity.\n2. Bug fixes."},
        {"language": "8", "description": "1. Verbeterde app-verbinding.\n2. Foutoplossingen."},
    ]
    return {
        "currentVersion": current,
        "currentReleaseNotes": notes,
        "targetVersion": current,
        "targetReleaseNotes": notes,
        "hasNewAssignment": False,
        "newStatus": "",
    }
