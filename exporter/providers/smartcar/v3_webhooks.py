"""Receiving Smartcar payload-4.0 webhooks: VERIFY, signature, dedupe, ordering, values.

The order of checks is the point of this module (smartcar-v3.md §4):

1. VERIFY is answered even when unsigned (real captures carry no ``SC-Signature``, §4.3), with
   HMAC(AMT, challenge); a VERIFY that *is* signed must be signed right. Only challenge-shaped
   strings are answered (``webhooks.verify_answer``), so the endpoint never signs arbitrary text.
2. Everything else must carry a valid ``SC-Signature`` over the raw bytes (401 otherwise [DOC]).
3. Deliveries are at-least-once: a repeated ``eventId`` is acknowledged and ignored.
4. There is no ordering guarantee: per vehicle and signal, a value whose ``oemUpdatedAt`` is older
   than one already taken is dropped (§4.1 "order by signals[].meta.oemUpdatedAt").

Both trigger shapes (``data.triggers`` and the observed top-level ``triggers[{type, signal}]``) and
both ``meta`` spellings are read by ``webhooks.parse_envelope``.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from exporter.clock import Clock
from exporter.config import Secret
from exporter.providers.smartcar.v3_parse import Parsed, parse_signals
from exporter.providers.smartcar.webhooks import (
    Dedupe,
    Envelope,
    WebhookRejected,
    parse_envelope,
    verify_answer,
    verify_signature,
)

MAX_TRACKED: Final = 100_000  # (vehicle, signal) pairs remembered for ordering


@dataclass
class Outcome:
    """What to answer, and what (if anything) the delivery means for carmetrics."""

    status: int
    reply: dict[str, str] | None = None
    envelope: Envelope | None = None
    parsed: Parsed | None = None  # VEHICLE_STATE: the fresh values of ``vehicle_id``
    duplicate: bool = False
    stale: list[str] = field(default_factory=list)  # signal codes dropped as out of order

    @property
    def vehicle_id(self) -> str | None:
        return self.envelope.vehicle_id if self.envelope else None

    @property
    def user_id(self) -> str | None:
        return self.envelope.user_id if self.envelope else None


class V3WebhookReceiver:
    def __init__(self, management_token: Secret, clock: Clock) -> None:
        self._amt = management_token
        self.clock = clock
        self.dedupe = Dedupe()
        self._latest: OrderedDict[tuple[str, str], float] = OrderedDict()

    def handle(self, raw: bytes, headers: Mapping[str, str]) -> Outcome:
        amt = self._amt.reveal()
        signature = _header(headers, "SC-Signature")
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            doc = None
        if isinstance(doc, dict) and doc.get("eventType") == "VERIFY":
            if signature and not verify_signature(amt, raw, signature):
                return Outcome(401)
            try:
                reply = verify_answer(amt, raw)
            except WebhookRejected as exc:
                return Outcome(exc.status)
            return Outcome(200, reply=reply) if reply else Outcome(400)
        if not verify_signature(amt, raw, signature):
            return Outcome(401)
        try:
            env = parse_envelope(raw)
        except WebhookRejected as exc:
            return Outcome(exc.status)
        if env.raw.get("meta", {}).get("mode") == "TEST":
            return Outcome(202, envelope=env)  # a Dashboard test send [3P-LIVE §4.6]
        if self.dedupe.seen(env.event_id, self.clock.now()):
            return Outcome(200, envelope=env, duplicate=True)
        if env.event_type != "VEHICLE_STATE" or not env.vehicle_id:
            return Outcome(200, envelope=env)
        fresh, stale = self._order(env.vehicle_id, env.raw)
        return Outcome(200, envelope=env, parsed=parse_signals(fresh), stale=stale)

    def _order(self, vehicle_id: str, doc: Mapping[str, Any]) -> tuple[list[Any], list[str]]:
        data = doc.get("data") if isinstance(doc.get("data"), Mapping) else {}
        items = data.get("signals") if isinstance(data, Mapping) else None
        fresh: list[Any] = []
        stale: list[str] = []
        for item in items if isinstance(items, list) else []:
            parsed = parse_signals([item])
            code = next(iter(parsed.oem_updated_at), None)
            t = parsed.oem_updated_at.get(code) if code else None
            if code is None or t is None or t <= 0:
                fresh.append(item)  # no time: cannot be ordered, take it
                continue
            key = (vehicle_id, code)
            seen = self._latest.get(key)
            if seen is not None and t < seen:
                stale.append(code)
                continue
            self._latest[key] = t
            self._latest.move_to_end(key)
            fresh.append(item)
        while len(self._latest) > MAX_TRACKED:
            self._latest.popitem(last=False)
        return fresh, stale


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    return None
