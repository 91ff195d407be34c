"""What the analysis needs to know that the samples do not say: battery size, timezone, thresholds,
places and tariffs.

Usable capacity turns a SoC change into kWh, and the timezone decides which day a trip belongs to.
Capacities come from the ``[analysis]`` config section, per VIN or per model, falling back to a
built-in table. The timezone comes from where the car is (an offline lookup, analysis.zones) unless
the config pins one (for all cars or per VIN); where a car's position is unknown, the machine's zone.
Places (``[[places]]``) and tariffs (``[tariffs]``) are their own top-level tables (analysis.places,
analysis.tariffs).

Example::

    [analysis]
    timezone = "Europe/Berlin"      # pin one zone for every vehicle (default: where each car is)
    idle_hours = 6                  # parked periods at least this long count as idle drain

    [analysis.capacity_kwh]         # usable kWh, per VIN or per model name
    "#1" = 62.0
    "HX1ABC0123456789" = 60.5

    [analysis.timezones]            # per-VIN override
    "HX1ABC0123456789" = "Europe/London"
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Final, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, model_validator

from exporter.settings import ConfigError, Section, invalid, read_section

from .places import Place, PlacesError, places_from_config
from .tariffs import TariffError, Tariffs, tariffs_from_config

# Usable (net) capacity by model, kWh. Smart #1/#3: 66 kWh gross, 62 usable; #5: 100 gross, 94
# usable; the others are the models the Smartcar simulator offers (exporter/simulator/catalogue.py).
BUILTIN_CAPACITY_KWH: Final = MappingProxyType(
    {
        "#1": 62.0,
        "#3": 62.0,
        "#5": 94.0,
        "model 3": 57.5,
        "mustang mach-e": 91.0,
        "id.4": 77.0,
    }
)
# smart series codes (seriesCodeVs) name the same models.
SERIES_CAPACITY_KWH: Final = MappingProxyType({"HX1": 62.0, "HC1": 62.0, "HY1": 94.0})
# When nothing is known about a vehicle the analysis still runs; its energy figures use this guess.
FALLBACK_CAPACITY_KWH: Final = 60.0


class SettingsError(ConfigError):
    """One user-facing line naming the ``[analysis]`` key that is wrong."""


def machine_timezone() -> str:
    """The IANA name of this machine's zone (TZ, /etc/localtime, /etc/timezone), else UTC."""
    candidates: list[str] = []
    env = os.environ.get("TZ", "").lstrip(":")
    if env:
        candidates.append(env)
    target = os.path.realpath("/etc/localtime")
    if "zoneinfo/" in target:
        candidates.append(target.split("zoneinfo/", 1)[1])
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text(encoding="utf-8").strip())
    for name in candidates:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
        return name
    return "UTC"


