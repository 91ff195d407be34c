"""Benchmark: 1,000 cars' reports per second published through a real Mosquitto, with the
exporter's CPU measured.

The exporter side is the real thing minus the clouds: a Hub, the MQTT ``Publisher`` over aiomqtt,
reports fed to ``Hub.publish`` at the offered rate (real snapshots of the simulated smart fleet,
cloned under 1,000 VINs, every numeric value moved a little in every report, i.e. the worst case:
each report changes most topics). A subscriber to ``#`` runs in a child process (its CPU
is not the exporter's) and counts what the broker delivered, so a run that loses messages shows.

Figures per run: reports/s achieved, messages/s, the exporter process's CPU (cores busy = CPU
seconds / wall seconds, and CPU per report), Mosquitto's CPU, how long the backlog took to drain
after the last report, and delivered == published.

    python -m bench.mqtt_publish --cars 1000 --rate 1000 --seconds 10 --qos 0,1 --profile moving,parked
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

from bench.common import cpu_seconds, proc_cpu_seconds, table
from bench.mosquitto import USERS, Broker
from bench.samples import clone, info_for, real_snapshots
from exporter.clock import RealClock
from exporter.config import load
from exporter.health import Health
from exporter.hub import Hub
from exporter.mqtt.publisher import Publisher
from exporter.mqtt.settings import load_settings
from exporter.scheduler import Scheduler
from exporter.signals import BY_NAME, Kind
from exporter.snapshot import Snapshot

DONE = "carmetrics/bench/done"


# --- the subscriber (child process) ---------------------------------------------------------------
async def subscribe(port: int) -> None:
    import aiomqtt

    count = 0
    size = 0
    expected: int | None = None
    async with aiomqtt.Client(
        "127.0.0.1",
        port,
        username="observer",
        password=USERS["observer"],
        identifier="bench-sub",
        max_queued_incoming_messages=0,
    ) as client:
        await client.subscribe("#", qos=1)  # states, results and discovery configs
        print(json.dumps({"ready": True}), flush=True)
        last = time.monotonic()
        it = client.messages.__aiter__()
        while True:
            try:
                m = await asyncio.wait_for(it.__anext__(), 1.0)
            except TimeoutError:
                if expected is not None and time.monotonic() - last > 3:
                    break
                continue
            last = time.monotonic()
            if m.topic.value == DONE:
                expected = int(m.payload) if isinstance(m.payload, bytes) else 0
            else:
                count += 1
                size += len(m.payload) if isinstance(m.payload, bytes) else 0
            if expected is not None and count >= expected:
                break
    print(json.dumps({"received": count, "bytes": size}), flush=True)


# --- the exporter side ----------------------------------------------------------------------------
@dataclass
class Result:
    cars: int
    qos: int
    profile: str
    offered: float
    reports: int
    wall: float
    published: int
    total: int
    received: int
    cpu: float
    broker_cpu: float
    drain: float
    payload_bytes: int

    @property
    def reports_per_s(self) -> float:
        return self.reports / self.wall

    @property
    def messages_per_s(self) -> float:
        return self.published / self.wall

    @property
    def cores(self) -> float:
        return self.cpu / self.wall

    @property
    def us_per_report(self) -> float:
        return 1e6 * self.cpu / max(1, self.reports)


def moved(
    base: list[Snapshot], rounds: int, t0: float, *, profile: str = "moving", seed: int = 3
) -> list[list[Snapshot]]:
    """``rounds`` reports per car, each later than the last. ``moving``: every numeric value moves
    +-1 % (a car driving or charging: most topics change); ``parked``: only the temperatures drift
    (a parked car's report: a few topics change)."""
    rng = random.Random(seed)
    parked = ("cabin_temperature", "outside_temperature")
    out = []
    for r in range(rounds):
        t = t0 + r + 1
        batch = []
        for s in base:
            vals = dict(s.values)
            for name, v in vals.items():
                if not isinstance(v, float) or BY_NAME[name].kind is not Kind.NUMBER:
                    continue
                if profile == "moving":
                    vals[name] = v * (1 + rng.uniform(-0.01, 0.01))
                elif name in parked:
                    vals[name] = v + rng.choice((-0.5, 0.5))
            vals["last_update"] = t
            batch.append(replace(s, car_time=t, received_at=t, values=MappingProxyType(vals)))
        out.append(batch)
    return out


async def run(
    broker: Broker,
    cars: int,
    rate: float,
    seconds: float,
    qos: int,
    workdir: Path,
    profile: str = "moving",
) -> Result:
    import aiomqtt

    cfg_path = workdir / "config.toml"
    cfg_path.write_text(
        f'[mqtt]\nurl = "{broker.url}"\nusername = "carmetrics"\nqos = {qos}\n'
        "status_interval = 3600\n"
    )
    config = load(cfg_path, {"CARMETRICS_MQTT__PASSWORD": USERS["carmetrics"]})
    settings = load_settings(config)
    clock = RealClock()
    hub = Hub()
    health = Health()
    scheduler = Scheduler(hub, health, clock, config.poll)
    pub = Publisher(settings, hub, clock, scheduler, health)

    base = clone(await real_snapshots(), cars, t0=time.time())
    rounds = max(1, round(seconds * rate / cars))
    reports = moved(base, rounds, t0=time.time(), profile=profile)
    for s in base:
        hub.register(info_for(s))
        hub.publish(s)

    sub = subprocess.Popen(
        [sys.executable, "-m", "bench.mqtt_publish", "--subscriber", str(broker.port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sub.stdout is not None
    json.loads(sub.stdout.readline())  # subscribed
    pub.start()
    while not pub.idle:  # the first full publish is not measured
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    assert broker.proc is not None
    pub0, b0, c0, w0 = (
        pub.published,
        proc_cpu_seconds(broker.proc.pid),
        cpu_seconds(),
        time.monotonic(),
    )
    step = 0.1
    per_step = max(1, round(rate * step))
    flat = [s for batch in reports for s in batch]
    sent = 0
    next_t = time.monotonic()
    while sent < len(flat):
        for s in flat[sent : sent + per_step]:
            hub.publish(s)
        sent += per_step
        next_t += step
        await asyncio.sleep(max(0.0, next_t - time.monotonic()))
    last = time.monotonic()
    while not pub.idle:
        await asyncio.sleep(0.005)
    drained = time.monotonic()
    wall = drained - w0
    cpu = cpu_seconds() - c0
    broker_cpu = proc_cpu_seconds(broker.proc.pid) - b0
    published = pub.published - pub0
    total = pub.published  # the subscriber counts from the start, the first full publish included
    async with aiomqtt.Client(
        "127.0.0.1", broker.port, username="carmetrics", password=USERS["carmetrics"]
    ) as c:
        await c.publish(DONE, str(total), qos=1)
    got = json.loads(sub.stdout.readline())
    sub.wait(10)
    await pub.stop()
    return Result(
        cars,
        qos,
        profile,
        rate,
        min(sent, len(flat)),
        wall,
        published,
        total,
        int(got["received"]),
        cpu,
        broker_cpu,
        drained - last,
        int(got["bytes"]),
    )


async def library_floor(broker: Broker, qos: int, n: int = 10_000) -> dict[str, float]:
    """CPU µs per message of the client libraries alone (no exporter code), same broker: a bare
    aiomqtt loop with 32 publishes in flight, and paho-mqtt driven by its own network thread."""
    import aiomqtt
    import paho.mqtt.client as paho

    out = {}
    async with aiomqtt.Client(
        "127.0.0.1",
        broker.port,
        username="carmetrics",
        password=USERS["carmetrics"],
        max_inflight_messages=64,
    ) as c:
        c.pending_calls_threshold = 10**6
        todo = iter(range(n))

        async def worker() -> None:
            for i in todo:
                await c.publish(f"carmetrics/FLOOR/t{i % 50}", "12.5", qos, retain=True)

        c0 = cpu_seconds()
        await asyncio.gather(*(worker() for _ in range(32)))
        out["aiomqtt"] = 1e6 * (cpu_seconds() - c0) / n
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    client.username_pw_set("carmetrics", USERS["carmetrics"])
    client.max_inflight_messages_set(64)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        c0 = cpu_seconds()
        infos = [
            client.publish(f"carmetrics/FLOOR/t{i % 50}", "12.5", qos, retain=True)
            for i in range(n)
        ]
        for info in infos:
            info.wait_for_publish(30)
        out["paho"] = 1e6 * (cpu_seconds() - c0) / n
    finally:
        client.loop_stop()
        client.disconnect()
    return out


async def main_async(args: argparse.Namespace) -> list[Result]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for profile in args.profile:
            for qos in args.qos:
                broker = Broker(binary, Path(tmp) / f"broker-{profile}-{qos}")
                broker.start()
                try:
                    results.append(
                        await run(
                            broker, args.cars, args.rate, args.seconds, qos, Path(tmp), profile
                        )
                    )
                finally:
                    broker.stop()
        if args.floor:
            for qos in args.qos:
                broker = Broker(binary, Path(tmp) / f"broker-floor-{qos}")
                broker.start()
                try:
                    got = await library_floor(broker, qos)
                finally:
                    broker.stop()
                print(
                    f"library floor, qos {qos}: aiomqtt {got['aiomqtt']:.0f} µs CPU/message, "
                    f"paho (own thread) {got['paho']:.0f} µs CPU/message",
                    flush=True,
                )
    return results


def report(results: list[Result]) -> str:
    rows = [
        [
            r.cars,
            r.profile,
            r.qos,
            f"{r.offered:,.0f}",
            f"{r.reports_per_s:,.0f}",
            f"{r.messages_per_s:,.0f}",
            f"{r.published / max(1, r.reports):.1f}",
            f"{100 * r.cores:.0f} %",
            f"{r.us_per_report:,.0f}",
            f"{1e6 / max(1.0, r.us_per_report):,.0f}",
            f"{1e6 * r.cpu / max(1, r.published):,.0f}",
            f"{100 * r.broker_cpu / r.wall:.0f} %",
            f"{1000 * r.drain:.0f}",
            "yes" if r.received == r.total else f"NO ({r.received} of {r.total})",
        ]
        for r in results
    ]
    return table(
        [
            "cars",
            "reports",
            "qos",
            "offered reports/s",
            "reports/s",
            "messages/s",
            "messages/report",
            "exporter CPU (1 core = 100 %)",
            "CPU µs/report",
            "reports per CPU-second",
            "CPU µs/message",
            "mosquitto CPU",
            "drain after last report (ms)",
            "all delivered",
        ],
        rows,
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cars", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=1000.0, help="reports per second offered")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--qos", type=lambda v: [int(x) for x in v.split(",")], default=[1])
    ap.add_argument(
        "--profile", type=lambda v: v.split(","), default=["moving", "parked"], help="moving,parked"
    )
    ap.add_argument("--floor", action="store_true", help="also measure the client libraries alone")
    ap.add_argument("--subscriber", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.subscriber:
        asyncio.run(subscribe(args.subscriber))
        return
    load = os.getloadavg()[0]
    print(f"# bench.mqtt_publish on {os.cpu_count()} CPUs, load average {load:.1f}", flush=True)
    print(report(asyncio.run(main_async(args))))


if __name__ == "__main__":
    main()
