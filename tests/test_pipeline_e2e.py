"""The whole pipeline against the smart simulator over real HTTP, on a moved clock.

Exactly one history row per new car report; every fault ends either in recovery or in a logged error
with its code, the previous values kept on /metrics and no partial row.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from exporter.clock import ManualClock
from exporter.config import AccountConfig, Config, PollConfig, SimulatorConfig
from exporter.runtime import Runtime, running
from exporter.simulator.faults import FaultKind


def config(tmp_path: Path) -> Config:
    return Config(
        db=tmp_path / "h.db",
        poll=PollConfig(jitter=0, timeout=1.0, backoff_base=30, backoff_max=600),
        simulator=SimulatorConfig(enabled=True, seed=7, smart_vehicles=("#1", "#3", "#5")),
        accounts=(AccountConfig("eu", "smart", 0, simulator=True, settings={"region": "EU"}),),
    )


async def quiet(rt: Runtime) -> None:
    """Let in-flight HTTP round trips finish (real I/O on loopback, milliseconds)."""
    for _ in range(500):
        await asyncio.sleep(0.002)
        if not rt.scheduler.busy:
            await asyncio.sleep(0.002)
            if not rt.scheduler.busy:
                return
    raise AssertionError("polls did not settle")


async def advance(rt: Runtime, clock: ManualClock, seconds: float, step: float = 30.0) -> None:
    end = clock.now() + seconds
    while clock.now() < end:
        await clock.run_until(min(end, clock.now() + step))
        await quiet(rt)


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[tuple[Runtime, ManualClock]]:
    clock = ManualClock()
    async with running(config(tmp_path), clock) as runtime:
        runtime.simulator.faults.hang_seconds = 3.0
        for _ in range(200):
            await asyncio.sleep(0.01)
            if len(runtime.hub.vehicles) == 3 and not runtime.scheduler.busy:
                break
        await quiet(runtime)
        yield runtime, clock


def rows(rt: Runtime, vin: str | None = None) -> int:
    asyncio.get_event_loop()
    rt.history.write_now([])
    sql = "SELECT count(*) FROM samples" + (" WHERE vin = ?" if vin else "")
    return int(rt.history.query(sql, (vin,) if vin else ())[0][0])


async def test_one_row_per_new_car_report(rt: tuple[Runtime, ManualClock]) -> None:
    runtime, clock = rt
    await advance(runtime, clock, 36 * 3600, step=60)
    smart = runtime.simulator.smart
    total = 0
    for vin in runtime.hub.vehicles:
        served = smart.served_count(vin)
        assert rows(runtime, vin) == served, vin
        total += served
    assert total > 20
    dup = runtime.history.query(
        "SELECT count(*) FROM (SELECT vin, ts FROM samples GROUP BY vin, ts HAVING count(*) > 1)"
    )
    assert dup == [(0,)]


@pytest.mark.parametrize(
    ("kind", "params", "code"),
    [
        (FaultKind.DATA_UNAVAILABLE, {}, "8153"),
        (FaultKind.SERVER_ERROR, {"status": 503}, "503"),
        (FaultKind.RATE_LIMITED, {"retry_after": 120}, "429"),
        (FaultKind.FORBIDDEN, {"retry_after": 120}, "403"),
        (FaultKind.MALFORMED_JSON, {}, None),
        (FaultKind.TIMEOUT, {"hang": 3.0}, None),
    ],
)
async def test_a_failed_poll_keeps_the_previous_values_and_logs_its_code(
    rt: tuple[Runtime, ManualClock],
    kind: FaultKind,
    params: dict[str, object],
    code: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    runtime, clock = rt
    vin = sorted(runtime.hub.vehicles)[0]
    before = runtime.hub.latest(vin)
    assert before is not None
    n_rows = rows(runtime, vin)
    errors_before = sum(runtime.health.vehicle(vin).errors.values())
    runtime.simulator.faults.script(kind, 1, endpoint="status", vin=vin, **params)
    caplog.set_level(logging.WARNING)
    runtime.scheduler.request_poll(vin)
    await advance(runtime, clock, 1, step=1)
    h = runtime.health.vehicle(vin)
    assert sum(h.errors.values()) == errors_before + 1
    if code is not None:
        assert any(c == code for (_, c) in h.errors), dict(h.errors)
        assert any(getattr(r, "code", None) == code for r in caplog.records)
    assert runtime.hub.latest(vin) is before  # previous good values stay
    body = generate_latest(runtime.registry).decode()
    assert f'carmetrics_battery_soc_ratio{{vin="{vin}"}}' in body
    assert rows(runtime, vin) == n_rows  # no partial row
    # and it recovers on its own
    await advance(runtime, clock, 3600, step=60)
    assert h.consecutive_failures == 0
    assert h.last_success is not None and h.last_success > clock.now() - 3600


async def test_retry_after_holds_back_every_request(rt: tuple[Runtime, ManualClock]) -> None:
    runtime, clock = rt
    vin = sorted(runtime.hub.vehicles)[0]
    runtime.simulator.faults.script(
        FaultKind.RATE_LIMITED, 1, endpoint="status", vin=vin, retry_after=900
    )
    runtime.scheduler.request_poll(vin)
    await advance(runtime, clock, 1, step=1)
    t_limited = clock.now()
    log_before = len(runtime.simulator.faults.log)
    served_before = runtime.simulator.smart.served_count(vin)
    await advance(runtime, clock, 850, step=50)
    assert runtime.simulator.smart.served_count(vin) == served_before
    assert runtime.health.vehicle(vin).next_poll >= t_limited + 900 - 1  # type: ignore[operator]
    await advance(runtime, clock, 1200, step=60)
    assert runtime.health.vehicle(vin).last_success > t_limited + 899  # type: ignore[operator]
    assert len(runtime.simulator.faults.log) == log_before


async def test_token_expiry_is_renewed_without_a_full_login(
    rt: tuple[Runtime, ManualClock], caplog: pytest.LogCaptureFixture
) -> None:
    runtime, clock = rt
    vin = sorted(runtime.hub.vehicles)[0]
    caplog.set_level(logging.INFO)
    runtime.simulator.faults.script(FaultKind.TOKEN_EXPIRED, 1, endpoint="status", vin=vin)
    runtime.scheduler.request_poll(vin)
    await advance(runtime, clock, 1, step=1)
    assert runtime.health.vehicle(vin).consecutive_failures == 0
    assert not [r for r in caplog.records if "full login" in r.getMessage()]


async def test_garbage_fields_never_crash_and_unknowns_become_absent(
    rt: tuple[Runtime, ManualClock],
) -> None:
    runtime, clock = rt
    vin = sorted(runtime.hub.vehicles)[0]
    runtime.simulator.faults.script(
        FaultKind.GARBAGE_FIELDS,
        1,
        endpoint="status",
        vin=vin,
        fields=("vehicleStatus.additionalVehicleStatus.climateStatus.interiorTemp",),
        value="n/a",
    )
    assert runtime.hub.latest(vin).values.get("cabin_temperature") is not None  # type: ignore[union-attr]
    runtime.scheduler.request_poll(vin)
    await advance(runtime, clock, 1, step=1)
    latest = runtime.hub.latest(vin)
    assert latest is not None
    assert runtime.health.vehicle(vin).consecutive_failures == 0
    assert latest.values.get("cabin_temperature") is None  # unknown, not 0 and not a crash
    assert latest.values.get("battery_soc") is not None  # the rest of the reply still counts
    body = generate_latest(runtime.registry).decode()
    assert f'carmetrics_cabin_temperature_celsius{{vin="{vin}"}}' not in body


async def test_restart_resumes_from_the_same_file(tmp_path: Path) -> None:
    clock = ManualClock()
    cfg = config(tmp_path)
    async with running(cfg, clock) as first:
        for _ in range(200):
            await asyncio.sleep(0.01)
            if first.hub.latest_all() and len(first.hub.latest_all()) == 3:
                break
        await quiet(first)
    n = first.history.rows_written  # counted after the shutdown flush
    assert n >= 3
    cfg2 = dataclasses.replace(cfg)
    async with running(cfg2, ManualClock(clock.now())) as second:
        for _ in range(200):
            await asyncio.sleep(0.01)
            if len(second.hub.latest_all()) == 3:
                break
        await quiet(second)
        total = rows(second)
    assert total >= n


async def test_a_report_read_before_a_later_call_failed_is_kept(
    rt: tuple[Runtime, ManualClock],
) -> None:
    """status succeeded, the soc call of the same poll failed: the report is stored (with the last
    known charge limit), the poll still counts as failed."""
    runtime, clock = rt
    smart = runtime.simulator.smart
    before = {vin: runtime.hub.latest(vin) for vin in runtime.hub.vehicles}
    for vin in runtime.hub.vehicles:
        runtime.simulator.faults.script(FaultKind.DATA_UNAVAILABLE, 10_000, endpoint="soc", vin=vin)
    await advance(runtime, clock, 24 * 3600, step=120)
    for vin, snap in before.items():
        assert snap is not None
        h = runtime.health.vehicle(vin)
        assert h.errors[("upstream", "8153")] > 0
        assert rows(runtime, vin) == smart.served_count(vin), vin
        latest = runtime.hub.latest(vin)
        assert latest is not None and latest.car_time >= snap.car_time
        assert latest.values.get("charge_limit") == snap.values.get("charge_limit")


async def test_a_retry_after_on_an_optional_call_ends_the_poll_but_keeps_the_report(
    rt: tuple[Runtime, ManualClock],
) -> None:
    """A 429 on the optional status/state call: no further request for that car until the
    Retry-After expires (the soak found one), yet the report read before it is stored."""
    runtime, clock = rt
    vin = sorted(runtime.hub.vehicles)[0]
    runtime.simulator.faults.script(
        FaultKind.RATE_LIMITED, 1, endpoint="state", vin=vin, retry_after=600
    )
    runtime.scheduler.request_poll(vin)
    await advance(runtime, clock, 1, step=1)
    h = runtime.health.vehicle(vin)
    assert h.errors[("rate_limited", "429")] == 1
    assert rows(runtime, vin) == runtime.simulator.smart.served_count(vin)
    limited_at = clock.now()
    picks_before = len(runtime.simulator.faults.log)
    assert h.next_poll is not None and h.next_poll >= limited_at + 599
    await advance(runtime, clock, 550, step=50)
    assert len(runtime.simulator.faults.log) == picks_before
