"""The hub's own counters on /metrics: reports it refused, per car and reason.

A separate collector (read at scrape time, like the providers' ones) so the vehicle renderer stays a
pure function of the latest snapshots, and a refused report leaves a trace an alert can watch.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.hub import Hub


class HubCollector(Collector):
    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        refused = CounterMetricFamily(
            "carmetrics_reports_refused",
            "Car reports refused by the exporter; reason=future: dated after their arrival by more "
            "than the clock-skew allowance (a wrong car or cloud clock).",
            labels=["vin", "reason"],
        )
        for (vin, reason), n in sorted(self._hub.refused.items()):
            refused.add_metric([vin, reason], n)
        yield refused
