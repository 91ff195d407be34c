"""One command's life, from request to verified outcome: the shape shared by the service, the
audit table and the API's JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    PENDING = "pending"  # accepted by the exporter, not yet accepted by the cloud
    SENT = "sent"  # the cloud accepted it; waiting for a car report that shows the effect
    DONE = "done"  # the outcome is final


class Outcome(StrEnum):
    """Bounded: these become the ``outcome`` label of carmetrics_commands_total."""

    VERIFIED = "verified"  # a car report after the command shows the expected state
    ACCEPTED = "accepted"  # the cloud accepted it and no report can show the effect (horn, ...)
    NOT_VERIFIED = "not_verified"  # accepted, but the state was not seen before the verify timeout
    REJECTED = "rejected"  # the cloud or the car refused it
    FAILED = "failed"  # it could not be sent (auth, rate limit, cloud down)
    TIMEOUT = "timeout"  # no answer while sending: the car may or may not have received it


@dataclass
class CommandRecord:
    id: str
    vin: str
    provider: str
    account: str
    command: str
    params: dict[str, object]
    caller: str
    requested_at: float
    idempotency_key: str | None = None
    status: Status = Status.PENDING
    expected: str = ""
    sent_at: float | None = None
    cloud_accepted: bool | None = None
    cloud_reply: str = ""
    cloud_id: str = ""
    outcome: Outcome | None = None
    detail: str = ""
    finished_at: float | None = None
    fingerprint: str = field(default="", repr=False)

    @staticmethod
    def fingerprint_of(vin: str, command: str, params: dict[str, object]) -> str:
        """What an Idempotency-Key replay must match: same vehicle, command and parameters."""
        return json.dumps([vin, command, params], sort_keys=True, separators=(",", ":"))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "vin": self.vin,
            "provider": self.provider,
            "command": self.command,
            "parameters": dict(self.params),
            "caller": self.caller,
            "status": str(self.status),
            "outcome": None if self.outcome is None else str(self.outcome),
            "detail": self.detail,
            "expected": self.expected,
            "requested_at": self.requested_at,
            "sent_at": self.sent_at,
            "finished_at": self.finished_at,
            "cloud": {
                "accepted": self.cloud_accepted,
                "reply": self.cloud_reply,
                "id": self.cloud_id,
            },
            "links": {"self": f"/api/v1/commands/{self.id}"},
        }