def _zone(name: str, field: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise invalid(
            "unknown timezone; expected an IANA name such as 'Europe/Berlin'",
            field=field,
            value=name,
        ) from None
    return name


Zone = Annotated[str, Field(min_length=1, description="an IANA zone name such as 'Europe/Berlin'")]
Amount = Annotated[float, Field(gt=0, description="a positive number")]


class AnalysisSection(Section):
    """``[analysis]`` as written (see the module docstring)."""

    timezone: Zone | None = None
    timezones: dict[str, Zone] = Field(
        default_factory=dict, description="a table of VIN = zone name"
    )
    capacity_kwh: dict[str, Amount] = Field(
        default_factory=dict, description="a table of VIN or model = kWh"
    )
    idle_hours: Amount = 6.0
    min_trip_m: Amount = 100.0
    merge_pause_h: Amount = 24.0

    @model_validator(mode="after")
    def _zones(self) -> Self:
        if self.timezone is not None:
            _zone(self.timezone, "timezone")
        for vin, name in self.timezones.items():
            _zone(name, f"timezones.{vin}")
        return self


def _norm_model(model: str) -> str:
    return model.strip().lower().replace("smart", "").strip()


@dataclass(frozen=True)
class Settings:
    """Analysis knobs. The defaults are what the accuracy run (docs/ACCURACY.md) measured."""

    # A zone pinned for every vehicle; None: each car's zone comes from where it is (analysis.zones),
    # and where that is unknown, the machine's zone.
    timezone: str | None = None
    timezones: Mapping[str, str] = dc_field(default_factory=dict)  # per VIN (pinned)
    capacity_kwh: Mapping[str, float] = dc_field(default_factory=dict)  # per VIN or model
    idle_hours: float = 6.0
    # trips
    min_trip_m: float = 100.0  # shorter trips are noise (TeslaMate drops < 10 m; 100 m per issue)
    moving_speed_mps: float = 0.5  # above this a sample counts as moving
    stop_merge_s: float = 300.0  # a standstill shorter than this, ignition not off, is not a stop
    gap_split_s: float = 1800.0  # a silence this long while moving splits a trip
    jitter_m: float = 200.0  # position changes below this while parked are GPS jitter
    default_speed_mps: float = (
        11.0  # ~40 km/h: duration guess for trips seen only as odometer jumps
    )
    # charging
    merge_pause_s: float = 24 * 3600.0  # pauses while still plugged merge (VWsFriend: 24 h)
    unseen_min_soc: float = 0.02  # an SoC rise of 2 points without samples is an unseen charge
    unseen_min_gap_s: float = 300.0
    dc_power_w: float = 22_500.0  # above any AC charger (22 kW) means DC when the state is unknown

    # places and costs (analysis.places, analysis.tariffs)
    places: tuple[Place, ...] = ()
    tariffs: Tariffs = dc_field(default_factory=Tariffs)

    def pinned_zone(self, vin: str) -> str | None:
        """The zone the config pins for ``vin`` (per VIN, else for all), or None."""
        return self.timezones.get(vin) or self.timezone

    def timezone_name(self, vin: str) -> str:
        """The pinned zone, else this machine's: where a car's position says nothing."""
        return self.pinned_zone(vin) or machine_timezone()

    def tz(self, vin: str) -> ZoneInfo:
        return ZoneInfo(self.timezone_name(vin))

    def capacity_for(self, vin: str, model: str | None = None, series: str | None = None) -> float:
        """Usable kWh: config by VIN, by model, built-in by model or series, else the fallback."""
        if vin in self.capacity_kwh:
            return float(self.capacity_kwh[vin])
        if model:
            for key, value in self.capacity_kwh.items():
                if _norm_model(key) == _norm_model(model):
                    return float(value)
        found = builtin_capacity(model, series)
        return FALLBACK_CAPACITY_KWH if found is None else found

    def capacity_known(self, vin: str, model: str | None, series: str | None) -> bool:
        if vin in self.capacity_kwh:
            return True
        if model and any(_norm_model(k) == _norm_model(model) for k in self.capacity_kwh):
            return True
        return builtin_capacity(model, series) is not None

    @staticmethod
    def from_config(
        section: Mapping[str, Any] | None,
        places: object = None,
        tariffs: object = None,
    ) -> Settings:
        """Build from the ``[analysis]`` table of config.toml, plus its ``[[places]]`` and
        ``[tariffs]``; errors name the offending key."""
        try:
            t = read_section(AnalysisSection, dict(section or {}), "analysis")
        except ConfigError as exc:
            raise SettingsError(str(exc)) from None
        kwargs: dict[str, Any] = {
            "timezone": t.timezone,
            "timezones": dict(t.timezones),
            "capacity_kwh": dict(t.capacity_kwh),
            "idle_hours": t.idle_hours,
            "min_trip_m": t.min_trip_m,
            "merge_pause_s": t.merge_pause_h * 3600.0,
        }
        try:
            kwargs["tariffs"] = tariffs_from_config(tariffs)
            kwargs["places"] = places_from_config(places, tuple(kwargs["tariffs"].tariffs))
        except (PlacesError, TariffError) as exc:
            raise SettingsError(str(exc)) from None
        return Settings(**kwargs)


def builtin_capacity(model: str | None, series: str | None = None) -> float | None:
    """Usable kWh from the built-in tables, matching '#1', 'smart #1', 'Model 3', 'HX11' and so on."""
    if model:
        m = _norm_model(model)
        for key, value in BUILTIN_CAPACITY_KWH.items():
            if m == key or (key.startswith("#") and (m.startswith(key + " ") or m.endswith(key))):
                return value
    if series:
        s = series.strip().upper()
        for key, value in SERIES_CAPACITY_KWH.items():
            if s.startswith(key):
                return value
    return None
