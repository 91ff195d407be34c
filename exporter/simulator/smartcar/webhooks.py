"""The webhook emitter: VERIFY first, then signed VEHICLE_STATE / VEHICLE_ERROR deliveries.

Behaves as reference §4 describes: the callback must answer VERIFY with the challenge's HMAC before
anything else is sent; every delivery is signed over the exact bytes sent (pretty-printed JSON, so a
receiver that re-serialises before verifying fails, as it would in production); a failed delivery is
retried at +25, +50 and +100 s (on the simulated clock) with the same ``eventId`` and a new
``deliveryId``; and, as knobs, deliveries may overtake each other or arrive twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp

from exporter.simulator.smartcar import catalog
from exporter.simulator.smartcar.car import DOORS, Car, CarReading
from exporter.simulator.smartcar.state import SimApp, SmartcarCloud

log = logging.getLogger(__name__)

RETRY_DELAYS: Final = (25.0, 50.0, 100.0)  # attempts at t=0, 25, 75, 175 s
TIMEOUT: Final = 15.0


def sign(management_token: str, body: bytes) -> str:
    return hmac.new(management_token.encode(), body, hashlib.sha256).hexdigest()


def _ms(t: float) -> int:
    return round(t * 1000)


def _grid(values: Mapping[str, bool], locked: bool | None) -> dict[str, Any]:
    items = []
    for i, door in enumerate(DOORS):
        item: dict[str, Any] = {"row": i // 2, "column": i % 2, "isOpen": values.get(door, False)}
        if locked is not None:
            item["isLocked"] = locked
        items.append(item)
    return {"values": items, "rowCount": 2, "columnCount": 2}


def signal_body(code: str, car: Car, r: CarReading) -> dict[str, Any] | None:
    """The v3 body of one signal, or None when this car cannot report it."""
    electric = car.powertrain in ("BEV", "PHEV")
    combustion = car.powertrain in ("ICE", "PHEV")
    bodies: dict[str, Any] = {}
    if electric:
        limit = round(r.charge_limit * 100)
        bodies.update(
            {
                "tractionbattery-stateofcharge": {
                    "unit": "percent",
                    "value": None if r.soc is None else round(r.soc * 100, 1),
                },
                "tractionbattery-range": {
                    "unit": "km",
                    "value": None if r.range_m is None else round(r.range_m / 1000, 1),
                    "type": "DEFAULT",
                    "additionalValues": [],
                },
                "charge-ischarging": {"value": r.charging},
                "charge-ischargingcableconnected": {"value": r.plugged},
                "charge-chargelimits": {
                    "values": [{"type": "GLOBAL", "limit": limit, "condition": None}],
                    "activeLimit": limit,
                    "unit": "percent",
                },
                "charge-wattage": {"unit": "watts", "value": round(r.charge_power_w)},
            }
        )
    if combustion:
        bodies["internalcombustionengine-fuellevel"] = {"value": r.fuel_ratio}
        bodies["internalcombustionengine-oillife"] = {"value": r.oil_life}
    bodies.update(
        {
            "closure-islocked": {"value": r.locked},
            "closure-doors": _grid(r.doors_open, r.locked),
            "closure-windows": _grid(r.windows_open, None),
            "closure-reartrunk": {"isOpen": r.trunk_open, "isLocked": r.locked},
            "closure-fronttrunk": {"isOpen": r.hood_open, "isLocked": None},
            "odometer-traveleddistance": {"unit": "km", "value": round(r.odometer_m / 1000, 1)},
            "motion-currentspeed": {"unit": "km/h", "value": round(r.speed_mps * 3.6, 1)},
        }
    )
    if r.sunroof_open is not None:
        bodies["closure-sunroof"] = {"isOpen": r.sunroof_open}
    if r.latitude is not None and r.longitude is not None:
        loc: dict[str, Any] = {
            "latitude": r.latitude,
            "longitude": r.longitude,
            "locationType": "CURRENT",
        }
        if r.heading is not None:
            loc["heading"] = round(r.heading)
        bodies["location-preciselocation"] = loc
    return bodies.get(code)


def signals_of(app: SimApp, car: Car, r: CarReading, now: float) -> list[dict[str, Any]]:
    out = []
    for code in app.webhook_signals:
        name, group = catalog.SIGNALS.get(code, (code, code.split("-")[0]))
        item: dict[str, Any] = {"code": code, "name": name, "group": group}
        body = signal_body(code, car, r)
        if body is None:
            item["status"] = {
                "value": "ERROR",
                "error": {"type": "COMPATIBILITY", "code": "VEHICLE_NOT_CAPABLE"},
            }
        else:
            item["body"] = body
            item["status"] = {"value": "SUCCESS"}
        item["meta"] = {"oemUpdatedAt": _ms(r.time), "fetchedAt": _ms(now)}
        out.append(item)
    return out


@dataclass
class Event:
    client_id: str
    envelope: dict[str, Any]  # without meta.deliveryId / deliveredAt (set per attempt)
    attempts: int = 0


@dataclass
class Delivery:
    """What the emitter sent, for tests: one entry per attempt."""

    event_id: str
    event_type: str
    status: int | None  # None: connection error / timeout
    delivery_id: str
    at: float


@dataclass
class _Watch:
    last_triggers: dict[str, Any] = field(default_factory=dict)
    last_sent: float | None = None
    first: bool = True
    pending: bool = False


class WebhookEmitter:
    """Sends webhooks for every (app, vehicle) subscription of a ``SmartcarCloud``."""

    def __init__(
        self,
        cloud: SmartcarCloud,
        *,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
        min_interval: float = 60.0,
        out_of_order: float = 0.0,
        duplicate_rate: float = 0.0,
        seed: int = 7,
    ) -> None:
        self.cloud = cloud
        self.retry_delays = retry_delays
        self.min_interval = min_interval
        self.out_of_order = out_of_order  # max extra random delay (s) before a first attempt
        self.duplicate_rate = duplicate_rate
        self.rng = random.Random(seed)
        self.deliveries: list[Delivery] = []
        self.verify_results: list[tuple[str, bool]] = []
        self._watch: dict[tuple[str, str], _Watch] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._verify_lock = asyncio.Lock()
        self._last_verify: dict[str, float] = {}
        cloud.listeners.append(self.car_changed)

    # --- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=TIMEOUT),
                headers={"User-Agent": "Smartcar/4.0 (simulator)"},
            )

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def idle(self) -> None:
        """Wait until no delivery is in flight or scheduled (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self, coro: Any) -> None:
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:  # no loop: a change made outside the server (a sync test)
            coro.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- VERIFY -----------------------------------------------------------------------------------
    async def verify(self, client_id: str) -> bool:
        """Send VERIFY (as the Dashboard does on create / URL change / 'Verify this webhook')."""
        app = self.cloud.apps[client_id]
        if not app.webhook_url:
            return False
        await self.start()
        assert self._session is not None
        challenge = str(uuid.uuid4())
        envelope = {
            "eventId": str(uuid.uuid4()),
            "eventType": "VERIFY",
            "data": {"challenge": challenge},
            "meta": {
                "version": "4.0",
                "webhookId": app.webhook_id,
                "webhookName": app.webhook_name,
                "deliveryId": str(uuid.uuid4()),
                "deliveredAt": _ms(self.cloud.clock.now()),
            },
        }
        body = json.dumps(envelope).encode()
        expected = sign(app.management_token, challenge.encode())
        ok = False
        try:
            async with self._session.post(
                app.webhook_url, data=body, headers={"Content-Type": "application/json"}
            ) as resp:
                if resp.status == 200:
                    reply = await resp.json(content_type=None)
                    ok = isinstance(reply, dict) and hmac.compare_digest(
                        str(reply.get("challenge", "")), expected
                    )
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError, ValueError):
            ok = False
        app.verified = ok
        self.verify_results.append((client_id, ok))
        log.info(
            "webhook VERIFY %s", "accepted" if ok else "failed", extra={"webhook": app.webhook_id}
        )
        return ok

    async def _ensure_verified(self, app: SimApp) -> bool:
        async with self._verify_lock:  # one VERIFY at a time; the others wait for its outcome
            if app.verified:
                return True
            now = self.cloud.clock.now()
            last = self._last_verify.get(app.client_id)
            if last is not None and now - last < self.min_interval:
                return False
            self._last_verify[app.client_id] = now
            return await self.verify(app.client_id)

    # --- VEHICLE_STATE ----------------------------------------------------------------------------
    def car_changed(self, vin: str) -> None:
        for app in self.cloud.apps.values():
            if app.webhook_url and (app.client_id, vin) in self.cloud.subscriptions:
                self._consider(app, vin)

    def _consider(self, app: SimApp, vin: str) -> None:
        w = self._watch.setdefault((app.client_id, vin), _Watch())
        now = self.cloud.clock.now()
        if w.pending:
            return
        if not w.first and w.last_sent is not None and now - w.last_sent < self.min_interval:
            w.pending = True
            self._spawn(self._deferred(app, vin, w.last_sent + self.min_interval))
            return
        self._emit_state(app, vin, w)

    async def _deferred(self, app: SimApp, vin: str, at: float) -> None:
        await self.cloud.clock.sleep(max(0.0, at - self.cloud.clock.now()))
        w = self._watch[(app.client_id, vin)]
        w.pending = False
        self._emit_state(app, vin, w)

    def _emit_state(self, app: SimApp, vin: str, w: _Watch) -> None:
        car = self.cloud.cars[vin]
        r = car.read()
        now = self.cloud.clock.now()
        current = {c: signal_body(c, car, r) for c in app.webhook_triggers}
        if w.first:
            triggers: list[dict[str, Any]] = [{"code": "FIRST_DELIVERY"}]
        else:
            changed = [c for c in current if current[c] != w.last_triggers.get(c)]
            if not changed:
                return
            triggers = [
                {"code": c, "name": catalog.SIGNALS[c][0], "group": catalog.SIGNALS[c][1]}
                for c in changed
                if c in catalog.SIGNALS
            ]
        w.first = False
        w.last_triggers = current
        w.last_sent = now
        signals = signals_of(app, car, r, now)
        envelope = {
            "eventId": str(uuid.uuid4()),
            "eventType": "VEHICLE_STATE",
            "vehicleId": self.cloud.vehicle_id(app.client_id, vin),
            "data": {
                "user": {"id": self._user_of(app.client_id, vin)},
                "vehicle": self._vehicle(app.client_id, car),
                "triggers": triggers,
                "signals": signals,
            },
            "meta": {
                "version": "4.0",
                "webhookId": app.webhook_id,
                "webhookName": app.webhook_name,
                "signalCount": len(signals),
                "mode": "LIVE" if not vin.startswith("0SC") else "TEST",
            },
        }
        self._spawn(self._deliver(Event(app.client_id, envelope)))

    def _vehicle(self, client_id: str, car: Car) -> dict[str, Any]:
        return {
            "id": self.cloud.vehicle_id(client_id, car.vin),
            "make": car.make,
            "model": car.model,
            "year": car.year,
        }

    def _user_of(self, client_id: str, vin: str) -> str:
        for rt in self.cloud.refresh.values():
            if rt.client_id == client_id and vin in rt.vins:
                return rt.user_id
        return ""

    # --- VEHICLE_ERROR ----------------------------------------------------------------------------
    def vehicle_error(
        self,
        vin: str,
        type_: str,
        code: str | None,
        *,
        state: str = "ERROR",
        signals: tuple[str, ...] = (),
        resolution: str | None = "RETRY_LATER",
    ) -> None:
        """Knob: the cloud cannot read ``vin`` (state ERROR), or the problem cleared (RESOLVED)."""
        car = self.cloud.cars[vin]
        for app in self.cloud.apps.values():
            if not app.webhook_url or (app.client_id, vin) not in self.cloud.subscriptions:
                continue
            err: dict[str, Any] = {"type": type_, "code": code, "state": state}
            if state == "ERROR":
                err["description"] = f"{type_}:{code}"
                err["suggestedUserMessage"] = "Your car is unable to report data right now."
                err["resolution"] = {"type": resolution}
                slug = type_.lower().replace("_", "-")
                anchor = (code or "null").lower().replace("_", "-")
                err["docURL"] = (
                    f"https://smartcar.com/docs/errors/api-errors/{slug}-errors#{anchor}"
                )
            if signals:
                err["signals"] = [
                    {
                        "code": c,
                        "name": catalog.SIGNALS.get(c, (c, ""))[0],
                        "group": catalog.SIGNALS.get(c, ("", c))[1],
                    }
                    for c in signals
                ]
            envelope = {
                "eventId": str(uuid.uuid4()),
                "eventType": "VEHICLE_ERROR",
                "vehicleId": self.cloud.vehicle_id(app.client_id, vin),
                "data": {
                    "user": {"id": self._user_of(app.client_id, vin)},
                    "vehicle": self._vehicle(app.client_id, car),
                    "errors": [err],
                },
                "meta": {
                    "version": "4.0",
                    "webhookId": app.webhook_id,
                    "webhookName": app.webhook_name,
                    "mode": "LIVE",
                },
            }
            self._spawn(self._deliver(Event(app.client_id, envelope)))

    # --- delivery ---------------------------------------------------------------------------------
    async def _deliver(self, event: Event) -> None:
        app = self.cloud.apps[event.client_id]
        if self.out_of_order > 0:
            await self.cloud.clock.sleep(self.rng.uniform(0, self.out_of_order))
        if not await self._ensure_verified(app):
            log.info("webhook not verified; event dropped", extra={"webhook": app.webhook_id})
            return
        delays = (0.0, *self.retry_delays)
        for i, delay in enumerate(delays):
            if delay:
                await self.cloud.clock.sleep(delay)
            ok = await self._attempt(app, event)
            if ok:
                if self.duplicate_rate and self.rng.random() < self.duplicate_rate:
                    await self._attempt(app, event)  # at-least-once: the same eventId again
                return
            if i == len(delays) - 1:
                log.warning("webhook delivery gave up", extra={"event": event.envelope["eventId"]})

    async def _attempt(self, app: SimApp, event: Event) -> bool:
        await self.start()
        assert self._session is not None and app.webhook_url
        event.attempts += 1
        envelope = json.loads(json.dumps(event.envelope))
        delivery_id = str(uuid.uuid4())
        envelope["meta"]["deliveryId"] = delivery_id
        envelope["meta"]["deliveredAt"] = _ms(self.cloud.clock.now())
        body = json.dumps(envelope, indent=1).encode()  # signed as sent, whitespace included
        headers = {
            "Content-Type": "application/json",
            "SC-Signature": sign(app.management_token, body),
        }
        status: int | None = None
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with self._session.post(app.webhook_url, data=body, headers=headers) as resp:
                status = resp.status
                await resp.read()
        self.deliveries.append(
            Delivery(
                envelope["eventId"],
                envelope["eventType"],
                status,
                delivery_id,
                self.cloud.clock.now(),
            )
        )
        return status is not None and 200 <= status < 300
