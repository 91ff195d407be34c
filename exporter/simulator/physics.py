"""Energy and thermal rules of thumb for the vehicle model.

Road load is rolling resistance plus aerodynamic drag, scaled per model so that a steady 90 km/h at
20 °C uses exactly the catalogue consumption; acceleration costs energy and braking recovers part
of it; cabin heating and cooling draw power depending on the outside temperature, and a cold
battery makes the whole drive train less efficient. Numbers are chosen to be plausible, not to
match any one car.
"""

from __future__ import annotations

import math

from exporter.simulator.catalogue import VehicleSpec

G = 9.81
AIR = 1.2
CRR = 0.009
CDA = 0.62
DRIVE_EFF = 0.88
REGEN_EFF = 0.62
AUX_KW = 0.35
IDLE_DRAIN_KW = 0.025  # parked and asleep: telematics unit, alarm
AWAKE_KW = 0.2  # parked but awake
ATM_KPA = 101.325


def road_power_kw(mass: float, v_ms: float) -> float:
    """Battery power to hold ``v_ms`` on a flat road, before the per-model scale."""
    force = mass * G * CRR + 0.5 * AIR * CDA * v_ms * v_ms
    return force * v_ms / DRIVE_EFF / 1000.0


def traction_scale(spec: VehicleSpec) -> float:
    """Factor that makes a steady 90 km/h at 20 °C cost ``spec.consumption_kwh_100km``."""
    wanted = spec.consumption_kwh_100km * 0.9 - AUX_KW  # kW at 90 km/h: 100 km take 1/0.9 hours
    return wanted / road_power_kw(spec.mass_kg, 25.0)


def hvac_kw(outside_c: float, target_c: float) -> float:
    """Cabin heating (heat pump) or cooling power to hold ``target_c``."""
    if outside_c < target_c - 3.0:
        return min(3.5, 0.12 * (target_c - 3.0 - outside_c) + 0.4)
    if outside_c > 24.0:
        return min(2.5, 0.1 * (outside_c - 24.0) + 0.3)
    return 0.15


def cold_factor(outside_c: float) -> float:
    """Drive-train losses grow in the cold (battery resistance, thicker fluids)."""
    return 1.0 + 0.008 * max(0.0, 15.0 - outside_c)


def step_energy_kwh(
    spec: VehicleSpec,
    scale: float,
    v0_kmh: float,
    v1_kmh: float,
    dt: float,
    outside_c: float,
    cabin_target_c: float,
) -> float:
    """Battery energy used over one step going from ``v0`` to ``v1`` (negative = recovered)."""
    v0, v1 = v0_kmh / 3.6, v1_kmh / 3.6
    v = (v0 + v1) / 2.0
    road = road_power_kw(spec.mass_kg, v) * scale * cold_factor(outside_c)
    kinetic_kw = 0.5 * spec.mass_kg * (v1 * v1 - v0 * v0) / dt / 1000.0
    kinetic_kw = kinetic_kw / DRIVE_EFF if kinetic_kw > 0 else kinetic_kw * REGEN_EFF
    power = road + kinetic_kw + AUX_KW + hvac_kw(outside_c, cabin_target_c)
    return power * dt / 3600.0


def tyre_pressure_kpa(cold_kpa_at_20c: float, tyre_temp_c: float) -> float:
    """Gauge pressure of a tyre filled to ``cold_kpa_at_20c`` at 20 °C, now at ``tyre_temp_c``."""
    return (cold_kpa_at_20c + ATM_KPA) * (tyre_temp_c + 273.15) / 293.15 - ATM_KPA


def relax(current: float, target: float, dt: float, tau: float) -> float:
    """First-order approach of ``current`` to ``target`` over ``dt`` with time constant ``tau``."""
    return target + (current - target) * math.exp(-dt / tau)
