"""Idle drain, efficiency bands, battery capacity and period summaries on scripted histories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import Analysis, Settings, battery, capacity_estimates, charges, efficiency, summary
from analysis.testing import Car

S = Settings(timezone="Europe/Berlin")


def car_at(text: str, **kw: object) -> Car:
    car = Car(now=pd.Timestamp(text, tz="UTC").timestamp(), **kw)  # type: ignore[arg-type]
    car.sample()
    return car


def test_idle_drain_of_a_parked_night() -> None:
    car = car_at("2026-01-20T06:00", drain_w=180.0)
    car.drive(10, 15).park(10 * 3600).drive(10, 15).park(2 * 3600).drive(10, 15).park(600)
    d = Analysis(car.frame(), S).drain
    (row,) = d.itertuples()  # the 2 h stop is shorter than idle_hours
    assert row.duration_h == pytest.approx(10, abs=0.2)
    assert row.avg_power_w == pytest.approx(180, rel=0.03)
    lost_per_day = 180 * 24 / 1000 / car.capacity_kwh * 100
    assert row.pct_per_day == pytest.approx(lost_per_day, rel=0.03)
    assert row.energy_kwh == pytest.approx(0.18 * row.duration_h, rel=0.03)


def test_idle_hours_setting_and_plugged_periods() -> None:
    car = car_at("2026-01-20T06:00", drain_w=100.0)
    car.drive(10, 15).park(4 * 3600).drive(10, 15)
    car.plug().park(12 * 3600).unplug().drive(5, 10).park(600)  # plugged all night: not drain
    assert Analysis(car.frame(), S).drain.empty
    short = Analysis(car.frame(), Settings(timezone="Europe/Berlin", idle_hours=3)).drain
    assert len(short) == 1 and short["duration_h"].iloc[0] == pytest.approx(4, abs=0.2)


def test_efficiency_by_temperature_speed_and_month() -> None:
    car = car_at("2026-01-20T06:00")
    script = [(-4.0, 22.0, 30), (3.0, 18.0, 60), (3.5, 17.0, 90), (16.0, 14.0, 45)]
    for temp, cons, kmh in script:
        car.temp = temp
        car.park(3600).drive(kmh / 2, 30, kwh_100km=cons)
    car.park(600)
    t = Analysis(car.frame(), S).trips
    e = efficiency(t, S)
    by_temp = e[e["dimension"] == "temperature"].set_index("band")
    assert list(by_temp.index) == ["-5..+0 C", "+0..+5 C", "+15..+20 C"]
    assert by_temp.loc["-5..+0 C", "consumption_kwh_100km"] == pytest.approx(22.0, rel=0.02)
    # distance-weighted: (30 km x 18 + 45 km x 17) / 75 km
    assert by_temp.loc["+0..+5 C", "consumption_kwh_100km"] == pytest.approx(
        (30 * 18 + 45 * 17) / 75, rel=0.02
    )
    assert by_temp.loc["+0..+5 C", "trips"] == 2
    by_speed = e[e["dimension"] == "speed"].set_index("band")
    assert by_speed.loc["90-110 km/h", "consumption_kwh_100km"] == pytest.approx(17.0, rel=0.02)
    month = e[e["dimension"] == "month"]
    assert list(month["band"]) == ["2026-01"] and month["trips"].iloc[0] == 4


def test_battery_capacity_comes_from_charging_power_not_from_the_configuration() -> None:
    # The battery really holds 58 kWh (a worn #1); the configuration still says 62.
    car = car_at("2026-03-01T18:00", soc=0.3, capacity_kwh=58.0)
    for _ in range(4):
        car.plug().charge(0.8, 11.0).unplug()
        car.park(3600).drive(150, 120, kwh_100km=16).park(3600)
    cfg = Settings(timezone="Europe/Berlin", capacity_kwh={"#1": 62.0})
    a = Analysis(car.frame(), cfg)
    est = capacity_estimates(a.charges)
    assert len(est) == 4
    assert est["capacity_kwh"].to_list() == pytest.approx([58.0] * 4, rel=0.02)
    b = battery(a.charges, cfg, nominal_kwh={car.vin: 62.0})
    (row,) = b.itertuples()
    assert row.sessions == 4
    assert row.capacity_kwh == pytest.approx(58.0, rel=0.02)
    assert row.capacity_p25_kwh <= row.capacity_kwh <= row.capacity_p75_kwh
    # AC sessions only: no DC session tells how much of the AC power was charger loss, so the
    # health figure is withheld rather than shown precise and possibly high by those losses
    assert np.isnan(row.health_pct) and row.note.startswith("not enough data: AC only")
    car.park(3600)
    for _ in range(2):
        car.plug().charge(0.8, 120.0, dc=True).unplug()
        car.park(3600).drive(150, 120, kwh_100km=16).park(3600)
    (row,) = battery(
        Analysis(car.frame(), cfg).charges, cfg, nominal_kwh={car.vin: 62.0}
    ).itertuples()
    assert row.health_pct == pytest.approx(58 / 62 * 100, rel=0.02)
    assert row.health_low_pct <= row.health_pct <= row.health_high_pct
    assert row.note == ""


def test_a_month_with_too_few_sessions_says_not_enough_data() -> None:
    car = car_at("2026-03-01T18:00", soc=0.3)
    car.plug().charge(0.8, 120.0, dc=True).unplug()
    car.park(3600).drive(150, 120, kwh_100km=16).park(3600)
    car.plug().charge(0.8, 120.0, dc=True).unplug()
    (row,) = battery(Analysis(car.frame(), S).charges, S, nominal_kwh={car.vin: 62.0}).itertuples()
    assert row.sessions == 2 and np.isnan(row.health_pct)
    assert row.note == "not enough data: 2 sessions"


def test_unseen_and_small_sessions_give_no_capacity_estimate() -> None:
    car = car_at("2026-03-01T18:00", soc=0.7)
    car.plug().charge(0.75, 11.0).unplug()  # 5 points: too small to estimate from
    car.park(6 * 3600, every=None)
    car.soc = 0.95
    car.sample()  # unseen: no power to measure energy with
    assert capacity_estimates(charges(car.frame(), S)).empty


def test_summary_per_day_week_and_month_add_up() -> None:
    car = car_at("2026-01-25T05:00")  # a Sunday; the next day starts ISO week 5
    for _day in range(9):
        car.park(2 * 3600).drive(20, 25).park(8 * 3600).drive(20, 25)
        if car.soc < 0.5:
            car.plug().charge(0.8, 11.0).unplug()
        car.park(86400 - (car.now - pd.Timestamp("2026-01-25T05:00", tz="UTC").timestamp()) % 86400)
    car.park(600)
    car.park(3600, every=None)
    car.soc = 0.5
    car.plug().charge(0.85, 150.0, dc=True).unplug()
    a = Analysis(car.frame(), S)
    for period in ("day", "week", "month"):
        s = summary(a.trips, a.charges, S, period=period)
        assert s["drives"].sum() == len(a.trips) == 18
        assert s["distance_km"].sum() == pytest.approx(360, abs=0.1)
        assert s["energy_charged_kwh"].sum() == pytest.approx(a.charges["energy_added_kwh"].sum())
    weeks = summary(a.trips, a.charges, S, period="week")
    assert list(weeks["period"]) == ["2026-W04", "2026-W05", "2026-W06"]
    months = summary(a.trips, a.charges, S, period="month")
    assert list(months["period"]) == ["2026-01", "2026-02"]
    feb = months.set_index("period").loc["2026-02"]
    dc = a.charges.loc[a.charges["kind"] == "dc", "energy_added_kwh"].sum()
    assert dc > 0
    assert feb["dc_kwh"] == pytest.approx(dc)
    assert feb["dc_share_pct"] == pytest.approx(100 * dc / (feb["ac_kwh"] + feb["dc_kwh"]))


def test_ac_estimates_measured_at_the_wall_are_put_on_the_dc_footing() -> None:
    # AC power is reported at the wall (8 % charger loss), DC power at the battery.
    car = car_at("2026-03-01T18:00", soc=0.3)
    for i in range(6):
        car.plug().charge(0.8, 11.0 if i % 2 else 120.0, dc=bool(i % 2 == 0)).unplug()
        car.park(3600).drive(150, 120, kwh_100km=16).park(3600)
    df = car.frame()
    ac = df["charging_state"] == "charging"
    df.loc[ac, "charging_power"] = df.loc[ac, "charging_power"] / 0.92
    a = Analysis(df, S)
    raw = capacity_estimates(a.charges)
    assert raw.loc[raw["kind"] == "ac", "capacity_kwh"].median() == pytest.approx(
        62 / 0.92, rel=0.01
    )
    (row,) = battery(a.charges, S, nominal_kwh={car.vin: 62.0}).itertuples()
    assert row.ac_scale == pytest.approx(1 / 0.92, rel=0.01)
    assert row.capacity_kwh == pytest.approx(62.0, rel=0.01)
