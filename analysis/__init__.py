"""Trips, charging sessions, idle drain, efficiency and battery health from a carmetrics history.

Reads the SQLite file the exporter writes (never the exporter's objects)::

    import analysis
    df = analysis.load("carmetrics.db", vin="HX1...", since="2026-01-01")
    trips = analysis.trips(df)            # one row per trip
    charges = analysis.charges(df)        # one row per charging session (unseen ones flagged)
    analysis.drain(df)                    # parked periods >= 6 h: SoC and kWh lost, W, %/day
    analysis.efficiency(trips)            # kWh/100 km by temperature, speed band and month
    analysis.battery(charges)             # usable capacity per month from charging sessions
    analysis.summary(trips, charges, period="week")

Battery size, timezone, places and tariffs come from ``analysis.Settings`` (``[analysis]``,
``[[places]]`` and ``[tariffs]`` in config.toml).
"""

from __future__ import annotations

from .battery import battery, capacity_estimates
from .bundle import Analysis
from .charges import charges
from .clean import clean
from .derive import derive
from .drain import drain
from .efficiency import efficiency
from .load import load, vehicles, vins
from .settings import Settings, SettingsError
from .summary import summary
from .trips import trips

__all__ = [
    "Analysis",
    "Settings",
    "SettingsError",
    "battery",
    "capacity_estimates",
    "charges",
    "clean",
    "derive",
    "drain",
    "efficiency",
    "load",
    "summary",
    "trips",
    "vehicles",
    "vins",
]
