"""The OpenAPI document holds: schemathesis fuzzes the live app and finds no 5xx and no violation.

schemathesis runs as its own process (its CLI) against the app served on loopback by this test's
event loop, so the server keeps answering while the fuzzer waits on it. The shared ManualClock is
ticked in the background so ``?wait=`` requests end. Bounded: few examples per operation and a
hard time limit.
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
from tests import test_commands_service as svc
from tests.test_commands_service import TOKEN, Factory

world = svc.world  # the fixture: an app on loopback with a scripted car and a ManualClock

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
    world: Factory, tmp_path: Path
) -> None:
    w = await world(cooldown=1, max_wait=5)

    async def tick() -> None:
        while True:
            w.clock.advance(1.0)
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    url = str(w.client.make_url("/api/v1/openapi.json"))
    report = tmp_path / "report.json"
    # most generated VINs should be real ones, or nothing past the 404 would be exercised
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        f"[dictionaries.vins]\nvalues = {json.dumps(sorted(w.cloud.cars))}\n"
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
    # the fuzzer really sent commands through the API, and the car took some of them
    assert w.cloud.sent, text[-3000:]


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
