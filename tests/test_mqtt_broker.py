"""MQTT end to end: the real exporter (embedded smart simulator, ManualClock) publishing to a real
Mosquitto broker with a password file and an ACL, watched by a real MQTT client subscribed to
everything, commanded by another as Home Assistant would.

What is checked against what: discovery configs against the shape Home Assistant's MQTT platforms
require (``ha_shape``, written from Home Assistant's documentation, not from our own code), states
against the hub's latest report converted independently here, a lock command against the simulated
car's own state and the audit table, and the README's evcc block against the topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import yaml
from aiohttp.test_utils import TestServer

from bench.mosquitto import USERS, Broker, free_port
from exporter.clock import ManualClock
from exporter.config import load
from exporter.mqtt.publisher import Publisher
from exporter.mqtt.wiring import PUBLISHER
from exporter.runtime import Runtime
from exporter.server import make_app
from tests.conftest import require_tool
from tests.ha_shape import validate_config

ROOT = Path(__file__).resolve().parent.parent

CONFIG = """
[exporter]
port = {port}
db = "{db}"
[poll]
jitter = 0
timeout = 2
[simulator]
enabled = true
seed = 7
smart_vehicles = {vehicles}
[[accounts]]
name = "eu"
provider = "smart"
region = "EU"
simulator = true
[commands]
cooldown = 5
verify_delay = 8
verify_interval = 10
verify_timeout = 90
[mqtt]
url = "{url}"
username = "carmetrics"
commands = true
reconnect_min = 0.05
reconnect_max = 0.4
status_interval = 300
"""


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = Broker(require_tool("mosquitto"), tmp_path_factory.mktemp("mosquitto"))
    require_tool("mosquitto_passwd")
    b.start()
    try:
        yield b
    finally:
        b.stop()


@dataclass
class Watcher:
    """A client subscribed to ``#``: the latest payload per topic and every message in order."""

    client: aiomqtt.Client
    latest: dict[str, str] = field(default_factory=dict)
    log: list[tuple[str, str, bool]] = field(default_factory=list)

    def count(self, pred: Callable[[str], bool]) -> int:
        return sum(1 for topic, _, _ in self.log if pred(topic))

    def configs(self, discovery: str = "homeassistant") -> dict[str, dict[str, Any]]:
        return {
            k: json.loads(v)
            for k, v in self.latest.items()
            if k.startswith(discovery + "/") and k.endswith("/config") and v
        }


@contextlib.asynccontextmanager
async def watching(broker: Broker, user: str = "observer") -> AsyncIterator[Watcher]:
    async with aiomqtt.Client(
        "127.0.0.1", broker.port, username=user, password=USERS[user], identifier=f"t-{user}"
    ) as client:
        w = Watcher(client)
        await client.subscribe("#", qos=1)

        async def read() -> None:
            async for m in client.messages:
                payload = m.payload.decode() if isinstance(m.payload, bytes) else ""
                w.latest[m.topic.value] = payload
                w.log.append((m.topic.value, payload, m.retain))

        task = asyncio.create_task(read())
        try:
            yield w
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def until(cond: Callable[[], object], what: str, tries: int = 500) -> None:
    for _ in range(tries):
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Exporter:
    rt: Runtime
    clock: ManualClock
    server: TestServer
    db: Path

    @property
    def publisher(self) -> Publisher:
        return self.server.app[PUBLISHER]

    @property
    def fleet(self) -> Any:
        return self.rt.simulator.fleet

    async def move(self, seconds: float, step: float = 300.0) -> None:
        """Move the shared clock, letting polls (real loopback HTTP) finish in between."""
        end = self.clock.now() + seconds
        while self.clock.now() < end:
            await self.clock.run_until(min(end, self.clock.now() + step))
            await until(lambda: not self.rt.scheduler.busy, "polls in flight")

    async def quiet(self) -> None:
        """Until the publisher has sent what it has (compare with the broker only then)."""
        await until(lambda: self.publisher.idle, "a flush")
        await asyncio.sleep(0.05)


