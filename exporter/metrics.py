"""Prometheus exposition: the latest snapshot per vehicle plus the poller's own health, as text.

Why a hand-written renderer and not Gauges or prometheus_client's encoder: the data is proxied from a
cloud, so the families are rebuilt from what the hub holds at scrape time (a vehicle removed from an
account stops appearing, an unknown value is absent rather than a fake 0, concurrent scrapes cannot race
on shared metric objects), and a fleet is big: 10,000 cars are ~600,000 series, which the library's
encoder needs seconds of GIL for. Here each vehicle's lines are rendered once per *report* and cached,
keyed by the identity of its (immutable) snapshot; at the default cadence about 2 % of a fleet reports
between two scrapes, so a scrape is mostly joining cached bytes. Nothing here calls a cloud.

The text is the Prometheus text format (0.0.4, which Prometheus reads whatever it asked for). The rest
of the registry (process metrics, provider and command metrics) still goes through prometheus_client
in ``render_exposition``; ``VehicleCollector.collect`` parses this collector's own text, so the
library's encoders (and tests) see exactly the same samples as a scrape.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from operator import itemgetter
from typing import Final

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from exporter import __version__
from exporter.clock import Clock
from exporter.health import Health, VehicleHealth
from exporter.history import HistoryWriter
from exporter.hub import Hub
from exporter.signals import SIGNALS, Signal
from exporter.snapshot import Snapshot, VehicleInfo

CACHED = " Cached from the last poll; see carmetrics_last_update_timestamp_seconds for its age."

# set while ``render_exposition`` lets prometheus_client encode the *rest* of the registry
_SKIP_VEHICLES: ContextVar[bool] = ContextVar("carmetrics_skip_vehicle_collector", default=False)


def _label(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _header(name: str, help_: str, kind: str) -> bytes:
    text = help_.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {text}\n# TYPE {name} {kind}\n".encode()


def _value(v: float) -> str:
    """The library's float format (Go's), so our lines and its lines read the same."""
    text: str = floatToGoString(v)  # type: ignore[no-untyped-call]
    return text


@dataclass(frozen=True)
class _Line:
    """One signal's sample line(s), split around the VIN: ``name{vin="`` + VIN + ``rest``."""

    signal: Signal
    head: str  # 'carmetrics_x{vin="'
    tail: str  # '",tyre="front_left"} ' (value follows)
    enum_tails: tuple[tuple[str, str, str], ...]  # ENUM: (state, tail when on, tail when off)


@dataclass(frozen=True)
class _Family:
    """One metric family of the signal table: several signals may share it (e.g. the four tyres)."""

    name: str
    header: bytes  # HELP and TYPE lines
    private: bool  # location: only with [metrics] export_location
    lines: tuple[_Line, ...]


def _line(name: str, sig: Signal) -> _Line:
    labels = "".join(f',{k}="{_label(v)}"' for k, v in sig.labels)
    enum_tails = tuple(
        (s, f'"{labels},state="{_label(s)}"}} 1.0\n', f'"{labels},state="{_label(s)}"}} 0.0\n')
        for s in sig.states
    )
    return _Line(sig, f'{name}{{vin="', f'"{labels}}} ', enum_tails)


def _families() -> tuple[_Family, ...]:
    by_metric: dict[str, list[Signal]] = {}
    for sig in SIGNALS:
        by_metric.setdefault(sig.full_metric, []).append(sig)
    return tuple(
        _Family(
            name,
            _header(name, sigs[0].help + CACHED, "gauge"),
            sigs[0].private,
            tuple(_line(name, s) for s in sigs),
        )
        for name, sigs in by_metric.items()
    )


FAMILIES: Final = _families()

