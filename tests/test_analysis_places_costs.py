"""Places and money: named places on trips and charges, places found by clustering, each car's local
time from where it is, and what each charge cost under fixed and time-of-use tariffs."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

import analysis
from analysis.costs import monthly_costs
from analysis.places import Place, PlacesError, discover, match, places_from_config, stops
from analysis.settings import Settings, SettingsError
from analysis.tariffs import (
    TariffError,
    price_session,
    split,
    tariffs_from_config,
)
from analysis.testing import Car
from analysis.zones import zones

BERLIN = ZoneInfo("Europe/Berlin")
HOME = (52.5200, 13.4000)
WORK = (52.55575, 13.46152)  # where a 5.76 km drive at 46.3 deg from HOME ends


def local_ts(text: str, zone: ZoneInfo = BERLIN) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


TARIFFS = {
    "currency": "EUR",
    "default": "public",
    "dc": "fast",
    "home": {
        "price_per_kwh": 0.30,
        "windows": [{"days": "all", "start": "22:00", "end": "06:00", "price_per_kwh": 0.20}],
    },
    "public": {"price_per_kwh": 0.45},
    "fast": {"price_per_kwh": 0.59, "session_fee": 0.50},
}
PLACES = [
    {"name": "Home", "latitude": HOME[0], "longitude": HOME[1], "tariff": "home"},
    {"name": "Work", "latitude": WORK[0], "longitude": WORK[1], "radius_m": 200},
]


def settings(**kw: object) -> Settings:
    s = Settings.from_config({"timezone": "Europe/Berlin"}, PLACES, TARIFFS)
    from dataclasses import replace

    return replace(s, **kw) if kw else s


# --- config ----------------------------------------------------------------------------------------


def test_places_and_tariffs_are_read_from_config() -> None:
    s = settings()
    assert [p.name for p in s.places] == ["Home", "Work"]
    assert s.places[0].radius_m == 150 and s.places[1].radius_m == 200
    assert s.places[0].tariff == "home"
    assert s.tariffs.currency == "EUR" and set(s.tariffs.tariffs) == {"home", "public", "fast"}
    assert s.tariffs.ac_efficiency == 0.90 and s.tariffs.dc_efficiency == 0.95


@pytest.mark.parametrize(
    ("places", "tariffs", "needle"),
    [
        ([{"name": "x", "latitude": 91, "longitude": 0}], None, "places[0].latitude = 91"),
        ([{"name": "x", "latitude": 1, "longitude": float("nan")}], None, "places[0].longitude"),
        ([{"name": "x", "latitude": 1, "longitude": 1, "tarif": "a"}], None, "places[0].tarif"),
        (
            [{"name": "x", "latitude": 1, "longitude": 1, "tariff": "nope"}],
            None,
            "places[0].tariff",
        ),
        ([{"latitude": 1, "longitude": 1}], None, "places[0].name"),
        ("home", None, "places = 'home'"),
        (None, {"home": {}}, "tariffs.home.price_per_kwh is missing"),
        (None, {"home": {"price_per_kwh": -1}}, "tariffs.home.price_per_kwh = -1"),
        (
            None,
            {"h": {"price_per_kwh": 1, "windows": [{"start": "25:00", "end": "06:00"}]}},
            "tariffs.h.windows[0].start = '25:00'",
        ),
        (
            None,
            {
                "h": {
                    "price_per_kwh": 1,
                    "windows": [{"days": "fri", "start": "01:00", "end": "02:00"}],
                }
            },
            "tariffs.h.windows[0].days = 'fri'",
        ),
        (None, {"default": "x"}, "tariffs.default = 'x'"),
        (None, {"ac_efficiency": 1.5}, "tariffs.ac_efficiency = 1.5"),
    ],
)
def test_bad_places_or_tariffs_name_the_key(places: object, tariffs: object, needle: str) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_config(None, places, tariffs)
    assert needle in str(err.value)


def test_config_errors_are_one_line_without_pandas() -> None:
    with pytest.raises(PlacesError):
        places_from_config([{"name": "a", "latitude": "north", "longitude": 1}])
    with pytest.raises(TariffError):
        tariffs_from_config({"currency": 3})


@pytest.mark.parametrize(
    ("toml", "line"),
    [
        # the shared settings mechanism's rules, which the hand-written reader lacked
        ('curency = "EUR"', "tariffs.curency: unknown key; did you mean 'currency'?"),
        (
            '[tariffs.h]\nprice_per_kwh = 0.3\nwindows = [{ dys = "all", start = "01:00", '
            'end = "02:00", price_per_kwh = 0.1 }]',
            "tariffs.h.windows[0].dys: unknown key; did you mean 'days'?",
        ),
        ("[tariffs.h]\nprice_per_kwh = 0.3\nsesion_fee = 1", "did you mean 'session_fee'?"),
    ],
)
def test_check_config_and_the_analysis_report_tariff_mistakes_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toml: str, line: str
) -> None:
    from click.testing import CliRunner

    from exporter.cli import cli
    from exporter.config import load

    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.toml").write_text(f"[tariffs]\n{toml}\n")
    res = CliRunner().invoke(cli, ["check-config"])
    assert res.exit_code == 1 and line in res.output and res.output.count("\n") == 1
    cfg = load(tmp_path / "config.toml", {})
    with pytest.raises(TariffError) as err:
        tariffs_from_config(cfg.extra["tariffs"])
    assert res.output.strip() == f"Error: configuration error: {err.value}"


# --- matching ----------------------------------------------------------------------------------


def test_a_position_matches_the_nearest_place_whose_circle_holds_it() -> None:
    places = (Place("A", 52.0, 13.0, 150), Place("B", 52.001, 13.0, 150))  # 111 m apart
    lat = np.array([52.0, 52.0009, 52.0006, 52.01, np.nan])
    lon = np.array([13.0, 13.0, 13.0, 13.0, np.nan])
    assert list(match(lat, lon, places)) == ["A", "B", "B", None, None]


def test_a_trip_from_one_configured_place_to_another_carries_both_names() -> None:
    car = Car(lat=HOME[0], lon=HOME[1], now=local_ts("2026-03-02T07:00:00"))
    car.sample()
    car.park(1800)
    # home -> work: 5.6 km at heading ~46 deg ends within Work's 200 m circle
    car.drive(5.76, 15, heading_deg=46.3)
    car.park(3600)
    car.drive(5.76, 15, heading_deg=226.3)
    car.park(3600)
    t = analysis.trips(car.frame(), settings())
    assert len(t) == 2
    assert list(t["start_place"]) == ["Home", "Work"]
    assert list(t["end_place"]) == ["Work", "Home"]


# --- time zones ----------------------------------------------------------------------------------


def test_each_car_gets_the_zone_where_it_is_unless_the_config_pins_one() -> None:
    vins = np.array(["A", "A", "A", "B"])
    lat = np.array([52.52, 51.5072, np.nan, 40.7128])
    lon = np.array([13.40, -0.1276, np.nan, -74.006])
    got = zones(vins, lat, lon, Settings(timezone=None))
    assert list(got) == ["Europe/Berlin", "Europe/London", "Europe/London", "America/New_York"]
    pinned = zones(vins, lat, lon, Settings(timezone="UTC", timezones={"B": "Asia/Tokyo"}))
    assert list(pinned) == ["UTC", "UTC", "UTC", "Asia/Tokyo"]


def test_a_trip_abroad_shows_local_time_there() -> None:
    car = Car(lat=51.5072, lon=-0.1276, now=local_ts("2026-07-01T09:00:00", ZoneInfo("UTC")))
    car.sample()
    car.park(600)
    car.drive(10, 20)
    car.park(600)
    t = analysis.trips(car.frame(), Settings(timezone=None))
    assert t["start_local"].iloc[0].endswith("+01:00")  # BST, whatever this machine's zone is
    pinned = analysis.trips(car.frame(), Settings(timezone="UTC"))
    assert pinned["start_local"].iloc[0].endswith("+00:00")


# --- pricing -------------------------------------------------------------------------------------


def test_split_cuts_at_window_edges_in_local_time() -> None:
    home = tariffs_from_config(TARIFFS).tariffs["home"]
    t0, t1 = local_ts("2026-03-02T21:30:00"), local_ts("2026-03-02T22:30:00")
    pieces = split(t0, t1, home, "Europe/Berlin")
    assert pieces == [
        (t0, local_ts("2026-03-02T22:00:00"), 0.30),
        (local_ts("2026-03-02T22:00:00"), t1, 0.20),
    ]


def test_split_across_the_spring_dst_change_keeps_real_durations() -> None:
    home = tariffs_from_config(TARIFFS).tariffs["home"]
    # 2026-03-29 02:00 CET -> 03:00 CEST: 05:00-07:00 local is 2 real hours, 1 h at each price
    t0, t1 = local_ts("2026-03-29T05:00:00"), local_ts("2026-03-29T07:00:00")
    pieces = split(t0, t1, home, "Europe/Berlin")
    assert [(round(b - a), p) for a, b, p in pieces] == [(3600, 0.20), (3600, 0.30)]


def test_weekday_windows_apply_only_on_weekdays() -> None:
    t = tariffs_from_config(
        {
            "w": {
                "price_per_kwh": 0.40,
                "windows": [
                    {"days": "weekday", "start": "00:00", "end": "24:00", "price_per_kwh": 0.10}
                ],
            }
        }
    ).tariffs["w"]
    # Friday 23:00 -> Saturday 01:00: the first hour at 0.10, the second at 0.40
    t0, t1 = local_ts("2026-03-06T23:00:00"), local_ts("2026-03-07T01:00:00")
    cost = price_session([(t0, t1, 1.0)], 10.0, t, "Europe/Berlin")
    assert cost == pytest.approx(5 * 0.10 + 5 * 0.40)


def test_a_session_crossing_a_time_of_use_boundary_is_priced_piecewise_to_the_cent() -> None:
    car = Car(lat=HOME[0], lon=HOME[1], soc=0.30, now=local_ts("2026-03-02T20:00:00"))
    car.sample()
    car.park(3600)  # 21:00 local
    car.plug()
    car.charge(0.80, 11.0, every=60)  # 31 kWh at 11 kW: ~2 h 49 min, well across 22:00
    car.park(3600)
    car.unplug()
    c = analysis.charges(car.frame(), settings())
    assert len(c) == 1
    row = c.iloc[0]
    assert row["place"] == "Home" and row["kind"] == "ac" and row["currency"] == "EUR"
    assert row["energy_grid_kwh"] == pytest.approx(row["energy_added_kwh"] / 0.90)
    # constant power: the share of energy before 22:00 is the share of charging time before it
    ten = local_ts("2026-03-02T22:00:00")
    before = (ten - row["start_ts"]) / (row["end_ts"] - row["start_ts"])
    expected = round(row["energy_grid_kwh"] * (before * 0.30 + (1 - before) * 0.20), 2)
    assert 0.2 < before < 0.5
    assert row["cost"] == expected
    flat = round(row["energy_grid_kwh"] * 0.30, 2)
    assert abs(row["cost"] - flat) > 1.0
    assert row["range_added_km"] == pytest.approx(50 * 4.2, rel=0.02)  # 50 points at 4.2 km/pt
    assert row["cost_per_100km_range"] == pytest.approx(row["cost"] / row["range_added_km"] * 100)


def test_the_reported_power_shapes_what_each_window_is_charged() -> None:
    """A tapering DC-like profile: more energy early. Priced by power, not evenly by time."""
    car = Car(lat=HOME[0], lon=HOME[1], soc=0.10, now=local_ts("2026-03-02T21:00:00"))
    car.sample()
    car.park(1800)  # 21:30
    car.plug()
    car.charge(0.95, 11.0, every=60, taper=True)
    car.park(1800)
    car.unplug()
    s = settings()
    row = analysis.charges(car.frame(), s).iloc[0]
    ten = local_ts("2026-03-02T22:00:00")
    even = (ten - row["start_ts"]) / (row["end_ts"] - row["start_ts"])
    by_time = round(row["energy_grid_kwh"] * (even * 0.30 + (1 - even) * 0.20), 2)
    assert row["cost"] != by_time  # the first 30 minutes drew more than their share of time
    assert row["energy_grid_kwh"] * 0.20 < row["cost"] < row["energy_grid_kwh"] * 0.30


def test_dc_at_an_unknown_place_uses_the_dc_tariff_and_its_fee() -> None:
    car = Car(lat=50.0, lon=8.0, soc=0.2, now=local_ts("2026-03-02T12:00:00"))
    car.sample()
    car.park(600)
    car.plug()
    car.charge(0.8, 150.0, every=60, dc=True)
    car.park(600)
    car.unplug()
    row = analysis.charges(car.frame(), settings()).iloc[0]
    assert row["kind"] == "dc" and row["place"] is None
    assert row["energy_grid_kwh"] == pytest.approx(row["energy_added_kwh"] / 0.95)
    assert row["cost"] == round(row["energy_grid_kwh"] * 0.59 + 0.50, 2)


def test_without_tariffs_there_is_no_cost_but_grid_energy_is_known() -> None:
    car = Car(soc=0.3)
    car.sample()
    car.plug()
    car.charge(0.6, 11.0)
    car.park(600)
    car.unplug()
    row = analysis.charges(car.frame(), Settings(timezone="UTC")).iloc[0]
    assert math.isnan(row["cost"]) and row["currency"] is None
    assert row["energy_grid_kwh"] == pytest.approx(row["energy_added_kwh"] / 0.90)


def test_monthly_costs_add_up_by_place_and_kind() -> None:
    s = settings()
    car = Car(lat=HOME[0], lon=HOME[1], soc=0.3, now=local_ts("2026-03-02T12:00:00"))
    car.sample()
    for _ in range(3):
        car.plug()
        car.charge(0.6, 11.0)
        car.park(600)
        car.unplug()
        car.drive(30, 30, heading_deg=0)
        car.park(600)
        car.drive(30, 30, heading_deg=180)
        car.park(86400 - 3600 * 2)
    c = analysis.charges(car.frame(), s)
    m = monthly_costs(c, s)
    home = m.loc[m["place"] == "Home"]
    assert int(home["sessions"].sum()) == int((c["place"] == "Home").sum()) >= 3
    assert home["cost"].sum() == pytest.approx(c.loc[c["place"] == "Home", "cost"].sum(), abs=0.011)
    assert set(m["currency"]) == {"EUR"}


# --- clustering ----------------------------------------------------------------------------------


def test_clustering_finds_a_commuters_home_and_work_and_names_home_by_nights() -> None:
    car = Car(lat=HOME[0], lon=HOME[1], now=local_ts("2026-03-02T06:00:00"))
    car.sample()
    for _ in range(10):
        car.park(3600)
        car.drive(5.76, 15, heading_deg=46.3)
        car.park(9 * 3600)
        car.drive(5.76, 15, heading_deg=226.3)
        car.park(24 * 3600 - 10 * 3600 - 1800)
    a = analysis.Analysis(car.frame(), Settings(timezone="Europe/Berlin"))
    found = discover(stops(a.trips, a.charges), zone_of={car.vin: "Europe/Berlin"})
    assert len(found) == 2
    home = found.loc[found["place"] == "home"].iloc[0]
    other = found.loc[found["place"] != "home"].iloc[0]
    assert np.hypot(home["latitude"] - HOME[0], home["longitude"] - HOME[1]) < 0.001
    assert np.hypot(other["latitude"] - WORK[0], other["longitude"] - WORK[1]) < 0.002
    assert home["nights"] >= 9 and other["nights"] == 0
    assert home["visits"] >= 9 and "looks like home: " in home["suggestion"]
    # with Home configured, the cluster is named after it and needs no snippet
    named = discover(stops(a.trips, a.charges), known=settings().places)
    assert (
        "Home" in set(named["place"])
        and named.loc[named["place"] == "Home", "suggestion"].iloc[0] == ""
    )


def test_a_car_that_never_returns_anywhere_has_no_places() -> None:
    car = Car(lat=HOME[0], lon=HOME[1])
    car.sample()
    for i in range(12):
        car.drive(8, 10, heading_deg=30 * i)  # every stop somewhere new
        car.park(7200)
    a = analysis.Analysis(car.frame(), Settings(timezone="UTC"))
    assert len(a.trips) == 12
    assert discover(stops(a.trips, a.charges)).empty


async def test_clustering_finds_the_simulators_home_and_work_for_each_car(tmp_path: Path) -> None:
    from bench.accuracy_sampler import sample_direct
    from exporter.config import PollConfig

    res = await sample_direct(tmp_path / "h.db", ["#1", "#3", "#5"], 14, PollConfig(), seed=11)
    s = Settings(timezone="Europe/Berlin")
    checked = 0
    for vin, truth in res.truth.items():
        a = analysis.Analysis(analysis.load(res.db, vin=vin), s)
        found = discover(stops(a.trips, a.charges), zone_of={vin: "Europe/Berlin"})
        want = [("home", truth["places"]["home"])]
        if truth["places"]["work_has_gps"]:
            want.append(("work", truth["places"]["work"]))
        for label, (lat, lon) in want:
            near = [
                float(np.hypot((r.latitude - lat) * 111_320, (r.longitude - lon) * 67_700))
                for r in found.itertuples()
            ]
            assert near and min(near) < 150, (vin, label, near)
            checked += 1
        assert found.iloc[0]["place"] == "home"  # the most nights
    assert checked >= 4
