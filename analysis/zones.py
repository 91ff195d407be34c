"""Each car's time zone from where it is: an offline lookup of the IANA zone at a position.

Local times (a trip's start, the day a charge belongs to, a time-of-use tariff window) follow the
zone the car was in, so a trip abroad shows the local time there and a container set to UTC does not
shift everything. The config can pin a zone (``[analysis] timezone`` for all cars, ``[analysis.
timezones]`` per VIN): then that zone is used everywhere, as before. Without a position (no GPS fix,
location not reported) the last zone seen for that car holds, else the pinned or machine zone.

The lookup is timezonefinder's (offline polygons of the timezone-boundary-builder project, shipped
in the wheel). Positions are rounded to 0.01° (~1 km) for a cache, so a vehicle-year costs a few
hundred lookups, not one per sample.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from .settings import Settings


@lru_cache(maxsize=1)
def _finder() -> object:
    from timezonefinder import TimezoneFinder

    return TimezoneFinder(in_memory=True)


@lru_cache(maxsize=65536)
def zone_at(lat_c: int, lon_c: int) -> str | None:
    """The zone at a position given in hundredths of a degree (None at sea or off the map)."""
    finder = _finder()
    name = finder.timezone_at(lat=lat_c / 100.0, lng=lon_c / 100.0)  # type: ignore[attr-defined]
    return str(name) if name else None


def zones(vins: np.ndarray, lat: np.ndarray, lon: np.ndarray, settings: Settings) -> np.ndarray:
    """The zone name for each row (vins, lat, lon of equal length), as an object array."""
    import numpy as np

    out = np.empty(len(vins), dtype=object)
    last: dict[str, str] = {}
    for i in range(len(vins)):
        vin = str(vins[i])
        pinned = settings.pinned_zone(vin)
        if pinned is not None:
            out[i] = pinned
            continue
        la, lo = lat[i], lon[i]
        name = None
        if la == la and lo == lo:  # not NaN
            name = zone_at(round(float(la) * 100), round(float(lo) * 100))
        if name is None:
            name = last.get(vin) or settings.timezone_name(vin)
        last[vin] = name
        out[i] = name
    return out
