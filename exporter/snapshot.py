"""The canonical, provider-neutral picture of one vehicle at one moment.

A Snapshot is what crosses the line between providers (which know vendor JSON) and everything else
(metrics, history, analysis, commands), so it carries only canonical signal names in SI units.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from exporter.signals import BY_NAME, Value, check_values


@dataclass(frozen=True, slots=True)
class VehicleInfo:
    """Static facts about a vehicle, exported as ``carmetrics_vehicle_info``."""

    vin: str
    provider: str  # "smart" | "smartcar"
    make: str = ""
    model: str = ""
    year: str = ""
    series: str = ""  # smart: seriesCodeVs (HX11, HC11, HY11); Smartcar: empty
    account: str = ""  # config name of the account this vehicle was discovered through
    sw_version: str = ""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Values of canonical signals for one vehicle.

    ``car_time`` is the car's own report time (unix seconds) and identifies a report: two snapshots
    with the same ``car_time`` are the same report, which is how the history avoids duplicate rows while
    the car sleeps. ``received_at`` is when the exporter got it. Missing keys and ``None`` both mean
    "unknown"; unknown values are never exported as 0.
    """

    vin: str
    provider: str
    car_time: float
    received_at: float
    values: Mapping[str, Value] = field(default_factory=dict)
    source: str = "poll"  # "poll" | "webhook" | "command"

    @staticmethod
    def build(
        vin: str,
        provider: str,
        car_time: float,
        received_at: float,
        values: Mapping[str, Value],
        source: str = "poll",
    ) -> Snapshot:
        """Validate every value against the signal table and freeze the mapping."""
        clean = check_values(values)
        clean["last_update"] = float(car_time)
        return Snapshot(
            vin, provider, float(car_time), received_at, MappingProxyType(clean), source
        )

    def get(self, name: str) -> Value:
        if name not in BY_NAME:
            raise KeyError(f"unknown signal {name!r}")
        return self.values.get(name)

    def merged_over(self, older: Snapshot | None) -> Snapshot:
        """Fill signals this snapshot lacks from an older one (webhooks carry only what changed)."""
        if older is None:
            return self
        vals = dict(older.values)
        vals.update(self.values)
        return Snapshot(
            self.vin,
            self.provider,
            self.car_time,
            self.received_at,
            MappingProxyType(vals),
            self.source,
        )
