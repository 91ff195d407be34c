"""The v3 management API (webhooks, subscriptions) and its payload-4.0 webhook emitter.

Management paths follow the published ``management.yml`` (top-level ``/subscriptions``), with the
blog's ``/webhooks/{id}/subscriptions`` served as an alias (smartcar-v3.md §2.6, open question 3).
The emitter (§4): VERIFY once per webhook before anything else (answer = HMAC(AMT, challenge)),
then on subscribe a ``FIRST_DELIVERY`` VEHICLE_STATE with *all* the webhook's data signals, later
deliveries when a trigger signal changes, VEHICLE_ERROR to the error callback when one is set;
each delivery signed over the exact bytes sent with ``SC-Signature``, retried at +25/+50/+100 s
with the same ``eventId`` and a new ``deliveryId`` [DOC delivery-behavior].
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from aiohttp import web

from exporter.simulator.smartcar.errors import ApiFault
from exporter.simulator.smartcar.v3_api import authenticate
from exporter.simulator.smartcar.v3_errors import error_response
from exporter.simulator.smartcar.v3_signals import CATALOGUE, body, capable
from exporter.simulator.smartcar.v3_state import Subscription, V3Cloud, Webhook, iso

log = logging.getLogger(__name__)

RETRY_DELAYS: Final = (25.0, 50.0, 100.0)
TIMEOUT: Final = 15.0


def sign(amt: str, raw: bytes) -> str:
    """HMAC-SHA256 keyed with the AMT over the raw body, lowercase hex [DOC payload-verification]."""
    return hmac.new(amt.encode(), raw, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Sent:
    """One delivery attempt: what went where and how it was answered (not the body, which is
    tens of kilobytes as Python objects and was what made a month-long demo grow by 250 MB)."""

    event_id: str
    event_type: str
    url: str
    status: int | None


SENT_KEPT = 1_000


class V3Emitter:
    """Sends VERIFY, VEHICLE_STATE and VEHICLE_ERROR for the v3 webhooks of a ``V3Cloud``."""

    def __init__(self, v3: V3Cloud, *, retry_delays: tuple[float, ...] = RETRY_DELAYS) -> None:
        self.v3 = v3
        self.retry_delays = retry_delays
        # the latest delivery attempts, for a look at what went out; bounded because the demo
        # runs this simulator inside the exporter's process for weeks
        self.sent: deque[Sent] = deque(maxlen=SENT_KEPT)
        self.verify_count: dict[str, int] = {}
        self._last: dict[str, dict[str, Any]] = {}  # subscription id -> trigger bodies
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._verify_lock = asyncio.Lock()
        v3.subscribe_listeners.append(self._subscribed)
        v3.cloud.listeners.append(self._car_changed)

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self, coro: Any) -> None:
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:
            coro.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=TIMEOUT),
                headers={"User-Agent": "Smartcar/4.0 (simulator)"},
            )
        return self._session

    # --- envelopes --------------------------------------------------------------------------------
    def _meta(self, hook: Webhook, **more: Any) -> dict[str, Any]:
        return {"version": "4.0", "webhookId": hook.id, "webhookName": hook.name, **more}

    def _signals(self, hook: Webhook, vin: str) -> list[dict[str, Any]]:
        """Every data signal of the webhook; a failed one carries only its status [DOC §4.4]."""
        car = self.v3.cloud.cars[vin]
        r = car.read()
        now_ms = round(self.v3.cloud.clock.now() * 1000)
        out = []
        for code in hook.data:
            if code not in CATALOGUE:
                continue
            name, group, _ = CATALOGUE[code]
            item: dict[str, Any] = {"code": code, "name": name, "group": group}
            value = body(code, car, r, self.v3.charge_port_open.get(vin, False))
            if not capable(car, code):
                item["status"] = {
                    "value": "ERROR",
                    "error": {"type": "COMPATIBILITY", "code": "VEHICLE_NOT_CAPABLE"},
                }
            elif value is None:
                item["status"] = {"value": "UNAVAILABLE"}
            else:
                item["body"] = value
                item["status"] = {"value": "SUCCESS"}
            item["meta"] = {"oemUpdatedAt": round(r.time * 1000), "retrievedAt": now_ms}
            out.append(item)
        return out

    def _state_envelope(
        self, hook: Webhook, sub: Subscription, triggers: list[str]
    ) -> dict[str, Any]:
        car = self.v3.cloud.cars[sub.vin]
        vid = self.v3.vehicle_id(hook.application_id, sub.vin)
        signals = self._signals(hook, sub.vin)
        data: dict[str, Any] = {
            "user": {"id": sub.user_id},
            "vehicle": {"id": vid, "make": car.make, "model": car.model, "year": car.year},
            "signals": signals,
        }
        env: dict[str, Any] = {
            "eventId": str(uuid.uuid4()),
            "eventType": "VEHICLE_STATE",
            "vehicleId": vid,
            "data": data,
            "meta": self._meta(hook, signalCount=len(signals), mode="LIVE"),
        }
        if self.v3.knobs.trigger_shape == "observed":  # top-level, typed [3P-LIVE fixtures]
            env["triggers"] = [
                {"type": "FIRST_DELIVERY"}
                if t == "FIRST_DELIVERY"
                else {
                    "type": "SIGNAL_UPDATED",
                    "signal": {"name": CATALOGUE[t][0], "code": t, "group": CATALOGUE[t][1]},
                }
                for t in triggers
            ]
        else:  # data.triggers [{code, name, group}] / [{code: FIRST_DELIVERY}] [DOC vehicle-state]
            data["triggers"] = [
                {"code": t}
                if t == "FIRST_DELIVERY"
                else {"code": t, "name": CATALOGUE[t][0], "group": CATALOGUE[t][1]}
                for t in triggers
            ]
        return env

    # --- events -----------------------------------------------------------------------------------
    def _trigger_bodies(self, hook: Webhook, vin: str) -> dict[str, Any]:
        car = self.v3.cloud.cars[vin]
        r = car.read()
        port = self.v3.charge_port_open.get(vin, False)
        return {c: body(c, car, r, port) for c in hook.triggers if c in CATALOGUE}

    def _subscribed(self, sub: Subscription) -> None:
        hook = self.v3.webhooks[sub.webhook_id]
        if not hook.is_enabled or not hook.callback_uri:
            return
        for gone in [k for k in self._last if k not in self.v3.subscriptions]:
            del self._last[gone]  # deleted subscriptions leave no state behind
        self._last[sub.id] = self._trigger_bodies(hook, sub.vin)
        self._spawn(self._deliver(hook, self._state_envelope(hook, sub, ["FIRST_DELIVERY"])))

    def _car_changed(self, vin: str) -> None:
        for sub in list(self.v3.subscriptions.values()):
            hook = self.v3.webhooks.get(sub.webhook_id)
            if sub.vin != vin or hook is None or not hook.is_enabled or not hook.callback_uri:
                continue
            now = self._trigger_bodies(hook, vin)
            before = self._last.get(sub.id, {})
            changed = [c for c in now if now[c] != before.get(c)]
            self._last[sub.id] = now
            if changed:
                self._spawn(self._deliver(hook, self._state_envelope(hook, sub, changed)))

    def vehicle_error(
        self,
        vin: str,
        type_: str,
        code: str | None,
        *,
        state: str = "ERROR",
        signals: tuple[str, ...] = (),
    ) -> None:
        """Knob: Smartcar cannot read ``vin`` (ERROR) or it recovered (RESOLVED) [DOC §4.5]."""
        car = self.v3.cloud.cars[vin]
        for sub in list(self.v3.subscriptions.values()):
            hook = self.v3.webhooks.get(sub.webhook_id)
            if sub.vin != vin or hook is None or not hook.is_enabled:
                continue
            err: dict[str, Any] = {"type": type_, "code": code, "state": state}
            if state == "ERROR":
                slug = type_.lower().replace("_", "-")
                anchor = (code or "null").lower().replace("_", "-")
                err.update(
                    description=f"{type_}:{code}",
                    suggestedUserMessage="Your car is unable to report data right now.",
                    docURL=f"https://smartcar.com/docs/errors/api-errors/{slug}-errors#{anchor}",
                    resolution={"type": "RETRY_LATER"},
                )
            if signals:
                err["signals"] = [
                    {"code": c, "name": CATALOGUE[c][0], "group": CATALOGUE[c][1]}
                    for c in signals
                    if c in CATALOGUE
                ]
            vid = self.v3.vehicle_id(hook.application_id, vin)
            env = {
                "eventId": str(uuid.uuid4()),
                "eventType": "VEHICLE_ERROR",
                "vehicleId": vid,
                "data": {
                    "user": {"id": sub.user_id},
                    "vehicle": {"id": vid, "make": car.make, "model": car.model, "year": car.year},
                    "errors": [err],
                },
                "meta": self._meta(hook, mode="LIVE"),
            }
            # to the error callback if one is set, else the data callback [DOC webhooks/responses]
            self._spawn(self._deliver(hook, env, hook.error_callback_uri))

    # --- VERIFY and delivery ----------------------------------------------------------------------
    async def verify(self, hook: Webhook) -> bool:
        """VERIFY: 200 with {"challenge": HMAC(AMT, challenge)} activates the webhook [DOC]."""
        app = self.v3.app_by_id(hook.application_id)
        if app is None or not hook.callback_uri:
            return False
        self.verify_count[hook.id] = self.verify_count.get(hook.id, 0) + 1
        challenge = str(uuid.uuid4())
        event_id = str(uuid.uuid4())
        env: dict[str, Any] = {
            "eventId": event_id,
            "eventType": "VERIFY",
            "data": {"challenge": challenge},
            "meta": self._meta(
                hook, deliveryId=str(uuid.uuid4()), deliveredAt=iso(self.v3.cloud.clock.now())
            ),
        }
        raw = json.dumps(env).encode()
        headers = {"Content-Type": "application/json"}
        if self.v3.knobs.sign_verify:
            headers["SC-Signature"] = sign(app.management_token, raw)
        ok, status = False, None
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
            async with self._http().post(hook.callback_uri, data=raw, headers=headers) as resp:
                status = resp.status
                if resp.status == 200:
                    reply = await resp.json(content_type=None)
                    expected = sign(app.management_token, challenge.encode())
                    ok = isinstance(reply, dict) and hmac.compare_digest(
                        str(reply.get("challenge", "")), expected
                    )
        self.sent.append(Sent(event_id, "VERIFY", hook.callback_uri, status))
        hook.verified = ok
        return ok

    async def _deliver(self, hook: Webhook, env: dict[str, Any], url: str | None = None) -> None:
        async with self._verify_lock:  # VERIFY once per webhook, before any event [DOC]
            if not hook.verified and not await self.verify(hook):
                log.info("v3 webhook not verified; event dropped", extra={"webhook": hook.id})
                return
        app = self.v3.app_by_id(hook.application_id)
        target = url or hook.callback_uri
        if app is None or not target:
            return
        for i, delay in enumerate((0.0, *self.retry_delays)):
            if delay:
                await self.v3.cloud.clock.sleep(delay)
            # same eventId, new deliveryId and time per attempt [DOC delivery-behavior]
            meta = {
                **env["meta"],
                "deliveryId": str(uuid.uuid4()),
                "deliveredAt": round(self.v3.cloud.clock.now() * 1000),
            }
            raw = json.dumps({**env, "meta": meta}, indent=1).encode()  # signed as sent
            headers = {
                "Content-Type": "application/json",
                "SC-Signature": sign(app.management_token, raw),
            }
            status = None
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self._http().post(target, data=raw, headers=headers) as resp:
                    status = resp.status
                    await resp.read()
            self.sent.append(Sent(env["eventId"], env["eventType"], target, status))
            if status is not None and 200 <= status < 300:
                return
            if i == len(self.retry_delays):
                log.warning("v3 webhook delivery gave up", extra={"event": env["eventId"]})


# --- management API ------------------------------------------------------------------------------


def webhook_resource(hook: Webhook) -> dict[str, Any]:
    """Attributes per the live-checked reading of the spec [3P-LIVE §2.6]."""
    return {
        "id": hook.id,
        "type": "webhook",
        "attributes": {
            "name": hook.name,
            "callbackUri": hook.callback_uri,
            "errorCallbackUri": hook.error_callback_uri,
            "isEnabled": hook.is_enabled,
            "triggers": list(hook.triggers),
            "data": list(hook.data),
            "autoSubscribe": hook.auto_subscribe,
        },
        "links": {"self": f"/webhooks/{hook.id}"},
    }


def subscription_resource(v3: V3Cloud, sub: Subscription) -> dict[str, Any]:
    """[DOC get-subscription], with the relationship types the example mislabels fixed [INF]."""
    hook = v3.webhooks[sub.webhook_id]
    car = v3.cloud.cars[sub.vin]
    vid = v3.vehicle_id(hook.application_id, sub.vin)
    return {
        "type": "subscription",
        "id": sub.id,
        "attributes": {
            "vehicle": {
                "make": car.make,
                "model": car.model,
                "year": car.year,
                "mode": "live",
                "powertrainType": car.powertrain,
            }
        },
        "meta": {"createdAt": iso(sub.created_at), "updatedAt": iso(sub.created_at)},
        "relationships": {
            "webhook": {"data": {"type": "webhook", "id": hook.id}},
            "user": {"data": {"type": "user", "id": sub.user_id}},
            "vehicle": {"data": {"type": "vehicle", "id": vid}},
        },
        "links": {"self": f"/subscriptions/{sub.id}"},
    }


def _ok(status: int, doc: Any) -> web.Response:
    return web.Response(status=status, text=json.dumps(doc), content_type="application/json")


def _app_hooks(v3: V3Cloud, application_id: str) -> list[Webhook]:
    return [h for h in v3.webhooks.values() if h.application_id == application_id]


async def list_webhooks(request: web.Request) -> web.StreamResponse:
    ctx = authenticate(request)
    if isinstance(ctx, web.Response):
        return ctx
    hooks = _app_hooks(ctx.v3, ctx.application_id)
    return _ok(
        200, {"data": [webhook_resource(h) for h in hooks], "meta": {"totalCount": len(hooks)}}
    )


async def get_webhook(request: web.Request) -> web.StreamResponse:
    ctx = authenticate(request)
    if isinstance(ctx, web.Response):
        return ctx
    hook = ctx.v3.webhooks.get(request.match_info["wid"])
    if hook is None or hook.application_id != ctx.application_id:
        return error_response(ApiFault("RESOURCE_NOT_FOUND", "PATH"), ctx.request_id)
    return _ok(200, {"data": webhook_resource(hook)})


async def create_subscription(request: web.Request) -> web.StreamResponse:
    """POST /subscriptions -> 202 "subscription creation in progress", 409 when it exists [DOC
    create-subscription]; body shape [3P-LIVE][3P-CODE]."""
    ctx = authenticate(request)
    if isinstance(ctx, web.Response):
        return ctx
    try:
        doc = json.loads(await request.read() or b"null")
    except (ValueError, UnicodeDecodeError):
        doc = None
    attrs = doc.get("data", {}).get("attributes") if isinstance(doc, dict) else None
    if not isinstance(attrs, dict):
        attrs = {}
    webhook_id = str(request.match_info.get("wid") or attrs.get("webhookId") or "")
    user_id, vehicle_id = str(attrs.get("userId") or ""), str(attrs.get("vehicleId") or "")
    if not (webhook_id and user_id and vehicle_id):
        return error_response(
            ApiFault(
                "VALIDATION",
                "INVALID_INPUT_FORMAT",
                detail=({"field": "data.attributes", "message": "webhookId, userId, vehicleId"},),
            ),
            ctx.request_id,
        )
    v3 = ctx.v3
    hook = v3.webhooks.get(webhook_id)
    vin = v3.vin_of(ctx.application_id, vehicle_id)
    if hook is None or hook.application_id != ctx.application_id or vin is None:
        return error_response(ApiFault("RESOURCE_NOT_FOUND", "PATH"), ctx.request_id)
    if v3.connection(ctx.application_id, user_id, vin) is None:
        return error_response(ApiFault("AUTHENTICATION", "ACCESS_DENIED"), ctx.request_id)
    if v3.subscribe(webhook_id, user_id, vin) is None:
        conflict = {"status": "409", "title": "Conflict", "detail": "subscription already exists"}
        return _ok(409, {"errors": [conflict]})
    return _ok(202, {"meta": {"message": "subscription creation in progress"}})


async def list_subscriptions(request: web.Request) -> web.StreamResponse:
    ctx = authenticate(request)
    if isinstance(ctx, web.Response):
        return ctx
    q = request.query
    v3 = ctx.v3
    subs = [
        s
        for s in v3.subscriptions.values()
        if v3.webhooks[s.webhook_id].application_id == ctx.application_id
    ]
    wid = request.match_info.get("wid") or q.get("filter[webhookId]")
    if wid:
        subs = [s for s in subs if s.webhook_id == wid]
    if q.get("filter[userId]"):
        subs = [s for s in subs if s.user_id == q["filter[userId]"]]
    if q.get("filter[vehicleId]"):
        subs = [
            s for s in subs if v3.vehicle_id(ctx.application_id, s.vin) == q["filter[vehicleId]"]
        ]
    data = [subscription_resource(v3, s) for s in sorted(subs, key=lambda s: s.created_at)]
    return _ok(200, {"data": data, "meta": {"totalCount": len(data)}})


def _own_sub(request: web.Request, v3: V3Cloud, application_id: str) -> Subscription | None:
    sub = v3.subscriptions.get(request.match_info["sid"])
    if sub is None or v3.webhooks[sub.webhook_id].application_id != application_id:
        return None
    return sub


async def get_subscription(request: web.Request) -> web.StreamResponse:
    ctx = authenticate(request)
    if isinstance(ctx, web.Response):
        return ctx
    sub = _own_sub(request, ctx.v3, ctx.application_id)
    if sub is None:
        return error_response(ApiFault("RESOURCE_NOT_FOUND", "PATH"), ctx.request_id)
    return _ok(200, {"data": subscription_resource(ctx.v3, sub)})


async def delete_subscription(request: web.Request) -> web.StreamResponse:
    ctx = authenticate(request)
    if isinstance(ctx, web.Response):
        return ctx
    sub = _own_sub(request, ctx.v3, ctx.application_id)
    if sub is None:
        return error_response(ApiFault("RESOURCE_NOT_FOUND", "PATH"), ctx.request_id)
    del ctx.v3.subscriptions[sub.id]
    return web.Response(status=204)


def routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v3/webhooks", list_webhooks)
    r.add_get("/v3/webhooks/{wid}", get_webhook)
    r.add_post("/v3/subscriptions", create_subscription)
    r.add_get("/v3/subscriptions", list_subscriptions)
    r.add_get("/v3/subscriptions/{sid}", get_subscription)
    r.add_delete("/v3/subscriptions/{sid}", delete_subscription)
    # the blog's nested form, as aliases [BLOG, §2.6]
    r.add_post("/v3/webhooks/{wid}/subscriptions", create_subscription)
    r.add_get("/v3/webhooks/{wid}/subscriptions", list_subscriptions)
