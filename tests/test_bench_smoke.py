"""Smoke tests: every bench script runs end to end on tiny sizes and its counters mean something.

No timing is asserted (the figures live in docs/BENCHMARKS.md and docs/RELIABILITY.md); what is
asserted is that each side of a comparison really did its work over real loopback HTTP, so a
benchmark cannot silently measure an empty loop.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import (
    history_bench,
    kill9,
    memory_soak,
    metrics_render,
    mqtt_publish,
    pipeline,
    poll_stages,
    poll_throughput,
    simproc,
    smartcar_batch,
)
from bench.mosquitto import Broker
from bench.samples import clone, real_snapshots
from bench.soak import Soak
from tests.conftest import require_tool


@pytest.fixture(scope="module")
def sim() -> Iterator[simproc.SimProcess]:
    with simproc.start(
        smart=6, accounts=2, smartcar=2, speed=60, redirect=smartcar_batch.REDIRECT
    ) as s:
        yield s


def test_simulator_child_prints_accounts_and_urls(sim: simproc.SimProcess) -> None:
    accounts = sim.info["accounts"]
    assert len(accounts) == 2 and sorted(len(a["vins"]) for a in accounts) == [3, 3]
    assert set(sim.info["urls"]) == {"smart", "smartcar", "smartcar_v3"}
    assert len(sim.info["smartcar"]["vins"]) == 2


async def test_poll_throughput_all_three_clients_poll(
    sim: simproc.SimProcess, tmp_path: Path
) -> None:
    cm = await poll_throughput.run_carmetrics(sim.info, 0.3, 0.7, tmp_path / "h.db")
    ceiling = await poll_throughput.run_ceiling(sim.info, 0.3, 0.7)
    peer = await poll_throughput.run_peer(sim.info, 0.3, 1.5)
    assert cm.polls > 0 and cm.errors == 0
    # the window opens once every car was read: its polls are mostly refreshes, not first reports
    assert 0 <= cm.new < cm.polls / 2
    assert ceiling.polls > 0 and peer.polls > 0 and peer.errors == 0
    with sqlite3.connect(tmp_path / "h.db") as c:  # the pipeline really stored reports
        assert c.execute("SELECT COUNT(DISTINCT vin) FROM samples").fetchone()[0] == 6


def test_poll_stages_times_every_stage_on_real_replies(capsys: pytest.CaptureFixture[str]) -> None:
    per, fns = poll_stages.stages()
    assert per == 3 and set(fns) >= {"envelope x3", "parse_status", "snapshot", "sign x3"}
    poll_stages.main(
        [
            "--rounds",
            "1",
            "--repeat",
            "1",
            "--cars",
            "40",
            "--pipeline-rounds",
            "1",
            "--seconds",
            "0.3",
        ]
    )
    out = capsys.readouterr().out
    assert all(f"| {name} |" in out for name in fns) and "| total |" in out
    # the pipeline table: every layer timed (differences of noisy windows: only their presence
    # and that the polls really ran is asserted here; the figures are docs/BENCHMARKS.md's)
    cost = {
        line.split("|")[1].strip(): float(line.split("|")[2])
        for line in out.splitlines()
        if line.startswith(("| +", "| provider"))
    }
    assert set(cost) == {
        "provider in a plain loop (the snapshot built)",
        "+ scheduler and hub",
        "+ history (40% of polls a new row)",
    }
    assert 0 < cost["provider in a plain loop (the snapshot built)"] < 10_000


async def test_smartcar_batch_both_clients_poll(sim: simproc.SimProcess) -> None:
    info = dict(sim.info)
    cm = await smartcar_batch.carmetrics(info, 2, 0.2, 0.5)
    assert cm.polls > 0 and cm.errors == 0
    assert info["_values_per_poll"] > 20  # canonical values really parsed from each reply
    sdk = await asyncio.to_thread(smartcar_batch.sdk, info, 2, 0.2, 0.5)
    assert sdk.polls > 0 and sdk.errors == 0


async def test_metrics_render_scene_holds_every_vehicle_and_churn_changes_it() -> None:
    scene = metrics_render.Scene(5, await real_snapshots())
    body = scene.render()
    socs = [line for line in body.splitlines() if line.startswith(b"carmetrics_battery_soc_ratio{")]
    assert len(socs) == 5
    assert metrics_render.series_count(body) > 5 * 20
    scene.churn(0.4)  # two of five cars report
    after = scene.render().splitlines()
    changed = [line for line in after if line.startswith(b"carmetrics_battery_soc_ratio{")]
    assert len(set(changed) - set(socs)) == 2


async def test_fleet_scraper_reads_the_real_handler_from_another_process() -> None:
    scene = metrics_render.Scene(3, await real_snapshots())
    runner, port = await pipeline.serve_metrics(scene.registry, scene.collector)
    try:
        seconds, size = await pipeline.scrape(port)
    finally:
        await runner.cleanup()
    assert seconds > 0
    assert 0 < size < len(scene.render())  # gzip on the wire, as Prometheus asks for it


async def test_memory_soak_polls_an_external_simulator_on_a_shared_clock(tmp_path: Path) -> None:
    args = argparse.Namespace(
        days=1, smart=4, accounts=2, speed=40000.0, fault_rate=0.05, scrape_every=0.5
    )
    days = await memory_soak.run(args, tmp_path / "h.db")
    (day, rss_mb, tracked, polls, _failed, rows) = days[0]
    assert day == 1 and rss_mb > 10 and tracked > 1000
    assert polls > 4 and rows > 4  # the cars were polled and their reports stored


def test_analysis_fleet_clones_vehicles_that_analyse_like_the_original(tmp_path: Path) -> None:
    import analysis
    from bench import analysis_speed

    db = tmp_path / "f.db"
    assert analysis_speed.build(db, 1, 7) > 0
    with sqlite3.connect(db) as c:
        (one,) = c.execute("SELECT count(*) FROM samples").fetchone()
    assert analysis_speed.clone_vehicles(db, 3) == 3 * one
    vins = analysis.vins(db)
    assert len(vins) == 3
    settings = analysis.Settings(timezone="Europe/Berlin")
    first, last = (
        analysis.Analysis(analysis.load(db, vin=v), settings) for v in (vins[0], vins[2])
    )
    assert len(first.trips) > 0 and len(first.trips) == len(last.trips)


async def test_history_writer_and_raw_insert_the_same_rows(tmp_path: Path) -> None:
    snaps = clone(await real_snapshots(), 300, t0=1.7e9)
    assert history_bench.writer_rate(snaps, tmp_path / "w.db", 100) > 0
    assert history_bench.raw_rate(snaps, tmp_path / "r.db", 100) > 0
    with sqlite3.connect(tmp_path / "w.db") as w, sqlite3.connect(tmp_path / "r.db") as r:
        q = "SELECT * FROM samples ORDER BY vin, ts"
        assert w.execute(q).fetchall() == r.execute(q).fetchall()


async def test_sim_restore_measures_a_restart() -> None:
    from bench.sim_restore import restore_seconds

    assert await restore_seconds(0.5) > 0


def test_kill9_drill_checks_pass_and_detect_tampering(tmp_path: Path) -> None:
    result = kill9.drill(2, seed=1, tmp=tmp_path, wait=(0.5, 0.7))  # late enough to commit
    assert result["failures"] == [] and result["integrity_check ok"] == 2
    assert result["rows in the end"] > 0
    template = __import__("json").loads((tmp_path / "template.json").read_text())
    with sqlite3.connect(tmp_path / "kill9.db") as c:  # a torn row must be caught
        c.execute(  # the first row in storage order (the view's key is vin and ts)
            "UPDATE samples SET odometer = NULL WHERE (vin, ts) = (SELECT vin, ts FROM samples "
            "ORDER BY vin, ts LIMIT 1)"
        )
    ok, _, bad, _ = kill9.check(tmp_path / "kill9.db", template)
    assert ok and bad == 1


async def test_soak_runs_a_restart_and_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from exporter.tokens import KEY_ENV

    monkeypatch.setenv(KEY_ENV, "placeholder")  # the soak sets its own key; restored afterwards
    args = argparse.Namespace(
        days=2,
        smart=2,
        smartcar=1,
        speed=40000.0,
        fault_rate=0.05,
        timeout=0.5,
        token_hours=24.0,
        seed=3,
    )
    result = await Soak(args, tmp_path).run()
    assert result["restarts"] == 1 and result["crashes"] == 0
    assert result["smart reports served"] > 0 and result["rows stored for them"] > 0
    assert result["duplicate rows in the DB"] == 0
    assert result["faults injected"] > 0


async def test_mqtt_publish_bench_goes_through_the_real_broker(tmp_path: Path) -> None:
    """The MQTT bench feeds reports to the real publisher and a subscriber in another process
    counts what the broker delivered: every published message arrives, and each report turns into
    several messages (the changed signals plus the JSON state), so the rate is not an empty loop."""
    broker = Broker(require_tool("mosquitto"), tmp_path / "broker")
    require_tool("mosquitto_passwd")
    broker.start()
    try:
        r = await mqtt_publish.run(broker, cars=6, rate=12, seconds=1, qos=1, workdir=tmp_path)
    finally:
        broker.stop()
    assert r.reports == 12
    assert r.published > 2 * r.reports
    assert r.received == r.total > r.published  # the first full publish came before the timing
    assert r.cpu > 0 and r.wall > 0


async def test_accuracy_bench_scores_what_the_user_sees_in_every_cloud(tmp_path: Path) -> None:
    import argparse as ap

    from bench import accuracy

    args = ap.Namespace(days=3.0, seeds=[2], rare=True, journal=True)
    for name in ("faults", "webhooks"):
        res = await accuracy.run_regime(accuracy.REGIMES[name], args, tmp_path)
        trips, charges = res["trips"]["all"], res["charges"]
        # smart: the cars' own journals beside polling; Smartcar: polling alone
        assert list(res["trips"]) == (["all", "journal", "poll"] if name == "faults" else ["all"])
        assert res["vehicles"] == 3 and res["polls"] > 0 and res["rows"] > 0
        assert trips["true trips >= 2 km"] > 0  # ground truth was read
        assert 0 < trips["found >= 2 km %"] <= 100  # and the user's view matched some of it
        assert trips["negative energies"] == 0 and charges["negative energies"] == 0
    assert res["pushes"] > 0  # the webhook regime delivered reports, not only polls
    text = accuracy.markdown({name: res}, args)
    assert "| found >= 2 km % |" in text and "| webhook deliveries |" in text


def test_accuracy_scorer_is_strict_and_splits_by_source() -> None:
    from bench.accuracy_scorer import by_source, score_trips

    truth = [
        {"start": 0.0, "end": 600.0, "distance_km": 5.0, "energy_kwh": 1.0,
         "odometer_from_km": 10.0, "odometer_to_km": 15.0},
        {"start": 900.0, "end": 1500.0, "distance_km": 5.0, "energy_kwh": 1.0,
         "odometer_from_km": 15.0, "odometer_to_km": 20.0},
    ]  # fmt: skip
    # one detected trip swallowed both (one gap), and one is at the right km but the wrong hour
    swallowed = {"start_ts": 100.0, "end_ts": 1500.0, "distance_km": 10.0, "energy_kwh": 2.0,
                 "start_odometer_km": 10.0, "end_odometer_km": 20.0, "source": "polling"}  # fmt: skip
    misplaced = {"start_ts": 5000.0, "end_ts": 5600.0, "distance_km": 5.0, "energy_kwh": 1.0,
                 "start_odometer_km": 15.0, "end_odometer_km": 20.0, "source": "journal"}  # fmt: skip
    s = score_trips([(truth, [swallowed, misplaced])], 300.0)
    assert s["found >= 2 km %"] == 50 and s["precision >= 2 km %"] == 50
    assert s["found, odometer-span match %"] == 100  # the lenient match forgives the hour
    groups = by_source([swallowed, misplaced])
    assert sorted(groups) == ["journal", "polling"]


def test_startup_probes_run_the_tree_they_are_given(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import startup

    root = Path(__file__).resolve().parent.parent
    startup.main(["--tree", str(root), "--runs", "1"])
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith(f"| {root}")]
    assert len(rows) == 1 + len(startup.PROBES)
    # the settings path of this tree loads no provider implementation (tests/test_config_imports)
    assert all(
        r.rstrip(" |").endswith("False") for r in rows if "check-config" in r or "load(" in r
    )


async def test_the_throughput_window_opens_once_every_car_was_read() -> None:
    """Benchmark 1 measures the steady state: a window opened before each car's first poll would
    count start-up work (first reports, all new) as the cost of a poll."""

    async def first_polls_are_new(counter: list[int]) -> None:
        while True:
            await asyncio.sleep(0.002)
            counter[2] += counter[0] < 40  # the 40 cars' first reports
            counter[0] += 1

    settled = await poll_throughput._window(first_polls_are_new, 0.0, 0.1, settle=40)
    early = await poll_throughput._window(first_polls_are_new, 0.0, 0.1)
    assert settled.polls > 0 and settled.new == 0
    assert early.new > 0
