"""``carmetrics command`` and ``carmetrics vehicles``: the command API from a shell, cron, scripts.

They talk HTTP to a running exporter (``--url`` / ``CARMETRICS_API_URL``); the token comes from
``CARMETRICS_API_TOKEN`` or ``--token-file`` and never from a flag, so it does not show in ``ps`` or
shell history. The exit status tells a script what happened, so ``&&`` chains and cron mails work:

    0  sent (and with --wait: verified, or accepted where nothing can be observed)
    1  the exporter refused the request (bad token, validation, cooldown) or could not be reached
    3  the cloud or the car rejected it, or it could not be sent
    4  sent, but the car did not reach the expected state in time
    5  --wait ended before the outcome was known
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import click

from exporter.commands.spec import SEATS
from exporter.providers.base import COMMANDS

ENV_URL: Final = "CARMETRICS_API_URL"
ENV_TOKEN: Final = "CARMETRICS_API_TOKEN"
DEFAULT_URL: Final = "http://127.0.0.1:8477"
EXIT_REFUSED: Final = 1
EXIT_REJECTED: Final = 3
EXIT_NOT_VERIFIED: Final = 4
EXIT_WAIT_ENDED: Final = 5
WAIT_CHUNK: Final = 30.0
_OUTCOME_EXIT: Final = {
    "verified": 0,
    "accepted": 0,
    "not_verified": EXIT_NOT_VERIFIED,
    "rejected": EXIT_REJECTED,
    "failed": EXIT_REJECTED,
    "timeout": EXIT_REJECTED,
}


class ApiError(click.ClickException):
    exit_code = EXIT_REFUSED


class Client:
    """A few JSON calls over urllib: a one-shot CLI needs no event loop."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self.token = token

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> tuple[int, dict[str, Any]]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, _decode(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _decode(exc.read())
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(f"cannot reach the exporter at {self.url}: {reason}") from None


def _decode(raw: bytes) -> dict[str, Any]:
    try:
        got = json.loads(raw)
    except ValueError:
        return {"error": "bad_reply", "message": raw[:200].decode("utf-8", "replace")}
    return got if isinstance(got, dict) else {"error": "bad_reply", "message": str(got)[:200]}


def _refused(status: int, reply: dict[str, Any]) -> ApiError:
    msg = f"refused (HTTP {status} {reply.get('error', '')}): {reply.get('message', '')}"
    if reply.get("retry_after"):
        msg += f" [retry after {reply['retry_after']} s]"
    return ApiError(msg)


def _token(token_file: Path | None) -> str:
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ApiError(f"--token-file {token_file}: {exc.strerror}") from None
    else:
        token = os.environ.get(ENV_TOKEN) or os.environ.get("CARMETRICS_COMMANDS__TOKEN", "")
    if not token:
        raise ApiError(f"no token: set {ENV_TOKEN} or pass --token-file PATH")
    return token


url_option = click.option(
    "--url",
    envvar=ENV_URL,
    default=DEFAULT_URL,
    show_default=True,
    help=f"Base URL of the running exporter (or {ENV_URL}).",
)
token_option = click.option(
    "--token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help=f"File holding the API token (default: the {ENV_TOKEN} environment variable).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print the JSON reply.")


def _describe(rec: dict[str, Any]) -> str:
    outcome = rec.get("outcome") or rec.get("status")
    return f"{rec.get('command')} on {rec.get('vin')}: {outcome}" + (
        f" - {rec['detail']}" if rec.get("detail") else ""
    )


@click.command("command")
@click.argument("vin")
@click.argument("name", metavar="COMMAND", type=click.Choice(COMMANDS))
@click.option("--temperature", type=float, help="climate_start: cabin temperature, 16-30 degC.")
@click.option("--percent", type=int, help="charge_limit: target state of charge, 50-100 %.")
@click.option("--seat", type=click.Choice(SEATS), help="seat_heating: which seat.")
@click.option("--level", type=int, help="seat_heating: 0 (off) to 3.")
@click.option("--wait", is_flag=True, help="Wait until the car is seen in the expected state.")
@click.option(
    "--timeout",
    type=float,
    default=180.0,
    show_default=True,
    help="With --wait: give up after this many seconds (exit 5).",
)
@click.option(
    "--idempotency-key",
    default=None,
    help="Any unique string; a retried call with the same key sends nothing twice.",
)
@url_option
@token_option
@json_option
def command(
    vin: str,
    name: str,
    temperature: float | None,
    percent: int | None,
    seat: str | None,
    level: int | None,
    wait: bool,
    timeout: float,
    idempotency_key: str | None,
    url: str,
    token_file: Path | None,
    as_json: bool,
) -> None:
    """Send COMMAND to vehicle VIN through a running exporter.

    \b
    Commands: lock unlock climate_start climate_stop charge_start charge_stop charge_limit
              horn flash find windows_close seat_heating
    Exit status: 0 done, 1 refused by the exporter, 2 wrong usage, 3 rejected by
                 the cloud/car, 4 car did not reach the state, 5 --wait ended first.

    \b
    Example (pre-condition the cabin and wait for the car to confirm):
      CARMETRICS_API_TOKEN=... carmetrics command WMEXXXXXXXXXXXXXX climate_start \\
          --temperature 21 --wait
    """
    client = Client(url, _token(token_file))
    body: dict[str, Any] = {"command": name}
    for key, value in (
        ("temperature", temperature),
        ("percent", percent),
        ("seat", seat),
        ("level", level),
    ):
        if value is not None:
            body[key] = value
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    status, rec = client.call(
        "POST", f"/api/v1/vehicles/{quote(vin, safe='')}/commands", body, headers=headers
    )
    if status != 202:
        raise _refused(status, rec)
    if not wait:
        click.echo(json.dumps(rec) if as_json else f"sent {name} to {vin}: command {rec['id']}")
        return
    deadline = time.monotonic() + timeout
    chunk = WAIT_CHUNK
    while rec.get("status") != "done":
        left = deadline - time.monotonic()
        if left <= 0:
            click.echo(json.dumps(rec) if as_json else _describe(rec), err=not as_json)
            click.echo(
                f"no outcome after {timeout:g} s; check later: GET {url.rstrip('/')}"
                f"/api/v1/commands/{rec['id']}",
                err=True,
            )
            raise SystemExit(EXIT_WAIT_ENDED)
        step = min(left, chunk)
        status, got = client.call(
            "GET", f"/api/v1/commands/{rec['id']}?wait={max(step, 0.1):.1f}", timeout=step + 30
        )
        if status == 400 and chunk > 0:  # the exporter allows shorter waits: poll instead
            chunk = 0.0
            continue
        if status != 200:
            raise _refused(status, got)
        rec = got
        if chunk == 0 and rec.get("status") != "done":
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    code = _OUTCOME_EXIT.get(str(rec.get("outcome")), EXIT_REJECTED)
    # a failure goes to stderr, so `>/dev/null` in a crontab leaves exactly the failures to mail
    click.echo(json.dumps(rec) if as_json else _describe(rec), err=bool(code) and not as_json)
    if code:
        raise SystemExit(code)


@click.command("vehicles")
@url_option
@token_option
@json_option
def vehicles(url: str, token_file: Path | None, as_json: bool) -> None:
    """List the vehicles of a running exporter and the commands each supports.

    \b
    Example:
      CARMETRICS_API_TOKEN=... carmetrics vehicles --url http://127.0.0.1:8477
    """
    status, reply = Client(url, _token(token_file)).call("GET", "/api/v1/vehicles")
    if status != 200:
        raise _refused(status, reply)
    if as_json:
        click.echo(json.dumps(reply))
        return
    rows = reply.get("vehicles", [])
    if not rows:
        click.echo("no vehicles")
        return
    for v in rows:
        model = " ".join(x for x in (v.get("make"), v.get("model")) if x) or "-"
        cmds = " ".join(v.get("supported_commands", [])) or "(none)"
        click.echo(f"{v['vin']}  {v.get('provider', '')}  {model}  commands: {cmds}")
