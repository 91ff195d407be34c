"""A route as one short string: the "encoded polyline" format (precision 1e-5 degrees, ~1 m).

A trip's track has a few hundred points; as text pairs that is ~20 bytes a point, as an encoded
polyline 4-6 (only the change from the previous point is stored, in base-64 digits). The format is a
widely implemented public one, so a route column can be read by map tools without carmetrics.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

_SCALE = 1e5


def _chunks(value: int) -> str:
    v = ~(value << 1) if value < 0 else value << 1
    out = []
    while v >= 0x20:
        out.append(chr((0x20 | (v & 0x1F)) + 63))
        v >>= 5
    out.append(chr(v + 63))
    return "".join(out)


def encode(points: Iterable[tuple[float, float]]) -> str:
    """``(lat, lon)`` degrees -> the encoded string (rounded to 1e-5 degrees)."""
    out: list[str] = []
    plat = plon = 0
    for lat, lon in points:
        ilat, ilon = round(lat * _SCALE), round(lon * _SCALE)
        out.append(_chunks(ilat - plat))
        out.append(_chunks(ilon - plon))
        plat, plon = ilat, ilon
    return "".join(out)


def decode(text: str) -> list[tuple[float, float]]:
    """The encoded string -> ``(lat, lon)`` degrees; ValueError for text that is not a polyline."""
    values: list[int] = []
    shift = acc = 0
    for ch in text:
        b = ord(ch) - 63
        if not 0 <= b < 64:
            raise ValueError(f"not an encoded polyline (character {ch!r})")
        acc |= (b & 0x1F) << shift
        shift += 5
        if b < 0x20:
            values.append(~(acc >> 1) if acc & 1 else acc >> 1)
            shift = acc = 0
    if shift or len(values) % 2:
        raise ValueError("not an encoded polyline (truncated)")
    out: list[tuple[float, float]] = []
    lat = lon = 0
    for i in range(0, len(values), 2):
        lat += values[i]
        lon += values[i + 1]
        out.append((lat / _SCALE, lon / _SCALE))
    return out


def points_of(route: str | None) -> Sequence[tuple[float, float]]:
    """A stored route column's points; empty for NULL or a damaged value."""
    if not route:
        return ()
    try:
        return decode(route)
    except ValueError:
        return ()
