"""Named places (``[[places]]`` in config.toml) and the places a car keeps returning to.

A trip's start and end and a charging session's position are matched to the nearest configured place
whose circle (``radius_m``, default 150 m as TeslaMate's geofences) contains them. Places nobody
named are found by density clustering of where the car parked: scikit-learn's DBSCAN with the
haversine metric, so a place is "somewhere the car parked at least ``min_visits`` times within
~100 m", and a car that never returns anywhere yields nothing (DBSCAN calls those stops noise).

This module reads the config without pandas (``carmetrics check-config`` validates ``[[places]]``
through it); the matching and clustering import numpy/pandas/scikit-learn only when called.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from pydantic import Field

from exporter.settings import ConfigError, Section, read_section

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

DEFAULT_RADIUS_M: Final = 150.0
CLUSTER_RADIUS_M: Final = 100.0
EARTH_RADIUS_M: Final = 6_371_008.8


class PlacesError(ConfigError):
    """One user-facing line naming the ``places[i]`` key that is wrong."""


@dataclass(frozen=True)
class Place:
    name: str
    latitude: float
    longitude: float
    radius_m: float = DEFAULT_RADIUS_M
    tariff: str | None = None


class PlaceSection(Section):
    """One ``[[places]]`` entry as written."""

    name: str = Field(pattern=r"\S", description="a non-empty string")
    latitude: float = Field(ge=-90, le=90, description="a number from -90 to 90")
    longitude: float = Field(ge=-180, le=180, description="a number from -180 to 180")
    radius_m: float = Field(
        default=DEFAULT_RADIUS_M, ge=10, le=100_000, description="a number from 10 to 100000"
    )
    tariff: str | None = None


def places_from_config(raw: object, tariffs: Sequence[str] = ()) -> tuple[Place, ...]:
    """``[[places]]`` entries; ``tariffs`` are the names ``[tariffs.<name>]`` defines."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise PlacesError(f"places = {raw!r}: expected [[places]] tables")
    out: list[Place] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        path = f"places[{i}]"
        if not isinstance(entry, Mapping):
            raise PlacesError(f"{path}: expected a table with name, latitude and longitude")
        try:
            p = read_section(PlaceSection, dict(entry), path)
        except ConfigError as exc:
            raise PlacesError(str(exc)) from None
        if p.name in seen:
            raise PlacesError(f"{path}.name = {p.name!r}: another place has this name")
        seen.add(p.name)
        if p.tariff is not None and p.tariff not in tariffs:
            known = ", ".join(sorted(tariffs)) or "none defined"
            raise PlacesError(
                f"{path}.tariff = {p.tariff!r}: expected the name of a [tariffs.<name>] table "
                f"({known})"
            )
        out.append(Place(p.name.strip(), p.latitude, p.longitude, p.radius_m, p.tariff))
    return tuple(out)


def match(
    lat: np.ndarray, lon: np.ndarray, places: Sequence[Place]
) -> np.ndarray:  # object array of str | None
    """The name of the nearest place whose circle holds each position (None: no place, or no fix)."""
    import numpy as np

    from .prep import haversine_m

    out = np.full(len(lat), None, dtype=object)
    if not places or not len(lat):
        return out
    best = np.full(len(lat), np.inf)
    for place in places:
        d = haversine_m(
            lat, lon, np.full(len(lat), place.latitude), np.full(len(lat), place.longitude)
        )
        inside = (d <= place.radius_m) & (d < best)
        out[inside] = place.name
        best = np.where(inside, d, best)
    return out


