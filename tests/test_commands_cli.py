"""``carmetrics command`` / ``carmetrics vehicles`` against a live exporter on loopback.

The CLI is synchronous (urllib), so it runs in a worker thread while this test's event loop serves
the app and moves the shared ManualClock; the exit status is what a cron job or script would see.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from exporter.cli import cli
from tests import test_commands_service as svc
from tests import test_commands_sim as sim
from tests.test_commands_service import READ, TOKEN, VIN, Factory, World

world = svc.world  # the fixture: an app on loopback with a scripted car and a ManualClock


async def run_cli(w: World, *args: str, token: str | None = TOKEN, tick: bool = True) -> Result:
    env: dict[str, Any] = {"CARMETRICS_API_URL": str(w.client.make_url("/"))}
    env["CARMETRICS_API_TOKEN"] = token
    env["CARMETRICS_COMMANDS__TOKEN"] = None
    job = asyncio.create_task(
        asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env, catch_exceptions=False)
    )
    while not job.done():
        if tick:
            w.clock.advance(1.0)
        await asyncio.sleep(0.01)
    return await job


async def test_vehicles_lists_supported_commands(world: Factory) -> None:
    w = await world()
    res = await run_cli(w, "vehicles", token=READ)
    assert res.exit_code == 0, res.output
    assert VIN in res.output and "windows_close" in res.output
    res = await run_cli(w, "vehicles", "--json", token=READ)
    vins = {v["vin"] for v in json.loads(res.output)["vehicles"]}
    assert vins == set(w.cloud.fleet)


async def test_command_without_wait_prints_the_id(world: Factory) -> None:
    w = await world()
    res = await run_cli(w, "command", VIN, "lock", tick=False)
    assert res.exit_code == 0, res.output
    assert w.cloud.sent == [(VIN, "lock", {})]
    cid = res.output.strip().rsplit(" ", 1)[-1]
    r = await w.client.get(f"/api/v1/commands/{cid}", headers=svc.RO)
    assert r.status == 200


async def test_wait_until_verified_exits_zero(world: Factory) -> None:
    w = await world()
    res = await run_cli(w, "command", VIN, "climate_start", "--temperature", "21", "--wait")
    assert res.exit_code == 0, res.output
    assert "climate_start" in res.output and "verified" in res.output
    assert w.cloud.sent == [(VIN, "climate_start", {"temperature": 21.0})]


async def test_exit_status_tells_what_happened(world: Factory) -> None:
    w = await world(cooldown=0)
    w.cloud.ignore.add("windows_close")
    res = await run_cli(w, "command", VIN, "windows_close", "--wait", "--json")
    assert res.exit_code == 4, res.output  # the car never closed them
    assert json.loads(res.output)["outcome"] == "not_verified"

    from exporter.providers.base import CommandRejected

    w.cloud.refuse["unlock"] = CommandRejected("vehicle in motion", code="1405")
    res = await run_cli(w, "command", VIN, "unlock", "--wait")
    assert res.exit_code == 3, res.output
    assert "rejected" in res.output

    sent = len(w.cloud.sent)
    res = await run_cli(w, "command", VIN, "climate_start", "--temperature", "40")
    assert res.exit_code == 1
    assert "16..30" in res.output and "422" in res.output
    res = await run_cli(w, "command", VIN, "lock", token="not-the-token-at-all")
    assert res.exit_code == 1 and "401" in res.output
    assert len(w.cloud.sent) == sent  # refused requests sent nothing


async def test_wait_can_end_before_the_outcome(world: Factory) -> None:
    w = await world(verify_timeout=100_000, max_wait=2)
    w.cloud.ignore.add("lock")
    res = await run_cli(w, "command", VIN, "lock", "--wait", "--timeout", "0.5")
    assert res.exit_code == 5, res.output
    assert "no outcome after" in res.output


async def test_missing_token_and_unreachable_exporter(world: Factory) -> None:
    w = await world()
    res = await run_cli(w, "vehicles", token=None)
    assert res.exit_code == 1 and "CARMETRICS_API_TOKEN" in res.output  # as the README says
    res = await asyncio.to_thread(
        CliRunner().invoke,
        cli,
        ["vehicles", "--url", "http://127.0.0.1:9"],
        env={"CARMETRICS_API_TOKEN": TOKEN},
    )
    assert res.exit_code == 1 and "cannot reach" in res.output


def test_every_exit_status_is_documented_in_the_help_and_the_readme() -> None:
    """What a script sees is what the README and --help promise, usage errors included."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("**CLI**: `carmetrics command") :][:900]
    helptext = CliRunner().invoke(cli, ["command", "--help"]).output
    usage = CliRunner().invoke(cli, ["command", "VIN", "lock", "--percent", "x"])
    assert usage.exit_code == 2
    for code in (0, 1, usage.exit_code, 3, 4, 5):
        assert re.search(rf"\b{code} [\w`-]", section), code
        assert re.search(rf"\b{code} [\w`-]", " ".join(helptext.split())), code


served = sim.served  # the real runtime with the embedded simulators


async def test_the_issues_example_against_the_simulated_smart_cloud(served: sim.Served) -> None:
    s = served
    vin = sim.vin_of(s, "smart", "#1")
    env = {"CARMETRICS_API_URL": s.base, "CARMETRICS_API_TOKEN": sim.TOKEN}
    args = ["command", vin, "climate_start", "--temperature", "21", "--wait"]
    job = asyncio.create_task(
        asyncio.to_thread(CliRunner().invoke, cli, args, env=env, catch_exceptions=False)
    )
    while not job.done():
        await s.clock.run_until(s.clock.now() + 1.0)
        await asyncio.sleep(0.01)
    res = await job
    assert res.exit_code == 0, res.output
    assert "verified" in res.output
    live = s.fleet.live_state(vin)
    assert live.climate_on and live.climate_target_c == 21