_HEALTH: Final = (  # (name, help, type); one chunk per vehicle each, in this order
    ("carmetrics_poll_duration_seconds", "Duration of the last poll of a vehicle.", "gauge"),
    ("carmetrics_polls_total", "Successful polls of a vehicle.", "counter"),
    (
        "carmetrics_poll_errors_total",
        "Failed polls by reason (bounded set) and the cloud's code (e.g. 8153, 429).",
        "counter",
    ),
    (
        "carmetrics_last_successful_poll_timestamp_seconds",
        "When the last poll of a vehicle succeeded.",
        "gauge",
    ),
    ("carmetrics_next_poll_timestamp_seconds", "When the next poll of a vehicle is due.", "gauge"),
    (
        "carmetrics_poll_interval_seconds",
        "Current polling interval of a vehicle (adapts to driving/charging/parked/asleep).",
        "gauge",
    ),
)
_HEALTH_HEADERS: Final = tuple(_header(*h) for h in _HEALTH)
_BUILD: Final = (
    _header("carmetrics_build_info", "carmetrics build information.", "gauge")
    + f'carmetrics_build_info{{version="{_label(__version__)}",python="{platform.python_version()}"}} 1.0\n'.encode()
)
_INFO_HEADER: Final = _header(
    "carmetrics_vehicle_info",
    "Static facts about each vehicle; always 1. Join on vin to label other metrics.",
    "gauge",
)
_AGE_HEADER: Final = _header(
    "carmetrics_data_age_seconds",
    "Seconds since the car's own last report, at scrape time.",
    "gauge",
)
_ROWS_HEADER: Final = _header(
    "carmetrics_db_rows_written_total", "Rows written to the SQLite history.", "counter"
)
_ERRORS_HEADER: Final = _header(
    "carmetrics_db_write_errors_total", "Failed history transactions (rows are retried).", "counter"
)
_LAST_WRITE_HEADER: Final = _header(
    "carmetrics_db_last_write_timestamp_seconds", "When the history last committed rows.", "gauge"
)
_UP_HEADER: Final = _header(
    "carmetrics_api_up", "1 when the last call to a cloud account succeeded.", "gauge"
)


def _info_line(v: VehicleInfo) -> bytes:
    pairs = zip(
        ("vin", "provider", "make", "model", "year", "series", "account"),
        (v.vin, v.provider, v.make, v.model, v.year, v.series, v.account),
        strict=True,
    )
    labels = ",".join(f'{k}="{_label(val)}"' for k, val in pairs)
    return f"carmetrics_vehicle_info{{{labels}}} 1.0\n".encode()


def _signal_chunks(families: tuple[_Family, ...], snap: Snapshot) -> tuple[bytes, ...]:
    """One bytes chunk per family: this snapshot's lines of it (empty when it has no such value)."""
    vin = _label(snap.vin)
    values = snap.values
    out = []
    for fam in families:
        parts: list[str] = []
        for line in fam.lines:
            value = values.get(line.signal.name)
            if value is None:
                continue
            if line.enum_tails:
                for state, on, off in line.enum_tails:
                    parts += (line.head, vin, on if value == state else off)
            else:
                parts += (line.head, vin, line.tail, _value(float(value)), "\n")
        out.append("".join(parts).encode())
    return tuple(out)


def _health_key(h: VehicleHealth) -> tuple[object, ...]:
    return (
        h.provider,
        h.polls,
        tuple(h.errors.items()) if h.errors else (),
        h.last_duration,
        h.last_success,
        h.next_poll,
        h.interval,
    )


def _health_chunks(vin: str, h: VehicleHealth) -> tuple[bytes, ...]:
    v, p = _label(vin), _label(h.provider)
    errors = "".join(
        f'carmetrics_poll_errors_total{{vin="{v}",provider="{p}",reason="{_label(r)}",'
        f'code="{_label(c)}"}} {_value(n)}\n'
        for (r, c), n in list(h.errors.items())
    )

    def gauge(name: str, x: float | None) -> bytes:
        return b"" if x is None else f'{name}{{vin="{v}"}} {_value(x)}\n'.encode()

    return (
        gauge("carmetrics_poll_duration_seconds", h.last_duration),
        f'carmetrics_polls_total{{vin="{v}",provider="{p}"}} {_value(h.polls)}\n'.encode(),
        errors.encode(),
        gauge("carmetrics_last_successful_poll_timestamp_seconds", h.last_success),
        gauge("carmetrics_next_poll_timestamp_seconds", h.next_poll),
        gauge("carmetrics_poll_interval_seconds", h.interval),
    )


def _columns(headers: Sequence[bytes], rows: list[tuple[bytes, ...]]) -> list[bytes]:
    """Family ``i`` = its header + every vehicle's chunk ``i``.

    Not ``zip(*rows)``: that makes one iterator per vehicle, 10k short-lived GC-tracked objects that get
    promoted and trigger full collections (tens of ms holding the GIL) every few scrapes.
    """
    return [head + b"".join(map(itemgetter(i), rows)) for i, head in enumerate(headers)]


