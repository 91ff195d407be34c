"""Battery & charging."""

from __future__ import annotations

from dashgen.kit import (
    BLUE,
    CHARGING_CODE,
    CHARGING_MAP,
    GREEN,
    RED,
    VIN,
    YELLOW,
    YES_NO,
    Dashboard,
    Panel,
    graph,
    prom,
    stat,
    thresholds,
    timeline,
)


def charging() -> Dashboard:
    ac_dc = (
        f'avg_over_time(carmetrics_charging_state{{{VIN}, state=~"charging|dc_charging"}}'
        "[$__range])"
    )
    ac_dc = (
        "label_replace(label_replace(" + ac_dc + ', "type", "AC", "state", "charging"),'
        ' "type", "DC", "state", "dc_charging")'
    )
    return Dashboard(
        "carmetrics-charging",
        "carmetrics / Battery & charging",
        "State of charge and range over time, charging power, voltage and current (AC/DC), time to "
        "full and the charge limit.",
        [
            Panel(
                "gauge",
                "State of charge",
                "percentunit",
                [prom(f"carmetrics_battery_soc_ratio{{{VIN}}}", instant=True)],
                min=0,
                max=1,
                thresholds=thresholds(RED, (0.15, YELLOW), (0.3, GREEN)),
                h=5,
            ),
            stat(
                "Charge limit",
                "percentunit",
                prom(f"carmetrics_charge_limit_ratio{{{VIN}}}", instant=True),
                color={"mode": "fixed", "fixedColor": BLUE},
                h=5,
            ),
            stat(
                "Time to full",
                "dtdurations",
                prom(f"carmetrics_charging_time_to_full_seconds{{{VIN}}}", instant=True),
                description="The car's estimate; 0 or absent when not charging.",
                color={"mode": "fixed", "fixedColor": BLUE},
                h=5,
            ),
            stat(
                "Charger connected",
                "none",
                prom(f"carmetrics_charger_connected{{{VIN}}}", instant=True),
                mappings=YES_NO,
                h=5,
            ),
            graph(
                "State of charge and charge limit",
                "percentunit",
                prom(f"carmetrics_battery_soc_ratio{{{VIN}}}", "{{vin}} state of charge"),
                prom(f"carmetrics_charge_limit_ratio{{{VIN}}}", "{{vin}} limit"),
                min=0,
                max=1,
                w=24,
                h=9,
                overrides=[
                    {
                        "matcher": {"id": "byRegexp", "options": ".* limit$"},
                        "properties": [
                            {
                                "id": "custom.lineStyle",
                                "value": {"dash": [10, 10], "fill": "dash"},
                            },
                            {"id": "custom.fillOpacity", "value": 0},
                        ],
                    }
                ],
            ),
            graph(
                "Range",
                "lengthkm",
                prom(f"carmetrics_range_meters{{{VIN}}} / 1000", "{{vin}} range"),
                prom(f"carmetrics_range_at_full_meters{{{VIN}}} / 1000", "{{vin}} at 100 %"),
                description="The car's range estimate now, and its estimate for a full battery.",
                decimals=0,
            ),
            graph(
                "Charging power",
                "watt",
                prom(f"carmetrics_charging_power_watts{{{VIN}}}"),
                min=0,
            ),
            graph(
                "Charging voltage",
                "volt",
                prom(f"carmetrics_charging_voltage_volts{{{VIN}}}", "{{vin}} {{current}}"),
            ),
            graph(
                "Charging current",
                "amp",
                prom(f"carmetrics_charging_current_amperes{{{VIN}}}", "{{vin}} {{current}}"),
            ),
            timeline(
                "Charging state",
                prom(CHARGING_CODE),
                description=(
                    "plugged = cable in but not charging (paused, waiting for a schedule); "
                    "complete = the charge limit was reached."
                ),
                mappings=CHARGING_MAP,
                w=12,
            ),
            Panel(
                "bargauge",
                "Time spent charging, AC vs DC",
                "percentunit",
                [prom(ac_dc, "{{vin}} {{type}}", instant=True)],
                description="Share of the selected time range the car spent charging, by type.",
                min=0,
                max=1,
                w=12,
                h=6,
                color={"mode": "fixed", "fixedColor": BLUE},
            ),
        ],
        tags=("charging",),
    )
