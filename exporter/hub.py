"""The hub: where every Snapshot arrives, from a poll, a webhook or a command check.

It decides what a snapshot *is* before anyone acts on it: a new car report (kept, shown, stored), a
re-read of the report we already have (shown, not stored again: no duplicate rows while the car sleeps)
or an older report arriving late (dropped: webhooks may come out of order). Metrics read the latest
snapshot per vehicle; the history subscribes to new reports. Neither needs to know where data came from.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from enum import StrEnum
from types import MappingProxyType

from exporter.snapshot import Snapshot, VehicleInfo

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    NEW = "new"  # a report with a later car time than any seen: stored and shown
    REFRESH = (
        "refresh"  # same car time as the latest: shown (values may have been completed), not stored
    )
    STALE = "stale"  # older than the latest: ignored


Listener = Callable[[Snapshot], None]


class Hub:
    def __init__(self) -> None:
        self._vehicles: dict[str, VehicleInfo] = {}
        self._latest: dict[str, Snapshot] = {}
        self._on_report: list[Listener] = []
        self._on_vehicle: list[Callable[[VehicleInfo], None]] = []
        self._on_vehicle_removed: list[Callable[[str], None]] = []

    # --- vehicles ---------------------------------------------------------------------------------
    def register(self, info: VehicleInfo) -> None:
        known = self._vehicles.get(info.vin)
        self._vehicles[info.vin] = info
        if known != info:
            for cb in self._on_vehicle:
                cb(info)

    def forget(self, vin: str) -> None:
        """Stop exporting a vehicle (removed from the account): its series disappear from /metrics."""
        known = self._vehicles.pop(vin, None)
        self._latest.pop(vin, None)
        if known is not None:
            for cb in self._on_vehicle_removed:
                cb(vin)

    @property
    def vehicles(self) -> Mapping[str, VehicleInfo]:
        return MappingProxyType(self._vehicles)

    # --- data -------------------------------------------------------------------------------------
    def latest(self, vin: str) -> Snapshot | None:
        return self._latest.get(vin)

    def latest_all(self) -> dict[str, Snapshot]:
        """A shallow copy, safe to iterate while polls keep arriving (e.g. from a render thread)."""
        return dict(self._latest)

    def subscribe(self, on_report: Listener) -> None:
        """Call ``on_report`` with every NEW report (in arrival order)."""
        self._on_report.append(on_report)

    def on_vehicle(self, cb: Callable[[VehicleInfo], None]) -> None:
        self._on_vehicle.append(cb)

    def on_vehicle_removed(self, cb: Callable[[str], None]) -> None:
        """Call ``cb`` with the VIN of a vehicle that left its account (after ``forget``)."""
        self._on_vehicle_removed.append(cb)

    def publish(self, snap: Snapshot) -> Outcome:
        prev = self._latest.get(snap.vin)
        if snap.source == "webhook":
            # webhooks carry only the signals that changed; the rest stays as last known
            snap = snap.merged_over(prev)
        if prev is not None and snap.car_time < prev.car_time:
            log.debug("stale report ignored", extra={"vin": snap.vin, "source": snap.source})
            return Outcome.STALE
        if snap.vin not in self._vehicles:
            self.register(VehicleInfo(vin=snap.vin, provider=snap.provider))
        self._latest[snap.vin] = snap
        if prev is not None and snap.car_time == prev.car_time:
            return Outcome.REFRESH
        for cb in self._on_report:
            cb(snap)
        return Outcome.NEW