async def start_exporter(
    broker: Broker,
    tmp: Path,
    clock: ManualClock | None = None,
    vehicles: tuple[str, ...] = ("#1", "#5"),
) -> Exporter:
    db = tmp / "h.db"
    cfg = tmp / "config.toml"
    clock = clock or ManualClock()
    env = {"CARMETRICS_MQTT__PASSWORD": USERS["carmetrics"]}
    for attempt in range(5):
        port = free_port()
        cars = json.dumps(list(vehicles))
        cfg.write_text(CONFIG.format(port=port, db=db, url=broker.url, vehicles=cars))
        rt = await Runtime.create(load(cfg, env=env), clock)
        server = TestServer(make_app(rt), host="127.0.0.1", port=port)
        try:
            await server.start_server()
            break
        except OSError:
            await rt.session.close()
            if attempt == 4:
                raise
    ex = Exporter(rt, clock, server, db)
    await until(lambda: len(rt.scheduler.vins) >= len(vehicles), "the smart cars")
    await until(lambda: all(rt.hub.latest(v) for v in rt.scheduler.vins), "first reports")
    await ex.quiet()
    return ex


@pytest.fixture
async def exporter(broker: Broker, tmp_path: Path) -> AsyncIterator[Exporter]:
    ex = await start_exporter(broker, tmp_path)
    try:
        yield ex
    finally:
        await ex.server.close()


def n_configs(ex: Exporter) -> int:
    """How many discovery configs the exporter has confirmed to the broker (cars + the bridge)."""
    return sum(len(v) for v in ex.publisher._configs.values()) + 1


def vin_of(ex: Exporter, model: str) -> str:
    return next(v for v, i in ex.rt.hub.vehicles.items() if i.model == model)


