"""Prometheus exposition: a custom collector over the latest snapshot per vehicle, plus self-metrics.

Why a collector and not global Gauges: the data is proxied from a cloud, so families are built fresh on
every scrape from what the hub holds now. A vehicle removed from an account simply stops appearing, a
value that became unknown is absent (never a fake 0), and concurrent scrapes cannot race on shared
metric objects. The scrape never calls a cloud: it reads memory only.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.clock import Clock
from exporter.health import Health
from exporter.history import History
from exporter.hub import Hub
from exporter.signals import SIGNALS, Kind, Signal
from exporter.snapshot import Snapshot, VehicleInfo

CACHED = " Cached from the last poll; see carmetrics_last_update_timestamp_seconds for its age."


@dataclass(frozen=True)
class _Family:
    name: str
    help: str
    label_keys: tuple[str, ...]  # after "vin"
    signals: tuple[Signal, ...]
    kind: Kind


def _families() -> tuple[_Family, ...]:
    by_metric: dict[str, list[Signal]] = {}
    for sig in SIGNALS:
        by_metric.setdefault(sig.full_metric, []).append(sig)
    out = []
    for name, sigs in by_metric.items():
        first = sigs[0]
        keys = tuple(k for k, _ in first.labels)
        if first.kind is Kind.ENUM:
            keys = (*keys, "state")
        out.append(_Family(name, first.help + CACHED, keys, tuple(sigs), first.kind))
    return tuple(out)


FAMILIES = _families()


class VehicleCollector(Collector):
    """Vehicle signals and per-vehicle poll health, rendered from memory."""

    def __init__(
        self,
        hub: Hub,
        health: Health,
        clock: Clock,
        *,
        export_location: bool = False,
        max_data_age: float = 7 * 86400.0,
        history: History | None = None,
    ) -> None:
        self.hub = hub
        self.health = health
        self.clock = clock
        self.export_location = export_location
        self.max_data_age = max_data_age
        self.history = history

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        now = self.clock.now()
        vehicles = dict(self.hub.vehicles)
        latest = self.hub.latest_all()
        yield from self._info(vehicles)
        yield from self._signals(latest, now)
        yield from self._health(vehicles, latest, now)
        yield from self._db()

    def _info(self, vehicles: dict[str, VehicleInfo]) -> Iterator[Metric]:
        build = GaugeMetricFamily(
            "carmetrics_build_info", "carmetrics build information.", labels=["version", "python"]
        )
        build.add_metric([__version__, platform.python_version()], 1)
        yield build
        info = GaugeMetricFamily(
            "carmetrics_vehicle_info",
            "Static facts about each vehicle; always 1. Join on vin to label other metrics.",
            labels=["vin", "provider", "make", "model", "year", "series", "account"],
        )
        for v in vehicles.values():
            info.add_metric([v.vin, v.provider, v.make, v.model, v.year, v.series, v.account], 1)
        yield info

    def _signals(self, latest: dict[str, Snapshot], now: float) -> Iterator[Metric]:
        # a car silent for longer than max_data_age drops out, so Prometheus marks its series stale
        snaps = [s for s in latest.values() if now - s.car_time <= self.max_data_age]
        for fam in FAMILIES:
            if fam.signals[0].private and not self.export_location:
                continue
            g = GaugeMetricFamily(fam.name, fam.help, labels=["vin", *fam.label_keys])
            for snap in snaps:
                for sig in fam.signals:
                    value = snap.values.get(sig.name)
                    if value is None:
                        continue
                    labels = [snap.vin, *(v for _, v in sig.labels)]
                    if sig.kind is Kind.ENUM:
                        for state in sig.states:
                            g.add_metric([*labels, state], 1.0 if value == state else 0.0)
                    else:
                        g.add_metric(labels, float(value))
            yield g

    def _health(
        self, vehicles: dict[str, VehicleInfo], latest: dict[str, Snapshot], now: float
    ) -> Iterator[Metric]:
        dur = GaugeMetricFamily(
            "carmetrics_poll_duration_seconds",
            "Duration of the last poll of a vehicle.",
            labels=["vin"],
        )
        polls = CounterMetricFamily(
            "carmetrics_polls", "Successful polls of a vehicle.", labels=["vin", "provider"]
        )
        errs = CounterMetricFamily(
            "carmetrics_poll_errors",
            "Failed polls by reason (bounded set) and the cloud's code (e.g. 8153, 429).",
            labels=["vin", "provider", "reason", "code"],
        )
        ok = GaugeMetricFamily(
            "carmetrics_last_successful_poll_timestamp_seconds",
            "When the last poll of a vehicle succeeded.",
            labels=["vin"],
        )
        nxt = GaugeMetricFamily(
            "carmetrics_next_poll_timestamp_seconds",
            "When the next poll of a vehicle is due.",
            labels=["vin"],
        )
        interval = GaugeMetricFamily(
            "carmetrics_poll_interval_seconds",
            "Current polling interval of a vehicle (adapts to driving/charging/parked/asleep).",
            labels=["vin"],
        )
        age = GaugeMetricFamily(
            "carmetrics_data_age_seconds",
            "Seconds since the car's own last report, at scrape time.",
            labels=["vin"],
        )
        for vin, h in list(self.health.vehicles.items()):
            if vin not in vehicles:
                continue
            if h.last_duration is not None:
                dur.add_metric([vin], h.last_duration)
            polls.add_metric([vin, h.provider], h.polls)
            for (reason, code), n in list(h.errors.items()):
                errs.add_metric([vin, h.provider, reason, code], n)
            if h.last_success is not None:
                ok.add_metric([vin], h.last_success)
            if h.next_poll is not None:
                nxt.add_metric([vin], h.next_poll)
            if h.interval is not None:
                interval.add_metric([vin], h.interval)
        for vin, snap in latest.items():
            age.add_metric([vin], max(0.0, now - snap.car_time))
        up = GaugeMetricFamily(
            "carmetrics_api_up",
            "1 when the last call to a cloud account succeeded.",
            labels=["provider", "account"],
        )
        for (provider, account), is_up in list(self.health.api_up.items()):
            up.add_metric([provider, account], 1.0 if is_up else 0.0)
        yield from (dur, polls, errs, ok, nxt, interval, age, up)

    def _db(self) -> Iterator[Metric]:
        if self.history is None:
            return
        yield CounterMetricFamily(
            "carmetrics_db_rows_written",
            "Rows written to the SQLite history.",
            value=self.history.rows_written,
        )
        yield CounterMetricFamily(
            "carmetrics_db_write_errors",
            "Failed history transactions (rows are retried).",
            value=self.history.write_errors,
        )
        if self.history.last_write is not None:
            yield GaugeMetricFamily(
                "carmetrics_db_last_write_timestamp_seconds",
                "When the history last committed rows.",
                value=self.history.last_write,
            )


def make_registry(collector: VehicleCollector) -> CollectorRegistry:
    """A fresh registry per app (never the global one), with process metrics added explicitly."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
