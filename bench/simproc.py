"""The simulator in its own process, shaped for benchmarks: many smart accounts, limits lifted.

``carmetrics simulate`` serves the demo fleet (one EU account); a throughput benchmark needs
thousands of cars spread over several accounts (the cloud serves one selected car per account, so
one account is polled serially) and the Smartcar plan limits lifted. Running it in a child process
keeps its CPU off the measured client, as a real cloud would be.

    python -m bench.simproc --smart 5000 --accounts 8 --smartcar 0 --speed 60
    python -m bench.simproc --smart 300 --accounts 30 --request-log sim.jsonl   # the fleet drill
    -> one JSON line: {"urls": {...}, "accounts": [{"username", "password", "vins"}], "smartcar": {...}}

``start(...)`` does the same from a bench script and returns the parsed line and the process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from exporter.clock import ScaledClock

MODELS = ("#1", "#3", "#5")
SMARTCAR_MODELS = ("Tesla Model 3", "Volkswagen ID.4")


async def _serve(args: argparse.Namespace) -> None:
    from exporter.clock import ScaledClock
    from exporter.simulator.faults import Faults
    from exporter.simulator.fleet import Fleet
    from exporter.simulator.smart.cloud import SmartCloud, SmartCloudConfig

    clock = ScaledClock(speed=args.speed)
    fleet = Fleet(seed=args.seed, clock=clock)
    faults = Faults(clock=clock, seed=args.seed)
    if args.fault_rate > 0:
        faults.set_global_rate(args.fault_rate)
    faults.hang_seconds = args.hang_seconds
    start, anchor = clock.anchor
    info: dict[str, Any] = {
        "urls": {},
        "accounts": [],
        "smartcar": None,
        "clock": {"start": start, "anchor_monotonic": anchor, "speed": args.speed},
    }
    closers = []
    if args.smart:
        smart_vins = [fleet.add(MODELS[i % len(MODELS)], cloud="smart") for i in range(args.smart)]
        # no WAF throttling: a benchmark logs many accounts in at once, on purpose
        cloud = SmartCloud(fleet, faults, clock, SmartCloudConfig(login_limit=0))
        if args.request_log:
            journal = open(args.request_log, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
            closers.append(_closer(journal))
            cloud.request_log = lambda entry: journal.write(json.dumps(entry) + "\n")
        n = max(1, min(args.accounts, len(smart_vins)))
        for a in range(n):
            vins = smart_vins[a::n]
            user, pw = f"bench{a}@smart.sim", f"bench-pw-{a}"
            cloud.add_account(f"bench{a}", user, pw, "EU", vins)
            info["accounts"].append({"username": user, "password": pw, "vins": vins})
        info["urls"]["smart"] = await cloud.start(args.host)
        closers.append(cloud.close)
    if args.smartcar:
        from exporter.simulator.smartcar.fleet_adapter import demo_cloud, demo_v3
        from exporter.simulator.smartcar.server import SmartcarSimulator

        sc_vins = [
            fleet.add(SMARTCAR_MODELS[i % 2], cloud="smartcar") for i in range(args.smartcar)
        ]
        sc_cloud, creds = demo_cloud(fleet, clock, vins=sc_vins, seed=args.seed)
        sc_cloud.shared_faults = faults
        v3, v3_creds = demo_v3(sc_cloud, args.seed, redirect_uris=(args.redirect,))
        # the official SDK's v3 calls send no sc-user-id: serve them in the documented
        # legacy-compatibility mode (v2 per-vehicle token on v3 reads)
        v3.knobs.legacy_tokens = True
        big = (1e12, 1e12)  # the plan's rate limits would measure the limiter, not the code
        sc_cloud._app_bucket_cfg = big
        sc_cloud._vehicle_bucket_cfg = big
        for app in sc_cloud.apps.values():
            app.requests_per_vehicle_month = 10**12
            app.redirect_uris = (*app.redirect_uris, args.redirect)
        sim = SmartcarSimulator(sc_cloud, host=args.host, v3=v3)
        urls = await sim.start()
        info["urls"]["smartcar"] = {k: urls[k] for k in ("connect", "auth", "api")}
        info["urls"]["smartcar_v3"] = sim.v3_urls
        info["smartcar"] = {**creds.login(sc_cloud.owner_email), "vins": sc_vins}
        app_id = v3_creds.app.application_id
        info["smartcar_v3"] = {
            **v3_creds.login(),
            # the Application ID is also the legacy v2 client id; its v2 secret lets the SDK get
            # a per-vehicle token for its v3 reads (smartcar-v3.md §1.1, §1.4)
            "legacy_client_secret": sc_cloud.apps[app_id].client_secret,
        }
        closers.append(sim.stop)
    print(json.dumps(info), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for close in reversed(closers):
        with contextlib.suppress(Exception):
            await close()


def _closer(handle: Any) -> Any:
    async def close() -> None:
        handle.close()

    return close


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--smart", type=int, default=10, help="smart cars (spread over --accounts)")
    p.add_argument("--accounts", type=int, default=8, help="smart EU accounts")
    p.add_argument("--smartcar", type=int, default=0, help="cars behind the Smartcar cloud")
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--fault-rate", type=float, default=0.0)
    p.add_argument("--hang-seconds", type=float, default=40.0, help="real seconds a timeout hangs")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument(
        "--request-log",
        default="",
        help="append one JSON line per smart login and per car status read to this file",
    )
    p.add_argument("--redirect", default="http://127.0.0.1:9/connect/smartcar/callback")
    args = p.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.CRITICAL)  # clients cancelled at a window's end: no noise
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


def clock_of(info: dict[str, Any]) -> ScaledClock:
    """The simulator's own clock, rebuilt from its start line (``info["clock"]``): clients that
    stamp requests and date reports by it agree with the simulator to the millisecond."""
    c = info["clock"]
    return ScaledClock.shared(c["start"], c["anchor_monotonic"], c["speed"])


@dataclass
class SimProcess:
    """A running simulator child; ``info`` is its JSON line. Use as a context manager."""

    proc: subprocess.Popen[str]
    info: dict[str, Any]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> SimProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start(**options: Any) -> SimProcess:
    """Start ``python -m bench.simproc`` with ``options`` (keyword = flag) and wait for its line."""
    argv = [sys.executable, "-m", "bench.simproc"]
    for k, v in options.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait()
        raise RuntimeError(f"simulator exited with {proc.returncode} before printing its URLs")
    return SimProcess(proc, json.loads(line))


if __name__ == "__main__":
    main()
