"""The ground truth a simulated car keeps about itself: every trip and every charging session.

Analysis code later reconstructs trips and charges from sampled reports; these records are what it
is scored against, so they are written by the physics at the moment things happen, not derived from
reports.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)
class Trip:
    start: float
    start_lat: float
    start_lon: float
    soc_from: float
    odometer_from_km: float
    kind: str
    end: float | None = None
    end_lat: float | None = None
    end_lon: float | None = None
    soc_to: float | None = None
    odometer_to_km: float | None = None
    distance_km: float = 0.0
    energy_kwh: float = 0.0
    max_speed_kmh: float = 0.0

    @property
    def avg_speed_kmh(self) -> float:
        if self.end is None or self.end <= self.start:
            return 0.0
        return self.distance_km / ((self.end - self.start) / 3600.0)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["avg_speed_kmh"] = self.avg_speed_kmh
        return out


@dataclass(slots=True)
class Charge:
    start: float
    kind: str  # "AC" | "DC"
    soc_from: float
    lat: float
    lon: float
    end: float | None = None
    soc_to: float | None = None
    energy_added_kwh: float = 0.0  # into the battery
    energy_grid_kwh: float = 0.0  # drawn from the charger (losses included)
    peak_power_kw: float = 0.0
    ended_by: str = ""  # "limit" | "unplugged" | "stopped"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


MAX_RECORDS = 20_000  # per list and car: years of driving, yet bounded for 10,000-car fleets


@dataclass(slots=True)
class GroundTruth:
    vin: str
    trips: list[Trip] = field(default_factory=list)
    charges: list[Charge] = field(default_factory=list)
    commands: list[dict[str, Any]] = field(default_factory=list)

    def trim(self) -> None:
        """Forget the oldest records beyond ``MAX_RECORDS`` (called as records are added)."""
        for records in (self.trips, self.charges, self.commands):
            if len(records) > MAX_RECORDS:
                del records[: len(records) - MAX_RECORDS]

    def to_dict(self, *, include_open: bool = False) -> dict[str, Any]:
        """JSON-serialisable view; unfinished trips/charges only when ``include_open``."""
        return {
            "vin": self.vin,
            "trips": [t.to_dict() for t in self.trips if include_open or t.end is not None],
            "charges": [c.to_dict() for c in self.charges if include_open or c.end is not None],
            "commands": list(self.commands),
        }
