"""Trips & charges, from the SQLite history.

The session panels read the ``trips`` and ``charging_sessions`` tables that ``carmetrics db derive``
materialises (columns: analysis/trips.py TRIP_COLUMNS, analysis/charges.py CHARGE_COLUMNS), so a
panel reads a few rows per day instead of scanning raw samples. Days and months are the car's local
calendar (``start_local`` is ISO 8601 in the car's timezone).
"""

from __future__ import annotations

from dashgen.kit import (
    BLUE,
    GREEN,
    LINE,
    Dashboard,
    Panel,
    sql,
    sql_where,
    stat,
    unit_override,
)

TRIPS = sql_where("start_ts")
SAMPLES = sql_where("ts")


def sessions() -> Dashboard:
    return Dashboard(
        "carmetrics-sessions",
        "carmetrics / Trips & charges",
        "From the SQLite history (frser-sqlite-datasource): trips and charging sessions derived by "
        "`carmetrics db derive`, daily and monthly statistics, and the recorded state of charge.",
        [
            stat(
                "Distance",
                "lengthkm",
                sql(f"SELECT ROUND(SUM(distance_km), 1) AS distance FROM trips {TRIPS}"),
                decimals=0,
                color={"mode": "fixed", "fixedColor": BLUE},
                h=4,
            ),
            stat(
                "Trips",
                "short",
                sql(f"SELECT NULLIF(COUNT(*), 0) AS trips FROM trips {TRIPS}"),
                decimals=0,
                color={"mode": "fixed", "fixedColor": BLUE},
                h=4,
            ),
            stat(
                "Energy charged",
                "kwatth",
                sql(
                    "SELECT ROUND(SUM(energy_added_kwh), 1) AS energy "
                    f"FROM charging_sessions {TRIPS}"
                ),
                decimals=1,
                color={"mode": "fixed", "fixedColor": GREEN},
                h=4,
            ),
            stat(
                "Average consumption",
                "suffix: kWh/100 km",
                sql(
                    "SELECT ROUND(100.0 * SUM(energy_kwh) / SUM(distance_km), 1) AS consumption "
                    f"FROM trips {TRIPS} AND distance_km > 0"
                ),
                description="Energy used (state of charge x usable capacity) per distance.",
                decimals=1,
                color={"mode": "fixed", "fixedColor": GREEN},
                h=4,
            ),
            Panel(
                "barchart",
                "Distance per day",
                "lengthkm",
                [
                    sql(
                        f"""
                        SELECT substr(start_local, 1, 10) AS day,
                               ROUND(SUM(distance_km), 1) AS distance
                        FROM trips {TRIPS}
                        GROUP BY day ORDER BY day
                        """
                    )
                ],
                description="Trips by the day they started (the car's local date).",
                decimals=1,
                w=12,
                h=8,
                options={"xField": "day"},
            ),
            Panel(
                "barchart",
                "Energy charged per day, AC and DC",
                "kwatth",
                [
                    sql(
                        f"""
                        SELECT substr(start_local, 1, 10) AS day,
                               ROUND(SUM(CASE WHEN kind = 'ac' THEN energy_added_kwh END), 1) AS AC,
                               ROUND(SUM(CASE WHEN kind = 'dc' THEN energy_added_kwh END), 1) AS DC,
                               ROUND(SUM(CASE WHEN kind NOT IN ('ac', 'dc')
                                              THEN energy_added_kwh END), 1) AS unseen
                        FROM charging_sessions {TRIPS}
                        GROUP BY day ORDER BY day
                        """
                    )
                ],
                description=(
                    "unseen: charging that happened between two polls (the state of charge "
                    "jumped while no sample showed the car charging)."
                ),
                decimals=1,
                w=12,
                h=8,
                options={"xField": "day"},
            ),
            Panel(
                "table",
                "Trips",
                "none",
                [
                    sql(
                        f"""
                        SELECT start_ts AS time, vin,
                               ROUND(distance_km, 1) AS "Distance",
                               ROUND(duration_min * 60) AS "Duration",
                               CAST(ROUND(start_soc_pct) AS INTEGER) || ' → '
                                 || CAST(ROUND(end_soc_pct) AS INTEGER) || ' %' AS "SoC",
                               ROUND(energy_kwh, 2) AS "Energy",
                               ROUND(consumption_kwh_100km, 1) AS "kWh/100 km",
                               ROUND(avg_speed_kmh) AS "Avg speed",
                               ROUND(outside_temp_c, 1) AS "Outside"
                        FROM trips {TRIPS}
                        ORDER BY start_ts DESC LIMIT 500
                        """
                    )
                ],
                description="The latest 500 trips in the time range.",
                w=24,
                h=9,
                overrides=[
                    unit_override("Distance", "lengthkm"),
                    unit_override("Duration", "dtdurations"),
                    unit_override("Energy", "kwatth"),
                    unit_override("Avg speed", "velocitykmh"),
                    unit_override("Outside", "celsius"),
                ],
            ),
            Panel(
                "table",
                "Charging sessions",
                "none",
                [
                    sql(
                        f"""
                        SELECT start_ts AS time, vin, upper(kind) AS "Type",
                               CAST(ROUND(start_soc_pct) AS INTEGER) || ' → '
                                 || CAST(ROUND(end_soc_pct) AS INTEGER) || ' %' AS "SoC",
                               ROUND(energy_added_kwh, 2) AS "Energy added",
                               ROUND(avg_power_kw, 1) AS "Avg power",
                               ROUND(peak_power_kw, 1) AS "Peak power",
                               ROUND(duration_min * 60) AS "Duration",
                               CASE WHEN unseen = 1 THEN 'unseen' ELSE '' END AS "Note"
                        FROM charging_sessions {TRIPS}
                        ORDER BY start_ts DESC LIMIT 500
                        """
                    )
                ],
                description="The latest 500 charging sessions in the time range.",
                w=24,
                h=9,
                overrides=[
                    unit_override("Energy added", "kwatth"),
                    unit_override("Avg power", "kwatt"),
                    unit_override("Peak power", "kwatt"),
                    unit_override("Duration", "dtdurations"),
                ],
            ),
            Panel(
                "table",
                "Monthly statistics",
                "none",
                [
                    sql(
                        f"""
                        SELECT month, vin,
                               SUM(trips) AS "Trips",
                               ROUND(SUM(km), 1) AS "Distance",
                               ROUND(SUM(used), 1) AS "Energy used",
                               ROUND(100.0 * SUM(used) / NULLIF(SUM(km), 0), 1) AS "kWh/100 km",
                               SUM(charges) AS "Charges",
                               ROUND(SUM(charged), 1) AS "Energy charged",
                               ROUND(100.0 * SUM(dc) / NULLIF(SUM(charged), 0)) AS "DC share"
                        FROM (
                          SELECT substr(start_local, 1, 7) AS month, vin, COUNT(*) AS trips,
                                 SUM(distance_km) AS km, SUM(energy_kwh) AS used,
                                 0 AS charges, 0 AS charged, 0 AS dc
                          FROM trips {TRIPS} GROUP BY month, vin
                          UNION ALL
                          SELECT substr(start_local, 1, 7) AS month, vin, 0, 0, 0, COUNT(*),
                                 SUM(energy_added_kwh),
                                 SUM(CASE WHEN kind = 'dc' THEN energy_added_kwh ELSE 0 END)
                          FROM charging_sessions {TRIPS} GROUP BY month, vin
                        )
                        GROUP BY month, vin ORDER BY month DESC, vin
                        """
                    )
                ],
                description="Per calendar month (the car's local time) and vehicle.",
                w=24,
                h=8,
                overrides=[
                    unit_override("Distance", "lengthkm"),
                    unit_override("Energy used", "kwatth"),
                    unit_override("Energy charged", "kwatth"),
                    unit_override("DC share", "percent"),
                ],
            ),
            stat(
                "Charging cost",
                "none",
                sql(f"SELECT ROUND(SUM(cost), 2) AS cost FROM charging_sessions {TRIPS}"),
                description=(
                    "What the charging sessions in the range cost, from [tariffs] and [[places]] "
                    "in config.toml (grid energy = energy added / charging efficiency, priced by "
                    "the time-of-use window each part fell in). Empty without tariffs."
                ),
                decimals=2,
                color={"mode": "fixed", "fixedColor": GREEN},
                w=6,
                h=8,
            ),
            Panel(
                "barchart",
                "Charging cost by place",
                "none",
                [
                    sql(
                        f"""
                        SELECT COALESCE(place, 'other') AS place,
                               ROUND(SUM(CASE WHEN kind = 'ac' THEN cost END), 2) AS AC,
                               ROUND(SUM(CASE WHEN kind = 'dc' THEN cost END), 2) AS DC,
                               ROUND(SUM(CASE WHEN kind NOT IN ('ac', 'dc') THEN cost END), 2)
                                 AS unseen
                        FROM charging_sessions {TRIPS} AND cost IS NOT NULL
                        GROUP BY 1 ORDER BY SUM(cost) DESC
                        """
                    )
                ],
                description="Cost per configured place ([[places]]), AC and DC; 'other' is "
                "everywhere else (priced by the default or DC tariff).",
                decimals=2,
                w=9,
                h=8,
                options={"xField": "place", "stacking": "normal"},
            ),
            Panel(
                "table",
                "Cost per month",
                "none",
                [
                    sql(
                        f"""
                        SELECT substr(start_local, 1, 7) AS month, vin,
                               COALESCE(place, 'other') AS "Place", upper(kind) AS "Type",
                               COUNT(*) AS "Sessions",
                               ROUND(SUM(energy_grid_kwh), 1) AS "Grid energy",
                               ROUND(SUM(cost), 2) AS "Cost",
                               MAX(currency) AS "Currency"
                        FROM charging_sessions {TRIPS} AND cost IS NOT NULL
                        GROUP BY month, vin, 3, 4 ORDER BY month DESC, vin, "Cost" DESC
                        """
                    )
                ],
                description="Per calendar month, vehicle, place and AC/DC.",
                w=9,
                h=8,
                overrides=[unit_override("Grid energy", "kwatth")],
            ),
            Panel(
                "table",
                "Trips by place",
                "none",
                [
                    sql(
                        f"""
                        SELECT start_ts AS time, vin,
                               COALESCE(start_place, '') AS "From",
                               COALESCE(end_place, '') AS "To",
                               ROUND(distance_km, 1) AS "Distance",
                               ROUND(duration_min * 60) AS "Duration",
                               ROUND(energy_kwh, 2) AS "Energy"
                        FROM trips {TRIPS}
                        ORDER BY start_ts DESC LIMIT 500
                        """
                    )
                ],
                description="Trips with the configured places they started and ended at: filter a "
                "column (the funnel in its header) to see e.g. every trip from Work.",
                w=24,
                h=9,
                overrides=[
                    unit_override("Distance", "lengthkm"),
                    unit_override("Duration", "dtdurations"),
                    unit_override("Energy", "kwatth"),
                ],
                custom={"filterable": True},
            ),
            Panel(
                "timeseries",
                "State of charge (history)",
                "percentunit",
                [
                    sql(
                        f"""
                        SELECT ts AS time, vin, battery_soc
                        FROM samples {SAMPLES} AND battery_soc IS NOT NULL
                        ORDER BY ts
                        """,
                        series=True,
                    )
                ],
                description="Every recorded car report; independent of Prometheus retention.",
                min=0,
                max=1,
                custom=LINE,
                w=24,
                h=8,
            ),
        ],
        sqlite=True,
        time_from="now-30d",
        tags=("history",),
    )
