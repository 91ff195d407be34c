"""Overview: every vehicle at a glance."""

from __future__ import annotations

from dashgen.kit import (
    BLUE,
    CHARGING_CODE,
    CHARGING_MAP,
    GREEN,
    LOCKED,
    POWER_CODE,
    POWER_MAP,
    PROM_META,
    RED,
    VIN,
    YELLOW,
    Dashboard,
    Panel,
    graph,
    hide_columns,
    prom,
    stat,
    thresholds,
)


def overview() -> Dashboard:
    soc = f"carmetrics_battery_soc_ratio{{{VIN}}}"
    return Dashboard(
        "carmetrics-overview",
        "carmetrics / Overview",
        "Every vehicle at a glance: charge, range, odometer, charging, climate, locks and "
        "openings, position and how old the data is.",
        [
            Panel(
                "table",
                "Vehicles",
                "none",
                [prom(f"carmetrics_vehicle_info{{{VIN}}}", table=True)],
                description="carmetrics_vehicle_info: one row per vehicle the accounts expose.",
                w=24,
                h=5,
                transformations=[hide_columns(*PROM_META, "Value")],
            ),
            Panel(
                "gauge",
                "State of charge",
                "percentunit",
                [prom(soc, instant=True)],
                min=0,
                max=1,
                thresholds=thresholds(RED, (0.15, YELLOW), (0.3, GREEN)),
                w=4,
                h=5,
            ),
            stat(
                "Range",
                "lengthkm",
                prom(f"carmetrics_range_meters{{{VIN}}} / 1000", instant=True),
                decimals=0,
                w=4,
                h=5,
            ),
            stat(
                "Odometer",
                "lengthkm",
                prom(f"carmetrics_odometer_meters{{{VIN}}} / 1000", instant=True),
                decimals=0,
                w=4,
                h=5,
                color={"mode": "fixed", "fixedColor": BLUE},
            ),
            stat(
                "Charging",
                "none",
                prom(CHARGING_CODE, instant=True),
                mappings=CHARGING_MAP,
                w=4,
                h=5,
            ),
            stat(
                "Charging power",
                "watt",
                prom(f"carmetrics_charging_power_watts{{{VIN}}}", instant=True),
                color={"mode": "fixed", "fixedColor": BLUE},
                w=4,
                h=5,
            ),
            stat(
                "Last car report",
                "dtdurations",
                prom(f"carmetrics_data_age_seconds{{{VIN}}}", instant=True),
                description="Age of the car's own last report (the exporter never wakes the car).",
                thresholds=thresholds(GREEN, (6 * 3600, YELLOW), (12 * 3600, RED)),
                w=4,
                h=5,
            ),
            stat(
                "Central locking",
                "none",
                prom(f"carmetrics_locked{{{VIN}}}", instant=True),
                mappings=LOCKED,
                w=4,
                h=4,
            ),
            stat(
                "Open doors, windows, sunroof",
                "short",
                prom(
                    f"sum by (vin) (carmetrics_door_open{{{VIN}}}"
                    f" or carmetrics_window_open{{{VIN}}}"
                    f" or carmetrics_sunroof_open{{{VIN}}})",
                    instant=True,
                ),
                description="How many doors (incl. trunk and hood), windows and sunroofs are open.",
                thresholds=thresholds(GREEN, (1, RED)),
                decimals=0,
                w=4,
                h=4,
            ),
            stat(
                "Power state",
                "none",
                prom(POWER_CODE, instant=True),
                mappings=POWER_MAP,
                w=4,
                h=4,
            ),
            stat(
                "Speed",
                "velocitykmh",
                prom(f"carmetrics_speed_meters_per_second{{{VIN}}} * 3.6", instant=True),
                decimals=0,
                w=4,
                h=4,
            ),
            stat(
                "Cabin",
                "celsius",
                prom(f"carmetrics_cabin_temperature_celsius{{{VIN}}}", instant=True),
                decimals=1,
                color={"mode": "fixed", "fixedColor": "orange"},
                w=4,
                h=4,
            ),
            stat(
                "Outside",
                "celsius",
                prom(f"carmetrics_outside_temperature_celsius{{{VIN}}}", instant=True),
                decimals=1,
                color={"mode": "fixed", "fixedColor": "purple"},
                w=4,
                h=4,
            ),
            Panel(
                "geomap",
                "Position",
                "none",
                [
                    prom(f"carmetrics_location_latitude_degrees{{{VIN}}}", table=True),
                    prom(f"carmetrics_location_longitude_degrees{{{VIN}}}", table=True),
                ],
                description=(
                    "Needs [metrics] export_location = true in config.toml: position is personal "
                    "data and is not exported by default."
                ),
                w=12,
                h=10,
                transformations=[
                    # one row per car: latitude (A) and longitude (B) joined on the vin label
                    {"id": "joinByField", "options": {"byField": "vin", "mode": "outer"}},
                    hide_columns(rename={"Value #A": "latitude", "Value #B": "longitude"}),
                ],
                options={
                    "basemap": {"config": {}, "name": "Basemap", "type": "default"},
                    "controls": {"mouseWheelZoom": True, "showAttribution": True, "showZoom": True},
                    "layers": [
                        {
                            "config": {
                                "showLegend": False,
                                "style": {
                                    "color": {"fixed": "blue"},
                                    "size": {"fixed": 8},
                                    "symbol": {
                                        "fixed": "img/icons/marker/circle.svg",
                                        "mode": "fixed",
                                    },
                                    "text": {"field": "vin", "fixed": "", "mode": "field"},
                                    "textConfig": {"fontSize": 11, "offsetY": -14},
                                },
                            },
                            "location": {
                                "latitude": "latitude",
                                "longitude": "longitude",
                                "mode": "coords",
                            },
                            "name": "Vehicles",
                            "tooltip": True,
                            "type": "markers",
                        }
                    ],
                    "tooltip": {"mode": "details"},
                    "view": {"allLayers": True, "id": "fit", "lat": 0, "lon": 0, "zoom": 12},
                },
            ),
            graph(
                "Temperatures",
                "celsius",
                prom(f"carmetrics_cabin_temperature_celsius{{{VIN}}}", "{{vin}} cabin"),
                prom(f"carmetrics_outside_temperature_celsius{{{VIN}}}", "{{vin}} outside"),
                h=10,
            ),
            graph(
                "State of charge",
                "percentunit",
                prom(soc),
                min=0,
                max=1,
            ),
            graph(
                "Charging power",
                "watt",
                prom(f"carmetrics_charging_power_watts{{{VIN}}}"),
                min=0,
            ),
        ],
        tags=("overview",),
    )
