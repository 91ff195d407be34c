"""The fleet drill with real processes: three ``carmetrics run --shard auto`` instances share 300
simulated cars over 30 smart accounts through one real PostgreSQL; one is killed with SIGKILL in
the middle of the run.

Everything is counted from the simulator's request log (``bench.simproc --request-log``: one line
per password login and per car status read, with the reading session): the dead instance's cars
are polled again by the others within the lease time (plus one poll interval: a car that was due
while the dead instance could still have polled it waits one interval, docs/SCALING.md); no car is
read by two sessions less than one interval apart; each account logs in once per lease holder; and
every report the cloud served to a live instance is in PostgreSQL.

Then a new instance joins and the two survivors hand a fair share back to it (the gap rule holds
across that hand-over too). Leases of 3 s and polls every 4 s keep it short; every wait is a condition polled against a
generous deadline, so a loaded machine makes it slower, not red.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bench import fleet_scaling as scaling
from bench import simproc
from bench.postgres import Cluster

ROOT = Path(__file__).resolve().parent.parent
ACCOUNTS = 30
CARS = 300
INSTANCES = 3
LEASE = 3.0
HEARTBEAT = 0.5
# every [poll] interval, no jitter: a car is due every 4 s, longer than a lease, so a successor
# that started polling the moment the lease expired would read some cars twice in one interval
INTERVAL = 4.0
# what a loaded 2-core machine may add to the design's bound (claim, login, first poll)
SLACK = 5.0


def fleet_toml(sim: dict[str, Any]) -> str:
    return scaling.fleet_toml(sim, interval=INTERVAL, lease=LEASE, heartbeat=HEARTBEAT)


def held(port: int) -> set[str]:
    h = scaling.healthz(port)
    return set(h["shard"]["accounts"]) if h and "shard" in h else set()


def until(cond: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"not reached within {timeout:g} s: {what}"
        time.sleep(0.2)


def read_log(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        if line.endswith("}"):  # a line being written is skipped until it is whole
            out.append(json.loads(line))
    return out


@pytest.fixture
def instances(tmp_path: Path) -> Iterator[list[tuple[subprocess.Popen[bytes], int]]]:
    procs: list[tuple[subprocess.Popen[bytes], int]] = []
    yield procs
    for proc, _ in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_three_instances_share_the_fleet_and_take_over_from_a_killed_one(
    postgres: Cluster, tmp_path: Path, instances: list[tuple[subprocess.Popen[bytes], int]]
) -> None:
    log = tmp_path / "requests.jsonl"
    with simproc.start(smart=CARS, accounts=ACCOUNTS, speed=1, request_log=log) as sim:
        config = tmp_path / "fleet.toml"
        config.write_text(fleet_toml(sim.info))
        env = scaling.fleet_env(sim.info)
        account_of = {
            vin: f"acct{i:02d}" for i, acc in enumerate(sim.info["accounts"]) for vin in acc["vins"]
        }

        def launch(n: int) -> int:
            proc, port = scaling.launch(
                config, postgres.dsn_without_password, env, tmp_path / f"instance{n}.log"
            )
            instances.append((proc, port))
            return port

        for n in range(INSTANCES):
            launch(n)
        ports = [p for _, p in instances]

        def shared_out() -> bool:
            sets = [held(p) for p in ports]
            return sum(len(s) for s in sets) == ACCOUNTS and len(set().union(*sets)) == ACCOUNTS

        until(shared_out, "30 accounts held, each by one instance")
        until(
            lambda: {e["vin"] for e in read_log(log) if e["event"] == "poll"} == set(account_of),
            "every car polled",
        )
        # a fair share each: ceil(30 / 3)
        assert all(len(held(p)) == ACCOUNTS // INSTANCES for p in ports)

        victim, victim_port = instances[0]
        lost = held(victim_port)
        assert len(lost) == ACCOUNTS // INSTANCES
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        killed = time.time()
        survivors = ports[1:]
        lost_cars = {v for v, a in account_of.items() if a in lost}

        def polled_after(t: float, times: int) -> bool:
            seen: dict[str, int] = defaultdict(int)
            for e in read_log(log):
                if e["event"] == "poll" and e["t"] > t:
                    seen[e["vin"]] += 1
            return all(seen[v] >= times for v in lost_cars)

        until(lambda: set().union(*(held(p) for p in survivors)) >= lost, "accounts taken over")
        until(lambda: polled_after(killed, 1), "the dead instance's cars polled again")
        shares = [held(p) for p in survivors]
        assert sum(len(s) for s in shares) == ACCOUNTS and not shares[0] & shares[1]
        assert all(len(s) == ACCOUNTS // (INSTANCES - 1) for s in shares)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{survivors[0]}/metrics").read()
        assert b"carmetrics_shard_accounts_held 15.0" in metrics
        assert b"carmetrics_shard_live_instances 2.0" in metrics

        # a new instance joins: the survivors hand accounts back until each has ceil(30 / 3)
        joined = time.time()
        newcomer = launch(INSTANCES)
        until(lambda: len(held(newcomer)) == ACCOUNTS // INSTANCES, "a fair share for the joiner")
        moved = held(newcomer)
        moved_cars = {v for v, a in account_of.items() if a in moved}
        until(
            lambda: all(
                any(e["t"] > joined and e["vin"] == v for e in read_log(log) if "vin" in e)
                for v in moved_cars
            ),
            "the joiner polls its cars",
        )
        assert sorted(len(held(p)) for p in [*ports[1:], newcomer]) == [10, 10, 10]

        for proc, _ in instances[1:]:
            proc.send_signal(signal.SIGTERM)
        for proc, _ in instances[1:]:
            assert proc.wait(timeout=60) == 0
    events = read_log(log)
    polls = [e for e in events if e["event"] == "poll"]

    # 1. taken over within the lease time (+ one interval for cars due while the dead instance
    #    could still poll them)
    first_after = {}
    for e in polls:
        if e["t"] > killed and e["vin"] in lost_cars:
            first_after.setdefault(e["vin"], e["t"])
    assert set(first_after) == lost_cars
    late = max(first_after.values()) - killed
    assert late <= LEASE + INTERVAL + SLACK, late

    # 2. never two sessions on one car within one interval
    by_car: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in polls:
        by_car[e["vin"]].append(e)
    for vin, reads in by_car.items():
        reads.sort(key=lambda e: e["t"])
        for a, b in itertools.pairwise(reads):
            if a["session"] != b["session"]:
                gap = b["t"] - a["t"]
                assert gap >= INTERVAL - 0.05, (vin, gap, a["t"] - killed, a["t"] - joined)

    # 3. one login per account per lease holder; the dead instance's accounts had two holders
    with psycopg.connect(postgres.dsn) as conn:
        generations = dict(conn.execute("SELECT account, generation FROM fleet_leases").fetchall())
        stored = {(v, round(ts * 1000)) for v, ts in conn.execute("SELECT vin, ts FROM samples")}
    username = {acc["username"]: f"acct{i:02d}" for i, acc in enumerate(sim.info["accounts"])}
    logins: dict[str, int] = defaultdict(int)
    for e in events:
        if e["event"] == "login":
            logins[username[e["account"]]] += 1
    assert set(logins) == set(generations)
    for account, n in logins.items():
        assert 1 <= n <= generations[account], (account, n, generations[account])
    assert all(generations[a] >= 2 and logins[a] >= 2 for a in lost)

    # 4. every report served to a live instance is in PostgreSQL (the dead one's last unflushed
    #    batch died with it: the cloud served those, but only to a process that no longer exists)
    dead_sessions = {e["session"] for e in polls if e["t"] < killed and e["vin"] in lost_cars}
    served = {(e["vin"], e["report_ms"]) for e in polls if e["session"] not in dead_sessions}
    missing = served - stored
    assert not missing, sorted(missing)[:5]
