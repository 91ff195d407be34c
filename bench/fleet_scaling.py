"""Benchmark: aggregate polls per second of 1, 2 and 3 ``carmetrics run --shard auto`` instances
against one simulator in its own process, and what limits it.

Each round starts the simulator (``bench.simproc``: smart cars over many accounts, a request log),
a fresh PostgreSQL database (the leases and the history) and ``k`` real instances with every
``[poll]`` interval at its 1 s minimum, so there are always more cars due than the instances can
poll: the rate measured is the fleet's capacity, not the schedule. After a warm-up (logins, the
first round of polls) the cars' status reads in the simulator's request log are counted over a
window, with the CPU seconds each process spent in it (instances, simulator, PostgreSQL), so the
table says which process ran out of CPU first.

    python -m bench.fleet_scaling --cars 3000 --accounts 30 --instances 1,2,3 --window 20
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import simproc
from bench.common import proc_cpu_seconds, table
from bench.postgres import PASSWORD, Cluster, find_binaries, free_port

ROOT = Path(__file__).resolve().parent.parent


def fleet_toml(
    sim: dict[str, Any],
    *,
    interval: float,
    lease: float,
    heartbeat: float,
    concurrency: int = 16,
    log_level: str = "INFO",
) -> str:
    """A config every instance of a fleet shares: the simulator's smart accounts (reached by their
    own ``hosts``: the embedded simulator serves no car), every poll interval ``interval``."""
    hosts = ", ".join(f'{k} = "{v}"' for k, v in sorted(sim["urls"]["smart"].items()))
    lines = [
        "[exporter]",
        'listen = "127.0.0.1"',
        "[log]",
        f'level = "{log_level}"',
        "[poll]",
        *(f"{k} = {interval}" for k in ("driving", "charging", "parked", "asleep")),
        "jitter = 0",
        "timeout = 10",
        "backoff_base = 1",
        "backoff_max = 2",
        f"concurrency = {concurrency}",
        "[simulator]",
        "enabled = true",
        "speed = 1",
        "history_days = 0",
        "smart_vehicles = []",
        "smartcar_vehicles = []",
        "[shard]",
        f"lease = {lease}",
        f"heartbeat = {heartbeat}",
    ]
    for i, acc in enumerate(sim["accounts"]):
        lines += [
            "[[accounts]]",
            f'name = "acct{i:02d}"',
            'provider = "smart"',
            'region = "EU"',
            "simulator = true",
            f'username = "{acc["username"]}"',
            f"hosts = {{ {hosts} }}",
        ]
    return "\n".join(lines) + "\n"


def fleet_env(sim: dict[str, Any]) -> dict[str, str]:
    """The environment of an instance: the database password and each account's password."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARMETRICS_")}
    env["CARMETRICS_DB_PASSWORD"] = PASSWORD
    for i, acc in enumerate(sim["accounts"]):
        env[f"CARMETRICS_ACCOUNTS__{i}__PASSWORD"] = acc["password"]
    return env


