"""Smartcar's own metrics: request budget, vehicle errors, webhook traffic.

``carmetrics_reauth_required`` is every provider's (``exporter.reconnect``).

A custom collector over the providers' state (read on each scrape, never calling Smartcar), so
values that belong to a car disappear with the car. Names follow the Prometheus guidelines: counts
carry a ``_calls`` unit word, counters end in ``_total``, times in ``_timestamp_seconds``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.providers.smartcar.provider import SmartcarProvider
from exporter.providers.smartcar.v3_provider import SmartcarV3Provider

METRIC_NAMES = (
    "carmetrics_api_calls_total",
    "carmetrics_api_budget_used_calls",
    "carmetrics_api_budget_remaining_calls",
    "carmetrics_api_budget_limit_calls",
    "carmetrics_api_budget_reset_timestamp_seconds",
    "carmetrics_api_min_poll_interval_seconds",
    "carmetrics_vehicle_error",
    "carmetrics_webhook_events_total",
    "carmetrics_webhook_last_event_timestamp_seconds",
)


class SmartcarCollector(Collector):
    def __init__(
        self, providers: Callable[[], Iterable[SmartcarProvider | SmartcarV3Provider]]
    ) -> None:
        self._providers = providers

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        providers = list(self._providers())
        calls = CounterMetricFamily(
            "carmetrics_api_calls",
            "Billable API calls sent by this process (each path of a Smartcar batch counts).",
            labels=["provider", "vin"],
        )
        used = GaugeMetricFamily(
            "carmetrics_api_budget_used_calls",
            "Billable calls used in the current billing month (persisted across restarts).",
            labels=["provider", "vin"],
        )
        left = GaugeMetricFamily(
            "carmetrics_api_budget_remaining_calls",
            "Billable calls left in the current billing month.",
            labels=["provider", "vin"],
        )
        limit = GaugeMetricFamily(
            "carmetrics_api_budget_limit_calls",
            "Monthly call budget per vehicle (the plan limit).",
            labels=["provider", "vin"],
        )
        reset = GaugeMetricFamily(
            "carmetrics_api_budget_reset_timestamp_seconds",
            "When the monthly call budget starts again (start of the next UTC month).",
            labels=["provider", "account"],
        )
        floor = GaugeMetricFamily(
            "carmetrics_api_min_poll_interval_seconds",
            "Shortest poll interval the budget (and webhooks) currently allow.",
            labels=["provider", "vin"],
        )
        errors = GaugeMetricFamily(
            "carmetrics_vehicle_error",
            "1 while a Smartcar VEHICLE_ERROR is active (0 once RESOLVED).",
            labels=["vin", "error"],
        )
        hooks = CounterMetricFamily(
            "carmetrics_webhook_events",
            "Webhook deliveries received, by event and outcome.",
            labels=["provider", "event", "outcome"],
        )
        last_hook = GaugeMetricFamily(
            "carmetrics_webhook_last_event_timestamp_seconds",
            "When the last webhook delivery for the vehicle was accepted.",
            labels=["vin"],
        )
        absent = CounterMetricFamily(
            "carmetrics_signals_absent",
            "Smartcar v3 signals a poll left absent: status ERROR or UNAVAILABLE in the reply, or "
            "UNPARSED (a body carmetrics could not read). The poll itself succeeded.",
            labels=["provider", "account", "status"],
        )
        for p in providers:
            if isinstance(p, SmartcarV3Provider):
                for status, n in sorted(p.client.absent_total.items()):
                    absent.add_metric([p.name, p.account, status], n)
            reset.add_metric([p.name, p.account], p.budget.reset_at())
            for (event, outcome), n in sorted(p.webhook_events.items()):
                hooks.add_metric([p.name, event, outcome], n)
            for vin in sorted(p.known_vins()):
                calls.add_metric([p.name, vin], p.budget.sent_total.get(vin, 0))
                used.add_metric([p.name, vin], p.budget.used(vin))
                left.add_metric([p.name, vin], p.budget.remaining(vin))
                limit.add_metric([p.name, vin], p.budget.per_vehicle)
                floor.add_metric([p.name, vin], p.min_poll_interval(vin))
                for key, active in sorted(p.error_states(vin).items()):
                    errors.add_metric([vin, key], 1.0 if active else 0.0)
                seen = p.webhook_seen.get(vin)
                if seen is not None:
                    last_hook.add_metric([vin], seen)
        yield from (
            calls,
            used,
            left,
            limit,
            reset,
            floor,
            errors,
            hooks,
            last_hook,
            absent,
        )
