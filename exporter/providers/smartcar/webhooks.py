"""Smartcar webhooks: the VERIFY answer, ``SC-Signature`` checks, envelope parsing and dedupe.

Security notes that shape this module:

- The signature is an HMAC over the raw request bytes keyed by the application management token
  (AMT), so verification runs on the bytes before any JSON parsing, with a constant-time compare.
- VERIFY arrives unsigned (real captures), and its answer is HMAC(AMT, challenge). Answering any
  challenge would turn the endpoint into a signing oracle: a caller could send a forged event body
  as the "challenge" and get back a valid signature for it. So only challenges shaped like the ones
  Smartcar sends (a short token of letters, digits and dashes, never a JSON document) are answered.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from exporter.providers.smartcar.parse import parse_time

CHALLENGE_RE: Final = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
DEDUPE_SECONDS: Final = 7 * 86400.0  # the docs suggest keeping processed ids for 7 days
DEDUPE_MAX: Final = 50_000


def hash_challenge(management_token: str, challenge: str) -> str:
    """HMAC-SHA256(key = AMT, message = challenge), lowercase hex (the SDKs' ``hash_challenge``)."""
    return hmac.new(management_token.encode(), challenge.encode(), hashlib.sha256).hexdigest()


def verify_signature(management_token: str, raw_body: bytes, signature: str | None) -> bool:
    """True when ``signature`` is HMAC-SHA256(AMT, raw body) in hex; constant time."""
    if not signature:
        return False
    expected = hmac.new(management_token.encode(), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature.strip().lower())


class WebhookRejected(Exception):
    """The request is not a webhook we accept; ``status`` is the HTTP answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SignalItem:
    code: str
    body: Mapping[str, Any] | None  # None: the signal failed (status ERROR)
    oem_updated_at: float | None
    error: tuple[str, str | None] | None = None


@dataclass(frozen=True, slots=True)
class VehicleErrorItem:
    type: str
    code: str | None
    state: str  # ERROR | RESOLVED
    description: str = ""
    user_message: str = ""
    resolution: str | None = None
    signals: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.type}:{self.code}" if self.code else self.type


@dataclass(frozen=True)
class Envelope:
    event_id: str
    event_type: str  # VERIFY | VEHICLE_STATE | VEHICLE_ERROR | other
    vehicle_id: str | None
    delivered_at: float | None
    challenge: str | None = None
    signals: tuple[SignalItem, ...] = ()
    errors: tuple[VehicleErrorItem, ...] = ()
    triggers: tuple[str, ...] = ()
    user_id: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _challenge(doc: Mapping[str, Any]) -> str | None:
    for holder in (doc.get("data"), doc.get("payload")):
        if isinstance(holder, Mapping) and isinstance(holder.get("challenge"), str):
            return str(holder["challenge"])
    return None


def is_verify(doc: Mapping[str, Any]) -> bool:
    return doc.get("eventType") == "VERIFY" or str(doc.get("eventName", "")).lower() == "verify"


def _trigger_code(item: Any) -> str | None:
    if not isinstance(item, Mapping):
        return None
    if isinstance(item.get("code"), str):
        return str(item["code"])
    sig = item.get("signal")
    if isinstance(sig, Mapping) and isinstance(sig.get("code"), str):
        return str(sig["code"])
    if isinstance(sig, str):
        return sig
    return str(item["type"]) if isinstance(item.get("type"), str) else None


def _signal(item: Any) -> SignalItem | None:
    if not isinstance(item, Mapping) or not isinstance(item.get("code"), str):
        return None
    meta = _map(item.get("meta"))
    oem = parse_time(meta.get("oemUpdatedAt"))
    status = _map(item.get("status"))
    raw_body = item.get("body")
    body: Mapping[str, Any] | None = raw_body if isinstance(raw_body, Mapping) else None
    err = None
    if status.get("value") == "ERROR" or body is None:
        e = _map(status.get("error"))
        err = (
            str(e.get("type") or "UNKNOWN"),
            e.get("code") if isinstance(e.get("code"), str) else None,
        )
        body = None
    return SignalItem(str(item["code"]), body, oem, err)


def _error(item: Any) -> VehicleErrorItem | None:
    if not isinstance(item, Mapping) or not isinstance(item.get("type"), str):
        return None
    res = item.get("resolution")
    res_type = (
        res.get("type") if isinstance(res, Mapping) else (res if isinstance(res, str) else None)
    )
    sigs: list[str] = []
    for s in item.get("signals") or []:
        if isinstance(s, Mapping) and isinstance(s.get("code"), str):
            sigs.append(str(s["code"]))
        elif isinstance(s, str):
            sigs.append(s)
    code = item.get("code")
    return VehicleErrorItem(
        type=str(item["type"]),
        code=code if isinstance(code, str) else None,
        state=str(item.get("state") or "ERROR").upper(),
        description=str(item.get("description") or ""),
        user_message=str(item.get("suggestedUserMessage") or ""),
        resolution=res_type if isinstance(res_type, str) else None,
        signals=tuple(sigs),
    )


def _list(value: Any) -> list[Any]:
    """A JSON array, or nothing: a signed body with ``"errors": 1`` is malformed, not a crash."""
    return value if isinstance(value, list) else []


def parse_envelope(raw: bytes) -> Envelope:
    """Parse a webhook body (already verified, or a VERIFY). Raises WebhookRejected(400)."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRejected(400, "body is not JSON") from None
    if not isinstance(doc, dict):
        raise WebhookRejected(400, "body is not a JSON object")
    meta = _map(doc.get("meta"))
    delivered = parse_time(meta.get("deliveredAt") or meta.get("deliveryTime"))
    if is_verify(doc):
        return Envelope(
            event_id=str(doc.get("eventId") or ""),
            event_type="VERIFY",
            vehicle_id=None,
            delivered_at=delivered,
            challenge=_challenge(doc),
            raw=doc,
        )
    event_type = str(doc.get("eventType") or "")
    event_id = str(doc.get("eventId") or "")
    if not event_id or not event_type:
        raise WebhookRejected(400, "eventId and eventType are required")
    data = _map(doc.get("data"))
    vehicle = _map(data.get("vehicle"))
    vehicle_id = doc.get("vehicleId") or vehicle.get("id")
    user = _map(data.get("user"))
    triggers_raw = _list(data.get("triggers", doc.get("triggers")))
    triggers = tuple(c for c in (_trigger_code(t) for t in triggers_raw) if c is not None)
    signals = tuple(s for s in (_signal(i) for i in _list(data.get("signals"))) if s is not None)
    errors = tuple(e for e in (_error(i) for i in _list(data.get("errors"))) if e is not None)
    return Envelope(
        event_id=event_id,
        event_type=event_type,
        vehicle_id=str(vehicle_id) if vehicle_id else None,
        delivered_at=delivered,
        signals=signals,
        errors=errors,
        triggers=triggers,
        user_id=str(user["id"]) if isinstance(user.get("id"), str) else None,
        raw=doc,
    )


def verify_answer(management_token: str, raw: bytes) -> dict[str, str] | None:
    """The ``{"challenge": hmac}`` reply when ``raw`` is a well-formed VERIFY, else None.

    Raises WebhookRejected(400) for a VERIFY whose challenge is not challenge-shaped (see the
    module docstring: we never sign arbitrary text)."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or not is_verify(doc):
        return None
    challenge = _challenge(doc)
    if challenge is None or not CHALLENGE_RE.match(challenge):
        raise WebhookRejected(400, "VERIFY without a well-formed challenge")
    return {"challenge": hash_challenge(management_token, challenge)}


class Dedupe:
    """Event ids seen in the last 7 days (bounded), on the injected clock."""

    def __init__(self, ttl: float = DEDUPE_SECONDS, max_items: int = DEDUPE_MAX) -> None:
        self.ttl = ttl
        self.max_items = max_items
        self._seen: OrderedDict[str, float] = OrderedDict()

    def seen(self, event_id: str, now: float) -> bool:
        """True if ``event_id`` was already processed; otherwise remember it and return False."""
        while self._seen:
            oldest_id, t = next(iter(self._seen.items()))
            if now - t <= self.ttl and len(self._seen) <= self.max_items:
                break
            self._seen.pop(oldest_id)
        if event_id in self._seen:
            return True
        self._seen[event_id] = now
        return False

    def forget(self, event_id: str) -> None:
        """Un-remember an event whose processing failed, so Smartcar's retry is processed."""
        self._seen.pop(event_id, None)
