"""The command service: the safety rules in front of a car, the send, and the check that it
happened.

A request passes, in this order: known vehicle, valid command and parameters, supported by the
vehicle's provider, Idempotency-Key replay (a retried request gets the first one's record and sends
nothing, even inside the cooldown), the global rate limit, the per-vehicle cooldown. Only then is a
record created (and audited) and the send started in the background; the caller gets the record at
once (HTTP 202) and asks for the outcome later.

Verification: the cloud's "accepted" is not success. After ``verify_delay`` the vehicle is re-read
(the latest report first, e.g. one a webhook delivered, then a poll) every ``verify_interval`` until
a report made at or after the send shows the expected state, or ``verify_timeout`` has passed. All
time is the runtime clock's, so tests move a ManualClock instead of sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from exporter.clock import Clock
from exporter.commands.audit import AuditLog
from exporter.commands.auth import Caller
from exporter.commands.expect import Expectation, expectation
from exporter.commands.metrics import CommandCounter
from exporter.commands.record import CommandRecord, Outcome, Status
from exporter.commands.settings import CommandSettings
from exporter.commands.spec import InvalidCommand, validate
from exporter.hub import Hub
from exporter.logs import mask_vin
from exporter.providers.base import (
    COMMANDS,
    Command,
    CommandRejected,
    Provider,
    ProviderError,
    UpstreamTimeout,
)
from exporter.scheduler import Scheduler
from exporter.snapshot import Snapshot

log = logging.getLogger(__name__)

# the longest a send can take (the official Smartcar SDK waits 310 s for a command's final answer);
# with the verify timeout, how long a command may stay unfinished in another instance's hands
SEND_BOUND: Final = 600.0

MAX_KEY_CHARS = 255


class Refused(Exception):
    """A request turned away before anything was sent; becomes an HTTP error with a JSON body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retry_after: float | None = None,
        extra: Mapping[str, object] | None = None,
        **more: object,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = None if retry_after is None else max(1, math.ceil(retry_after))
        self.extra = {**(extra or {}), **more}

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.code, "message": str(self)}
        if self.retry_after is not None:
            out["retry_after"] = self.retry_after
        out.update(self.extra)
        return out


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CommandService:
    def __init__(
        self,
        settings: CommandSettings,
        clock: Clock,
        hub: Hub,
        scheduler: Scheduler,
        audit: AuditLog,
        counter: CommandCounter | None = None,
        limits_clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        # the cooldown and the rate limit protect a real car and a real cloud, so they count in
        # the time those live in, even while the demo's clock runs 60 times faster
        self.limits_clock = limits_clock or clock
        self.hub = hub
        self.scheduler = scheduler
        self.audit = audit
        self.counter = counter or CommandCounter()
        self._records: dict[str, CommandRecord] = {}
        self._done: dict[str, asyncio.Event] = {}
        self._keys: dict[tuple[str, str], CommandRecord] = {}
        self._last_command: dict[str, float] = {}
        self._recent: deque[float] = deque()
        self._send_locks: dict[str, asyncio.Lock] = {}
        # (vin, expectation group) -> the last command sent on it; a check that sees a newer one
        # there knows its own effect may have been undone and stops claiming anything
        self._current: dict[tuple[str, str], str] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # --- lifecycle --------------------------------------------------------------------------------
    def open(self) -> None:
        now = self.clock.now()
        in_flight = SEND_BOUND + self.settings.verify_timeout
        for rec in self.audit.open(now, now - self.settings.idempotency_ttl, in_flight):
            if rec.idempotency_key:
                self._keys[(rec.caller, rec.idempotency_key)] = rec

    async def stop(self) -> None:
        """Cancel sends and checks still running and close their records honestly."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for rec in list(self._records.values()):
            if rec.status is Status.PENDING:
                self._finish(rec, Outcome.TIMEOUT, "the exporter stopped while sending")
            elif rec.status is Status.SENT:
                self._finish(rec, Outcome.NOT_VERIFIED, "the exporter stopped before the check")
        await self.audit.flush()

    # --- reading ----------------------------------------------------------------------------------
    def supported(self, vin: str, provider: Provider | None = None) -> list[str]:
        provider = provider or self.scheduler.provider_of(vin)
        if provider is None:
            return []
        try:
            have = provider.supported_commands(vin)
        except Exception:  # a provider not ready yet must not break the vehicle list
            log.warning("supported_commands failed", extra={"vin": mask_vin(vin)}, exc_info=True)
            return []
        return [c for c in COMMANDS if c in have]

    def vehicles(self) -> list[dict[str, Any]]:
        out = []
        for vin in sorted(set(self.hub.vehicles) | set(self.scheduler.vins)):
            info = self.hub.vehicles.get(vin)
            snap = self.hub.latest(vin)
            provider = self.scheduler.provider_of(vin)
            out.append(
                {
                    "vin": vin,
                    "provider": info.provider if info else (provider.name if provider else ""),
                    "account": info.account if info else (provider.account if provider else ""),
                    "make": info.make if info else "",
                    "model": info.model if info else "",
                    "year": info.year if info else "",
                    "supported_commands": self.supported(vin, provider),
                    "last_report": snap.car_time if snap else None,
                }
            )
        return out

    async def get(self, command_id: str) -> CommandRecord | None:
        """The record; once a caller has seen a state, the audit row shows it too."""
        rec = self._records.get(command_id)
        await self.audit.flush()
        if rec is not None:
            return rec
        return await self.audit.get(command_id)

    async def wait(self, command_id: str, seconds: float) -> CommandRecord | None:
        """The record once its outcome is known, or as it stands after ``seconds`` (clock time)."""
        rec = self._records.get(command_id)
        event = self._done.get(command_id)
        if rec is None or event is None or event.is_set() or seconds <= 0:
            return await self.get(command_id)
        waiter = asyncio.ensure_future(event.wait())
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            sleeper.cancel()
        await self.audit.flush()
        return rec

    async def history(self, vin: str, limit: int) -> list[CommandRecord]:
        await self.audit.flush()
        return await self.audit.recent(vin, limit)

    # --- submitting -------------------------------------------------------------------------------
    def submit(
        self, vin: str, body: object, caller: Caller, idempotency_key: str | None = None
    ) -> tuple[CommandRecord, bool]:
        """Check a request and start it. Returns (record, replayed). Raises Refused.

        Synchronous on purpose: no await between the checks and the bookkeeping, so two concurrent
        requests cannot both pass a cooldown or both claim one Idempotency-Key."""
        if not caller.can_command:
            raise Refused(403, "forbidden", f"the token {caller.name!r} may read but not command")
        provider = self.scheduler.provider_of(vin)
        if provider is None:
            raise Refused(404, "unknown_vehicle", f"no vehicle {vin!r} is known to this exporter")
        try:
            command = validate(body)
        except InvalidCommand as exc:
            status = 400 if exc.code == "invalid_request" else 422
            raise Refused(status, exc.code, str(exc), extra=exc.extra) from None
        supported = self.supported(vin, provider)
        if command.name not in supported:
            raise Refused(
                422,
                "unsupported_command",
                f"{command.name} is not supported for this vehicle through {provider.name}; "
                f"supported: {', '.join(supported) or 'none'}",
                supported=supported,
            )
        try:
            provider.validate_command(vin, command)
        except CommandRejected as exc:
            raise Refused(422, "invalid_parameter", f"{provider.name}: {exc}") from None
        fingerprint = CommandRecord.fingerprint_of(vin, command.name, command.params)
        now = self.clock.now()
        if idempotency_key is not None:
            replay = self._replay(caller, idempotency_key, fingerprint, now)
            if replay is not None:
                return replay, True
        wall = self.limits_clock.now()
        self._check_rate(wall)
        self._check_cooldown(vin, wall)

        exp = expectation(command)
        rec = CommandRecord(
            id=uuid.uuid4().hex,
            vin=vin,
            provider=provider.name,
            account=provider.account,
            command=command.name,
            params=dict(command.params),
            caller=caller.name,
            requested_at=now,
            idempotency_key=idempotency_key,
            expected=exp.description if exp else "",
            fingerprint=fingerprint,
        )
        self._records[rec.id] = rec
        self._done[rec.id] = asyncio.Event()
        if idempotency_key is not None:
            self._keys[(caller.name, idempotency_key)] = rec
        self._last_command[vin] = wall
        self._recent.append(wall)
        self.audit.write(rec)
        log.info(
            "command requested",
            extra={
                "command_id": rec.id,
                "vin": mask_vin(vin),
                "command": command.name,
                "caller": caller.name,
            },
        )
        task = asyncio.create_task(self._run(rec, provider, command, exp), name=f"cmd-{rec.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._prune(now)
        return rec, False

    def _replay(
        self, caller: Caller, key: str, fingerprint: str, now: float
    ) -> CommandRecord | None:
        if not key or len(key) > MAX_KEY_CHARS or any(not " " <= c <= "~" for c in key):
            raise Refused(
                400,
                "invalid_idempotency_key",
                f"Idempotency-Key must be 1..{MAX_KEY_CHARS} printable ASCII characters",
            )
        prior = self._keys.get((caller.name, key))
        if prior is None or now - prior.requested_at > self.settings.idempotency_ttl:
            return None
        if prior.fingerprint != fingerprint:
            raise Refused(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was already used for a different request "
                f"(command {prior.id}); use a new key for a new command",
                command_id=prior.id,
            )
        return self._records.get(prior.id, prior)

    def _check_rate(self, now: float) -> None:
        window = self.settings.rate_window
        while self._recent and self._recent[0] <= now - window:
            self._recent.popleft()
        if len(self._recent) >= self.settings.rate_limit:
            wait = self._recent[0] + window - now
            raise Refused(
                429,
                "rate_limited",
                f"at most {self.settings.rate_limit} commands per {window:g} s; "
                f"try again in {math.ceil(wait)} s",
                retry_after=wait,
            )

    def _check_cooldown(self, vin: str, now: float) -> None:
        last = self._last_command.get(vin)
        cooldown = self.settings.cooldown
        if last is not None and now - last < cooldown:
            wait = last + cooldown - now
            raise Refused(
                429,
                "cooldown",
                f"this vehicle got a command {now - last:.1f} s ago; commands to one vehicle need "
                f"{cooldown:g} s between them; try again in {math.ceil(wait)} s",
                retry_after=wait,
            )

    def _prune(self, now: float) -> None:
        """Forget finished records (the audit table keeps them) and expired keys."""
        horizon = now - self.settings.idempotency_ttl
        for rid, rec in list(self._records.items()):
            if rec.status is Status.DONE and rec.requested_at < horizon:
                del self._records[rid]
                self._done.pop(rid, None)
        for k, rec in list(self._keys.items()):
            if rec.requested_at < horizon:
                del self._keys[k]

    # --- sending and checking ---------------------------------------------------------------------
    async def _run(
        self, rec: CommandRecord, provider: Provider, command: Command, exp: Expectation | None
    ) -> None:
        lock = self._send_locks.setdefault(rec.vin, asyncio.Lock())
        unanswered = ""
        async with lock:
            t0 = self.clock.now()
            try:
                receipt = await provider.command(rec.vin, command)
            except CommandRejected as exc:
                rec.cloud_accepted = False
                rec.cloud_reply = str(exc)
                self._finish(rec, Outcome.REJECTED, f"refused: {exc}")
                return
            except UpstreamTimeout as exc:
                if exp is None:
                    self._finish(
                        rec,
                        Outcome.TIMEOUT,
                        f"no answer from the cloud ({exc}); the car may or may not have "
                        "received it",
                    )
                    return
                # The outcome is unknown: never send it again (a second unlock, a second horn),
                # read the car instead and let its reports say whether it happened.
                unanswered = str(exc)
            except ProviderError as exc:
                self._finish(rec, Outcome.FAILED, f"not sent: {exc.reason}: {exc}")
                return
            except Exception as exc:
                log.exception("command send crashed", extra={"command_id": rec.id})
                self._finish(rec, Outcome.FAILED, f"internal error: {type(exc).__name__}")
                return
        if unanswered:
            assert exp is not None
            rec.sent_at = t0
            rec.status = Status.SENT
            self.audit.write(rec)
            self._current[(rec.vin, exp.group)] = rec.id
            await self._verify(rec, exp, t0, unanswered=unanswered)
            return
        rec.cloud_accepted = receipt.accepted
        rec.cloud_reply = receipt.reply
        rec.cloud_id = receipt.cloud_id
        if not receipt.accepted:
            self._finish(rec, Outcome.REJECTED, f"refused: {receipt.reply}")
            return
        rec.sent_at = t0
        rec.status = Status.SENT
        self.audit.write(rec)
        if exp is None:
            self._finish(
                rec,
                Outcome.ACCEPTED,
                f"the cloud accepted it; no car report shows a {rec.command}, so acceptance is "
                "the most that can be observed",
            )
            return
        self._current[(rec.vin, exp.group)] = rec.id
        await self._verify(rec, exp, t0)

    def _fresh(self, vin: str, since: float) -> Snapshot | None:
        snap = self.hub.latest(vin)
        return snap if snap is not None and snap.car_time >= since else None

    async def _sleep_until(self, t: float) -> None:
        await self.clock.sleep(max(0.0, t - self.clock.now()))

    async def _verify(
        self, rec: CommandRecord, exp: Expectation, t0: float, *, unanswered: str = ""
    ) -> None:
        """Poll until a report after ``t0`` shows ``exp`` or the verify timeout passes.

        ``unanswered``: the send timed out, so whether the cloud took the command is unknown; a
        report showing the effect still makes it verified, and otherwise it ends as a timeout."""
        s = self.settings
        deadline = t0 + s.verify_timeout
        await self._sleep_until(min(t0 + s.verify_delay, deadline))
        observed = ""
        error = ""
        while True:
            snap = self._fresh(rec.vin, t0)
            if snap is None or exp.check(snap) is not True:
                try:
                    await self.scheduler.poll_now(rec.vin)
                except ProviderError as exc:
                    error = f"{exc.reason}: {exc}"
                except KeyError:
                    self._finish(rec, Outcome.NOT_VERIFIED, "the vehicle is no longer polled")
                    return
                except Exception as exc:
                    log.exception("verification poll crashed", extra={"command_id": rec.id})
                    error = f"internal error: {type(exc).__name__}"
                snap = self._fresh(rec.vin, t0)
            if snap is not None:
                if exp.check(snap) is True:
                    late = f"the cloud did not answer ({unanswered}), but " if unanswered else ""
                    self._finish(
                        rec,
                        Outcome.VERIFIED,
                        f"{late}{exp.description} in the car's report of {_iso(snap.car_time)}, "
                        f"{snap.car_time - t0:.0f} s after sending",
                    )
                    return
                observed = exp.observed(snap)
            newer = self._current.get((rec.vin, exp.group))
            if newer != rec.id:
                self._finish(
                    rec,
                    Outcome.NOT_VERIFIED,
                    f"superseded by command {newer} before {exp.description} was seen",
                )
                return
            now = self.clock.now()
            if now >= deadline:
                break
            await self._sleep_until(min(now + s.verify_interval, deadline))
        if observed:
            seen = f"the last report after sending showed {observed}"
        else:
            seen = "no car report arrived after the command was sent"
            older = self.hub.latest(rec.vin)
            if older is not None:
                seen += f" (the last one, of {_iso(older.car_time)}, showed {exp.observed(older)})"
        detail = f"{exp.description} not seen within {s.verify_timeout:g} s; {seen}"
        if error:
            detail += f"; last poll error: {error}"
        if unanswered:
            self._finish(
                rec,
                Outcome.TIMEOUT,
                f"no answer from the cloud ({unanswered}); the car may or may not have received "
                f"it, and {detail}",
            )
            return
        self._finish(rec, Outcome.NOT_VERIFIED, detail)

    def _finish(self, rec: CommandRecord, outcome: Outcome, detail: str) -> None:
        rec.status = Status.DONE
        rec.outcome = outcome
        rec.detail = detail
        rec.finished_at = self.clock.now()
        self.audit.write(rec)
        self.counter.inc(rec.vin, rec.command, str(outcome))
        event = self._done.get(rec.id)
        if event is not None:
            event.set()
        log.info(
            "command finished",
            extra={
                "command_id": rec.id,
                "vin": mask_vin(rec.vin),
                "command": rec.command,
                "outcome": str(outcome),
                "detail": detail,
            },
        )
