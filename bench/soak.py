"""The reliability soak: weeks of simulated faults against the real exporter, counted.

One process runs the simulated clouds (smart EU + INTL, Smartcar with webhooks) and the exporter
(runtime + HTTP server, so webhooks arrive over loopback) on one accelerated ScaledClock. Every
fault knob is on at a combined rate (default 5 %, spread evenly): token expiry (1402), main token
expiry (1501), 8153, another client selecting a car (8006), 429/403 with Retry-After, 5xx HTML,
timeouts, malformed JSON, garbage fields; Smartcar webhooks come late, duplicated and out of order.
Once per simulated day the exporter is stopped and a new one started on the same database and
token vault (the simulated clouds keep running, as real ones would).

Counted, from the outside wherever possible:
* crashes: runtime tasks that died, "poll crashed" (a parser or pipeline bug caught by the poller);
* smart car reports the simulator served (distinct updateTimes) vs rows stored for those cars;
* full logins (login chains the simulated gateway saw) per API-token lifetime and 1402/1501;
* requests for a car sent while a Retry-After the cloud gave for that car was still running;
* webhook reports applied twice (the hub's "new report" listener called again for a (vin, time));
* RSS per simulated day (peak, first vs last day).

    python -m bench.soak --days 30 --smart 32 --smartcar 17 --speed 3000 --fault-rate 0.05
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import logging
import os
import socket
import sqlite3
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.common import peak_rss_bytes, rss_bytes, table
from exporter.clock import ScaledClock
from exporter.config import load
from exporter.runtime import Runtime
from exporter.server import make_app
from exporter.simulator.faults import Fault, FaultKind, Faults
from exporter.simulator.runner import SimulatorHandle, start_simulator
from exporter.simulator.smart import Lifetimes, SmartCloudConfig
from exporter.simulator.smartcar.headless import consent
from exporter.snapshot import Snapshot
from exporter.tokens import KEY_ENV, generate_key

CONFIG = """
[exporter]
port = {port}
db = "{db}"
[log]
level = "WARNING"
[poll]
timeout = {timeout}
[simulator]
enabled = true
seed = {seed}
smart_vehicles = {smart}
smartcar_vehicles = {smartcar}
[[accounts]]
name = "eu"
provider = "smart"
region = "EU"
simulator = true
request_timeout = {timeout}
[[accounts]]
name = "intl"
provider = "smart"
region = "INTL"
simulator = true
request_timeout = {timeout}
"""
SMARTCAR_ACCOUNT = """
[[accounts]]
name = "sc"
provider = "smartcar"
simulator = true
webhooks = true
"""

SMART_MODELS = ("#1", "#3", "#5")
SMARTCAR_MODELS = ("Tesla Model 3", "Volkswagen ID.4", "Ford Mustang Mach-E")
DAY = 86400.0


class Counters(logging.Handler):
    """Counts log records the soak cares about (crashes, errors) without printing them."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.by_msg: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.first_errors: list[str] = []  # whole message and traceback of the first few, to trace

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        self.by_msg[msg.split(":")[0][:60]] += 1
        if record.levelno >= logging.ERROR:
            self.errors[f"{record.name}: {msg[:80]}"] += 1
            if len(self.first_errors) < 5:
                trace = (
                    logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
                )
                self.first_errors.append(f"{record.name}: {msg}\n{trace}")


