"""The world the simulated cars live in: places, local time, weather and terrain.

Everything here is a pure function of time and place (plus a seed), never of when somebody asked.
That is what lets the vehicle model evaluate a parked car in closed form at any instant and still
produce the same numbers however often, or rarely, it is read.
"""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY: Final = 86400.0


@dataclass(frozen=True, slots=True)
class City:
    name: str
    lat: float
    lon: float
    tz: str
    mean_temp_c: float  # yearly mean
    swing_c: float  # half the difference between July and January means
    elevation_m: float


CITIES: Final = (
    City("Stuttgart", 48.7758, 9.1829, "Europe/Berlin", 10.0, 9.5, 245.0),
    City("Munich", 48.1374, 11.5755, "Europe/Berlin", 9.0, 10.0, 520.0),
    City("Hamburg", 53.5511, 9.9937, "Europe/Berlin", 9.5, 8.5, 15.0),
    City("Amsterdam", 52.3676, 4.9041, "Europe/Amsterdam", 10.5, 7.5, 2.0),
    City("Zurich", 47.3769, 8.5417, "Europe/Zurich", 9.5, 9.5, 410.0),
    City("Vienna", 48.2082, 16.3738, "Europe/Vienna", 11.0, 10.5, 190.0),
)


def unit_hash(*parts: object) -> float:
    """A deterministic number in [0, 1) from any parts (stable across runs, unlike ``hash``)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    value: int = struct.unpack(">Q", digest)[0]
    return value / 2.0**64


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except ZoneInfoNotFoundError:  # pragma: no cover - minimal containers without tzdata
        return None


def utc_offset(t: float, tz: str) -> float:
    """Seconds to add to unix time ``t`` to get local wall-clock seconds (DST included)."""
    zone = _zone(tz)
    if zone is None:  # pragma: no cover
        return 3600.0
    off = datetime.fromtimestamp(t, UTC).astimezone(zone).utcoffset()
    return off.total_seconds() if off is not None else 0.0


def local_midnight(t: float, tz: str) -> float:
    """Unix time of the local midnight that starts the day containing ``t``."""
    zone = _zone(tz)
    if zone is None:  # pragma: no cover
        return math.floor((t + 3600.0) / DAY) * DAY - 3600.0
    local = datetime.fromtimestamp(t, UTC).astimezone(zone)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.timestamp()


def next_local_midnight(t: float, tz: str) -> float:
    """The first local midnight strictly after ``t`` (23, 24 or 25 hours after the previous one)."""
    today = local_midnight(t, tz)
    zone = _zone(tz)
    if zone is None:  # pragma: no cover
        return today + DAY
    local = datetime.fromtimestamp(today, UTC).astimezone(zone)
    nxt = (local + timedelta(days=1, hours=3)).replace(hour=0, minute=0, second=0, microsecond=0)
    return nxt.timestamp()


def day_number(t: float, tz: str) -> int:
    """A stable integer per local calendar day (days since 1970-01-01, local)."""
    return int((t + utc_offset(t, tz)) // DAY)


def weekday(t: float, tz: str) -> int:
    """Monday = 0 ... Sunday = 6, local."""
    return (day_number(t, tz) + 3) % 7  # 1970-01-01 was a Thursday


class Weather:
    """Outside temperature of one city: seasonal curve, daily sine, smooth day-to-day noise."""

    def __init__(self, city: City, seed: int) -> None:
        self.city = city
        self.seed = seed
        self._offset_cache: dict[int, float] = {}

    def _day_offset(self, day: int) -> float:
        got = self._offset_cache.get(day)
        if got is None:
            got = (unit_hash("weather", self.seed, self.city.name, day) - 0.5) * 8.0
            if len(self._offset_cache) > 4096:
                self._offset_cache.clear()
            self._offset_cache[day] = got
        return got

    def _clouds(self, day: int) -> float:
        key = -day - 1  # share the cache with the temperature offsets without colliding
        got = self._offset_cache.get(key)
        if got is None:
            got = 0.5 + 0.5 * unit_hash("clouds", self.seed, self.city.name, day)
            self._offset_cache[key] = got
        return got

    def temperature(self, t: float) -> float:
        """Outside temperature in °C at unix time ``t``."""
        local = (
            t + 3600.0
        )  # the weather does not care about DST; CET is close enough everywhere here
        days = local / DAY
        doy = days % 365.2425
        seasonal = self.city.mean_temp_c - self.city.swing_c * math.cos(
            2 * math.pi * (doy - 18) / 365.2425
        )
        hour = (local % DAY) / 3600.0
        amplitude = 3.5 + 1.5 * math.cos(2 * math.pi * (doy - 180) / 365.2425)  # larger in summer
        daily = amplitude * math.sin(2 * math.pi * (hour - 9.0) / 24.0)
        d0 = math.floor(days)
        frac = days - d0
        noise = self._day_offset(d0) * (1 - frac) + self._day_offset(d0 + 1) * frac
        return seasonal + daily + noise

    def sun(self, t: float) -> float:
        """Solar load 0..1 (0 at night), used to warm a parked cabin above the outside air."""
        local = t + 3600.0
        hour = (local % DAY) / 3600.0
        if not 6.0 < hour < 19.0:
            return 0.0
        doy = (local / DAY) % 365.2425
        season = 0.55 - 0.45 * math.cos(2 * math.pi * (doy - 18) / 365.2425)
        clouds = self._clouds(int(local // DAY))
        return math.sin(math.pi * (hour - 6.0) / 13.0) * season * clouds


def terrain_altitude(lat: float, lon: float, base_m: float) -> float:
    """Smooth, made-up terrain around a city: a few hundred metres of gentle hills."""
    hills = 60.0 * math.sin(lat * 37.0) * math.cos(lon * 23.0) + 25.0 * math.sin(
        lat * 91.0 + lon * 57.0
    )
    return max(0.0, base_m + hills)
