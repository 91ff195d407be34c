"""Roads as polylines: a route from A to B that a driving car moves along.

Real roads are not straight lines, so a route bends through a few jittered waypoints; the length
along the polyline is the distance the odometer counts, and the bearing of the current leg is the
car's heading. Distances use the equirectangular approximation, which is exact enough at
city-to-region scale and much cheaper than haversine in the driving loop.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from dataclasses import dataclass, field

EARTH_M = 6_371_000.0


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    x = math.radians(lon2 - lon1) * math.cos(math.radians((lat1 + lat2) / 2))
    y = math.radians(lat2 - lat1)
    return math.hypot(x, y) * EARTH_M


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    x = math.radians(lon2 - lon1) * math.cos(math.radians((lat1 + lat2) / 2))
    y = math.radians(lat2 - lat1)
    return math.degrees(math.atan2(x, y)) % 360.0


def offset(lat: float, lon: float, bearing: float, dist_m: float) -> tuple[float, float]:
    """The point ``dist_m`` metres from (lat, lon) in direction ``bearing`` degrees."""
    b = math.radians(bearing)
    dlat = math.degrees(dist_m * math.cos(b) / EARTH_M)
    dlon = math.degrees(dist_m * math.sin(b) / (EARTH_M * math.cos(math.radians(lat))))
    return lat + dlat, lon + dlon


@dataclass(slots=True)
class Route:
    """A polyline with cumulative distances; ``at(d)``: position and heading ``d`` metres in."""

    points: list[tuple[float, float]]
    cum: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.cum:
            cum = [0.0]
            for (a, b), (c, d) in zip(self.points, self.points[1:], strict=False):
                cum.append(cum[-1] + distance_m(a, b, c, d))
            self.cum = cum

    @property
    def length_m(self) -> float:
        return self.cum[-1]

    @property
    def start(self) -> tuple[float, float]:
        return self.points[0]

    @property
    def end(self) -> tuple[float, float]:
        return self.points[-1]

    def at(self, d: float) -> tuple[float, float, float]:
        """(lat, lon, heading) at distance ``d`` along the route (clamped to the ends)."""
        if len(self.points) == 1:
            lat, lon = self.points[0]
            return lat, lon, 0.0
        d = min(max(d, 0.0), self.cum[-1])
        i = min(bisect_right(self.cum, d) - 1, len(self.points) - 2)
        seg = self.cum[i + 1] - self.cum[i]
        f = (d - self.cum[i]) / seg if seg > 0 else 0.0
        (a, b), (c, e) = self.points[i], self.points[i + 1]
        return a + (c - a) * f, b + (e - b) * f, bearing_deg(a, b, c, e)

    def reversed(self) -> Route:
        return Route(list(reversed(self.points)))

    def tail(self, d: float) -> Route:
        """The rest of the route after ``d`` metres (used to continue after a charging stop)."""
        lat, lon, _ = self.at(d)
        i = bisect_right(self.cum, d)
        return Route([(lat, lon), *self.points[i:]])


def make_route(
    start: tuple[float, float], end: tuple[float, float], rng: random.Random, wiggle: float = 0.12
) -> Route:
    """A plausible road from ``start`` to ``end``: waypoints pushed sideways by up to ``wiggle``."""
    direct = distance_m(*start, *end)
    if direct < 1.0:
        return Route([start, end])
    n = max(2, min(12, int(direct / 2500) + 2))
    brg = bearing_deg(*start, *end)
    points = [start]
    for k in range(1, n):
        f = k / n
        lat = start[0] + (end[0] - start[0]) * f
        lon = start[1] + (end[1] - start[1]) * f
        side = (rng.random() - 0.5) * 2 * wiggle * direct * math.sin(math.pi * f)
        points.append(offset(lat, lon, brg + 90.0, side))
    points.append(end)
    return Route(points)
