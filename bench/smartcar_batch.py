"""Benchmark 6: Smartcar API v3 polls/s, carmetrics vs the official ``smartcar`` SDK, same run.

The simulated Smartcar runs in its own process (``bench.simproc``, plan and rate limits lifted so
the code is measured, not the limiter). A poll is one ``GET /v3/vehicles/{id}/signals``:

- carmetrics' ``SmartcarV3Client.read`` (application token, ``sc-user-id``) maps the reply onto
  the canonical signals (units, per-signal status, timestamps);
- the SDK (6.19.1, pointed at the simulator through its documented ``SMARTCAR_VEHICLE_API_V3_ORIGIN``
  variable) calls ``Vehicle.get_signals()`` from worker threads, as a sync client is used, and gets
  the decoded JSON. The SDK sends no ``sc-user-id`` and uses a per-vehicle token, so the simulator
  serves it in its legacy-compatibility mode (smartcar-v3.md §1.4).

Both run with the same number of concurrent workers for a fixed window after a warm-up; median of
several runs.

    python -m bench.smartcar_batch --vehicles 20 --workers 8 --window 8 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
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
from exporter.config import Secret
from exporter.providers.base import ProviderError
from exporter.providers.smartcar.v3_client import SmartcarV3Client, V3Urls
from exporter.providers.smartcar.v3_token import AppTokenSource
from exporter.simulator.smartcar.headless import consent
from exporter.simulator.smartcar.v3_state import ALL_PERMISSIONS

REDIRECT = "http://127.0.0.1:9/connect/smartcar/callback"
# the same grant the demo user's pre-made connection has (a re-connect replaces the grant)
SDK_SCOPE = list(ALL_PERMISSIONS)


def _client(info: dict[str, Any], http: aiohttp.ClientSession) -> SmartcarV3Client:
    v3, urls = info["smartcar_v3"], info["urls"]["smartcar_v3"]
    tokens = AppTokenSource(
        http,
        urls["iam"] + "/oauth2/token",
        v3["client_id"],
        Secret(v3["client_secret"]),
        RealClock(),
    )
    return SmartcarV3Client(
        http,
        V3Urls(
            iam=urls["iam"], vehicle_api=urls["vehicle_api"], management_api=urls["management_api"]
        ),
        tokens,
    )


async def carmetrics(info: dict[str, Any], workers: int, warmup: float, window: float) -> Result:
    (user,) = info["smartcar_v3"]["users"]
    async with aiohttp.ClientSession() as http:
        client = _client(info, http)
        ids = list(user["vehicle_ids"])
        counter = [0, 0]
        errors: list[str] = []
        signals: list[int] = []

        async def worker(k: int) -> None:
            mine = ids[k % len(ids) :: workers] or ids
            while True:
                for vid in mine:
                    try:
                        parsed = await client.read(user["user_id"], vid)
                        counter[0] += 1
                        if not signals:
                            signals.append(len(parsed.values))
                    except ProviderError as exc:
                        counter[1] += 1
                        errors.append(f"{type(exc).__name__}: {exc}")
                        await asyncio.sleep(0)

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
        info["_values_per_poll"] = signals[0] if signals else 0
        return res


async def _legacy_token(info: dict[str, Any], client: Any, scope: list[str]) -> str:
    async with aiohttp.ClientSession() as http:
        loc = await consent(http, client.get_auth_url(scope, {"state": "bench"}))
    code = parse_qs(urlsplit(loc).query)["code"][0]
    access = await asyncio.to_thread(client.exchange_code, code)
    return str(access.access_token)


def sdk(info: dict[str, Any], workers: int, warmup: float, window: float) -> Result:
    v2urls, v3urls = info["urls"]["smartcar"], info["urls"]["smartcar_v3"]
    os.environ["SMARTCAR_VEHICLE_API_V3_ORIGIN"] = v3urls["vehicle_api"]
    os.environ["SMARTCAR_API_ORIGIN"] = v2urls["api"]
    os.environ["SMARTCAR_AUTH_ORIGIN"] = v2urls["auth"] + "/oauth/token"
    os.environ["SMARTCAR_CONNECT_ORIGIN"] = v2urls["connect"]
    import smartcar
    import smartcar.config

    importlib.reload(smartcar.config)  # it reads the variables at import
    v3 = info["smartcar_v3"]
    client = smartcar.AuthClient(
        v3["application_id"], v3["legacy_client_secret"], REDIRECT, mode="simulated"
    )
    token = asyncio.run(_legacy_token(info, client, SDK_SCOPE))
    (user,) = v3["users"]
    vehicles = [smartcar.Vehicle(i, token) for i in user["vehicle_ids"]]
    counter = [0, 0]
    lock = threading.Lock()
    stop = threading.Event()

    def worker(k: int) -> None:
        mine = vehicles[k % len(vehicles) :: workers] or vehicles
        while not stop.is_set():
            for v in mine:
                try:
                    v.get_signals()
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
    print(f"\ncanonical values per carmetrics poll: {sim.info.get('_values_per_poll')}")


if __name__ == "__main__":
    main()
