"""MQTT without a broker: the [mqtt] table, payload units, discovery contents, availability, and
the publisher's bookkeeping (what it sends next, and that a long outage leaves a bounded backlog)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from exporter.clock import ManualClock
from exporter.config import Config, ConfigError, load
from exporter.health import Health
from exporter.hub import Hub
from exporter.mqtt import topics as t
from exporter.mqtt.bridge import limit_step, parse
from exporter.mqtt.diagnostics import status
from exporter.mqtt.discovery import Car, Discovery
from exporter.mqtt.publisher import Publisher
from exporter.mqtt.settings import load_settings
from exporter.providers.base import Command, CommandRejected
from exporter.scheduler import Scheduler
from exporter.snapshot import Snapshot, VehicleInfo
from tests.fakes import FakeProvider
from tests.ha_shape import validate_config

VIN = "HESXR1C43SG800001"


def cfg(tmp_path: Path, toml: str, env: dict[str, str] | None = None) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(toml)
    return load(path, env or {})


# --- settings --------------------------------------------------------------------------------------
def test_off_without_url_and_defaults(tmp_path: Path) -> None:
    assert not load_settings(cfg(tmp_path, "")).enabled
    s = load_settings(cfg(tmp_path, '[mqtt]\nurl = "mqtt://broker.lan"\n'))
    assert (s.host, s.port, s.tls) == ("broker.lan", 1883, False)
    assert (s.topic_prefix, s.discovery_prefix, s.qos, s.retain) == (
        "carmetrics",
        "homeassistant",
        1,
        True,
    )
    assert s.commands is False  # nobody commands a car unless the owner turns it on
    tls = load_settings(cfg(tmp_path, '[mqtt]\nurl = "mqtts://broker.lan"\n'))
    assert (tls.port, tls.tls) == (8883, True)


def test_password_from_env_or_file_never_from_the_toml(tmp_path: Path) -> None:
    s = load_settings(
        cfg(
            tmp_path,
            '[mqtt]\nurl = "mqtt://b:1884"\nusername = "cm"\n',
            {"CARMETRICS_MQTT__PASSWORD": "pw-from-env"},
        )
    )
    assert s.password is not None and s.password.reveal() == "pw-from-env"
    assert "pw-from-env" not in repr(s)
    (tmp_path / "pw").write_text("pw-from-file\n")
    s = load_settings(
        cfg(tmp_path, '[mqtt]\nurl = "mqtt://b"\nusername = "cm"\npassword_file = "pw"\n')
    )
    assert s.password is not None and s.password.reveal() == "pw-from-file"
    with pytest.raises(
        ConfigError, match=r"mqtt\.password: secrets are not allowed.*CARMETRICS_MQTT__PASSWORD"
    ):
        # refused where the table is validated (check-config and run, exporter.preflight)
        load_settings(cfg(tmp_path, '[mqtt]\nurl = "mqtt://b"\nusername = "cm"\npassword = "x"\n'))


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('url = "http://b"', r"mqtt\.url = 'http://b': expected mqtt://"),
        ('url = "mqtt://"', r"mqtt\.url"),
        ('url = "mqtt://u:p@b"', r"mqtt\.url: put no credentials"),
        ('url = "mqtt://b"\nqos = 3', r"mqtt\.qos = 3: expected 0, 1 or 2"),
        ('url = "mqtt://b"\ntopic_prefix = "cars/#"', r"mqtt\.topic_prefix"),
        ('url = "mqtt://b"\ntopic_prefix = "a//b"', r"mqtt\.topic_prefix"),
        ('url = "mqtt://b"\ntopic_prefix = "homeassistant"', r"must differ"),
        ('url = "mqtt://b"\nretain = "yes"', r"mqtt\.retain = 'yes': expected true or false"),
        ('url = "mqtt://b"\nbroker = "x"', r"mqtt\.broker: unknown key"),
        ('url = "mqtt://b"\ntls_ca_file = "ca.pem"', r"mqtt\.tls_ca_file = 'ca.pem': no such file"),
        (
            'url = "mqtt://b"\ncommands = true',
            r"mqtt\.commands: turning commands on needs mqtt\.username",
        ),
        ('url = "mqtt://b"\nreconnect_min = 10\nreconnect_max = 1', r"mqtt\.reconnect_max"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(cfg(tmp_path, "[mqtt]\n" + toml + "\n"))


def test_tls_files_need_mqtts(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    with pytest.raises(ConfigError, match=r"mqtt\.tls_ca_file: TLS options need an mqtts:// url"):
        load_settings(cfg(tmp_path, '[mqtt]\nurl = "mqtt://b"\ntls_ca_file = "ca.pem"\n'))
    s = load_settings(cfg(tmp_path, '[mqtt]\nurl = "mqtts://b"\ntls_ca_file = "ca.pem"\n'))
    assert s.tls_ca_file == tmp_path / "ca.pem"


# --- payloads --------------------------------------------------------------------------------------
def snap(values: dict[str, Any], car_time: float = 1_767_225_600.0) -> Snapshot:
    return Snapshot.build(VIN, "smart", car_time, car_time + 5, values)


def test_payloads_in_display_units_and_absent_values_absent() -> None:
    s = snap(
        {
            "battery_soc": 0.815,
            "electric_range": 312_400.0,
            "odometer": 12_345_678.0,
            "charging_power": 7_360.0,
            "charging_state": "dc_charging",
            "charger_connected": True,
            "tyre_pressure_front_left": 241_648.0,
            "cabin_temperature": 21.26,
            "charging_time_to_full": 5400.0,
            "locked": False,
            "latitude": 48.1,
            "longitude": 11.5,
        }
    )
    p = t.payloads(s, location=False)
    assert p["battery_soc"] == "81.5"
    assert p["electric_range"] == "312.4"
    assert p["odometer"] == "12345.7"
    assert p["charging_power"] == "7.36"
    assert p["tyre_pressure_front_left"] == "2.42"
    assert p["cabin_temperature"] == "21.3"
    assert p["charging_time_to_full"] == "90"
    assert (p["charger_connected"], p["locked"], p["charging"]) == ("true", "false", "true")
    assert p["last_update"] == "2026-01-01T00:00:00+00:00"
    # nothing unknown is published, not even as 0, and position only when exported
    assert "outside_temperature" not in p and "speed" not in p and "aux_battery_voltage" not in p
    assert "latitude" not in p and t.LOCATION not in p
    doc = json.loads(p[t.STATE])
    assert doc["battery_soc"] == 81.5 and doc["charging"] is True
    assert "outside_temperature" not in doc and "latitude" not in doc
    located = t.payloads(s, location=True)
    assert json.loads(located[t.LOCATION])["latitude"] == 48.1
    assert located["latitude"] == "48.1"


def test_numbers_never_in_exponent_form() -> None:
    assert t.number(1e-7, 1) == "0"
    assert t.number(-0.01, 1) == "0"
    assert t.number(100.0, 1) == "100"
    assert t.number(123456789.0, 2) == "123456789"


def test_command_topic_parsing() -> None:
    tp = t.Topics("cars/home", "homeassistant")
    assert tp.vin_of_command(f"cars/home/{VIN}/command") == VIN
    for bad in (f"cars/home/{VIN}/command/result", f"cars/{VIN}/command", "cars/home//command"):
        assert tp.vin_of_command(bad) is None


# --- discovery -------------------------------------------------------------------------------------
ALL = ("lock", "unlock", "charge_start", "charge_stop", "climate_start", "climate_stop")


def configs(car: Car) -> dict[str, dict[str, Any]]:
    d = Discovery(t.Topics("carmetrics", "homeassistant"), bridge_id="carmetrics_bridge", qos=1)
    return {k: json.loads(v) for k, v in d.car(car).items()}


INFO = VehicleInfo(VIN, "smart", make="smart", model="#1", year="2024", series="HX11")
SEEN = set(
    t.payloads(
        snap(
            {
                "battery_soc": 0.5,
                "locked": True,
                "latitude": 1.0,
                "longitude": 2.0,
                "charging_state": "plugged",
            }
        ),
        location=True,
    )
) | {t.DATA_AGE, t.REAUTH, t.POLL_ERROR}


def test_entities_follow_what_the_car_reports_and_supports() -> None:
    full = configs(Car(INFO, SEEN, (*ALL, "charge_limit", "horn"), limit_step=5, location=True))
    for topic, c in full.items():
        assert validate_config(topic, c) == [], topic
    kinds = {topic.split("/")[1] + ":" + topic.split("/")[3] for topic in full}
    assert {
        "lock:lock",
        "switch:charging_switch",
        "switch:climate_switch",
        "number:charge_limit",
    } <= kinds
    assert {"button:horn", "device_tracker:location", "sensor:battery_soc"} <= kinds
    assert "button:flash" not in kinds  # not supported: no button
    assert "sensor:electric_range" not in kinds  # never reported: no entity
    assert "binary_sensor:locked" not in kinds  # the lock entity shows it
    number = full[f"homeassistant/number/carmetrics_{VIN}/charge_limit/config"]
    assert number["step"] == 5 and number["command_topic"] == f"carmetrics/{VIN}/command"
    rendered = number["command_template"].replace("{{ value | int }}", "100")
    assert json.loads(rendered) == {"command": "charge_limit", "percent": 100}
    lock = full[f"homeassistant/lock/carmetrics_{VIN}/lock/config"]
    assert json.loads(lock["payload_lock"]) == {"command": "lock"}
    dev = lock["device"]
    assert (dev["model"], dev["model_id"], dev["hw_version"]) == ("#1", "HX11", "model year 2024")
    # diagnostics stay available when the car is not: they explain why
    age = full[f"homeassistant/sensor/carmetrics_{VIN}/data_age/config"]
    assert age["entity_category"] == "diagnostic"
    assert [a["topic"] for a in age["availability"]] == ["carmetrics/status"]
    assert len(lock["availability"]) == 2

    readonly = configs(Car(INFO, SEEN, (), location=False))
    kinds = {topic.split("/")[1] + ":" + topic.split("/")[3] for topic in readonly}
    assert not {k for k in kinds if k.split(":")[0] in {"lock", "switch", "number", "button"}}
    assert "binary_sensor:locked" in kinds and "sensor:charge_limit" not in kinds
    assert "device_tracker:location" not in kinds
    locked = readonly[f"homeassistant/binary_sensor/carmetrics_{VIN}/locked/config"]
    assert (locked["device_class"], locked["payload_on"]) == ("lock", "false")  # on = unlocked


def test_limit_step_is_asked_of_the_providers_own_check() -> None:
    def smart_like(vin: str, c: Command) -> None:
        if int(c.params["percent"]) % 5:
            raise CommandRejected("steps of 5")

    assert limit_step(smart_like, VIN) == 5
    assert limit_step(lambda vin, c: None, VIN) == 1
    assert limit_step(None, VIN) == 1


def test_command_payloads() -> None:
    assert parse(b"lock") == ({"command": "lock"}, None)
    body, rid = parse(b'{"command": "charge_limit", "percent": 90, "request_id": "r-1"}')
    assert body == {"command": "charge_limit", "percent": 90} and rid == "r-1"
    from exporter.commands.service import Refused

    for bad in (b"{not json", b"\xff\xfe", b'{"command": "lock", "request_id": 5}', b"x" * 5000):
        with pytest.raises(Refused):
            parse(bad)


# --- availability ----------------------------------------------------------------------------------
class Reauthing(FakeProvider):
    """A provider whose owner must reconnect the cars in ``reauth`` (the contract's hook)."""

    def __init__(self) -> None:
        super().__init__(ManualClock(), name="smartcar", account="sc")
        self.reauth: dict[str, str] = {}

    def reauth_links(self) -> dict[str, str]:
        return dict(self.reauth)


def test_availability_from_data_age_and_reauth() -> None:
    h = Health()
    h.vehicle(VIN).last_error = "rate_limited (429)"
    s = snap({"battery_soc": 0.5}, car_time=1000.0)
    p = Reauthing()
    fresh = status(VIN, s, p, h, now=1000.0 + 3600, max_data_age=7200)
    assert fresh[t.AVAILABILITY] == "online" and fresh[t.DATA_AGE] == "3600"
    assert fresh[t.POLL_ERROR] == "rate_limited (429)" and fresh[t.REAUTH] == "false"
    old = status(VIN, s, p, h, now=1000.0 + 7201, max_data_age=7200)
    assert old[t.AVAILABILITY] == "offline"
    p.reauth[VIN] = "/connect/smartcar/reconnect?vehicle=v"
    blocked = status(VIN, s, p, h, now=1000.0 + 60, max_data_age=7200)
    assert (blocked[t.AVAILABILITY], blocked[t.REAUTH]) == ("offline", "true")
    assert status(VIN, None, None, h, now=0, max_data_age=1)[t.AVAILABILITY] == "offline"


# --- the publisher's bookkeeping -------------------------------------------------------------------
def make_publisher(tmp_path: Path, hub: Hub, clock: ManualClock) -> Publisher:
    settings = load_settings(cfg(tmp_path, '[mqtt]\nurl = "mqtt://127.0.0.1:9"\n'))
    sched = Scheduler(hub, Health(), clock, load(None, {}).poll)
    return Publisher(settings, hub, clock, sched, Health())


def test_only_changes_are_sent_and_an_outage_keeps_a_bounded_backlog(tmp_path: Path) -> None:
    hub, clock = Hub(), ManualClock()
    pub = make_publisher(tmp_path, hub, clock)
    vins = [f"HESXR1C43SG8{i:05d}" for i in range(50)]
    for v in vins:
        hub.register(VehicleInfo(v, "smart", make="smart", model="#1"))
    # no broker: ten thousand reports arrive; what waits is one flag per car, not the reports
    for k in range(200):
        for v in vins:
            hub.publish(
                Snapshot.build(v, "smart", 1000.0 + k, 1000.0 + k, {"battery_soc": k / 200})
            )
    assert pub.backlog() <= 2 * len(vins)
    first = pub._collect(limit=100_000)
    for m in first:
        pub._confirm(m)
    soc = {m.topic: m.payload for m in first if m.topic.endswith("/battery_soc")}
    assert soc == {f"carmetrics/{v}/battery_soc": "99.5" for v in vins}  # the latest state won
    assert any(m.topic.endswith("/config") for m in first)
    assert pub._collect() == []  # nothing changed since
    # one car's new report: only what changed for it goes out (SoC, state JSON, last_update, age)
    hub.publish(Snapshot.build(vins[0], "smart", 5000.0, 5000.0, {"battery_soc": 0.2}))
    topics = {m.topic.removeprefix(f"carmetrics/{vins[0]}/") for m in pub._collect()}
    assert {"battery_soc", "state", "last_update"} <= topics
    assert all(m.startswith(("battery_soc", "state", "last_update", "data_age")) for m in topics)


def test_a_lost_batch_is_recomputed_not_replayed(tmp_path: Path) -> None:
    hub, clock = Hub(), ManualClock()
    pub = make_publisher(tmp_path, hub, clock)
    hub.publish(Snapshot.build(VIN, "smart", 1000.0, 1000.0, {"battery_soc": 0.5}))
    batch = pub._collect()
    assert batch
    pub._confirm(batch[0])
    pub._requeue(batch)  # the connection dropped with the rest unconfirmed
    hub.publish(Snapshot.build(VIN, "smart", 2000.0, 2000.0, {"battery_soc": 0.6}))
    again = {m.topic: m.payload for m in pub._collect()}
    assert again[f"carmetrics/{VIN}/battery_soc"] == "60"  # the newer value, once
    pub._result(VIN, {"status": "pending"})
    pub._result(VIN, {"status": "done"})
    results = [m for m in pub._collect() if m.topic.endswith("/command/result")]
    assert [json.loads(m.payload)["status"] for m in results] == ["done"]


def test_a_car_that_leaves_is_cleared(tmp_path: Path) -> None:
    hub, clock = Hub(), ManualClock()
    pub = make_publisher(tmp_path, hub, clock)
    hub.register(VehicleInfo(VIN, "smart", make="smart", model="#1"))
    hub.publish(Snapshot.build(VIN, "smart", 1000.0, 1000.0, {"battery_soc": 0.5, "locked": True}))
    sent = pub._collect()
    for m in sent:
        pub._confirm(m)
    hub.forget(VIN)
    cleared = pub._collect()
    assert {m.topic for m in cleared} == {m.topic for m in sent if m.payload}
    assert all(m.payload == "" and m.retain for m in cleared)


async def test_data_age_waits_for_the_status_tick_unless_it_jumps(tmp_path: Path) -> None:
    hub, clock = Hub(), ManualClock(start=10_000.0)
    pub = make_publisher(tmp_path, hub, clock)  # status_interval: the default 60 s
    age = f"carmetrics/{VIN}/data_age"

    def sent() -> dict[str, str]:
        got = pub._collect()
        for m in got:
            pub._confirm(m)
        return {m.topic: m.payload for m in got}

    hub.publish(Snapshot.build(VIN, "smart", 9_990.0, 9_990.0, {"battery_soc": 0.5}))
    assert sent()[age] == "10"
    clock.advance(5)  # a car reporting often: its age stays small, no message for it
    hub.publish(Snapshot.build(VIN, "smart", 10_004.0, 10_004.0, {"battery_soc": 0.49}))
    assert age not in sent()
    tick = asyncio.create_task(pub._status_tick())
    try:
        await clock.run_until(clock.now() + 61)  # the tick refreshes every car's age
        assert sent()[age] == "62"
        clock.advance(3600)  # silent for an hour, then a report: the jump goes out at once
        hub.publish(
            Snapshot.build(VIN, "smart", clock.now() - 2, clock.now(), {"battery_soc": 0.4})
        )
        assert sent()[age] == "2"
    finally:
        tick.cancel()


def test_check_config_validates_the_mqtt_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from exporter.cli import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.toml").write_text('[mqtt]\nurl = "mqtt://127.0.0.1:1883"\n')
    assert CliRunner().invoke(cli, ["check-config"]).exit_code == 0
    (tmp_path / "config.toml").write_text('[mqtt]\nurl = "mqtt://127.0.0.1:1883"\nqos = 5\n')
    res = CliRunner().invoke(cli, ["check-config"])
    assert res.exit_code != 0 and "mqtt.qos = 5: expected 0, 1 or 2" in res.output


@pytest.mark.parametrize(
    ("toml", "line"),
    [
        # the shared mechanism's rules, which the hand-written reader did not have
        ("status_interval = nan", "mqtt.status_interval = nan: expected a finite number"),
        ('topic_prefx = "cars"', "mqtt.topic_prefx: unknown key; did you mean 'topic_prefix'?"),
        ("qos = true", "mqtt.qos = True: expected 0, 1 or 2"),
        ('keepalive = "60"', "mqtt.keepalive = '60': expected a number"),
    ],
)
def test_check_config_and_run_report_mqtt_mistakes_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toml: str, line: str
) -> None:
    """One model for [mqtt]: ``check-config`` and ``run`` stop on the same line (both through
    exporter.preflight and FEATURE_SECTIONS), and the publisher's reader raises it too."""
    from click.testing import CliRunner

    from exporter.cli import cli
    from exporter.features import FEATURE_SECTIONS
    from exporter.mqtt.settings import MqttSection

    def started(*_: object) -> None:
        raise AssertionError("run got past its validation")

    assert FEATURE_SECTIONS["mqtt"] is MqttSection
    monkeypatch.setattr("exporter.server.serve", started)
    monkeypatch.setattr("exporter.cli.logsetup.setup", lambda *_: None)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.toml").write_text(f'[mqtt]\nurl = "mqtt://127.0.0.1:1883"\n{toml}\n')
    outputs = [CliRunner().invoke(cli, [cmd]) for cmd in ("check-config", "run")]
    assert [r.exit_code for r in outputs] == [1, 1]
    shown = outputs[0].output.strip()
    assert shown.startswith(f"Error: configuration error: {line}") and "\n" not in shown
    assert outputs[1].output.strip() == shown
    with pytest.raises(ConfigError) as err:
        load_settings(load(tmp_path / "config.toml", {}))
    assert shown.endswith(str(err.value))


