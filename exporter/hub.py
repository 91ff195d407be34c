"""The hub: where every Snapshot arrives, from a poll, a webhook or a command check.

It decides what a snapshot *is* before anyone acts on it: a new car report (kept, shown, stored), a
re-read of the report we already have (shown, not stored again: no duplicate rows while the car sleeps)
or an older report arriving late (dropped: webhooks may come out of order). Metrics read the latest
snapshot per vehicle; the history subscribes to new reports. Neither needs to know where data came from.

A report dated after the moment it arrived (``car_time`` beyond ``received_at``, the exporter's own
clock, by more than ``MAX_SKEW``) is refused rather than clamped: because reports are ordered by car
time, one accepted report from the year 2100 would make every genuine later report "older" and freeze
the car, and a clamped one would store values under a time nobody measured them at. Refusals are
counted per car (``carmetrics_reports_refused_total``) and logged once per car. A car already holding
such a report (accepted before this rule, or before the exporter's clock was set right) recovers: its
report stops blocking newer ones as soon as it lies more than the allowance after a new arrival.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from exporter.logs import mask_vin
from exporter.snapshot import Snapshot, VehicleInfo

log = logging.getLogger(__name__)

# How far a car's report time may lie after its arrival: car clocks and cloud clocks drift by seconds,
# a telematics unit that lost GNSS time by a few minutes; anything beyond is a bad clock or a forgery.
MAX_SKEW: Final = 300.0


def from_the_future(car_time: float, now: float, skew: float = MAX_SKEW) -> bool:
    """True when a report time cannot be genuine at ``now`` (also used by providers that order
    signals by time, so a bad time cannot poison their bookkeeping either)."""
    return car_time > now + skew


class Outcome(StrEnum):
    NEW = "new"  # a report with a later car time than any seen: stored and shown
    REFRESH = (
        "refresh"  # same car time as the latest: shown (values may have been completed), not stored
    )
    STALE = "stale"  # older than the latest: ignored
    FUTURE = "future"  # dated after its arrival by more than MAX_SKEW: refused and counted


Listener = Callable[[Snapshot], None]


class Hub:
    def __init__(self, *, max_skew: float = MAX_SKEW) -> None:
        self.max_skew = max_skew
        self._vehicles: dict[str, VehicleInfo] = {}
        self._latest: dict[str, Snapshot] = {}
        self._on_report: list[Listener] = []
        self._on_vehicle: list[Callable[[VehicleInfo], None]] = []
        self._on_vehicle_removed: list[Callable[[str], None]] = []
        self.refused: Counter[tuple[str, str]] = Counter()  # (vin, reason) -> reports refused
        self._warned: set[str] = set()  # cars whose refusal was logged (once per car)

    # --- vehicles ---------------------------------------------------------------------------------
    def register(self, info: VehicleInfo) -> None:
        known = self._vehicles.get(info.vin)
        self._vehicles[info.vin] = info
        if known != info:
            for cb in self._on_vehicle:
                cb(info)

    def forget(self, vin: str) -> None:
        """Stop exporting a vehicle (removed from the account): its series disappear from /metrics.
        Listeners hear of it once; the history keeps what was stored."""
        known = self._vehicles.pop(vin, None)
        self._latest.pop(vin, None)
        for key in [k for k in self.refused if k[0] == vin]:
            del self.refused[key]
        self._warned.discard(vin)
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
        """Call ``cb`` when a vehicle is first seen or its description changes."""
        self._on_vehicle.append(cb)

    def on_vehicle_removed(self, cb: Callable[[str], None]) -> None:
        """Call ``cb(vin)`` when a vehicle is forgotten (it left its account)."""
        self._on_vehicle_removed.append(cb)

    def publish(self, snap: Snapshot) -> Outcome:
        if from_the_future(snap.car_time, snap.received_at, self.max_skew):
            self._refuse(snap)
            return Outcome.FUTURE
        prev = known = self._latest.get(snap.vin)
        if prev is not None and from_the_future(prev.car_time, snap.received_at, self.max_skew):
            log.warning(
                "report from the future replaced by a genuine one",
                extra={"vin": mask_vin(snap.vin), "car_time": _iso(prev.car_time)},
            )
            prev = None  # no longer orders anything; its values still fill a webhook's gaps
        if snap.source == "webhook":
            # webhooks carry only the signals that changed; the rest stays as last known
            snap = snap.merged_over(known)
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

    def _refuse(self, snap: Snapshot) -> None:
        self.refused[(snap.vin, "future")] += 1
        if snap.vin in self._warned:
            return
        self._warned.add(snap.vin)
        log.warning(
            "report dated in the future refused (the car's or the cloud's clock is wrong); "
            "further ones from this car are only counted in carmetrics_reports_refused_total",
            extra={
                "vin": mask_vin(snap.vin),
                "source": snap.source,
                "car_time": _iso(snap.car_time),
                "received_at": _iso(snap.received_at),
            },
        )


def _iso(t: float) -> str:
    try:
        return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return repr(t)
