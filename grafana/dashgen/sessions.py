"""Trips & charges, from the SQLite history."""

from __future__ import annotations

from dashgen.kit import (
    LINE,
    SQL_RANGE,
    SQL_VIN,
    Dashboard,
    Panel,
    sql,
    unit_override,
)


def sessions() -> Dashboard:
    where = f"WHERE {SQL_VIN} AND {SQL_RANGE}"
    return Dashboard(
        "carmetrics-sessions",
        "carmetrics / Trips & charges",
        "From the SQLite history (frser-sqlite-datasource): distance per day, state of charge, "
        "monthly statistics, and the trips and charging sessions of `carmetrics db derive`.",
        [
            Panel(
                "barchart",
                "Distance per day",
                "lengthkm",
                [
                    sql(
                        f"""
                        SELECT date(ts, 'unixepoch') AS day,
                               ROUND((MAX(odometer) - MIN(odometer)) / 1000.0, 1) AS distance_km
                        FROM samples {where} AND odometer IS NOT NULL
                        GROUP BY day ORDER BY day
                        """
                    )
                ],
                description=(
                    "Odometer difference between the first and last report of each UTC day, all "
                    "selected vehicles together."
                ),
                decimals=1,
                w=12,
                h=8,
                options={"xField": "day"},
            ),
            Panel(
                "timeseries",
                "State of charge (history)",
                "percentunit",
                [
                    sql(
                        f"""
                        SELECT ts AS time, vin, battery_soc
                        FROM samples {where} AND battery_soc IS NOT NULL
                        ORDER BY ts
                        """,
                        series=True,
                    )
                ],
                description="Every recorded car report; independent of Prometheus retention.",
                min=0,
                max=1,
                custom=LINE,
                w=12,
                h=8,
            ),
            Panel(
                "table",
                "Monthly statistics",
                "none",
                [
                    sql(
                        f"""
                        SELECT strftime('%Y-%m', ts, 'unixepoch') AS month, vin,
                               ROUND((MAX(odometer) - MIN(odometer)) / 1000.0, 1) AS distance_km,
                               ROUND(MIN(battery_soc) * 100) AS min_soc_pct,
                               ROUND(AVG(outside_temperature), 1) AS avg_outside_c,
                               COUNT(*) AS reports
                        FROM samples {where}
                        GROUP BY month, vin ORDER BY month DESC, vin
                        """
                    )
                ],
                description="Per calendar month (UTC) and vehicle, from the raw history.",
                w=24,
                h=8,
                overrides=[
                    unit_override("distance_km", "lengthkm"),
                    unit_override("min_soc_pct", "percent"),
                    unit_override("avg_outside_c", "celsius"),
                ],
            ),
        ],
        sqlite=True,
        time_from="now-30d",
        tags=("history",),
    )
