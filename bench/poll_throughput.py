"""Benchmark 1: vehicle-polls per second, carmetrics vs the raw aiohttp ceiling vs pysmarthashtag.

All three poll the same simulated smart accounts served by one simulator child process
(``bench.simproc``), one after the other in the same run, with the same concurrency (one worker per
account: the cloud serves one selected car per account, so an account is polled serially):

* **carmetrics**: the real pipeline. Scheduler with every interval 0 (always due), the smart
  provider (signing, select, status + soc + state, typed errors), parsing to a Snapshot, the hub,
  the batched SQLite history and the health bookkeeping the /metrics collector reads.
* **ceiling**: a bare aiohttp client sending the same three signed GETs per car (status, soc,
  state) to the same server and reading the bytes: no parsing, no storage. The physical limit of
  this server + loopback for one vehicle-poll.
* **peer**: ``pysmarthashtag`` 0.15 polling each account the way it does (``get_vehicles()``:
  select, status, soc, OTA, trip journal and state per car, an httpx client per call).

Each figure is the number of completed vehicle-polls in a fixed window after a warm-up that lasts
until every car has been read once (the steady state: a car's first poll is start-up work); "per
client CPU-second" divides by the CPU seconds the client process spent in that window. Two same-run
ratios come out of it: throughput vs the ceiling (polls/s over polls/s) and CPU efficiency vs the
bare client (carmetrics' polls per CPU-second over the ceiling's): what everything carmetrics does
after the bytes arrive costs, relative to fetching them.

    python -m bench.poll_throughput --sizes 10,100,1000,5000 --window 10 --runs 3

``--profile FILE`` runs cProfile over carmetrics' measured window only (not the warm-up, not the
other clients) and writes the stats of the last run to FILE (read with ``python -m pstats FILE``):

    python -m bench.poll_throughput --sizes 5000 --runs 1 --no-peer --profile /tmp/poll.prof
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import logging
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench import simproc
from bench.common import cpu_seconds, median, table
from bench.providers import smart_provider as build
from exporter.config import AccountConfig, PollConfig, Secret
from exporter.health import Health
from exporter.history import History
from exporter.hub import Hub, Outcome
from exporter.providers.base import MemoryTokenStore, ProviderError
from exporter.providers.smart.provider import SOC, STATE, STATUS, SmartProvider
from exporter.providers.smart.signing import canonical_query, signed_headers
from exporter.scheduler import Scheduler


@dataclass
class Result:
    polls: int
    errors: int
    seconds: float
    cpu: float
    new: int = 0  # carmetrics: polls whose report was new (stored), the rest refreshes

    @property
    def rate(self) -> float:
        return self.polls / self.seconds if self.seconds else 0.0

    @property
    def per_core(self) -> float:
        return self.polls / self.cpu if self.cpu else float("nan")


Counter = list[int]  # [completed, errors, new reports]


SETTLE_LIMIT_S = 300.0


async def _window(
    run: Callable[[Counter], Coroutine[Any, Any, None]],
    warmup: float,
    window: float,
    profile: cProfile.Profile | None = None,
    settle: int = 0,
) -> Result:
    """Start ``run`` (which bumps the counter per completed vehicle-poll), count over the window
    (profiled by ``profile`` when given: the steady state, not the start-up).

    The window opens after ``warmup`` seconds and once ``settle`` polls have completed: with
    ``settle`` = the number of cars every car has been read once (both clients go through the cars
    in order), so the window holds the steady state. Before that, a 5,000-car window was a third
    first polls, which for carmetrics are start-up work (a car's first report is always new: a
    history row), not the cost of a poll."""
    counter: Counter = [0, 0, 0]
    task = asyncio.create_task(run(counter))
    try:
        await asyncio.sleep(warmup)
        limit = time.perf_counter() + SETTLE_LIMIT_S
        while counter[0] + counter[1] < settle:
            if time.perf_counter() > limit:
                raise RuntimeError(f"{counter[0]} of {settle} first polls in {SETTLE_LIMIT_S:g} s")
            await asyncio.sleep(0.05)
        if profile is not None:
            profile.enable()
        n0, e0, w0, c0, t0 = (*counter, cpu_seconds(), time.perf_counter())
        await asyncio.sleep(window)
        n1, e1, w1, c1, t1 = (*counter, cpu_seconds(), time.perf_counter())
        if profile is not None:
            profile.disable()
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
    return Result(n1 - n0, e1 - e0, t1 - t0, c1 - c0, w1 - w0)


def _account(i: int, acc: dict[str, Any]) -> AccountConfig:
    return AccountConfig(
        name=f"bench{i}",
        provider="smart",
        index=i,
        simulator=True,
        settings={"region": "EU", "username": acc["username"]},
        secrets={"password": Secret(acc["password"])},
    )


async def _providers(
    info: dict[str, Any], session: aiohttp.ClientSession
) -> list[tuple[SmartProvider, list[str]]]:
    # the clients stamp requests and date reports by the simulator's clock, as the exporter does
    # beside the demo: on the wall clock the 60x simulator runs ahead and the hub refuses its
    # reports as from the future, which costs less than storing them
    clock = simproc.clock_of(info)
    store = MemoryTokenStore()
    out = []
    for i, acc in enumerate(info["accounts"]):
        p = build(_account(i, acc), session, clock, store, info["urls"]["smart"])
        await p.start()
        vins = [v.vin for v in await p.vehicles()]
        out.append((p, vins))
    return out


def _cars(providers: list[tuple[SmartProvider, list[str]]]) -> int:
    return sum(len(vins) for _, vins in providers)


def _session(concurrency: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=max(100, concurrency * 2)),
        timeout=aiohttp.ClientTimeout(total=30),
    )


# --- carmetrics ---------------------------------------------------------------------------------


async def run_carmetrics(
    info: dict[str, Any],
    warmup: float,
    window: float,
    db: Path,
    concurrency: int | None = None,
    profile: cProfile.Profile | None = None,
) -> Result:
    async with _session(len(info["accounts"])) as session:
        providers = await _providers(info, session)
        hub, health, history = Hub(), Health(), History(db)
        history.open()
        hub.subscribe(history.add)
        # no waiting between polls: below what a config may say, so built without validation
        zero = PollConfig.model_construct(
            driving=0,
            charging=0,
            parked=0,
            asleep=0,
            jitter=0,
            concurrency=concurrency or len(providers),
        )

        async def run(counter: Counter) -> None:
            def on_poll(_vin: str, result: object) -> None:
                counter[1 if isinstance(result, ProviderError) else 0] += 1
                counter[2] += result is Outcome.NEW

            sched = Scheduler(hub, health, simproc.clock_of(info), zero, on_poll=on_poll)
            for p, vins in providers:
                for vin in vins:
                    sched.add(vin, p)
            hist = asyncio.create_task(history.run())
            try:
                await sched.run()
            finally:
                hist.cancel()

        try:
            return await _window(run, warmup, window, profile, settle=_cars(providers))
        finally:
            await asyncio.get_running_loop().run_in_executor(None, history.close)


# --- ceiling ------------------------------------------------------------------------------------


async def run_ceiling(info: dict[str, Any], warmup: float, window: float) -> Result:
    async with _session(len(info["accounts"])) as session:
        providers = await _providers(info, session)

        async def worker(p: SmartProvider, vins: list[str], counter: Counter) -> None:
            s = await p.auth.session()
            base = p.transport.hosts
            calls = [
                (STATUS, [("latest", "True"), ("target", "basic,more"), ("userId", s.user_id)]),
                (SOC, [("setting", "charging")]),
                (STATE, []),
            ]
            prepared = []
            for vin in vins:
                rec = await p._record(vin)
                host = base.api_v2 if rec.v2 else base.api_v1
                binding = p._binding(rec)
                prepared.append(
                    [(host, path.format(vin=vin), canonical_query(q), binding) for path, q in calls]
                )
            region = p.settings.region
            clock = simproc.clock_of(info)
            while True:
                for reqs in prepared:
                    for host, path, qs, binding in reqs:
                        headers = signed_headers(
                            region,
                            method="GET",
                            path=path,
                            query=qs,
                            body=None,
                            timestamp_ms=str(int(clock.now() * 1000)),
                            nonce=region.new_nonce(),
                            device_id=p.api.device_id,
                            token=s.access_token,
                        )
                        headers.update(binding)
                        async with session.get(f"{host}{path}?{qs}", headers=headers) as r:
                            await r.read()
                    counter[0] += 1

        async def run(counter: Counter) -> None:
            await asyncio.gather(*(worker(p, v, counter) for p, v in providers))

        return await _window(run, warmup, window, settle=_cars(providers))


# --- peer: pysmarthashtag ----------------------------------------------------------------------


def _peer_urls(urls: dict[str, str]) -> Any:
    """pysmarthashtag's EndpointUrls for the simulator. Its vehicles take their API host from
    module constants (not from EndpointUrls), so those are pointed at the simulator too."""
    import pysmarthashtag.vehicle.vehicle as psh_vehicle
    from pysmarthashtag.const import API_KEY, EndpointUrls

    psh_vehicle.API_BASE_URL = urls["api_v1"]
    psh_vehicle.API_BASE_URL_V2 = urls["api_v2"]

    return EndpointUrls(
        server_url=f"{urls['awsapi']}/login-app/api/v1/authorize?uiLocales=de-DE",
        auth_url=f"{urls['auth']}/oidc/op/v1.0/{API_KEY}/authorize/continue",
        login_url=f"{urls['auth']}/accounts.login",
        api_base_url=urls["api_v1"],
        api_base_url_v2=urls["api_v2"],
        ota_server_url=urls["ota"] + "/",
        gigya_socialize_url=urls["socialize"],
    )


async def run_peer(info: dict[str, Any], warmup: float, window: float) -> Result:
    from pysmarthashtag.account import SmartAccount

    accounts = []
    for acc in info["accounts"]:
        a = SmartAccount(
            acc["username"], acc["password"], endpoint_urls=_peer_urls(info["urls"]["smart"])
        )
        await a.login()
        accounts.append(a)

    async def worker(a: Any, counter: Counter) -> None:
        original = a.get_vehicle_state

        async def counted(vin: str) -> Any:  # the last call of each car in get_vehicles()
            try:
                return await original(vin)
            finally:
                counter[0] += 1

        a.get_vehicle_state = counted
        while True:
            try:
                await a.get_vehicles()
            except Exception:  # the peer's failures are counted, they do not stop the run
                counter[1] += 1

    async def run(counter: Counter) -> None:
        await asyncio.gather(*(worker(a, counter) for a in accounts))

    return await _window(run, warmup, window)


async def _no_select(self: SmartProvider, rec: object, session: object) -> None:
    """The --skip-select experiment: every data call already carries the VIN binding headers."""


# --- main ---------------------------------------------------------------------------------------


async def measure(
    size: int,
    accounts: int,
    warmup: float,
    window: float,
    runs: int,
    peer: bool,
    concurrency: int | None = None,
    profile: cProfile.Profile | None = None,
    speed: float = 60.0,
) -> dict[str, list[Result]]:
    out: dict[str, list[Result]] = {"carmetrics": [], "ceiling": [], "peer": []}
    with simproc.start(smart=size, accounts=accounts, speed=speed) as sim:
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as tmp:
                out["carmetrics"].append(
                    await run_carmetrics(
                        sim.info, warmup, window, Path(tmp) / "h.db", concurrency, profile
                    )
                )
            out["ceiling"].append(await run_ceiling(sim.info, warmup, window))
            if peer:
                out["peer"].append(await run_peer(sim.info, warmup, window))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="10,100,1000,5000")
    ap.add_argument("--accounts", type=int, default=8, help="accounts = concurrent workers")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--window", type=float, default=10.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument(
        "--speed",
        type=float,
        default=60.0,
        help="the simulator's clock speed: faster, and more polls find a new report to store; "
        "but each read then costs the simulator more physics, so a slower client is also served "
        "more slowly (compare only runs where both clients reach similar polls/s)",
    )
    ap.add_argument(
        "--skip-select",
        action="store_true",
        help="experiment: carmetrics sends no session/update (relies on the X-Vehicle-* headers)",
    )
    ap.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="carmetrics' poll.concurrency (default: = accounts, the same as the others)",
    )
    ap.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="write cProfile stats of carmetrics' measured windows (all runs, all sizes) here",
    )
    args = ap.parse_args(argv)
    # CPU time, not wall time: on a shared machine a preempted call would look expensive
    profile = cProfile.Profile(time.thread_time) if args.profile else None
    logging.basicConfig(level=logging.CRITICAL)
    if args.skip_select:
        SmartProvider._select = _no_select  # type: ignore[method-assign]
    rows: list[list[object]] = []
    for size in (int(s) for s in args.sizes.split(",")):
        res = asyncio.run(
            measure(
                size,
                args.accounts,
                args.warmup,
                args.window,
                args.runs,
                not args.no_peer,
                args.concurrency,
                profile,
                args.speed,
            )
        )
        cm = median([r.rate for r in res["carmetrics"]])
        ce = median([r.rate for r in res["ceiling"]])
        pe = median([r.rate for r in res["peer"]]) if res["peer"] else float("nan")
        ratios_ce = [
            a.rate / b.rate for a, b in zip(res["carmetrics"], res["ceiling"], strict=True)
        ]
        ratios_pe = [a.rate / b.rate for a, b in zip(res["carmetrics"], res["peer"], strict=False)]
        efficiency = [  # same run: carmetrics' polls per CPU-second over the bare client's
            a.per_core / b.per_core for a, b in zip(res["carmetrics"], res["ceiling"], strict=True)
        ]
        rows.append(
            [
                size,
                cm,
                median([r.per_core for r in res["carmetrics"]]),
                sum(r.errors for r in res["carmetrics"]),
                ce,
                median([r.per_core for r in res["ceiling"]]),
                pe,
                f"{median(ratios_ce) * 100:.0f} %",
                f"{median(efficiency) * 100:.0f} %",
                f"{median(ratios_pe):.1f}x" if ratios_pe else "–",
            ]
        )
        new = [r.new / r.polls * 100 if r.polls else 0.0 for r in res["carmetrics"]]
        print(
            f"size {size}: CPU efficiency per run "
            + ", ".join(f"{e * 100:.0f} %" for e in efficiency)
            + "; carmetrics' polls with a new report (stored) "
            + ", ".join(f"{n:.1f} %" for n in new),
            flush=True,
        )
    print(
        table(
            [
                "vehicles",
                "carmetrics polls/s",
                "polls per client CPU-s",
                "errors",
                "ceiling polls/s",
                "ceiling polls per client CPU-s",
                "pysmarthashtag polls/s",
                "carmetrics ÷ ceiling",
                "CPU efficiency vs bare client",
                "carmetrics ÷ peer",
            ],
            rows,
        )
    )
    print(
        f"\n{args.accounts} accounts = {args.accounts} concurrent workers; median of {args.runs} "
        f"runs of {args.window:g} s after a warm-up of at least {args.warmup:g} s that lasts until "
        "every car was read once; simulator in its own process."
    )
    if profile is not None:
        profile.dump_stats(args.profile)
        print(f"cProfile of carmetrics' measured windows: {args.profile}")


if __name__ == "__main__":
    main()