def launch(
    config: Path, dsn: str, env: dict[str, str], log: Path
) -> tuple[subprocess.Popen[bytes], int]:
    """One ``carmetrics run --shard auto`` process; returns it and its port."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exporter.cli",
            "run",
            "--config",
            str(config),
            "--port",
            str(port),
            "--db",
            dsn,
            "--shard",
            "auto",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    return proc, port


def healthz(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            got: dict[str, Any] = json.loads(r.read())
            return got
    except OSError:
        return None


def polls_in(log: Path, start: float, end: float) -> int:
    n = 0
    with log.open() as fh:
        for line in fh:
            if '"poll"' in line and line.endswith("}\n"):
                t = json.loads(line)["t"]
                n += start <= t < end
    return n


def postgres_cpu(cluster: Cluster) -> float:
    """CPU seconds of the server and every backend (the postmaster's children)."""
    assert cluster.proc is not None
    root = cluster.proc.pid
    total = proc_cpu_seconds(root)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == root:
                total += proc_cpu_seconds(int(stat.parent.name))
    return total


@dataclass
class Round:
    instances: int
    polls: int
    seconds: float
    cpu_instances: float
    cpu_sim: float
    cpu_pg: float
    load: float  # the machine's 1-minute load average at the end of the window

    @property
    def rate(self) -> float:
        return self.polls / self.seconds


@contextlib.contextmanager
def _instances(
    k: int, config: Path, dsn: str, env: dict[str, str], tmp: Path
) -> Iterator[list[tuple[subprocess.Popen[bytes], int]]]:
    procs = [launch(config, dsn, env, tmp / f"instance{n}.log") for n in range(k)]
    try:
        yield procs
    finally:
        for p, _ in procs:
            p.send_signal(signal.SIGTERM)
        for p, _ in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def one_round(
    k: int, cars: int, accounts: int, warmup: float, window: float, cluster: Cluster, tmp: Path
) -> Round:
    cluster.reset()
    log = tmp / f"requests-{k}.jsonl"
    with simproc.start(smart=cars, accounts=accounts, speed=1, request_log=log) as sim:
        config = tmp / "fleet.toml"
        config.write_text(
            fleet_toml(
                sim.info, interval=1, lease=10, heartbeat=2, concurrency=64, log_level="WARNING"
            )
        )
        with _instances(k, config, cluster.dsn_without_password, fleet_env(sim.info), tmp) as procs:
            deadline = time.monotonic() + 120
            while True:
                held = [
                    len((healthz(p) or {}).get("shard", {}).get("accounts", [])) for _, p in procs
                ]
                if sum(held) == accounts and min(held) > 0:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"accounts not shared out within 120 s: {held}")
                time.sleep(0.5)
            time.sleep(warmup)
            c0 = sum(proc_cpu_seconds(p.pid) for p, _ in procs)
            s0, g0 = proc_cpu_seconds(sim.pid), postgres_cpu(cluster)
            t0 = time.time()
            time.sleep(window)
            t1 = time.time()
            c1 = sum(proc_cpu_seconds(p.pid) for p, _ in procs)
            s1, g1 = proc_cpu_seconds(sim.pid), postgres_cpu(cluster)
    return Round(k, polls_in(log, t0, t1), t1 - t0, c1 - c0, s1 - s0, g1 - g0, os.getloadavg()[0])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cars", type=int, default=3000)
    ap.add_argument("--accounts", type=int, default=30)
    ap.add_argument("--instances", default="1,2,3")
    ap.add_argument("--warmup", type=float, default=15.0)
    ap.add_argument("--window", type=float, default=20.0)
    args = ap.parse_args(argv)
    bindir = find_binaries()
    if bindir is None:
        raise SystemExit("needs PostgreSQL (Debian: apt-get install postgresql)")
    rounds = []
    with tempfile.TemporaryDirectory() as d:
        Path(d).chmod(0o711)  # the server may run as an unprivileged user (bench.postgres)
        cluster = Cluster(bindir, Path(d) / "pg")
        cluster.start()
        try:
            for k in (int(x) for x in args.instances.split(",")):
                rounds.append(
                    one_round(
                        k, args.cars, args.accounts, args.warmup, args.window, cluster, Path(d)
                    )
                )
                print(f"{k} instance(s): {rounds[-1].rate:.0f} polls/s", file=sys.stderr)
        finally:
            cluster.stop()
    base = rounds[0].rate / rounds[0].instances
    cores = os.cpu_count() or 1
    print(
        table(
            [
                "instances",
                "polls/s",
                "vs linear",
                "instances CPU % (sum)",
                "simulator CPU %",
                "PostgreSQL CPU %",
                "polls per instance CPU-s",
                "load average",
            ],
            [
                [
                    r.instances,
                    r.rate,
                    f"{r.rate / (base * r.instances):.2f}",
                    100 * r.cpu_instances / r.seconds,
                    100 * r.cpu_sim / r.seconds,
                    100 * r.cpu_pg / r.seconds,
                    r.polls / r.cpu_instances if r.cpu_instances else float("nan"),
                    f"{r.load:.1f}",
                ]
                for r in rounds
            ],
        )
    )
    print(
        f"\n{args.cars} smart cars over {args.accounts} accounts, every interval 1 s (always more "
        f"due than polled), {args.window:g} s window after {args.warmup:g} s warm-up, "
        f"{cores} CPU cores"
    )


if __name__ == "__main__":
    main()
