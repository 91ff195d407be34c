"""/metrics at fleet scale: each car's lines are cached per report, and the cache never shows old data.

The renderer keeps rendered text per vehicle keyed by its snapshot; these tests pin down that a new
report, a completed re-read, a new error, a removed car, an aged-out car and odd label values all show
up on the very next scrape, and that the library's own encoders see the same samples.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.clock import ManualClock
from exporter.health import Health
from exporter.hub import Hub
from exporter.metrics import VehicleCollector, make_registry, render_exposition
from exporter.signals import Value
from exporter.snapshot import Snapshot, VehicleInfo

Key = tuple[str, frozenset[tuple[str, str]]]


class Fleet:
    def __init__(self, n: int = 3, max_age: float = 7 * 86400) -> None:
        self.clock = ManualClock()
        self.hub, self.health = Hub(), Health()
        self.vins = [f"HESXR1C40PS{i:06d}" for i in range(n)]
        for i, vin in enumerate(self.vins):
            self.hub.register(VehicleInfo(vin, "smart", "smart", "#1", "2024", "HX11", "demo"))
            self.report(vin, soc=0.5 + i / 100)
            h = self.health.vehicle(vin)
            h.provider, h.polls, h.next_poll = "smart", 1, self.clock.now() + 600
        self.collector = VehicleCollector(self.hub, self.health, self.clock, max_data_age=max_age)
        self.registry = make_registry(self.collector)

    def report(self, vin: str, **values: Value) -> None:
        t = self.clock.now()
        mapped = {"battery_soc": values.get("soc"), "charging_state": values.get("charging")}
        self.hub.publish(Snapshot.build(vin, "smart", t, t, mapped))

    def scrape(self) -> str:
        return b"".join(render_exposition(self.registry, self.collector)).decode()

    def samples(self) -> dict[Key, float]:
        return parse(self.scrape())


def parse(body: str) -> dict[Key, float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(body)
        for s in fam.samples
    }


def soc(samples: dict[Key, float], vin: str) -> float | None:
    return samples.get(("carmetrics_battery_soc_ratio", frozenset({("vin", vin)})))


def test_a_new_report_shows_on_the_next_scrape() -> None:
    f = Fleet()
    assert soc(f.samples(), f.vins[1]) == 0.51
    f.clock.advance(60)
    f.report(f.vins[1], soc=0.77)
    s = f.samples()
    assert soc(s, f.vins[1]) == 0.77
    assert soc(s, f.vins[0]) == 0.5  # the others come from the cache, unchanged


def test_an_enum_moves_its_one_on_state() -> None:
    f = Fleet(1)
    f.report(f.vins[0], soc=0.5, charging="plugged")
    f.clock.advance(60)
    f.report(f.vins[0], soc=0.5, charging="charging")
    s = f.samples()
    on = [dict(k[1])["state"] for k, v in s.items() if k[0] == "carmetrics_charging_state" and v]
    assert on == ["charging"]


def test_health_changes_show_without_a_new_report() -> None:
    f = Fleet(1)
    f.scrape()
    h = f.health.vehicle(f.vins[0])
    h.errors[("upstream", "8153")] += 1
    h.polls += 1
    s = f.samples()
    err = frozenset(
        {("vin", f.vins[0]), ("provider", "smart"), ("reason", "upstream"), ("code", "8153")}
    )
    assert s[("carmetrics_poll_errors_total", err)] == 1
    assert (
        s[("carmetrics_polls_total", frozenset({("vin", f.vins[0]), ("provider", "smart")}))] == 2
    )
    h.errors[("upstream", "8153")] += 1
    assert f.samples()[("carmetrics_poll_errors_total", err)] == 2


def test_data_age_moves_with_the_clock_between_scrapes() -> None:
    f = Fleet(1)
    age = ("carmetrics_data_age_seconds", frozenset({("vin", f.vins[0])}))
    assert f.samples()[age] == 0
    f.clock.advance(42)
    assert f.samples()[age] == 42


def test_a_removed_car_disappears_and_leaves_no_cache_behind() -> None:
    f = Fleet(3)
    f.scrape()
    f.hub.forget(f.vins[2])
    body = f.scrape()
    assert f.vins[2] not in body
    assert f.vins[2] not in f.collector._signals and f.vins[2] not in f.collector._infos


def test_a_car_that_ages_out_comes_back_with_its_next_report() -> None:
    f = Fleet(1, max_age=100)
    f.scrape()
    f.clock.advance(101)
    assert soc(f.samples(), f.vins[0]) is None
    f.report(f.vins[0], soc=0.4)
    assert soc(f.samples(), f.vins[0]) == 0.4


def test_every_family_appears_once_whatever_the_fleet_size() -> None:
    body = Fleet(5).scrape()
    types = [line.split()[2] for line in body.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types))
    assert (
        sum(1 for line in body.splitlines() if line.startswith("carmetrics_battery_soc_ratio{"))
        == 5
    )


def test_odd_label_values_are_escaped_and_read_back_exactly() -> None:
    f = Fleet(1)
    odd = 'Model "Y"\\ long\nrange'
    f.hub.register(VehicleInfo(f.vins[0], "smart", "smart", odd, "2024", "HX11", "demo"))
    s = f.samples()
    info = [dict(k[1]) for k in s if k[0] == "carmetrics_vehicle_info"]
    assert info[0]["model"] == odd


def test_library_encoders_see_the_same_samples_as_a_scrape() -> None:
    f = Fleet(4)
    f.health.vehicle(f.vins[0]).errors[("timeout", "")] += 3
    ours = f.samples()
    theirs = parse(generate_latest(f.registry).decode())
    assert any(k[0] == "process_cpu_seconds_total" for k in ours)  # the rest of the registry too
    assert {k: v for k, v in ours.items() if k[0].startswith("carmetrics_")} == {
        k: v for k, v in theirs.items() if k[0].startswith("carmetrics_")
    }
    assert ours.keys() == theirs.keys()  # process metrics differ in value only


async def test_the_endpoint_streams_text_format_plain_or_gzipped(tmp_path: Path) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from exporter.config import Config
    from exporter.runtime import Runtime
    from exporter.server import make_app

    clock = ManualClock()
    runtime = await Runtime.create(Config(db=tmp_path / "h.db"), clock)
    vin = "HESXR1C40PS000042"
    runtime.hub.register(VehicleInfo(vin, "smart", "smart", "#3", "2024", "HC11", "demo"))
    runtime.hub.publish(
        Snapshot.build(vin, "smart", clock.now(), clock.now(), {"battery_soc": 0.9})
    )
    async with TestClient(TestServer(make_app(runtime))) as client:
        # Prometheus asks for OpenMetrics first; it gets the text format, which it reads as well
        accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
        plain = await client.get(
            "/metrics", headers={"Accept": accept, "Accept-Encoding": "identity"}
        )
        body = await plain.read()
        assert plain.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert int(plain.headers["Content-Length"]) == len(body)
        zipped = await client.get("/metrics", headers={"Accept-Encoding": "gzip"})
        assert zipped.headers["Content-Encoding"] == "gzip"
        unzipped = await zipped.read()  # aiohttp's client inflates it
    for text in (body.decode(), unzipped.decode()):
        assert soc(parse(text), vin) == 0.9
        assert "process_cpu_seconds_total" in text and "# EOF" not in text
