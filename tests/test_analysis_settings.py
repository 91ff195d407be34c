"""The [analysis] settings: where capacity and timezone come from, and errors that name the key."""

from __future__ import annotations

import pytest

from analysis.settings import (
    FALLBACK_CAPACITY_KWH,
    Settings,
    SettingsError,
    builtin_capacity,
    machine_timezone,
)


def test_capacity_precedence_vin_then_model_then_builtin_then_fallback() -> None:
    s = Settings(timezone="UTC", capacity_kwh={"VIN1": 50.0, "#1": 60.0})
    assert s.capacity_for("VIN1", "#1") == 50.0
    assert s.capacity_for("VIN2", "smart #1") == 60.0
    assert s.capacity_for("VIN2", "#5") == builtin_capacity("#5") == 94.0
    assert s.capacity_for("VIN2", None, "HC11") == 62.0
    assert s.capacity_for("VIN2", "Model 3") == 57.5
    assert s.capacity_for("VIN2", "Zoe") == FALLBACK_CAPACITY_KWH
    assert not s.capacity_known("VIN2", "Zoe", None)
    assert s.capacity_known("VIN2", "Zoe", "HY11")


def test_from_config_reads_every_key() -> None:
    s = Settings.from_config(
        {
            "timezone": "Europe/Berlin",
            "timezones": {"V1": "Asia/Tokyo"},
            "capacity_kwh": {"#3": 61},
            "idle_hours": 8,
            "min_trip_m": 250,
            "merge_pause_h": 2,
        }
    )
    assert str(s.tz("V1")) == "Asia/Tokyo" and str(s.tz("V2")) == "Europe/Berlin"
    assert s.capacity_for("V2", "#3") == 61.0
    assert (s.idle_hours, s.min_trip_m, s.merge_pause_s) == (8.0, 250.0, 7200.0)


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"timezone": "Mars/Olympus"}, "analysis.timezone"),
        ({"timezones": {"V1": 7}}, "analysis.timezones.V1"),
        ({"capacity_kwh": {"#1": -3}}, "analysis.capacity_kwh.#1"),
        ({"capacity_kwh": 62}, "analysis.capacity_kwh"),
        ({"idle_hours": "six"}, "analysis.idle_hours"),
        ({"idle_hour": 6}, "analysis.idle_hour"),
    ],
)
def test_bad_settings_name_their_key(section: dict[str, object], key: str) -> None:
    with pytest.raises(SettingsError, match=key.replace(".", r"\.").replace("#", "#")):
        Settings.from_config(section)


def test_machine_timezone_honours_tz(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/Chicago")
    assert machine_timezone() == "America/Chicago"
    monkeypatch.setenv("TZ", "Not/AZone")
    assert machine_timezone() != "Not/AZone"