class RetryAfterWatch:
    """Wraps ``Faults.pick``: remembers each Retry-After given for a car and counts requests for
    that car that arrive before it expired (the client must not send them)."""

    def __init__(self, faults: Faults, clock: ScaledClock) -> None:
        self.clock = clock
        self.until: dict[tuple[str, str], float] = {}
        self.cause: dict[tuple[str, str], str] = {}  # what got the Retry-After: "429 on soc"
        self.restarts_at: list[float] = []  # sim times of the daily restarts (set by the soak)
        self.health: Any = None  # the running exporter's Health: its view of the car, for tracing
        self.given = 0
        self.early = 0
        self.early_calls: list[tuple[str, str, str, float]] = []
        self.early_why: list[str] = []
        self.retry_after: dict[tuple[str, str], float] = {}
        # every injection (Faults.log keeps only the latest 10,000): (sim time, kind, cloud, vin)
        self.log: list[tuple[float, str, str, str | None]] = []
        original = faults.pick

        def pick(cloud: str, endpoint: str, vin: str | None = None) -> Fault | None:
            now = clock.now()
            key = (cloud, vin or "")
            if vin is not None and now < self.until.get(key, 0.0) - 0.5:
                self.early += 1
                # what the early request was, for tracing: cloud, endpoint, VIN, seconds too early
                self.early_calls.append((cloud, endpoint, vin, round(self.until[key] - now, 1)))
                given = self.until[key] - self.retry_after.get(key, 0.0)
                restarted = any(given <= t <= now for t in self.restarts_at)
                self.early_why.append(
                    f"{vin} {endpoint}: Retry-After from {self.cause.get(key)}, "
                    f"{now - given:.1f} s earlier, exporter restarted in between: {restarted}, "
                    f"the client's last error for the car: {self._last_error(vin)!r}"
                )
            fault = original(cloud, endpoint, vin)
            if fault is not None:
                self.log.append((now, fault.kind.value, cloud, vin))
            if vin is not None and fault is not None and fault.kind in _RETRY_AFTER:
                self.given += 1
                self.until[key] = now + fault.retry_after
                self.retry_after[key] = fault.retry_after
                code = "429" if fault.kind is FaultKind.RATE_LIMITED else "403"
                self.cause[key] = f"{code} on {endpoint}"
            return fault

        faults.pick = pick  # type: ignore[method-assign]

    def _last_error(self, vin: str) -> str:
        h = self.health.vehicles.get(vin) if self.health is not None else None
        return str(h.last_error) if h is not None else "unknown"


_RETRY_AFTER = (FaultKind.RATE_LIMITED, FaultKind.FORBIDDEN)