# --- ghost cars (exporter.mqtt.sweep) ------------------------------------------------------------
def test_only_our_own_car_topics_count_as_ghosts() -> None:
    from exporter.mqtt import sweep
    from exporter.mqtt.topics import Topics

    ours = sweep.Ours(Topics("cm/home", "ha"), "cm_home_bridge")

    def config(node: str, key: str, via: str = "cm_home_bridge") -> bytes:
        body = {"unique_id": f"{node}_{key}", "device": {"via_device": via}}
        return json.dumps(body).encode()

    retained = {
        "cm/home/OLD1/battery_soc": b"81",
        "cm/home/OLD1/command/result": b"{}",
        "cm/home/OLD1/notes": b"x",  # not a suffix we write
        "cm/home/status": b"online",
        f"cm/home/{VIN}/battery_soc": b"80",  # a known car
        "ha/sensor/carmetrics_OLD1/battery_soc/config": config("carmetrics_OLD1", "battery_soc"),
        "ha/sensor/carmetrics_OLD2/soc/config": config("carmetrics_OLD2", "soc", via="other"),
        "ha/sensor/carmetrics_OLD3/soc/config": config("carmetrics_OLD3", "range"),
        "ha/sensor/carmetrics_OLD4/soc/config": b"not json",
        "ha/sensor/plug_1/power/config": config("plug_1", "power"),
        "ha/sensor/x/carmetrics_OLD5/soc/config": config("carmetrics_OLD5", "soc"),
    }
    assert sweep.ghosts(ours, retained, {VIN}) == {
        "OLD1": {
            "cm/home/OLD1/battery_soc",
            "cm/home/OLD1/command/result",
            "ha/sensor/carmetrics_OLD1/battery_soc/config",
        }
    }
    assert sweep.ghosts(ours, retained, {VIN, "OLD1"}) == {}