# --- independent expectations ----------------------------------------------------------------------
def shown(name: str, value: Any) -> str:
    """What README's unit table promises for a signal (converted here, not by exporter code)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    per = {
        "battery_soc": (100, 1),
        "charge_limit": (100, 1),
        "electric_range": (1e-3, 1),
        "odometer": (1e-3, 1),
        "cabin_temperature": (1, 1),
        "outside_temperature": (1, 1),
        "charging_power": (1e-3, 2),
        "aux_battery_voltage": (1, 2),
    }
    if name.startswith("tyre_pressure_"):
        scale, digits = 1e-5, 2
    else:
        scale, digits = per[name]
    return f"{round(value * scale, digits):.{digits}f}".rstrip("0").rstrip(".")


CHECKED = (
    "battery_soc",
    "electric_range",
    "odometer",
    "cabin_temperature",
    "outside_temperature",
    "charging_power",
    "aux_battery_voltage",
    "tyre_pressure_front_left",
    "charger_connected",
    "locked",
    "charging_state",
)


# --- tests -----------------------------------------------------------------------------------------
async def test_discovery_configs_have_home_assistant_shape_and_stable_ids(
    broker: Broker, tmp_path: Path
) -> None:
    clock = ManualClock()
    ex = await start_exporter(broker, tmp_path, clock)
    try:
        async with watching(broker) as w:
            want = n_configs(ex)
            assert want > 40
            await until(lambda: len(w.configs()) == want, "every retained discovery config")
            first = w.configs()
            published = set(w.latest)
    finally:
        await ex.server.close()
    # a clean stop says offline itself (the last will covers only a lost connection)
    async with watching(broker) as after:
        await until(lambda: "carmetrics/status" in after.latest, "the retained status")
        assert after.latest["carmetrics/status"] == "offline"
    vins = set(ex.rt.hub.vehicles)
    errors = [e for topic, cfg in first.items() for e in validate_config(topic, cfg)]
    assert errors == []
    ids = [cfg["unique_id"] for cfg in first.values()]
    assert len(ids) == len(set(ids)), Counter(ids).most_common(3)
    # one device per car (plus the exporter as the bridge they hang off)
    devices = {tuple(c["device"]["identifiers"]) for c in first.values()}
    assert devices == {(f"carmetrics_{v}",) for v in vins} | {("carmetrics_bridge",)}
    for topic, cfg in first.items():
        dev = cfg["device"]
        if dev["identifiers"] != ["carmetrics_bridge"]:
            assert dev["via_device"] == "carmetrics_bridge" and dev["serial_number"] in vins
            assert dev["manufacturer"] == "smart" and dev["model"] in {"#1", "#5"}
        # topics consistent: what an entity reads exists, what it writes is its car's command topic
        for key in ("state_topic", "json_attributes_topic"):
            if key in cfg:
                assert cfg[key] in published, (topic, cfg[key])
        for a in cfg.get("availability", []):
            assert a["topic"] in published, (topic, a)
        if "command_topic" in cfg:
            assert cfg["command_topic"] == f"carmetrics/{dev['serial_number']}/command"
    # what the issue asks for is there, and only what the car supports
    vin = next(iter(vins))
    kinds = Counter(t.split("/")[1] for t in first if f"carmetrics_{vin}/" in t)
    assert {"sensor", "binary_sensor", "lock", "switch", "number", "button"} <= set(kinds)
    assert "device_tracker" not in kinds  # location export is off
    limit = first[f"homeassistant/number/carmetrics_{vin}/charge_limit/config"]
    assert (limit["min"], limit["max"], limit["step"]) == (50, 100, 5)  # smart: 5 % steps

    # a restart (new process state, same cars) gives the same entities under the same ids
    broker.restart()  # empties the broker: nothing retained from the first run can answer
    ex2 = await start_exporter(broker, tmp_path, ManualClock())  # same history file
    try:
        async with watching(broker) as w2:
            assert n_configs(ex2) == len(first)
            await until(lambda: len(w2.configs()) == len(first), "configs after the restart")
            second = w2.configs()
    finally:
        await ex2.server.close()
    assert set(second) == set(first)
    assert {t: c["unique_id"] for t, c in second.items()} == {
        t: c["unique_id"] for t, c in first.items()
    }


async def test_states_arrive_on_change_in_display_units(exporter: Exporter, broker: Broker) -> None:
    ex = exporter
    vin = vin_of(ex, "#1")
    async with watching(broker) as w:
        snap = ex.rt.hub.latest(vin)
        assert snap is not None
        present = [n for n in (*CHECKED, "state") if n == "state" or snap.values.get(n) is not None]
        await until(
            lambda: all(f"carmetrics/{vin}/{n}" in w.latest for n in present), "retained states"
        )
        await asyncio.sleep(0.1)
        for name in CHECKED:
            value = snap.values.get(name)
            topic = f"carmetrics/{vin}/{name}"
            if value is None:
                assert topic not in w.latest
            else:
                assert w.latest[topic] == shown(name, value), name
        state = json.loads(w.latest[f"carmetrics/{vin}/state"])
        assert state["battery_soc"] == pytest.approx(float(snap.values["battery_soc"]) * 100)
        # absent values are absent, not 0: every signal this report lacks has no topic and no key
        missing = [
            n
            for n in ("charging_voltage_dc", "charging_current_dc", "speed")
            if snap.values.get(n) is None
        ]
        assert missing, "the report should lack at least one signal"
        for n in missing:
            assert f"carmetrics/{vin}/{n}" not in w.latest and n not in state
        assert w.latest[f"carmetrics/{vin}/availability"] == "online"
        assert w.latest["carmetrics/status"] == "online"

        # time passes: new reports publish what changed, and only that
        before = len(w.log)
        odo = snap.values.get("odometer")
        for _ in range(40):
            await ex.move(1800)
            new = ex.rt.hub.latest(vin)
            if new is not None and new.values.get("battery_soc") != snap.values.get("battery_soc"):
                break
        await ex.quiet()
        new = ex.rt.hub.latest(vin)
        assert new is not None and new.car_time > snap.car_time
        await until(
            lambda: (
                w.latest.get(f"carmetrics/{vin}/battery_soc")
                == shown("battery_soc", new.values["battery_soc"])
            ),
            "the new SoC",
        )
        changed = [t for t, _, _ in w.log[before:] if t.startswith(f"carmetrics/{vin}/")]
        assert f"carmetrics/{vin}/battery_soc" in changed
        if new.values.get("odometer") == odo:
            assert f"carmetrics/{vin}/odometer" not in changed  # unchanged: not sent again


async def command_and_wait(
    ex: Exporter, w: Watcher, vin: str, client: aiomqtt.Client, body: dict[str, Any]
) -> dict[str, Any]:
    """Send over MQTT, then move the clock until the result topic reports a final outcome."""
    rid = body["request_id"]
    topic = f"carmetrics/{vin}/command/result"

    def final() -> dict[str, Any] | None:
        for t, p, _ in w.log:
            if t == topic and p:
                got = json.loads(p)
                if got.get("request_id") == rid and got.get("status") == "done":
                    return got
        return None

    await client.publish(f"carmetrics/{vin}/command", json.dumps(body), qos=1)
    for _ in range(150):
        if final() is not None:
            break
        await ex.move(2, step=2)
    await until(lambda: final() is not None, f"the outcome of {body}")
    got = final()
    assert got is not None
    return got


def audit_rows(db: Path, vin: str) -> list[sqlite3.Row]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(
            "SELECT * FROM command_audit WHERE vin = ? ORDER BY requested_at", (vin,)
        ).fetchall()


async def test_lock_over_mqtt_is_verified_and_only_acl_clients_may_command(
    exporter: Exporter, broker: Broker
) -> None:
    ex = exporter
    vin = vin_of(ex, "#1")
    async with (
        watching(broker) as w,
        aiomqtt.Client(
            "127.0.0.1", broker.port, username="homeassistant", password=USERS["homeassistant"]
        ) as ha,
    ):
        # make sure the car starts unlocked, through MQTT too
        ex.clock.advance(6)
        got = await command_and_wait(ex, w, vin, ha, {"command": "unlock", "request_id": "u1"})
        assert got["outcome"] == "verified", got
        assert ex.fleet.live_state(vin).locked is False
        results_before = w.count(lambda t: t.endswith("/command/result"))
        rows_before = len(audit_rows(ex.db, vin))

        # a client the ACL does not allow to write the command topic: the broker drops it
        ex.clock.advance(6)
        await w.client.publish(f"carmetrics/{vin}/command", '{"command": "lock"}', qos=1)
        await ex.move(60)
        await ex.quiet()
        assert ex.fleet.live_state(vin).locked is False
        assert w.count(lambda t: t.endswith("/command/result")) == results_before
        assert len(audit_rows(ex.db, vin)) == rows_before

        # Home Assistant (allowed by the ACL) locks it: the car locks, the result says verified
        ex.clock.advance(6)
        got = await command_and_wait(ex, w, vin, ha, {"command": "lock", "request_id": "l1"})
        assert got["outcome"] == "verified", got
        assert got["caller"] == "mqtt" and got["command"] == "lock"
        assert ex.fleet.live_state(vin).locked is True
        assert [c["name"] for c in ex.fleet.ground_truth(vin)["commands"]][-1] == "lock"
        row = audit_rows(ex.db, vin)[-1]
        assert (row["command"], row["caller"], row["outcome"]) == ("lock", "mqtt", "verified")
        # the lock entity's state topic followed
        await until(lambda: w.latest.get(f"carmetrics/{vin}/locked") == "true", "locked=true")

        # same validation and cooldown as HTTP: refused at once, on the result topic
        await ha.publish(
            f"carmetrics/{vin}/command",
            json.dumps({"command": "charge_limit", "percent": 42, "request_id": "bad"}),
            qos=1,
        )
        await until(
            lambda: '"request_id":"bad"' in w.latest.get(f"carmetrics/{vin}/command/result", ""),
            "a refusal",
        )
        refusal = json.loads(w.latest[f"carmetrics/{vin}/command/result"])
        assert refusal["error"] == "invalid_parameter" and "50..100" in refusal["message"]


async def test_broker_restart_is_survived_and_latest_state_wins(
    exporter: Exporter, broker: Broker
) -> None:
    ex = exporter
    pub = ex.publisher
    connects = pub.connects
    broker.stop()
    await until(lambda: not pub.connected, "the publisher noticing")
    # reports keep coming while the broker is away; the backlog stays a flag per car
    n_cars = len(ex.rt.hub.vehicles)
    for _ in range(12):
        await ex.move(1800)
        assert pub.backlog() <= 3 * n_cars + 4
    broker.start()
    await until(lambda: pub.connects > connects and pub.connected, "a reconnect", tries=1000)
    await ex.quiet()
    async with watching(broker) as w:  # a fresh client sees only what is retained
        for vin in ex.rt.hub.vehicles:
            snap = ex.rt.hub.latest(vin)
            assert snap is not None
            await until(
                lambda v=vin: (
                    {f"carmetrics/{v}/battery_soc", f"carmetrics/{v}/state"} <= set(w.latest)
                ),
                "retained SoC and state",
            )
            assert w.latest[f"carmetrics/{vin}/battery_soc"] == shown(
                "battery_soc", snap.values["battery_soc"]
            )
            assert json.loads(w.latest[f"carmetrics/{vin}/state"])["last_update"].startswith(
                datetime.fromtimestamp(snap.car_time, UTC).strftime("%Y-%m-%dT%H:%M")
            )
        assert w.latest["carmetrics/status"] == "online"
        await until(lambda: len(w.configs()) == n_configs(ex) > 40, "discovery back too")


async def test_discovery_again_when_home_assistant_comes_online(
    exporter: Exporter, broker: Broker
) -> None:
    async with watching(broker) as w:
        await until(lambda: len(w.configs()) == n_configs(exporter) > 40, "every config")
        n = len(w.configs())
        before = w.count(lambda t: t.endswith("/config"))
        async with aiomqtt.Client(
            "127.0.0.1", broker.port, username="homeassistant", password=USERS["homeassistant"]
        ) as ha:
            await ha.publish("homeassistant/status", "online", qos=1)
        await until(lambda: w.count(lambda t: t.endswith("/config")) >= before + n, "a republish")


async def test_a_car_leaving_clears_its_configs_and_topics(
    exporter: Exporter, broker: Broker
) -> None:
    ex = exporter
    gone = vin_of(ex, "#5")
    stays = vin_of(ex, "#1")
    async with watching(broker) as w:
        await until(lambda: len(w.configs()) == n_configs(exporter) > 40, "every config")
        mine = [t for t in w.configs() if f"/carmetrics_{gone}/" in t]
        assert mine
        ex.rt.hub.forget(gone)
        await until(lambda: all(w.latest.get(t) == "" for t in mine), "empty retained configs")
    await ex.quiet()
    async with watching(broker) as fresh:
        await until(lambda: f"carmetrics/{stays}/state" in fresh.latest, "the other car")
        await asyncio.sleep(0.2)
        assert not [t for t in fresh.latest if gone in t]
        assert [t for t in fresh.configs() if f"/carmetrics_{stays}/" in t]


async def test_a_car_removed_while_the_exporter_was_down_is_cleared_on_start(
    broker: Broker, tmp_path: Path
) -> None:
    foreign = {
        # another integration's config, and one that borrows our node name but is not ours
        "homeassistant/sensor/zigbee_plug/power/config": json.dumps({"unique_id": "plug_power"}),
        "homeassistant/sensor/carmetrics_OTHER/soc/config": json.dumps(
            {"unique_id": "carmetrics_OTHER_soc", "device": {"via_device": "elsewhere_bridge"}}
        ),
        "carmetrics/notes": "kept",  # under our prefix, but not a car topic
    }
    async with aiomqtt.Client(
        "127.0.0.1", broker.port, username="carmetrics", password=USERS["carmetrics"]
    ) as other:
        for topic, payload in foreign.items():
            await other.publish(topic, payload, qos=1, retain=True)
    ex = await start_exporter(broker, tmp_path)
    gone, stays = vin_of(ex, "#5"), vin_of(ex, "#1")
    async with watching(broker) as w:
        await until(lambda: len(w.configs()) >= n_configs(ex) > 40, "every config")
        await until(lambda: f"carmetrics/{gone}/state" in w.latest, "the car's state")
        left = sorted(t for t, v in w.latest.items() if gone in t and v)
        kept = sorted(t for t, v in w.latest.items() if stays in t and v)
    assert any(t.endswith("/config") for t in left) and f"carmetrics/{gone}/state" in left
    await ex.server.close()  # the exporter stops; the #5 leaves its account meanwhile

    ex = await start_exporter(broker, tmp_path, ex.clock, vehicles=("#1",))
    try:
        assert set(ex.rt.hub.vehicles) == {stays}
        async with watching(broker) as w:
            await until(lambda: all(w.latest.get(t) == "" for t in left), "cleared topics")
        assert ex.publisher.swept == 1
        await ex.quiet()
        async with watching(broker) as fresh:
            await until(lambda: f"carmetrics/{stays}/state" in fresh.latest, "retained state")
            await until(lambda: all(t in fresh.latest for t in foreign), "foreign topics")
            await until(lambda: all(t in fresh.latest for t in kept), "the other car's topics")
            assert not [t for t in fresh.latest if gone in t]
            assert {t: fresh.latest[t] for t in foreign} == foreign
    finally:
        await ex.server.close()
        async with aiomqtt.Client(
            "127.0.0.1", broker.port, username="carmetrics", password=USERS["carmetrics"]
        ) as other:
            for topic in foreign:
                await other.publish(topic, "", qos=1, retain=True)


EVCC = re.compile(r"```yaml\n(# evcc\.yaml.*?)```", re.S)


async def test_readme_evcc_block_reads_what_the_topics_carry(
    exporter: Exporter, broker: Broker
) -> None:
    block = EVCC.search((ROOT / "README.md").read_text())
    assert block, "README has an evcc block starting with '# evcc.yaml'"
    vehicle = yaml.safe_load(block.group(1))["vehicles"][0]
    assert vehicle["type"] == "custom"
    ex = exporter
    vin = vin_of(ex, "#1")

    def topic(plugin: dict[str, Any]) -> str:
        assert plugin["source"] == "mqtt"
        return str(plugin["topic"]).replace("<VIN>", vin)

    reads = {
        "soc": topic(vehicle["soc"]),
        "range": topic(vehicle["range"]),
        "limitsoc": topic(vehicle["limitsoc"]),
        "plugged": topic(vehicle["status"]["plugged"]),
        "charging": topic(vehicle["status"]["charging"]),
    }
    assert vehicle["status"]["source"] == "combined"
    async with watching(broker) as w:
        await until(lambda: all(t in w.latest for t in reads.values()), "evcc's topics")
        snap = ex.rt.hub.latest(vin)
        assert snap is not None
        v = snap.values
        # evcc parses soc/range/limitsoc as floats (%, km, %) and plugged/charging as booleans
        assert float(w.latest[reads["soc"]]) == pytest.approx(float(v["battery_soc"]) * 100)
        assert float(w.latest[reads["range"]]) == pytest.approx(
            float(v["electric_range"]) / 1000, abs=0.05
        )
        assert float(w.latest[reads["limitsoc"]]) == pytest.approx(float(v["charge_limit"]) * 100)
        assert w.latest[reads["plugged"]] == ("true" if v["charger_connected"] else "false")
        charging = v["charging_state"] in ("charging", "dc_charging")
        assert w.latest[reads["charging"]] == ("true" if charging else "false")
