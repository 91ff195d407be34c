"""``carmetrics_commands_total{vin,command,outcome}``: commands by their final, verified outcome.

A small collector over a counter dict rather than a ``prometheus_client.Counter``: /metrics renders
in a worker thread, and reading a copy of a dict there needs no lock around the event loop's
increments. Every label is bounded (vehicles of the account, the fixed command list, the fixed
outcome list).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

NAME = "carmetrics_commands"


class CommandCounter(Collector):
    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str, str]] = Counter()

    def inc(self, vin: str, command: str, outcome: str) -> None:
        self._counts[(vin, command, outcome)] += 1

    def value(self, vin: str, command: str, outcome: str) -> int:
        return self._counts[(vin, command, outcome)]

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(NAME, "", labels=("vin", "command", "outcome"))

    def collect(self) -> Iterator[Metric]:
        fam = CounterMetricFamily(
            NAME,
            "Commands sent through the command API, by final outcome (verified = the car was seen "
            "in the requested state; accepted = the cloud took it and no report can show it).",
            labels=("vin", "command", "outcome"),
        )
        for (vin, command, outcome), n in sorted(dict(self._counts).items()):
            fam.add_metric([vin, command, outcome], n)
        yield fam
