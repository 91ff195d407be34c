"""Charging power as a function of state of charge, solved in closed form.

A charging session is the ODE dSoC/dt = P(SoC) / capacity. With P piecewise linear in SoC every
piece has an exact solution (linear where P is flat, exponential where it tapers), so the SoC at
any instant, the time to reach the limit and the energy added are computed directly instead of by
stepping: a car that charges for three hours costs the same as one that charges for three minutes,
whatever the poll cadence.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

AC_EFFICIENCY = 0.92  # grid -> battery
DC_EFFICIENCY = 0.95
_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class ChargeCurve:
    """Breakpoints (soc %, kW), linear in between, power strictly positive."""

    points: tuple[tuple[float, float], ...]
    capacity_kwh: float

    @property
    def _c(self) -> float:
        return 100.0 / (3600.0 * self.capacity_kwh)  # % per kW-second

    def power(self, soc: float) -> float:
        pts = self.points
        if soc <= pts[0][0]:
            return pts[0][1]
        for (s0, p0), (s1, p1) in itertools.pairwise(pts):
            if soc <= s1:
                return p0 + (p1 - p0) * (soc - s0) / (s1 - s0) if s1 > s0 else p1
        return pts[-1][1]

    def _pieces(self, soc: float) -> list[tuple[float, float, float, float]]:
        """(from soc, to soc, power at from, slope kW/%) for the pieces at and above ``soc``."""
        out = []
        for (s0, p0), (s1, p1) in zip(self.points, self.points[1:], strict=False):
            if s1 <= soc or s1 <= s0:
                continue
            k = (p1 - p0) / (s1 - s0)
            start = max(s0, soc)
            out.append((start, s1, p0 + k * (start - s0), k))
        return out

    def soc_after(self, soc: float, seconds: float, limit: float) -> float:
        """SoC after charging ``seconds`` from ``soc``, never above ``limit``."""
        c = self._c
        remaining = seconds
        for a, b, pa, k in self._pieces(soc):
            if a >= limit:
                break
            top = min(b, limit)
            need = self._time(a, top, pa, k)
            if need >= remaining:
                if abs(k) < _EPS:
                    return min(limit, a + c * pa * remaining)
                return min(limit, a + (pa / k) * math.expm1(c * k * remaining))
            remaining -= need
            soc = top
        return min(soc, limit)

    def _time(self, a: float, b: float, pa: float, k: float) -> float:
        c = self._c
        if b <= a:
            return 0.0
        if abs(k) < _EPS:
            return (b - a) / (c * pa)
        pb = pa + k * (b - a)
        return math.log(pb / pa) / (c * k)

    def seconds_to(self, soc: float, target: float) -> float:
        """Seconds of charging needed to go from ``soc`` to ``target`` (0 if already there)."""
        total = 0.0
        for a, b, pa, k in self._pieces(soc):
            if a >= target:
                break
            total += self._time(a, min(b, target), pa, k)
        return total


def ac_curve(capacity_kwh: float, car_max_kw: float, station_kw: float) -> ChargeCurve:
    """AC: flat at the lower of car and wallbox, a gentle taper over the last 5 %."""
    p = min(car_max_kw, station_kw)
    return ChargeCurve(((0.0, p), (95.0, p), (100.0, 0.35 * p)), capacity_kwh)


def dc_curve(
    capacity_kwh: float, car_max_kw: float, station_kw: float, taper_soc: float, temp_c: float
) -> ChargeCurve:
    """DC: ramp up, peak until ``taper_soc``, then falling to ~20 % of peak at 90 %.

    A cold battery charges slower (down to 55 % of peak at -10 °C); a station below the car's peak
    caps the whole curve.
    """
    cold = min(1.0, max(0.55, 0.8 + 0.02 * temp_c))
    peak = car_max_kw * cold
    shape = (
        (0.0, 0.6),
        (8.0, 1.0),
        (taper_soc, 1.0),
        (80.0, 0.42),
        (90.0, 0.2),
        (100.0, 0.07),
    )
    raw = [(s, f * peak) for s, f in shape]
    return ChargeCurve(_cap(raw, station_kw), capacity_kwh)


def _cap(points: list[tuple[float, float]], limit: float) -> tuple[tuple[float, float], ...]:
    """min(curve, limit) as breakpoints: keep points, add the crossings of the limit."""
    out: list[tuple[float, float]] = []
    for i, (s, p) in enumerate(points):
        if i:
            s0, p0 = points[i - 1]
            if (p0 - limit) * (p - limit) < 0:
                f = (limit - p0) / (p - p0)
                out.append((s0 + f * (s - s0), limit))
        out.append((s, min(p, limit)))
    return tuple(out)


def pack_voltage(soc: float, empty_v: float, full_v: float) -> float:
    """Open-circuit voltage of the traction battery: steep near empty, flat in the middle."""
    x = min(max(soc, 0.0), 100.0) / 100.0
    shape = 0.55 * x + 0.45 * (1 - (1 - x) ** 3)
    return empty_v + (full_v - empty_v) * shape