async def test_the_retained_read_is_bounded() -> None:
    from exporter.mqtt import sweep

    class Msg:
        def __init__(self, i: int, retain: bool = True) -> None:
            self.topic = aiomqtt.Topic(f"cm/V{i}/state")
            self.payload = b"{}"
            self.retain = retain

    class Reader:
        def __init__(self, n: int) -> None:
            self.subscribed: list[tuple[str, int]] = []
            self.messages = self._gen(n)

        async def subscribe(self, topics: list[tuple[str, int]]) -> None:
            self.subscribed = topics

        async def _gen(self, n: int) -> Any:
            for i in range(n):
                yield Msg(i, retain=i % 2 == 0)
            await asyncio.Event().wait()  # then nothing more: the quiet spell ends the read

    r = Reader(10)
    got = await sweep.retained(r, ["cm/+/#"], quiet=0.01)  # type: ignore[arg-type]
    assert r.subscribed == [("cm/+/#", 0)]
    assert sorted(got) == [f"cm/V{i}/state" for i in (0, 2, 4, 6, 8)]  # live messages skipped
    capped = await sweep.retained(Reader(10), ["cm/+/#"], quiet=5, max_messages=4)  # type: ignore[arg-type]
    assert sorted(capped) == ["cm/V0/state", "cm/V2/state"]
