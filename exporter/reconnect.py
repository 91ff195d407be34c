"""Cars only their owner can bring back, told the same way on ``/``, ``/metrics`` and in the log.

Two ways lead there: a provider that knows the car needs the owner (a Smartcar connection that wants
Connect again, with a reconnect link), and a cloud that refused the account's sign-in during a
poll (``ReauthRequired``: the scheduler pauses the car). Both are "reconnect needed"; the gauge
``carmetrics_reauth_required`` is 1 for such a car and 0 for every other polled car, whatever the
provider, so one alert covers them all.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.health import Health
from exporter.scheduler import Scheduler


def needs_reconnect(scheduler: Scheduler, health: Health, vin: str) -> bool:
    provider = scheduler.provider_of(vin)
    if provider is not None and vin in provider.reauth_links():
        return True
    h = health.vehicles.get(vin)
    return h is not None and h.state == "paused"  # the scheduler pauses on ReauthRequired only


class ReconnectCollector(Collector):
    def __init__(self, scheduler: Scheduler, health: Health) -> None:
        self._scheduler = scheduler
        self._health = health

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "carmetrics_reauth_required",
            "1 while only the owner can bring the car back: reconnect it (Smartcar Connect, link "
            "on the landing page) or fix the account's sign-in; 0 otherwise.",
            labels=["vin"],
        )
        for vin in sorted(self._scheduler.vins):
            gauge.add_metric(
                [vin], 1.0 if needs_reconnect(self._scheduler, self._health, vin) else 0.0
            )
        yield gauge
