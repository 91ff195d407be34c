"""The capacity plot shows the configured capacity inside its range and starts at the data; the
trips table names every column (issue 15)."""

from __future__ import annotations

from typing import Any

import matplotlib.dates as mdates
import pandas as pd
import pytest

from analysis import Analysis, Settings, plots
from analysis.output import render_table
from analysis.testing import Car


def test_capacity_plot_shows_the_configured_line_and_starts_at_the_first_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    car = Car(
        now=pd.Timestamp("2026-03-20T18:00", tz="UTC").timestamp(), soc=0.3, capacity_kwh=58.0
    )  # type: ignore[arg-type]
    car.sample()
    for _ in range(4):
        car.plug().charge(0.8, 11.0).unplug()
        car.park(3600).drive(150, 120, kwh_100km=16).park(3600)
    # a configuration far from what the battery really holds
    a = Analysis(car.frame(), Settings(timezone="Europe/Berlin", capacity_kwh={"#1": 80.0}))
    seen: dict[str, Any] = {}

    def keep(fig: Any) -> bytes:
        ax = fig.axes[0]
        seen["ylim"], seen["xlim"] = ax.get_ylim(), ax.get_xlim()
        return b""

    monkeypatch.setattr(plots, "_png", keep)
    assert plots.capacity(a) is not None
    lo, hi = seen["ylim"]
    assert lo < 80.0 < hi and lo < 58.0 < hi
    first = pd.Timestamp(mdates.num2date(seen["xlim"][0]))
    assert first >= pd.Timestamp("2026-03-20T18:00", tz="UTC") - pd.Timedelta(hours=2)


def test_the_trips_table_names_its_last_column() -> None:
    car = Car(now=pd.Timestamp("2026-03-20T08:00", tz="UTC").timestamp())  # type: ignore[arg-type]
    car.sample()
    car.drive(10, 15).park(3600).drive(10, 15).park(600)
    table = render_table(Analysis(car.frame(), Settings(timezone="Europe/Berlin")).trips, "trips")
    header = table.splitlines()[0].split()
    assert header[-1] == "notes"