class VehicleCollector(Collector):
    """Vehicle signals and per-vehicle poll health, rendered from memory with per-vehicle caches."""

    def __init__(
        self,
        hub: Hub,
        health: Health,
        clock: Clock,
        *,
        export_location: bool = False,
        max_data_age: float = 7 * 86400.0,
        history: HistoryWriter | None = None,
    ) -> None:
        self.hub = hub
        self.health = health
        self.clock = clock
        self.export_location = export_location
        self.max_data_age = max_data_age
        self.history = history
        self.families = tuple(f for f in FAMILIES if export_location or not f.private)
        self._headers = tuple(f.header for f in self.families)
        # vin -> (the object the entry was rendered from, its rendered chunks); replaced, never mutated
        self._signals: dict[str, tuple[Snapshot, tuple[bytes, ...]]] = {}
        self._infos: dict[str, tuple[VehicleInfo, bytes]] = {}
        self._healths: dict[str, tuple[tuple[object, ...], tuple[bytes, ...]]] = {}

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        """The same samples as a scrape, for prometheus_client's encoders (e.g. OpenMetrics) and tests."""
        if _SKIP_VEHICLES.get():
            return iter(())
        return iter(text_string_to_metric_families(b"".join(self.render()).decode()))

    # --- rendering --------------------------------------------------------------------------------
    def render(self) -> list[bytes]:
        """The exposition of this collector as chunks (one or more per family), ready to write."""
        now = self.clock.now()
        vehicles = dict(self.hub.vehicles)
        latest = self.hub.latest_all()
        out = [_BUILD, _INFO_HEADER, *(self._info(v) for v in vehicles.values())]
        out += self._signal_families(latest, now)
        out += self._health_families(vehicles, latest, now)
        out += self._db()
        self._forget_gone(vehicles, latest)
        return out

    def _info(self, v: VehicleInfo) -> bytes:
        hit = self._infos.get(v.vin)
        if hit is not None and hit[0] is v:
            return hit[1]
        line = _info_line(v)
        self._infos[v.vin] = (v, line)
        return line

    def _signal_families(self, latest: dict[str, Snapshot], now: float) -> list[bytes]:
        rows = []
        for vin, snap in latest.items():
            # a car silent for longer than max_data_age drops out, so Prometheus marks its series stale
            if now - snap.car_time > self.max_data_age:
                continue
            hit = self._signals.get(vin)
            if hit is None or hit[0] is not snap:
                hit = (snap, _signal_chunks(self.families, snap))
                self._signals[vin] = hit
            rows.append(hit[1])
        return _columns(self._headers, rows)

    def _health_families(
        self, vehicles: dict[str, VehicleInfo], latest: dict[str, Snapshot], now: float
    ) -> list[bytes]:
        rows = []
        healths = self.health.vehicles
        # keys only: 10k (vin, health) pairs alive through the loop would be promoted like zip's
        # iterators (see _columns)
        for vin in list(healths):
            h = healths.get(vin)
            if h is None or vin not in vehicles:
                continue
            key = _health_key(h)
            hit = self._healths.get(vin)
            if hit is None or hit[0] != key:
                hit = (key, _health_chunks(vin, h))
                self._healths[vin] = hit
            rows.append(hit[1])
        out = _columns(_HEALTH_HEADERS, rows)
        age = "".join(
            f'carmetrics_data_age_seconds{{vin="{_label(vin)}"}} '
            f"{_value(max(0.0, now - snap.car_time))}\n"
            for vin, snap in latest.items()
        )
        out.append(_AGE_HEADER + age.encode())
        up = "".join(
            f'carmetrics_api_up{{provider="{_label(p)}",account="{_label(a)}"}} '
            f"{'1.0' if is_up else '0.0'}\n"
            for (p, a), is_up in list(self.health.api_up.items())
        )
        out.append(_UP_HEADER + up.encode())
        return out

    def _db(self) -> list[bytes]:
        if self.history is None:
            return []
        h = self.history
        out = [
            _ROWS_HEADER + f"carmetrics_db_rows_written_total {_value(h.rows_written)}\n".encode(),
            _ERRORS_HEADER
            + f"carmetrics_db_write_errors_total {_value(h.write_errors)}\n".encode(),
        ]
        if h.last_write is not None:
            line = f"carmetrics_db_last_write_timestamp_seconds {_value(h.last_write)}\n"
            out.append(_LAST_WRITE_HEADER + line.encode())
        return out

    def _forget_gone(self, vehicles: dict[str, VehicleInfo], latest: dict[str, Snapshot]) -> None:
        """Drop cache entries of vehicles no longer in the hub (removed from an account)."""
        for cache, alive in (
            (self._signals, latest),
            (self._infos, vehicles),
            (self._healths, vehicles),
        ):
            if len(cache) > len(alive):
                for vin in [v for v in cache if v not in alive]:
                    cache.pop(vin, None)


def make_registry(collector: VehicleCollector) -> CollectorRegistry:
    """A fresh registry per app (never the global one), with process metrics added explicitly."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def render_exposition(registry: CollectorRegistry, collector: VehicleCollector) -> list[bytes]:
    """The /metrics body in chunks: the vehicles' cached text, then the rest of the registry
    (process, provider and command metrics) through prometheus_client's text encoder."""
    chunks = collector.render()
    token = _SKIP_VEHICLES.set(True)
    try:
        chunks.append(generate_latest(registry))
    finally:
        _SKIP_VEHICLES.reset(token)
    return chunks
