"""``carmetrics_shard_*``: this instance's part in the fleet, read at scrape time.

An alert wants to see an instance that holds nothing while others are overloaded, renewals that
fail (the database is unreachable: the instance will let go of its accounts), and takeovers (an
instance died).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from exporter.fleet.forward import Forwarder
    from exporter.fleet.member import FleetMember


class ShardCollector(Collector):
    def __init__(self, member: FleetMember, forwarder: Forwarder | None = None) -> None:
        self._m = member
        self._fw = forwarder

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        m, s = self._m, self._m.stats
        held = m.held_accounts()
        yield GaugeMetricFamily(
            "carmetrics_shard_accounts_held",
            "Accounts whose lease this instance holds (and polls).",
            value=len(held),
        )
        yield GaugeMetricFamily(
            "carmetrics_shard_accounts_configured",
            "Accounts in the configuration, shared by every instance.",
            value=len(m.accounts),
        )
        account = GaugeMetricFamily(
            "carmetrics_shard_account_held",
            "1 for each account this instance holds.",
            labels=["account"],
        )
        for name in held:
            account.add_metric([name], 1)
        yield account
        yield GaugeMetricFamily(
            "carmetrics_shard_live_instances",
            "Instances whose heartbeat had not expired at the last heartbeat.",
            value=s.live_instances,
        )
        yield GaugeMetricFamily(
            "carmetrics_shard_database_up",
            "1 if the last heartbeat reached the fleet's PostgreSQL database.",
            value=1 if s.connected else 0,
        )
        for name, help_, value in (
            ("lease_renewals", "Heartbeats that renewed this instance's leases.", s.renewals),
            (
                "lease_failures",
                "Heartbeats that failed (database unreachable or too slow).",
                s.renewal_failures,
            ),
            ("leases_acquired", "Account leases won.", s.acquired),
            (
                "takeovers",
                "Accounts taken over after their previous holder's lease expired.",
                s.takeovers,
            ),
            ("leases_released", "Accounts handed back (balance, clean stop).", s.released),
            ("leases_lost", "Accounts let go of because a renewal failed too long.", s.lost),
        ):
            yield CounterMetricFamily(f"carmetrics_shard_{name}", help_, value=value)
        if self._fw is not None:
            fwd = CounterMetricFamily(
                "carmetrics_shard_forwarded_requests",
                "Requests (commands, webhooks) passed to the instance holding the car's account.",
                labels=["outcome"],
            )
            for outcome, n in sorted(self._fw.counts.items()):
                fwd.add_metric([outcome], n)
            yield fwd
