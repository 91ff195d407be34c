"""The v2 vehicle API: reads, ``/batch``, commands, ``SC-*`` headers, units and every limit.

Order of checks per request, as a client experiences them: bearer token (401), the app-wide
token bucket (429 ``SMARTCAR_API``, no Retry-After), vehicle id and grant (400/403), the per-vehicle
throttle (429 ``VEHICLE`` with Retry-After), the monthly plan (430, each batch path counts), then
the scripted or simulated-error-VIN fault, the permission and capability of each path, and the data.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web

from exporter.simulator.smartcar import catalog
from exporter.simulator.smartcar.car import Car, CarReading, CarRefused
from exporter.simulator.smartcar.connect import CLOUD
from exporter.simulator.smartcar.errors import ApiFault, error_body, error_response, new_request_id
from exporter.simulator.smartcar.state import AccessToken, SmartcarCloud

log = logging.getLogger(__name__)

KM_PER_MILE: Final = 1.609344
KPA_PER_PSI: Final = 6.894757
L_PER_GAL: Final = 3.785411784
# Faults that answer for a whole request (outer status) rather than per batch item.
REQUEST_LEVEL: Final = frozenset({"AUTHENTICATION", "RATE_LIMIT", "BILLING", "SERVER"})
ACTION_OK: Final = {"status": "success", "message": "Successfully sent request to vehicle"}


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Ctx:
    """One authenticated vehicle request."""

    cloud: SmartcarCloud
    token: AccessToken
    vin: str
    car: Car
    vehicle_id: str
    units: str  # metric | imperial
    request_id: str
    token_value: str = ""


class Refused(Exception):
    def __init__(self, fault: ApiFault) -> None:
        super().__init__(fault.type)
        self.fault = fault


def _dist(m: float | None, units: str) -> float | None:
    if m is None:
        return None
    km = m / 1000.0
    return round(km / KM_PER_MILE if units == "imperial" else km, 2)


def _pressure(pa: float | None, units: str) -> float | None:
    if pa is None:
        return None
    kpa = pa / 1000.0
    return round(kpa / KPA_PER_PSI if units == "imperial" else kpa, 1)


def _status(open_: bool | None) -> str:
    return "UNKNOWN" if open_ is None else ("OPEN" if open_ else "CLOSED")


_SIDE: Final = {
    "front_left": "frontLeft",
    "front_right": "frontRight",
    "rear_left": "backLeft",
    "rear_right": "backRight",
}


def render(path: str, ctx: Ctx, r: CarReading) -> dict[str, Any]:
    """The 200 body of a GET path (units per ``ctx.units``)."""
    car, u = ctx.car, ctx.units
    if path == "/":
        return {"id": ctx.vehicle_id, "make": car.make, "model": car.model, "year": car.year}
    if path == "/vin":
        return {"vin": car.vin}
    if path == "/battery":
        return {"percentRemaining": round(r.soc or 0.0, 4), "range": _dist(r.range_m, u)}
    if path == "/battery/capacity":
        return {"capacity": r.capacity_kwh}
    if path == "/battery/nominal_capacity":
        cap = r.capacity_kwh
        return {
            "availableCapacities": [{"capacity": cap, "description": None}],
            "capacity": {"nominal": cap, "source": "SMARTCAR"},
            "url": None,
        }
    if path == "/charge":
        return {"isPluggedIn": r.plugged, "state": r.charge_state}
    if path == "/charge/limit":
        return {"limit": round(r.charge_limit, 2)}
    if path == "/fuel":
        amount = r.fuel_litres
        if amount is not None and u == "imperial":
            amount = round(amount / L_PER_GAL, 2)
        return {
            "range": _dist(r.fuel_range_m, u),
            "percentRemaining": r.fuel_ratio,
            "amountRemaining": amount,
        }
    if path == "/tires/pressure":
        return {_SIDE[w]: _pressure(r.tyre_pressure_pa.get(w), u) for w in _SIDE}
    if path == "/engine/oil":
        return {"lifeRemaining": r.oil_life}
    if path == "/odometer":
        return {"distance": _dist(r.odometer_m, u)}
    if path == "/location":
        return {"latitude": r.latitude, "longitude": r.longitude}
    if path == "/security":
        lock = "LOCKED" if r.locked else None
        doors = [
            {"type": side, "status": "OPEN" if r.doors_open.get(w) else (lock or "CLOSED")}
            for w, side in _SIDE.items()
        ]
        windows = [
            {"type": side, "status": _status(r.windows_open.get(w))} for w, side in _SIDE.items()
        ]
        return {
            "isLocked": r.locked,
            "doors": doors,
            "windows": windows,
            "sunroof": []
            if r.sunroof_open is None
            else [{"type": "sunroof", "status": _status(r.sunroof_open)}],
            "storage": [
                {"type": "rear", "status": _status(r.trunk_open)},
                {"type": "front", "status": _status(r.hood_open)},
            ],
            "chargingPort": [{"type": "chargingPort", "status": _status(r.plugged)}]
            if car.powertrain != "ICE"
            else [],
        }
    raise Refused(ApiFault("RESOURCE_NOT_FOUND", "PATH"))


def _data_headers(ctx: Ctx, r: CarReading) -> dict[str, str]:
    return {
        "sc-data-age": iso(r.time),
        "sc-fetched-at": iso(ctx.cloud.clock.now()),
        "sc-unit-system": ctx.units,
    }


def _reauth_url(ctx: Ctx, request: web.Request) -> str:
    connect = request.app[SIM_URLS].get("connect", "https://connect.smartcar.com")
    return (
        f"{connect}/oauth/reauthenticate?response_type=vehicle_id"
        f"&client_id={ctx.token.client_id}&vehicle_id={ctx.vehicle_id}"
    )


# The simulator's own base URLs (filled in once its ports are bound), for links it hands out.
SIM_URLS: Final = web.AppKey("smartcar_sim_urls", dict[str, str])


def _fault_with_url(fault: ApiFault, ctx: Ctx, request: web.Request) -> ApiFault:
    if fault.type == "CONNECTED_SERVICES_ACCOUNT" and fault.code == "AUTHENTICATION_FAILED":
        return ApiFault(fault.type, fault.code, resolution_url=_reauth_url(ctx, request))
    return fault


def read_item(
    ctx: Ctx, request: web.Request, path: str, fault: ApiFault | None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """One GET path: (status, body, headers); never raises. ``fault`` is the request's scripted
    fault, applied to every non-static path."""
    need = catalog.READ_PATHS.get(path)
    try:
        if need is None:
            raise Refused(ApiFault("RESOURCE_NOT_FOUND", "PATH"))
        if need not in ctx.token.scopes:
            raise Refused(ApiFault("PERMISSION"))
        if fault is not None and path not in catalog.STATIC_PATHS:
            raise Refused(fault)
        vin_fault = ctx.cloud.vin_fault(ctx.vin, path)
        if vin_fault is not None:
            raise Refused(_fault_with_url(vin_fault, ctx, request))
        if need in catalog.NOT_CAPABLE.get(ctx.car.powertrain, frozenset()):
            raise Refused(ApiFault("COMPATIBILITY", "VEHICLE_NOT_CAPABLE"))
        r = ctx.car.read()
        return 200, render(path, ctx, r), _data_headers(ctx, r)
    except Refused as exc:
        body = error_body(exc.fault, ctx.request_id)
        return body["statusCode"], body, {}


def _json(
    status: int, body: Any, ctx: Ctx, headers: Mapping[str, str] | None = None
) -> web.Response:
    h = {"SC-Request-Id": ctx.request_id, **(headers or {})}
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", headers=h
    )


class VehicleGate:
    """Authentication, limits and billing for one vehicle request; returns Ctx or a Response."""

    @staticmethod
    def open(request: web.Request, cost: int) -> Ctx | web.Response:
        cloud = request.app[CLOUD]
        rid = new_request_id()
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        token = cloud.bearer(value.strip()) if scheme.lower() == "bearer" else None
        if token is None:
            return error_response(ApiFault("AUTHENTICATION"), rid)
        if cloud.app_bucket(token.client_id).take(cloud.clock.now()) > 0:
            return error_response(ApiFault("RATE_LIMIT", "SMARTCAR_API"), rid)
        vehicle_id = request.match_info.get("vid", "")
        vin = cloud.vin_of(token.client_id, vehicle_id)
        if vin is None:
            return error_response(ApiFault("VALIDATION", "PARAMETER"), rid)
        if vin not in token.vins or (token.client_id, vin) in cloud.revoked:
            return error_response(ApiFault("PERMISSION"), rid)
        wait = cloud.vehicle_bucket(token.client_id, vin).take(cloud.clock.now())
        if wait > 0:
            return error_response(ApiFault("RATE_LIMIT", "VEHICLE", retry_after=wait), rid)
        if not cloud.billable(token.client_id, vin, cost):
            return error_response(ApiFault("BILLING", "VEHICLE_REQUEST_LIMIT"), rid)
        units = request.headers.get("SC-Unit-System", "metric").lower()
        if units not in ("metric", "imperial"):
            return error_response(
                ApiFault(
                    "VALIDATION",
                    "PARAMETER",
                    detail=(
                        {"field": ["sc-unit-system"], "message": "must be metric or imperial"},
                    ),
                ),
                rid,
            )
        return Ctx(cloud, token, vin, cloud.cars[vin], vehicle_id, units, rid, value.strip())


@dataclass
class Shared:
    """A fault from the runner's shared plan, translated to Smartcar's wire."""

    fault: ApiFault | None = None
    hang: float = 0.0
    malformed: bool = False
    garble: Any = None  # the runner's Fault, for Faults.garble


def _shared(ctx: Ctx, endpoint: str) -> Shared:
    faults = ctx.cloud.shared_faults
    if faults is None:
        return Shared()
    f = faults.pick("smartcar", endpoint, ctx.vin)
    if f is None:
        return Shared()
    kind = str(f.kind)
    if kind in ("token_expired", "main_token_expired"):
        ctx.cloud.access.pop(ctx.token_value, None)  # the token really dies
        return Shared(ApiFault("AUTHENTICATION"))
    if kind == "data_unavailable":
        return Shared(ApiFault("VEHICLE_STATE", "UNREACHABLE"))
    if kind == "rate_limited":
        return Shared(ApiFault("RATE_LIMIT", "VEHICLE", retry_after=f.retry_after))
    if kind == "forbidden":
        return Shared(ApiFault("RATE_LIMIT", "SMARTCAR_API"))
    if kind == "server_error":
        return Shared(ApiFault("SERVER", "INTERNAL"))
    if kind == "timeout":
        return Shared(hang=faults.hang_for(f))
    if kind == "malformed_json":
        return Shared(malformed=True)
    if kind == "garbage_fields":
        return Shared(garble=f)
    return Shared()


async def _apply_shared(ctx: Ctx, shared: Shared, status: int, body: Any) -> web.Response | None:
    """A response replacing the normal one, or None (``body`` may have been garbled in place)."""
    if shared.hang:
        await asyncio.sleep(shared.hang)  # real seconds: the client's own timeout must fire
    if shared.malformed:
        text = json.dumps(body)
        return web.Response(
            status=status,
            text=text[: max(1, len(text) // 2)],
            content_type="application/json",
            headers={"SC-Request-Id": ctx.request_id},
        )
    if shared.garble is not None and ctx.cloud.shared_faults is not None:
        ctx.cloud.shared_faults.garble(body, shared.garble)
    return None


def _request_fault(ctx: Ctx, request: web.Request) -> ApiFault | None:
    """A scripted fault for this request (consumed once per HTTP request, batch or not)."""
    f = ctx.cloud.scripted_fault(ctx.vin)
    return _fault_with_url(f, ctx, request) if f else None


async def read(request: web.Request) -> web.StreamResponse:
    ctx = VehicleGate.open(request, 1)
    if isinstance(ctx, web.Response):
        return ctx
    path = "/" + request.match_info.get("path", "")
    path = path.rstrip("/") or "/"
    shared = _shared(ctx, path.strip("/").replace("/", "_") or "attributes")
    fault = _request_fault(ctx, request) or shared.fault
    if fault is not None and fault.type in REQUEST_LEVEL:
        return error_response(fault, ctx.request_id)
    status, body, headers = read_item(ctx, request, path, fault)
    return await _apply_shared(ctx, shared, status, body) or _json(status, body, ctx, headers)


async def batch(request: web.Request) -> web.StreamResponse:
    try:
        payload = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        payload = None
    reqs = payload.get("requests") if isinstance(payload, dict) else None
    if (
        not isinstance(reqs, list)
        or not reqs
        or not all(isinstance(r, dict) and isinstance(r.get("path"), str) for r in reqs)
    ):
        return error_response(
            ApiFault(
                "VALIDATION",
                "PARAMETER",
                detail=({"field": ["requests"], "message": '"requests" is required'},),
            )
        )
    ctx = VehicleGate.open(request, len(reqs))
    if isinstance(ctx, web.Response):
        return ctx
    shared = _shared(ctx, "batch")
    fault = _request_fault(ctx, request) or shared.fault
    if fault is not None and fault.type in REQUEST_LEVEL:
        return error_response(fault, ctx.request_id)
    responses = []
    for item in reqs:
        path = item["path"].rstrip("/") or "/"
        status, body, headers = read_item(ctx, request, path, fault)
        entry: dict[str, Any] = {"path": item["path"], "code": status, "body": body}
        if headers:
            entry["headers"] = headers
        responses.append(entry)
    out = {"responses": responses}
    if shared.garble is not None:
        for entry in responses:  # garbage in the data, never in the envelope
            if entry["code"] == 200:
                await _apply_shared(ctx, shared, 200, entry["body"])
        shared.garble = None
    return await _apply_shared(ctx, shared, 200, out) or _json(200, out, ctx)


async def _action_body(request: web.Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _invalid(field: str, message: str) -> ApiFault:
    return ApiFault("VALIDATION", "PARAMETER", detail=({"field": [field], "message": message},))


async def command(request: web.Request) -> web.StreamResponse:
    """POST /security, /charge, /charge/limit: check, then act on the shared vehicle model."""
    ctx = VehicleGate.open(request, 1)
    if isinstance(ctx, web.Response):
        return ctx
    path = "/" + request.match_info.get("path", "")
    need = {"/security": "control_security", "/charge": "control_charge"}.get(
        path, "control_charge" if path == "/charge/limit" else None
    )
    if need is None:
        return error_response(ApiFault("RESOURCE_NOT_FOUND", "PATH"), ctx.request_id)
    if need not in ctx.token.scopes:
        return error_response(ApiFault("PERMISSION"), ctx.request_id)
    fault = _request_fault(ctx, request) or ctx.cloud.vin_fault(ctx.vin, path)
    if fault is not None:
        return error_response(_fault_with_url(fault, ctx, request), ctx.request_id)
    if need in catalog.NOT_CAPABLE.get(ctx.car.powertrain, frozenset()):
        return error_response(ApiFault("COMPATIBILITY", "VEHICLE_NOT_CAPABLE"), ctx.request_id)
    body = await _action_body(request)
    if body is None:
        return error_response(_invalid("body", "a JSON object is required"), ctx.request_id)
    r = ctx.car.read()
    try:
        if path == "/security":
            action = body.get("action")
            if action not in ("LOCK", "UNLOCK"):
                return error_response(_invalid("action", "must be LOCK or UNLOCK"), ctx.request_id)
            ctx.car.command("lock" if action == "LOCK" else "unlock")
        elif path == "/charge":
            action = body.get("action")
            if action not in ("START", "STOP"):
                return error_response(_invalid("action", "must be START or STOP"), ctx.request_id)
            refusal = _charge_refusal(action, r)
            if refusal is not None:
                return error_response(ApiFault("VEHICLE_STATE", refusal), ctx.request_id)
            ctx.car.command("charge_start" if action == "START" else "charge_stop")
        else:
            try:
                limit = float(body["limit"])  # the node SDK sends it as a string
            except (KeyError, TypeError, ValueError):
                limit = -1.0
            if not 0.5 <= limit <= 1.0:
                return error_response(
                    _invalid("limit", "must be between 0.5 and 1"), ctx.request_id
                )
            ctx.car.command("charge_limit", limit)
            return _json(
                200, {"status": "success", "message": "Charge limit set successfully"}, ctx
            )
    except CarRefused as exc:
        return error_response(ApiFault("VEHICLE_STATE", exc.code), ctx.request_id)
    return _json(200, ACTION_OK, ctx)


def _charge_refusal(action: str, r: CarReading) -> str | None:
    if action == "START":
        if not r.plugged:
            return "CHARGING_PLUG_NOT_CONNECTED"
        if r.charging:
            return "CHARGING_IN_PROGRESS"
        if r.soc is not None and r.soc >= r.charge_limit - 0.005:
            return "FULLY_CHARGED"
        return None
    if not r.charging:
        return "NOT_CHARGING"
    return None


async def permissions(request: web.Request) -> web.StreamResponse:
    ctx = VehicleGate.open(request, 1)
    if isinstance(ctx, web.Response):
        return ctx
    perms = sorted(ctx.token.scopes)
    limit = _int(request.query.get("limit"), 25)
    offset = _int(request.query.get("offset"), 0)
    page = perms[offset : offset + limit]
    return _json(200, {"permissions": page, "paging": {"count": len(perms), "offset": offset}}, ctx)


def _int(raw: str | None, default: int) -> int:
    try:
        return max(0, int(raw)) if raw is not None else default
    except ValueError:
        return default


def _user_token(request: web.Request) -> AccessToken | web.Response:
    cloud = request.app[CLOUD]
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    token = cloud.bearer(value.strip()) if scheme.lower() == "bearer" else None
    if token is None:
        return error_response(ApiFault("AUTHENTICATION"))
    if cloud.app_bucket(token.client_id).take(cloud.clock.now()) > 0:
        return error_response(ApiFault("RATE_LIMIT", "SMARTCAR_API"))
    return token


async def user(request: web.Request) -> web.StreamResponse:
    token = _user_token(request)
    if isinstance(token, web.Response):
        return token
    return web.json_response({"id": token.user_id}, headers={"SC-Request-Id": new_request_id()})


async def vehicles(request: web.Request) -> web.StreamResponse:
    cloud = request.app[CLOUD]
    token = _user_token(request)
    if isinstance(token, web.Response):
        return token
    ids = [
        cloud.vehicle_id(token.client_id, v)
        for v in token.vins
        if (token.client_id, v) not in cloud.revoked
    ]
    limit = min(_int(request.query.get("limit"), 10), 50) or 10
    offset = _int(request.query.get("offset"), 0)
    return web.json_response(
        {"vehicles": ids[offset : offset + limit], "paging": {"count": len(ids), "offset": offset}},
        headers={"SC-Request-Id": new_request_id()},
    )


async def disconnect(request: web.Request) -> web.StreamResponse:
    ctx = VehicleGate.open(request, 1)
    if isinstance(ctx, web.Response):
        return ctx
    ctx.cloud.revoked.add((ctx.token.client_id, ctx.vin))
    ctx.cloud.subscriptions.discard((ctx.token.client_id, ctx.vin))
    return _json(200, {"status": "success"}, ctx)


async def subscribe(request: web.Request) -> web.StreamResponse:
    ctx = VehicleGate.open(request, 1)
    if isinstance(ctx, web.Response):
        return ctx
    app = ctx.cloud.apps[ctx.token.client_id]
    if request.match_info["webhook"] != app.webhook_id:
        return error_response(ApiFault("RESOURCE_NOT_FOUND", "PATH"), ctx.request_id)
    ctx.cloud.subscriptions.add((app.client_id, ctx.vin))
    for cb in list(ctx.cloud.listeners):
        cb(ctx.vin)  # first delivery
    return _json(200, {"webhookId": app.webhook_id, "vehicleId": ctx.vehicle_id}, ctx)


async def unsubscribe(request: web.Request) -> web.StreamResponse:
    """DELETE /vehicles/{id}/webhooks/{webhookId}: authorised with the management token."""
    cloud = request.app[CLOUD]
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    app = next(
        (a for a in cloud.apps.values() if a.management_token == value.strip()),
        None,
    )
    if scheme.lower() != "bearer" or app is None:
        return error_response(ApiFault("AUTHENTICATION"))
    vin = cloud.vin_of(app.client_id, request.match_info["vid"])
    if vin is None:
        return error_response(ApiFault("VALIDATION", "PARAMETER"))
    cloud.subscriptions.discard((app.client_id, vin))
    return web.json_response({"status": "success"}, headers={"SC-Request-Id": new_request_id()})


async def not_found(request: web.Request) -> web.StreamResponse:
    return error_response(ApiFault("RESOURCE_NOT_FOUND", "PATH"))


def routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v2.0/user", user)
    r.add_get("/v2.0/vehicles", vehicles)
    r.add_get("/v2.0/vehicles/{vid}/permissions", permissions)
    r.add_post("/v2.0/vehicles/{vid}/batch", batch)
    r.add_delete("/v2.0/vehicles/{vid}/application", disconnect)
    r.add_post("/v2.0/vehicles/{vid}/webhooks/{webhook}", subscribe)
    r.add_delete("/v2.0/vehicles/{vid}/webhooks/{webhook}", unsubscribe)
    r.add_post("/v2.0/vehicles/{vid}/{path:(security|charge|charge/limit)}", command)
    r.add_get("/v2.0/vehicles/{vid}", read)
    r.add_get("/v2.0/vehicles/{vid}/{path:.*}", read)
    r.add_route("*", "/{tail:.*}", not_found)
