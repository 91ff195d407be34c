"""The OpenAPI document holds: schemathesis fuzzes the live app and finds no 5xx and no violation.

schemathesis runs as its own process (its CLI) against the real app with its embedded smart and
Smartcar simulators, served on loopback by this test's event loop, so the server keeps answering
while the fuzzer waits on it. The shared ManualClock is ticked in the background so ``?wait=``
requests and verifications end. Bounded: few examples per operation and a hard time limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path

import pytest

from exporter.commands.openapi import document
from exporter.commands.settings import CommandSettings
from tests import test_commands_sim as sim
from tests.test_commands_sim import TOKEN, Served

# the fixture: the real runtime with the smart and Smartcar simulators, on loopback, ManualClock
served = sim.served

CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "missing_required_header",
        "unsupported_method",
        "ignored_auth",
    )
)


def test_document_is_valid_openapi() -> None:
    from openapi_spec_validator import validate

    validate(document(CommandSettings()))  # type: ignore[arg-type]


async def test_schemathesis_finds_no_server_error_or_schema_violation(
    served: Served, tmp_path: Path
) -> None:
    s = served
    executed_before = sum(len(s.executed(v)) for v in s.rt.scheduler.vins)

    async def tick() -> None:
        while True:
            await s.clock.run_until(s.clock.now() + 1.0)
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    url = f"{s.base}/api/v1/openapi.json"
    report = tmp_path / "report.json"
    # most generated VINs should be real ones, or nothing past the 404 would be exercised
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        f"[dictionaries.vins]\nvalues = {json.dumps(sorted(s.rt.scheduler.vins))}\n"
        '[parameters]\n"path.vin" = { dictionary = "vins", probability = 0.8 }\n'
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        url,
        "--checks",
        CHECKS,
        "--max-examples",
        "25",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--header",
        f"Authorization: Bearer {TOKEN}",
        "--request-timeout",
        "10",
        "--seed",
        "4",
        "--workers",
        "1",
        "--report",
        "json",
        "--report-json-path",
        str(report),
        "--warnings",
        "off",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    finally:
        ticker.cancel()
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-6000:]
    assert "operations" in text.lower() or report.exists()
    if report.exists():
        summary = json.loads(report.read_text())
        assert summary, "empty schemathesis report"
    # the fuzzer really sent commands through the API, and the simulated cars executed some
    await s.clock.run_until(s.clock.now() + 30)
    executed = sum(len(s.executed(v)) for v in s.rt.scheduler.vins)
    assert executed > executed_before, text[-3000:]


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