class ServedWatch:
    """Wraps the smart cloud's ``report_served``: every distinct car report handed out, with the
    simulated time it was served, so a report never stored can be traced to what happened then."""

    def __init__(self, cloud: Any, clock: ScaledClock) -> None:
        self.served: dict[tuple[str, float], float] = {}
        original = cloud.report_served

        def report_served(vin: str, update_ms: int) -> None:
            self.served.setdefault((vin, update_ms / 1000), clock.now())
            original(vin, update_ms)

        cloud.report_served = report_served

    def explain_lost(
        self, stored: set[tuple[str, float]], log: list[tuple[float, str, str, str | None]]
    ) -> dict[str, int]:
        """Reports served but not stored, by the fault injected for that car within a minute."""
        by_vin: dict[str | None, list[tuple[float, str]]] = collections.defaultdict(list)
        for t, kind, _cloud, vin in log:
            by_vin[vin].append((t, kind))
        out: collections.Counter[str] = collections.Counter()
        for (vin, ts), at in self.served.items():
            if (vin, ts) in stored:
                continue
            kinds = [k for t, k in by_vin.get(vin, []) if at - 1 <= t <= at + 60]
            out[kinds[0] if kinds else "no fault nearby"] += 1
        return dict(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Soak:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.port = free_port()
        self.db = tmp / "soak.db"
        smart = [SMART_MODELS[i % 3] for i in range(args.smart)]
        sc = [SMARTCAR_MODELS[i % 3] for i in range(args.smartcar)]
        path = tmp / "config.toml"
        path.write_text(
            CONFIG.format(
                port=self.port,
                db=self.db,
                timeout=args.timeout,
                seed=args.seed,
                smart=_toml_list(smart),
                smartcar=_toml_list(sc),
            )
            + (SMARTCAR_ACCOUNT if sc else "")
        )
        self.config = load(path, env={})
        os.environ[KEY_ENV] = generate_key()  # the vault: tokens survive the daily restarts
        self.clock = ScaledClock(speed=args.speed)
        self.log = Counters()
        self.seen_reports: set[tuple[str, float]] = set()
        self.lifetime_reports: set[tuple[str, float]] = set()
        self.double_applied = 0
        self.reread_after_restart = 0
        self.webhook_reports = 0
        self.crashes = 0
        self.restarts = 0
        self.rss_per_day: list[int] = []

    # --- pieces -----------------------------------------------------------------------------------
    async def start_simulator(self) -> SimulatorHandle:
        lifetimes = Lifetimes(api_access=self.args.token_hours * 3600)
        sim = await start_simulator(
            self.config.simulator,
            self.clock,
            demo=False,
            options={
                "smart": SmartCloudConfig(lifetimes=lifetimes),
                "smartcar": {"out_of_order": 0.05, "duplicate_rate": 0.05},
            },
        )
        sim.faults.hang_seconds = self.args.timeout * 1.5  # real seconds: the client must time out
        kinds = list(FaultKind)
        for kind in kinds:
            sim.faults.set_rate(kind, self.args.fault_rate / len(kinds))
        return sim

    async def start_exporter(self, sim: SimulatorHandle) -> tuple[Runtime, web.AppRunner]:
        cfg = replace(
            self.config, simulator=self.config.simulator.model_copy(update={"enabled": False})
        )
        rt = await Runtime.create(cfg, self.clock)
        rt.simulator = sim  # the clouds outlive the exporter: they are not its to stop
        rt.hub.subscribe(self.on_report)
        self.lifetime_reports = set()
        runner = web.AppRunner(make_app(rt), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        return rt, runner

    async def stop_exporter(self, rt: Runtime, runner: web.AppRunner) -> None:
        self.crashes += rt.failed_tasks()
        rt.simulator = None
        await runner.cleanup()  # stops the runtime: scheduler, providers, final history flush

    def on_report(self, snap: Snapshot) -> None:
        """A NEW report reached the history. Within one exporter lifetime a (vin, time) must arrive
        once; after a restart the first poll re-reads the last report (the DB's key ignores it)."""
        key = (snap.vin, snap.car_time)
        if snap.source == "webhook":
            self.webhook_reports += 1
        if key in self.lifetime_reports:
            self.double_applied += 1
        elif key in self.seen_reports:
            self.reread_after_restart += 1
        self.lifetime_reports.add(key)
        self.seen_reports.add(key)

    async def connect_smartcar(self, http: aiohttp.ClientSession) -> int:
        """The owner's Connect, through the exporter's own link; retried from the start (as an
        owner would) when an injected fault breaks a step. Returns the attempts it took."""
        base = f"http://127.0.0.1:{self.port}"
        for attempt in range(1, 51):
            try:
                async with http.get(base + "/connect/smartcar", allow_redirects=False) as r:
                    url = r.headers.get("Location") if r.status == 302 else None
                if url is not None:
                    loc = await consent(http, url)
                    async with http.get(loc, allow_redirects=False) as r:
                        if r.status < 400:
                            return attempt
            except (ValueError, aiohttp.ClientError):
                pass
            await asyncio.sleep(0.2)
        raise RuntimeError("Smartcar Connect did not complete in 50 attempts")

    # --- run --------------------------------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        logging.getLogger().addHandler(self.log)
        logging.getLogger().setLevel(logging.WARNING)
        sim = await self.start_simulator()
        watch = RetryAfterWatch(sim.faults, self.clock)
        smart = sim.smart
        served_watch = ServedWatch(smart, self.clock)
        t0 = self.clock.now()
        wall0 = time.perf_counter()
        rt, runner = await self.start_exporter(sim)
        watch.health = rt.health
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            connect_attempts = await self.connect_smartcar(http) if self.args.smartcar else 0
        for day in range(1, int(self.args.days) + 1):
            while self.clock.now() < t0 + day * DAY:
                await asyncio.sleep(0.2)
            self.crashes += self.log.by_msg.get("poll crashed", 0) - self._crash_logs()
            self.rss_per_day.append(rss_bytes())
            if day < self.args.days:
                watch.restarts_at.append(self.clock.now())
                await self.stop_exporter(rt, runner)
                rt, runner = await self.start_exporter(sim)
                watch.health = rt.health
                self.restarts += 1
            print(
                f"day {day}: rows {self._rows()}, rss {self.rss_per_day[-1] / 1e6:.0f} MB, "
                f"{time.perf_counter() - wall0:.0f} s",
                flush=True,
            )
        await self.stop_exporter(rt, runner)
        sim_days = (self.clock.now() - t0) / DAY
        served, stored, lost = self._served_vs_stored(sim)
        expiries = self._token_expiries(watch.log, sim_days)
        logins = smart.throttle.attempts
        await sim.close()
        logging.getLogger().removeHandler(self.log)
        injected = collections.Counter(kind for _, kind, _, _ in watch.log)
        with contextlib.closing(sqlite3.connect(self.db)) as c:
            stored_keys = set(c.execute("SELECT vin, ts FROM samples").fetchall())
        lost_why = served_watch.explain_lost(stored_keys, watch.log)
        return {
            "simulated days": sim_days,
            "wall s": time.perf_counter() - wall0,
            "vehicles": self.args.smart + 1 + self.args.smartcar if self.args.smart else 0,
            "restarts": self.restarts,
            "Smartcar Connect attempts": connect_attempts,
            "crashes": self.crashes,
            "smart reports served": served,
            "rows stored for them": stored,
            "served but not stored": lost,
            "token expiries": expiries,
            "full logins": logins,
            "Retry-After given": watch.given,
            "requests before Retry-After expired": watch.early,
            "webhook reports applied": self.webhook_reports,
            "reports applied twice in one run": self.double_applied,
            "re-read after a restart (not re-stored)": self.reread_after_restart,
            "duplicate rows in the DB": self._duplicate_rows(),
            "peak RSS MB": peak_rss_bytes() / 1e6,
            "RSS day 1 / last MB": f"{self.rss_per_day[0] / 1e6:.0f} / {self.rss_per_day[-1] / 1e6:.0f}",
            "faults injected": sum(injected.values()),
            "faults by kind": dict(injected),
            "served but not stored, by nearby fault": lost_why,
            "error logs": dict(self.log.errors.most_common(8)),
            "early requests (cloud, endpoint, vin, s too early)": watch.early_calls[:20],
            "first error records": self.log.first_errors,
            "why early": watch.early_why[:10],
        }

    _crash_seen = 0

    def _crash_logs(self) -> int:
        seen, self._crash_seen = self._crash_seen, self.log.by_msg.get("poll crashed", 0)
        return seen

    def _rows(self) -> int:
        with contextlib.closing(sqlite3.connect(self.db)) as c:
            return int(c.execute("SELECT COUNT(*) FROM samples").fetchone()[0])

    def _duplicate_rows(self) -> int:
        with contextlib.closing(sqlite3.connect(self.db)) as c:
            q = "SELECT COUNT(*) - COUNT(DISTINCT vin || '/' || ts) FROM samples"
            return int(c.execute(q).fetchone()[0])

    def _served_vs_stored(self, sim: SimulatorHandle) -> tuple[int, int, int]:
        with contextlib.closing(sqlite3.connect(self.db)) as c:
            stored = dict(c.execute("SELECT vin, COUNT(*) FROM samples GROUP BY vin").fetchall())
        served = {vin: s.count for vin, s in sim.smart.served.items()}
        lost = sum(max(0, n - stored.get(vin, 0)) for vin, n in served.items())
        return sum(served.values()), sum(stored.get(v, 0) for v in served), lost

    def _token_expiries(self, log: list[tuple[float, str, str, str | None]], days: float) -> int:
        """API tokens that died: one per lifetime per smart account, plus injected 1402/1501."""
        accounts = 2 if self.args.smart else 0
        natural = int(days * 24 / self.args.token_hours) * accounts
        dying = (FaultKind.TOKEN_EXPIRED.value, FaultKind.MAIN_TOKEN_EXPIRED.value)
        injected = sum(1 for _, kind, cloud, _ in log if cloud == "smart" and kind in dying)
        return natural + injected


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--smart", type=int, default=32, help="smart EU cars (+1 INTL car)")
    ap.add_argument("--smartcar", type=int, default=17)
    ap.add_argument("--speed", type=float, default=3000.0, help="simulated seconds per second")
    ap.add_argument("--fault-rate", type=float, default=0.05, help="combined, over every knob")
    ap.add_argument("--timeout", type=float, default=1.0, help="client timeout (real s)")
    ap.add_argument("--token-hours", type=float, default=24.0, help="smart API token lifetime")
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        result = asyncio.run(Soak(args, Path(d)).run())
    detail = {
        k: result.pop(k)
        for k in (
            "faults by kind",
            "served but not stored, by nearby fault",
            "error logs",
            "early requests (cloud, endpoint, vin, s too early)",
        )
    }
    first_errors = result.pop("first error records")
    for line in result.pop("why early"):
        print(f"early: {line}")
    print(table(["measure", "value"], [[k, v] for k, v in result.items()]))
    for k, v in detail.items():
        print(f"\n{k}: {v}")
    for text in first_errors:
        print(f"\nerror record:\n{text}")


if __name__ == "__main__":
    main()
