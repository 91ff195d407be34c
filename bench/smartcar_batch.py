"""Benchmark 6: Smartcar polls/s through ``/batch`` vs the official ``smartcar`` SDK, same run.

The simulated Smartcar runs in its own process (``bench.simproc``, plan and rate limits lifted so
the code is measured, not the limiter). carmetrics' provider polls each car with one ``/batch``
carrying every path its granted permissions allow, parses it to a Snapshot; the SDK (6.x, pointed
at the simulator through its documented ``SMARTCAR_*_ORIGIN`` environment variables) calls
``vehicle.batch`` with the same paths from worker threads, as a sync client is used. Both run with
the same number of concurrent workers, for a fixed window after a warm-up; median of several runs.

    python -m bench.smartcar_batch --vehicles 20 --workers 8 --window 8 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

from bench import simproc
from bench.common import cpu_seconds, median, table
from bench.poll_throughput import Result
from exporter.clock import RealClock
from exporter.config import AccountConfig, Secret
from exporter.providers.base import MemoryTokenStore, ProviderError
from exporter.providers.smartcar import scopes
from exporter.providers.smartcar.provider import SmartcarProvider
from exporter.providers.smartcar.settings import from_account
from exporter.simulator.smartcar.headless import consent

REDIRECT = "http://127.0.0.1:9/connect/smartcar/callback"


def _provider(info: dict[str, Any], http: aiohttp.ClientSession) -> SmartcarProvider:
    sc = info["smartcar"]
    account = AccountConfig(
        name="sc",
        provider="smartcar",
        index=0,
        simulator=True,
        settings={
            "client_id": sc["client_id"],
            "redirect_uri": REDIRECT,
            "budget_calls_per_vehicle": 10**9,
        },
        secrets={
            "client_secret": Secret(sc["client_secret"]),
            "management_token": Secret(sc["management_token"]),
        },
    )
    settings = from_account(account, sim_urls=info["urls"]["smartcar"])
    p = SmartcarProvider(settings, http, RealClock(), MemoryTokenStore())
    # lift the client-side copy of Smartcar's app rate limit too (the simulator's is lifted)
    p.budget._bucket = p.budget._bucket_cap = p.budget._bucket_rate = 1e12
    return p


async def _connect(p: SmartcarProvider, http: aiohttp.ClientSession) -> list[str]:
    loc = await consent(http, scopes.authorize_url(p.settings, "bench"))
    code = parse_qs(urlsplit(loc).query)["code"][0]
    return [i.vin for i in await p.connect(code)]


async def carmetrics(info: dict[str, Any], workers: int, warmup: float, window: float) -> Result:
    async with aiohttp.ClientSession() as http:
        p = _provider(info, http)
        vins = await _connect(p, http)
        counter = [0, 0]
        errors: list[str] = []

        async def worker(k: int) -> None:
            mine = vins[k % len(vins) :: workers] or vins
            while True:
                for vin in mine:
                    try:
                        await p.snapshot(vin)
                        counter[0] += 1
                    except ProviderError as exc:
                        counter[1] += 1
                        errors.append(f"{type(exc).__name__}: {exc}")
                        await asyncio.sleep(0)  # a refusal may come without any I/O

        tasks = [asyncio.create_task(worker(k)) for k in range(workers)]
        await asyncio.sleep(warmup)
        n0, e0, c0, t0 = counter[0], counter[1], cpu_seconds(), time.perf_counter()
        await asyncio.sleep(window)
        res = Result(counter[0] - n0, counter[1] - e0, time.perf_counter() - t0, cpu_seconds() - c0)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if errors:
            print(f"carmetrics errors: {len(errors)}, first: {errors[0]}")
        # the SDK asks for the same permissions and reads the same paths
        query = parse_qs(urlsplit(scopes.authorize_url(p.settings, "bench")).query)
        info["_scope"] = [s.removeprefix("required:") for s in query["scope"][0].split()]
        info["_paths"] = list(p._vehicles[vins[0]].paths)
        return res


async def _sdk_tokens(info: dict[str, Any], client: Any) -> str:
    async with aiohttp.ClientSession() as http:
        url = client.get_auth_url(info["_scope"], {"state": "bench"})
        loc = await consent(http, url)
    code = parse_qs(urlsplit(loc).query)["code"][0]
    access = await asyncio.to_thread(client.exchange_code, code)
    return str(access.access_token)


def sdk(info: dict[str, Any], workers: int, warmup: float, window: float) -> Result:
    urls = info["urls"]["smartcar"]
    os.environ["SMARTCAR_API_ORIGIN"] = urls["api"]
    os.environ["SMARTCAR_AUTH_ORIGIN"] = urls["auth"] + "/oauth/token"
    os.environ["SMARTCAR_CONNECT_ORIGIN"] = urls["connect"]
    import smartcar
    import smartcar.config

    # The SDK reads the variables at import; a process that imported it earlier is re-pointed.
    smartcar.config.API_ORIGIN = os.environ["SMARTCAR_API_ORIGIN"]
    smartcar.config.AUTH_ORIGIN = os.environ["SMARTCAR_AUTH_ORIGIN"]
    smartcar.config.CONNECT_ORIGIN = os.environ["SMARTCAR_CONNECT_ORIGIN"]
    sc = info["smartcar"]
    client = smartcar.AuthClient(sc["client_id"], sc["client_secret"], REDIRECT, mode="simulated")
    token = asyncio.run(_sdk_tokens(info, client))
    ids = smartcar.get_vehicles(token).vehicles
    vehicles = [smartcar.Vehicle(i, token) for i in ids]
    paths = info["_paths"]
    counter = [0, 0]
    lock = threading.Lock()
    stop = threading.Event()

    def worker(k: int) -> None:
        mine = vehicles[k % len(vehicles) :: workers] or vehicles
        while not stop.is_set():
            for v in mine:
                try:
                    v.batch(paths)
                    ok = 0
                except Exception:  # the SDK raises SmartcarException and requests' errors
                    ok = 1
                with lock:
                    counter[ok] += 1

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(workers)]
    for t in threads:
        t.start()
    time.sleep(warmup)
    n0, e0, c0, t0 = counter[0], counter[1], cpu_seconds(), time.perf_counter()
    time.sleep(window)
    res = Result(counter[0] - n0, counter[1] - e0, time.perf_counter() - t0, cpu_seconds() - c0)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--vehicles", type=int, default=20)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--window", type=float, default=8.0)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)
    cm: list[Result] = []
    sd: list[Result] = []
    with simproc.start(smart=0, smartcar=args.vehicles, redirect=REDIRECT) as sim:
        for _ in range(args.runs):
            cm.append(asyncio.run(carmetrics(sim.info, args.workers, args.warmup, args.window)))
            sd.append(sdk(sim.info, args.workers, args.warmup, args.window))
    ratio = median([a.rate / b.rate for a, b in zip(cm, sd, strict=True) if b.rate])
    print(
        table(
            [
                "vehicles",
                "workers",
                "carmetrics polls/s",
                "per client CPU-s",
                "errors",
                "SDK polls/s",
                "per client CPU-s",
                "errors",
                "carmetrics ÷ SDK",
            ],
            [
                [
                    args.vehicles,
                    args.workers,
                    median([r.rate for r in cm]),
                    median([r.per_core for r in cm]),
                    sum(r.errors for r in cm),
                    median([r.rate for r in sd]),
                    median([r.per_core for r in sd]),
                    sum(r.errors for r in sd),
                    f"{ratio:.1f}x",
                ]
            ],
        )
    )
    print(f"\nboth read these paths per poll: {sim.info.get('_paths')}")


if __name__ == "__main__":
    main()
