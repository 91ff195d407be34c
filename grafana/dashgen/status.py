"""Vehicle status: locks, openings, tyres, 12 V, service."""

from __future__ import annotations

from dashgen.kit import (
    BLUE,
    GREEN,
    GREY,
    LOCKED,
    ON_OFF,
    OPEN,
    POWER_CODE,
    POWER_MAP,
    RED,
    VIN,
    YELLOW,
    Dashboard,
    Panel,
    graph,
    mapping,
    prom,
    stat,
    thresholds,
    timeline,
)


def status() -> Dashboard:
    windows = (
        f"carmetrics_window_open{{{VIN}}}"
        f' or label_replace(carmetrics_sunroof_open{{{VIN}}}, "window", "sunroof", "", "")'
    )
    return Dashboard(
        "carmetrics-status",
        "carmetrics / Vehicle status",
        "Locks, doors, windows, tyres (pressure and temperature per wheel), the 12 V battery and "
        "when the next service is due.",
        [
            stat(
                "Central locking",
                "none",
                prom(f"carmetrics_locked{{{VIN}}}", instant=True),
                mappings=LOCKED,
                h=4,
            ),
            stat(
                "Climate",
                "none",
                prom(f"carmetrics_climate_active{{{VIN}}}", instant=True),
                mappings=ON_OFF,
                h=4,
            ),
            stat(
                "Power state",
                "none",
                prom(POWER_CODE, instant=True),
                mappings=POWER_MAP,
                h=4,
            ),
            stat(
                "12 V battery",
                "volt",
                prom(f"carmetrics_aux_battery_voltage_volts{{{VIN}}}", instant=True),
                decimals=1,
                thresholds=thresholds(RED, (11.8, YELLOW), (12.2, GREEN)),
                h=4,
            ),
            stat(
                "Door locks",
                "none",
                prom(f"carmetrics_door_locked{{{VIN}}}", "{{vin}} {{door}}", instant=True),
                mappings=LOCKED,
                w=8,
                h=5,
            ),
            stat(
                "Doors, trunk, hood",
                "none",
                prom(f"carmetrics_door_open{{{VIN}}}", "{{vin}} {{door}}", instant=True),
                mappings=OPEN,
                w=8,
                h=5,
            ),
            stat(
                "Windows and sunroof",
                "none",
                prom(windows, "{{vin}} {{window}}", instant=True),
                mappings=OPEN,
                w=8,
                h=5,
            ),
            Panel(
                "bargauge",
                "Tyre pressure",
                "pressurebar",
                [
                    prom(
                        f"carmetrics_tyre_pressure_pascals{{{VIN}}} / 100000",
                        "{{vin}} {{tyre}}",
                        instant=True,
                    )
                ],
                min=0,
                max=3.5,
                decimals=2,
                thresholds=thresholds(RED, (2.0, YELLOW), (2.2, GREEN)),
                w=12,
                h=7,
            ),
            Panel(
                "bargauge",
                "Tyre temperature",
                "celsius",
                [
                    prom(
                        f"carmetrics_tyre_temperature_celsius{{{VIN}}}",
                        "{{vin}} {{tyre}}",
                        instant=True,
                    )
                ],
                min=-20,
                max=80,
                decimals=0,
                thresholds=thresholds(BLUE, (5, GREEN), (60, RED)),
                w=12,
                h=7,
            ),
            graph(
                "Tyre pressure",
                "pressurebar",
                prom(f"carmetrics_tyre_pressure_pascals{{{VIN}}} / 100000", "{{vin}} {{tyre}}"),
                decimals=2,
            ),
            graph(
                "Tyre temperature",
                "celsius",
                prom(f"carmetrics_tyre_temperature_celsius{{{VIN}}}", "{{vin}} {{tyre}}"),
            ),
            graph(
                "12 V battery voltage",
                "volt",
                prom(f"carmetrics_aux_battery_voltage_volts{{{VIN}}}"),
                description="About 14 V while the car is awake or charging, 12.2-12.8 V asleep.",
            ),
            graph(
                "Speed",
                "velocitykmh",
                prom(f"carmetrics_speed_meters_per_second{{{VIN}}} * 3.6"),
                min=0,
            ),
            stat(
                "Service due in (distance)",
                "lengthkm",
                prom(f"carmetrics_service_distance_meters{{{VIN}}} / 1000", instant=True),
                decimals=0,
                thresholds=thresholds(RED, (1000, YELLOW), (3000, GREEN)),
                w=12,
                h=4,
            ),
            stat(
                "Service due in (time)",
                "dtdurations",
                prom(f"carmetrics_service_time_seconds{{{VIN}}}", instant=True),
                thresholds=thresholds(RED, (7 * 86400, YELLOW), (30 * 86400, GREEN)),
                w=12,
                h=4,
            ),
            timeline(
                "Locked and climate",
                prom(f"carmetrics_locked{{{VIN}}}", "{{vin}} locked"),
                prom(f"carmetrics_climate_active{{{VIN}}}", "{{vin}} climate"),
                mappings=mapping((0, "no", GREY), (1, "yes", BLUE)),
            ),
            timeline("Power state", prom(POWER_CODE), mappings=POWER_MAP),
        ],
        tags=("status",),
    )
