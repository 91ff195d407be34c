"""The journal reader's counters on /metrics: reads that worked or failed (by reason and the
cloud's code) and journal trips handed to the history, so an alert can see a journal that stopped
arriving while polling still works."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.journal_fetch import JournalFetcher


class JournalCollector(Collector):
    def __init__(self, fetcher: JournalFetcher) -> None:
        self._fetcher = fetcher

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        f = self._fetcher
        reads = CounterMetricFamily(
            "carmetrics_journal_reads",
            "Reads of the cars' own trip journals; result=failed by reason and the cloud's code.",
            labels=["result", "reason", "code"],
        )
        reads.add_metric(["ok", "", ""], f.fetches - f.failures)
        for (reason, code), n in sorted(f.failed_by.items()):
            reads.add_metric(["failed", reason, code], n)
        yield reads
        yield CounterMetricFamily(
            "carmetrics_journal_trips_read",
            "Trips read from the cars' own journals (a re-read trip counts again).",
            value=f.trips_stored,
        )