def stops(trips: pd.DataFrame, charges: pd.DataFrame) -> pd.DataFrame:
    """Where each vehicle parked: trip ends (arrival, departure = next trip's start) and charging
    sessions. Columns: vin, latitude, longitude, arrive_ts, leave_ts."""
    import numpy as np
    import pandas as pd

    frames = []
    if len(trips):
        t = trips.sort_values(["vin", "start_ts"], kind="mergesort")
        nxt = t.groupby("vin")["start_ts"].shift(-1)
        frames.append(
            pd.DataFrame(
                {
                    "vin": t["vin"].to_numpy(),
                    "latitude": t["end_latitude"].to_numpy(dtype="float64"),
                    "longitude": t["end_longitude"].to_numpy(dtype="float64"),
                    "arrive_ts": t["end_ts"].to_numpy(dtype="float64"),
                    "leave_ts": nxt.to_numpy(dtype="float64"),
                }
            )
        )
    if len(charges) and not len(trips):
        frames.append(
            pd.DataFrame(
                {
                    "vin": charges["vin"].to_numpy(),
                    "latitude": charges["latitude"].to_numpy(dtype="float64"),
                    "longitude": charges["longitude"].to_numpy(dtype="float64"),
                    "arrive_ts": charges["start_ts"].to_numpy(dtype="float64"),
                    "leave_ts": charges["end_ts"].to_numpy(dtype="float64"),
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=["vin", "latitude", "longitude", "arrive_ts", "leave_ts"])
    out = pd.concat(frames, ignore_index=True)
    keep = np.isfinite(out["latitude"].to_numpy()) & np.isfinite(out["longitude"].to_numpy())
    return pd.DataFrame(out.loc[keep].reset_index(drop=True))


PLACE_COLUMNS: Final = (
    "vin",
    "place",
    "latitude",
    "longitude",
    "visits",
    "nights",
    "hours_parked",
    "first_visit",
    "last_visit",
    "known_as",
    "suggestion",
)


def _nights(arrive: np.ndarray, leave: np.ndarray, zone: str) -> int:
    """Nights spent: how many 03:00 local times the stays include."""
    import numpy as np
    import pandas as pd

    n = 0
    for a, b in zip(arrive, leave, strict=True):
        if not np.isfinite(a) or not np.isfinite(b) or b <= a:
            continue
        start = pd.Timestamp(a, unit="s", tz="UTC").tz_convert(zone)
        three = start.normalize() + pd.Timedelta(hours=3)
        if three < start:
            three += pd.Timedelta(days=1)
        if three.timestamp() <= b:
            n += 1 + int((b - three.timestamp()) // 86400.0)
    return n


def discover(
    stops_df: pd.DataFrame,
    *,
    known: Sequence[Place] = (),
    min_visits: int = 5,
    radius_m: float = CLUSTER_RADIUS_M,
    zone_of: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Places each vehicle parked at ``min_visits`` times or more (columns ``PLACE_COLUMNS``).

    DBSCAN (haversine metric on radians, ``eps`` = ``radius_m`` on the earth's surface) is run per
    vehicle on its stops; a cluster's position is the mean of its members. Names: a configured place
    containing it (``known_as``), else "home" for the one with the most nights (at least 3), else
    "place N". ``suggestion`` is a ``[[places]]`` snippet for the unnamed ones.
    """
    import numpy as np
    import pandas as pd
    from sklearn.cluster import DBSCAN

    rows: list[dict[str, Any]] = []
    for vin, group in stops_df.groupby("vin", sort=True):
        if len(group) < min_visits:
            continue
        coords = np.radians(group[["latitude", "longitude"]].to_numpy(dtype="float64"))
        labels = DBSCAN(
            eps=radius_m / EARTH_RADIUS_M,
            min_samples=min_visits,
            metric="haversine",
            algorithm="ball_tree",
        ).fit_predict(coords)
        zone = (zone_of or {}).get(str(vin), "UTC")
        found: list[dict[str, Any]] = []
        for label in sorted(set(labels.tolist()) - {-1}):
            member = group.loc[labels == label]
            arrive = member["arrive_ts"].to_numpy(dtype="float64")
            leave = member["leave_ts"].to_numpy(dtype="float64")
            stay = np.where(np.isfinite(leave) & (leave > arrive), leave - arrive, 0.0)
            lat = float(member["latitude"].mean())
            lon = float(member["longitude"].mean())
            name = match(np.array([lat]), np.array([lon]), known)[0]
            found.append(
                {
                    "vin": str(vin),
                    "latitude": round(lat, 5),
                    "longitude": round(lon, 5),
                    "visits": len(member),
                    "nights": _nights(arrive, leave, zone),
                    "hours_parked": round(float(stay.sum()) / 3600.0, 1),
                    "first_visit": float(arrive.min()),
                    "last_visit": float(arrive.max()),
                    "known_as": name,
                }
            )
        found.sort(key=lambda r: (-r["nights"], -r["visits"]))
        home_taken = any(r["known_as"] for r in found if r["known_as"] == "home")
        n = 0
        for r in found:
            if r["known_as"]:
                r["place"] = r["known_as"]
                r["suggestion"] = ""
                continue
            if not home_taken and r["nights"] >= 3:
                r["place"] = "home"
                home_taken = True
                why = f"looks like home: {r['nights']} nights"
            else:
                n += 1
                r["place"] = f"place {n}"
                why = f"{r['visits']} visits, {r['hours_parked']:g} h parked"
            r["suggestion"] = (
                f'[[places]]  # {why}\nname = "{r["place"]}"\n'
                f"latitude = {r['latitude']}\nlongitude = {r['longitude']}\nradius_m = 150"
            )
        rows.extend(found)
    out = pd.DataFrame(rows, columns=list(PLACE_COLUMNS))
    return out
