"""A trip as the car itself logged it (a cloud's trip journal), whatever the cloud.

Polling sees a car every minute or so and has to reconstruct trips; a car that keeps its own trip
log knows each trip's exact start, end, distance and energy. Providers that can read such a log
return :class:`JournalTrip` records; ``exporter.journal_fetch`` stores them in the history's
``journal_trips`` table (``exporter.history_layout``), where the analysis prefers them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from exporter import polyline
from exporter.history_layout import JOURNAL_COLUMNS


@dataclass(frozen=True, slots=True)
class JournalTrip:
    """One trip of the car's own log, in SI units (s, m, m/s) and kWh; None = not given."""

    vin: str
    provider: str
    trip_id: str
    start_ts: float
    end_ts: float
    start_odometer_m: float | None = None
    end_odometer_m: float | None = None
    distance_m: float | None = None
    avg_speed_mps: float | None = None
    energy_kwh: float | None = None
    regen_kwh: float | None = None
    start_latitude: float | None = None
    start_longitude: float | None = None
    end_latitude: float | None = None
    end_longitude: float | None = None
    start_address: str | None = None
    end_address: str | None = None
    route: Sequence[tuple[float, float]] | None = None  # (lat, lon) in order; None = not read

    def row(self, fetched_at: float) -> tuple[Any, ...]:
        """The ``journal_trips`` row (columns in ``JOURNAL_COLUMNS`` order)."""
        values: dict[str, Any] = {n: getattr(self, n, None) for n, _ in JOURNAL_COLUMNS}
        values["route"] = None if self.route is None else polyline.encode(self.route)
        values["route_points"] = None if self.route is None else len(self.route)
        values["fetched_at"] = fetched_at
        return tuple(values[n] for n, _ in JOURNAL_COLUMNS)


class JournalKnown(NamedTuple):
    """What the history holds of one car's journal, for the next read of it."""

    newest: float | None  # start of the newest stored trip (the read resumes a day before it)
    routed: frozenset[str]  # ids of the trips whose route is stored (their tracks are not re-read)
    unrouted: float | None  # start of the oldest trip since the asked time still without a route
