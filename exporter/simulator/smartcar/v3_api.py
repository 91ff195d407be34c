"""The v3 vehicle API under ``/v3``: connections, vehicles, signals and path-based commands.

Order of checks, as a client meets them: the bearer (401 UNAUTHORIZED), the app-wide bucket (429
SMARTCAR_API), the vehicle id (404), ``sc-user-id`` on signals and commands (400
VALIDATION/MISSING_PARAMETER without it [3P-LIVE §1.3], 403 ACCESS_DENIED when that user has no
connection to the car [DOC auth overview]), the per-vehicle throttle (429 VEHICLE + Retry-After),
the monthly plan (430 BILLING), then the data. Sources per behaviour are cited where it happens.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from exporter.simulator.smartcar import catalog
from exporter.simulator.smartcar.car import Car, CarReading, CarRefused
from exporter.simulator.smartcar.errors import ApiFault, new_request_id
from exporter.simulator.smartcar.v3_errors import error_body, error_response
from exporter.simulator.smartcar.v3_iam import V3
from exporter.simulator.smartcar.v3_signals import CATALOGUE, CHARGE_PORT_MAKES, body, capable
from exporter.simulator.smartcar.v3_state import Connection, V3Cloud, iso

# Faults that answer for the whole request; the others become per-signal ERROR statuses
# ("a failed signal does not fail the whole call" [3P-LIVE §3.2]).
REQUEST_LEVEL: Final = frozenset({"AUTHENTICATION", "RATE_LIMIT", "BILLING", "SERVER"})
STATIC_SIGNALS: Final = frozenset({"vehicleidentification-vin"})  # spared like v2's /vin
MAX_PAGE: Final = 100  # page[size] max [INF §2.3, the doctor script uses 100]


@dataclass
class Ctx:
    """One authenticated v3 request."""

    v3: V3Cloud
    application_id: str
    request_id: str
    token_value: str
    user_id: str | None = None
    legacy: bool = False
    legacy_vins: tuple[str, ...] = ()
    legacy_scopes: frozenset[str] = frozenset()


def _json(status: int, doc: Any, ctx: Ctx | None = None) -> web.Response:
    rid = ctx.request_id if ctx is not None else new_request_id()
    return web.Response(
        status=status,
        text=json.dumps(doc),
        content_type="application/json",
        headers={"SC-Request-Id": rid},  # [INF §2.4]
    )


def authenticate(request: web.Request) -> Ctx | web.Response:
    v3 = request.app[V3]
    rid = new_request_id()
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        return error_response(ApiFault("AUTHENTICATION", "UNAUTHORIZED"), rid)
    tok = v3.app_token(value)
    ctx: Ctx
    if tok is not None:
        ctx = Ctx(v3, tok.application_id, rid, value)
    else:
        legacy = v3.cloud.bearer(value) if v3.knobs.legacy_tokens else None
        if legacy is None:  # v3 accepts only app tokens [DOC m2m migration guide, §1.4]
            return error_response(ApiFault("AUTHENTICATION", "UNAUTHORIZED"), rid)
        ctx = Ctx(
            v3,
            legacy.client_id,
            rid,
            value,
            user_id=legacy.user_id,
            legacy=True,
            legacy_vins=legacy.vins,
            legacy_scopes=legacy.scopes,
        )
    if v3.cloud.app_bucket(ctx.application_id).take(v3.cloud.clock.now()) > 0:
        # app-wide bucket 120, +2/min [DOC api-limits, §5.2]; no Retry-After
        return error_response(ApiFault("RATE_LIMIT", "SMARTCAR_API"), rid)
    return ctx


@dataclass
class VehicleCtx:
    ctx: Ctx
    vin: str
    car: Car
    vehicle_id: str
    permissions: frozenset[str]


def open_vehicle(request: web.Request, ctx: Ctx, cost: int) -> VehicleCtx | web.Response:
    """The vehicle, the user's right to it, the throttle and the plan."""
    v3, rid = ctx.v3, ctx.request_id
    vehicle_id = request.match_info["vid"]
    vin = v3.vin_of(ctx.application_id, vehicle_id)
    if vin is None:
        return error_response(ApiFault("RESOURCE_NOT_FOUND", "PATH"), rid)
    perms: frozenset[str]
    if ctx.legacy:
        if vin not in ctx.legacy_vins or (ctx.application_id, vin) in v3.cloud.revoked:
            return error_response(ApiFault("AUTHENTICATION", "ACCESS_DENIED"), rid)
        perms = ctx.legacy_scopes
    else:
        user = request.headers.get("sc-user-id", "").strip()
        if not user:  # live: 400 VALIDATION / MISSING_PARAMETER "missing userId" [3P-LIVE §1.3]
            return error_response(ApiFault("VALIDATION", "MISSING_PARAMETER"), rid)
        conn = v3.connection(ctx.application_id, user, vin)
        if conn is None:  # the user does not own the car [DOC auth overview, §6 item 3]
            return error_response(ApiFault("AUTHENTICATION", "ACCESS_DENIED"), rid)
        ctx.user_id = user
        perms = frozenset(conn.permissions)
    now = v3.cloud.clock.now()
    wait = v3.cloud.vehicle_bucket(ctx.application_id, vin).take(now)
    if wait > 0:  # per vehicle: 429 VEHICLE + Retry-After seconds [DOC, §5.2]
        return error_response(ApiFault("RATE_LIMIT", "VEHICLE", retry_after=wait), rid)
    if not v3.cloud.billable(ctx.application_id, vin, cost):
        # the plan's monthly allowance: call 501 gets 430 [DOC][3P-LIVE §5.2]
        return error_response(ApiFault("BILLING", "VEHICLE_REQUEST_LIMIT"), rid)
    return VehicleCtx(ctx, vin, v3.cloud.cars[vin], vehicle_id, perms)


@dataclass
class Shared:
    """A fault from the runner's shared plan (soak tests), in v3 terms."""

    fault: ApiFault | None = None
    hang: float = 0.0
    malformed: bool = False
    garble: Any = None  # the runner's Fault, for Faults.garble


def _shared_fault(vc: VehicleCtx, endpoint: str) -> Shared:
    faults = vc.ctx.v3.cloud.shared_faults
    f = faults.pick("smartcar", endpoint, vc.vin) if faults is not None else None
    if f is None:
        return Shared()
    kind = str(f.kind)
    if kind in ("token_expired", "main_token_expired"):
        vc.ctx.v3.tokens.pop(vc.ctx.token_value, None)  # the token really dies
        return Shared(ApiFault("AUTHENTICATION", "UNAUTHORIZED"))
    if kind == "rate_limited":
        return Shared(ApiFault("RATE_LIMIT", "VEHICLE", retry_after=f.retry_after))
    if kind == "forbidden":
        return Shared(ApiFault("RATE_LIMIT", "SMARTCAR_API"))
    if kind == "server_error":
        return Shared(ApiFault("SERVER", "INTERNAL"))
    if kind == "data_unavailable":
        return Shared(ApiFault("VEHICLE_STATE", "UNREACHABLE"))
    if kind == "timeout":
        return Shared(hang=faults.hang_for(f))
    if kind == "malformed_json":
        return Shared(malformed=True)
    if kind == "garbage_fields":
        return Shared(garble=f)
    return Shared()


def _fault(vc: VehicleCtx, endpoint: str) -> tuple[ApiFault | None, Shared]:
    """A scripted fault, a simulated-error VIN's error (smartcar-api.md §5.5) or a shared one."""
    f = vc.ctx.v3.cloud.scripted_fault(vc.vin)
    if f is not None:
        return f, Shared()
    err = catalog.ERROR_VINS.get(vc.vin)
    if err is not None:
        return ApiFault(*err), Shared()
    shared = _shared_fault(vc, endpoint)
    return shared.fault, shared


async def _deliver(ctx: Ctx, shared: Shared, doc: Any) -> web.Response:
    """The 200 reply, or what a shared fault makes of it (a hang, a cut body, garbage values)."""
    if shared.hang:
        await asyncio.sleep(shared.hang)  # real seconds: the client's own timeout must fire
    if shared.malformed:
        text = json.dumps(doc)
        return web.Response(
            status=200,
            text=text[: max(1, len(text) // 2)],
            content_type="application/json",
            headers={"SC-Request-Id": ctx.request_id},
        )
    faults = ctx.v3.cloud.shared_faults
    if shared.garble is not None and faults is not None:
        for item in doc.get("data") if isinstance(doc.get("data"), list) else [doc.get("data")]:
            body = item.get("attributes", {}).get("body") if isinstance(item, dict) else None
            if isinstance(body, dict):  # garbage in values, never in the envelope
                faults.garble(body, shared.garble)
    return _json(200, doc, ctx)


def _stamp(v3: V3Cloud, t: float) -> int | str:
    """Epoch ms as the docs and SDK fixtures show; ISO strings behind a knob (2026 live REST)
    [§3.2, open question 5]."""
    return iso(t) if v3.knobs.iso_timestamps else round(t * 1000)


def _links(vc: VehicleCtx, code: str) -> dict[str, str]:
    base = f"/vehicles/{vc.vehicle_id}"
    return {"self": f"{base}/signals/{code}", "values": f"{base}/signals/{code}/values"}


def signal_resource(
    vc: VehicleCtx, code: str, r: CarReading, fault: ApiFault | None
) -> dict[str, Any]:
    """One signal resource [SDK-JAVA fixtures][DOC get-signal, §3.2]."""
    v3 = vc.ctx.v3
    name, group, permission = CATALOGUE[code]
    attrs: dict[str, Any] = {"code": code, "name": name, "group": group}
    err: dict[str, Any] | None = None
    value = None
    if permission not in vc.permissions:
        err = {"type": "PERMISSION", "code": None}  # scope not granted [3P-LIVE §3.2]
    elif not capable(vc.car, code):
        err = {"type": "COMPATIBILITY", "code": "VEHICLE_NOT_CAPABLE"}
    elif fault is not None and code not in STATIC_SIGNALS:
        err = {"type": fault.type, "code": fault.code}
    else:
        value = body(code, vc.car, r, v3.charge_port_open.get(vc.vin, False))
    if err is not None:
        item = error_body(ApiFault(err["type"], err["code"]), vc.ctx.request_id)["errors"][0]
        err["description"] = item["detail"]
        err["resolution"] = item["resolution"]
        attrs["status"] = {"value": "ERROR", "error": err}
    elif value is None:
        attrs["status"] = {"value": "UNAVAILABLE"}
    else:
        attrs["status"] = {"value": "SUCCESS"}
        attrs["body"] = value
    now = v3.cloud.clock.now()
    oem = 0.0 if code in STATIC_SIGNALS else r.time  # static items: oemUpdatedAt 0 [3P-LIVE §3.1]
    meta: dict[str, Any] = {"retrievedAt": _stamp(v3, now), "oemUpdatedAt": _stamp(v3, oem)}
    if v3.knobs.iso_timestamps:
        meta["ingestedAt"] = _stamp(v3, now)
    return {
        "id": code,
        "type": "signal",
        "attributes": attrs,
        "meta": meta,
        "links": _links(vc, code),
    }


def _included(vc: VehicleCtx) -> dict[str, Any]:
    car = vc.car
    return {
        "vehicle": {
            "id": vc.vehicle_id,
            "type": "vehicle",
            "attributes": {"make": car.make, "model": car.model, "year": car.year},
            "links": {"self": f"/vehicles/{vc.vehicle_id}"},
        }
    }


def _store_empty(vc: VehicleCtx) -> bool:
    v3 = vc.ctx.v3
    return v3.knobs.empty_until_subscribed and not v3.subscribed(vc.ctx.application_id, vc.vin)


async def signals(request: web.Request) -> web.StreamResponse:
    ctx = authenticate(request)
    if isinstance(ctx, web.Response):
        return ctx
    cost = len(CATALOGUE) if ctx.v3.knobs.signals_cost == "signal" else 1
    vc = open_vehicle(request, ctx, cost)
    if isinstance(vc, web.Response):
        return vc
    fault, shared = _fault(vc, "signals")
    if fault is not None and fault.type in REQUEST_LEVEL:
        return error_response(fault, ctx.request_id)
    data: list[dict[str, Any]] = []
    if not _store_empty(vc):  # empty store: 200 with data [] [3P-LIVE §2.4]
        r = vc.car.read()
        data = [signal_resource(vc, code, r, fault) for code in CATALOGUE]
    self_link = f"/vehicles/{vc.vehicle_id}/signals"
    doc = {
        "data": data,
        "meta": {"totalCount": len(data), "pageNumber": 1, "pageSize": len(data)},
        "links": {"self": self_link, "first": self_link, "previous": None, "next": None},
        "included": _included(vc),
    }
    return await _deliver(ctx, shared, doc)


async def one_signal(request: web.Request) -> web.StreamResponse:
    ctx = authenticate(request)
    if isinstance(ctx, web.Response):
        return ctx
    vc = open_vehicle(request, ctx, 1)
    if isinstance(vc, web.Response):
        return vc
    code = request.match_info["code"]
    if code not in CATALOGUE or _store_empty(vc):
        # unknown (or not domain-prefixed) code, or nothing ingested yet: 404 [3P-LIVE §2.4]
        return error_response(ApiFault("RESOURCE_NOT_FOUND", "SIGNAL_NOT_FOUND"), ctx.request_id)
    fault, shared = _fault(vc, "signals")
    if fault is not None and fault.type in REQUEST_LEVEL:
        return error_response(fault, ctx.request_id)
    doc = {
        "data": signal_resource(vc, code, vc.car.read(), fault),
        "included": _included(vc),
    }  # wrapped in data, as 2026 docs and live clients read it [§2.2]
    return await _deliver(ctx, shared, doc)


async def vehicle(request: web.Request) -> web.StreamResponse:
    """GET /vehicles/{id}: Authorization only, no sc-user-id [3P-LIVE reading the spec, §1.3]."""
    ctx = authenticate(request)
    if isinstance(ctx, web.Response):
        return ctx
    vid = request.match_info["vid"]
    vin = ctx.v3.vin_of(ctx.application_id, vid)
    known = vin is not None and (
        vin in ctx.legacy_vins
        if ctx.legacy
        else any(c.vin == vin for c in ctx.v3.connections_of(ctx.application_id))
    )
    if vin is None or not known:
        return error_response(ApiFault("RESOURCE_NOT_FOUND", "PATH"), ctx.request_id)
    car = ctx.v3.cloud.cars[vin]
    doc = {
        "data": {
            "id": vid,
            "type": "vehicle",
            "attributes": {
                "make": car.make,
                "model": car.model,
                "year": car.year,
                "powertrainType": car.powertrain,
                "mode": "simulated" if vin.startswith("0SC") else "live",
            },
            "links": {"self": f"/vehicles/{vid}"},
        }
    }  # [DOC get-vehicle, §2.4]
    return _json(200, doc, ctx)


# --- connections ----------------------------------------------------------------------------------


def connection_resource(v3: V3Cloud, conn: Connection) -> dict[str, Any]:
    """[DOC get-connection, §2.3]"""
    car = v3.cloud.cars[conn.vin]
    vid = v3.vehicle_id(conn.application_id, conn.vin)
    return {
        "id": conn.id,
        "type": "connection",
        "attributes": {
            "permissions": list(conn.permissions),
            "vehicle": {
                "make": car.make,
                "model": car.model,
                "year": car.year,
                "mode": conn.mode,
                "powertrainType": car.powertrain,
            },
            "user": {"id": conn.user_id, "externalId": conn.external_id},
        },
        "relationships": {
            "vehicle": {
                "data": {"id": vid, "type": "vehicle"},
                "links": {"related": f"/vehicles/{vid}"},
            },
            "user": {"data": {"id": conn.user_id, "type": "user"}},
        },
        "meta": {"createdAt": iso(conn.created_at), "updatedAt": iso(conn.created_at)},
        "links": {"self": f"/connections/{conn.id}"},
    }


def _page_param(raw: str | None, default: int, top: int | None = None) -> int | None:
    if raw is None:
        return default
    try:
        n = int(raw)
    except ValueError:
        return None
    if n < 1 or (top is not None and n > top):
        return None
    return n


def _invalid(field: str, message: str) -> ApiFault:
    return ApiFault(
        "VALIDATION", "INVALID_INPUT_FORMAT", detail=({"field": field, "message": message},)
    )


async def connections(request: web.Request) -> web.StreamResponse:
    """GET /connections: filters, paging, JSON:API envelope [DOC list-connections, §2.3]; not
    billed [3P-LIVE]."""
    ctx = authenticate(request)
    if isinstance(ctx, web.Response):
        return ctx
    if ctx.legacy:
        return error_response(ApiFault("AUTHENTICATION", "UNAUTHORIZED"), ctx.request_id)
    q = request.query
    number = _page_param(q.get("page[number]"), 1)
    size = _page_param(q.get("page[size]"), 10, MAX_PAGE)
    if number is None or size is None:
        return error_response(
            _invalid("page", "page[number] >= 1, 1 <= page[size] <= 100"), ctx.request_id
        )
    user = q.get("filter[userId]") or request.headers.get("sc-user-id") or None
    vehicle_id = q.get("filter[vehicleId]")
    # live or simulated, default live [3P-LIVE reading vehicle.yml, §2.3]
    mode = q.get("filter[vehicle.mode]", "live")
    if mode not in ("live", "simulated"):
        return error_response(_invalid("filter[vehicle.mode]", "live or simulated"), ctx.request_id)
    rows = ctx.v3.connections_of(ctx.application_id)
    if user:
        rows = [c for c in rows if c.user_id == user]
    if vehicle_id:
        rows = [c for c in rows if ctx.v3.vehicle_id(c.application_id, c.vin) == vehicle_id]
    rows = [c for c in rows if c.mode == mode]
    total = len(rows)
    last = max(1, -(-total // size))
    page = rows[(number - 1) * size : number * size]
    keep = {k: v for k, v in q.items() if not k.startswith("page[")}

    def link(n: int) -> str:
        return "/connections?" + urlencode({**keep, "page[number]": n, "page[size]": size})

    doc = {
        "data": [connection_resource(ctx.v3, c) for c in page],
        "meta": {
            "pageNumber": number,
            "pageSize": size,
            "totalCount": total,
            "orderBy": "createdAt",
            "orderDirection": "asc",
        },
        "links": {
            "self": link(number),
            "first": link(1),
            "prev": link(number - 1) if number > 1 else None,
            "next": link(number + 1) if number < last else None,
            "last": link(last),
        },
    }
    return _json(200, doc, ctx)


def _owned_connection(request: web.Request, ctx: Ctx) -> Connection | None:
    conn = ctx.v3.connections.get(request.match_info["cid"])
    return conn if conn is not None and conn.application_id == ctx.application_id else None


async def get_connection(request: web.Request) -> web.StreamResponse:
    ctx = authenticate(request)
    if isinstance(ctx, web.Response):
        return ctx
    conn = _owned_connection(request, ctx)
    if conn is None or ctx.legacy:
        return error_response(ApiFault("RESOURCE_NOT_FOUND", "PATH"), ctx.request_id)
    return _json(200, {"data": connection_resource(ctx.v3, conn)}, ctx)


async def delete_connection(request: web.Request) -> web.StreamResponse:
    """ "Remove Connection" [DOC intro list]; the body is not documented, 204 [INF §2.3]."""
    ctx = authenticate(request)
    if isinstance(ctx, web.Response):
        return ctx
    conn = _owned_connection(request, ctx)
    if conn is None or ctx.legacy:
        return error_response(ApiFault("RESOURCE_NOT_FOUND", "PATH"), ctx.request_id)
    ctx.v3.disconnect(conn.id)
    return web.Response(status=204, headers={"SC-Request-Id": ctx.request_id})


async def delete_user(request: web.Request) -> web.StreamResponse:
    """ "Remove User" and all their connections [DOC intro list]."""
    ctx = authenticate(request)
    if isinstance(ctx, web.Response):
        return ctx
    user = request.match_info["uid"]
    gone = [c for c in ctx.v3.connections_of(ctx.application_id) if c.user_id == user]
    if not gone or ctx.legacy:
        return error_response(ApiFault("RESOURCE_NOT_FOUND", "PATH"), ctx.request_id)
    for c in gone:
        ctx.v3.disconnect(c.id)
    return web.Response(status=204, headers={"SC-Request-Id": ctx.request_id})


# --- commands -------------------------------------------------------------------------------------

# path -> (permission, commandType) [DOC commands overview, set-charge-limit; §2.5]
COMMANDS: Final[Mapping[str, tuple[str, str]]] = {
    "security/lock": ("control_security", "security-lock"),
    "security/unlock": ("control_security", "security-unlock"),
    "charge/start": ("control_charge", "charge-start"),
    "charge/stop": ("control_charge", "charge-stop"),
    "charge/set-limit": ("control_charge", "charge-set-limit"),
    "charge-port/open": ("control_charge", "charge-port-open"),
    "charge-port/close": ("control_charge", "charge-port-close"),
}


def _charge_refusal(path: str, r: CarReading) -> str | None:
    """VEHICLE_STATE codes from the car's state [§6 item 4]."""
    if path == "charge/start":
        if not r.plugged:
            return "CHARGING_PLUG_NOT_CONNECTED"
        if r.charging:
            return "CHARGING_IN_PROGRESS"
        if r.soc is not None and r.soc >= r.charge_limit - 0.005:
            return "FULLY_CHARGED"
    if path == "charge/stop" and not r.charging:
        return "NOT_CHARGING"
    return None


def _percent(doc: Any) -> int | None:
    """``{"data": {"attributes": {"percent": 80}}}``, an integer 50-100 [DOC][3P-LIVE §2.5]."""
    attrs = doc.get("data", {}).get("attributes", {}) if isinstance(doc, dict) else {}
    p = attrs.get("percent") if isinstance(attrs, dict) else None
    if isinstance(p, bool) or not isinstance(p, int) or not 50 <= p <= 100:
        return None
    return p


def _execute(vc: VehicleCtx, path: str, percent: int | None) -> ApiFault | None:
    """Act on the car; a VEHICLE_STATE fault when its state refuses."""
    refusal = _charge_refusal(path, vc.car.read())
    if refusal is not None:
        return ApiFault("VEHICLE_STATE", refusal)
    try:
        if path.startswith("charge-port/"):
            vc.ctx.v3.charge_port_open[vc.vin] = path.endswith("open")
        elif path == "charge/set-limit" and percent is not None:
            vc.car.command("charge_limit", percent / 100.0)
        else:
            action = {
                "security/lock": "lock",
                "security/unlock": "unlock",
                "charge/start": "charge_start",
                "charge/stop": "charge_stop",
            }[path]
            vc.car.command(action)
    except CarRefused as exc:
        return ApiFault("VEHICLE_STATE", exc.code)
    return None


def _execution(vc: VehicleCtx, path: str, percent: int | None, started: float) -> dict[str, Any]:
    """The ``command-execution`` reply [DOC set-charge-limit, §2.5]."""
    now = vc.ctx.v3.cloud.clock.now()
    return {
        "data": {
            "id": f"exec_{uuid.uuid4().hex[:10]}",
            "type": "command-execution",
            "attributes": {
                "commandType": COMMANDS[path][1],
                "status": {"value": "SUCCESS"},
                "executionMode": "sync",
                "parameters": {"percent": percent} if percent is not None else {},
            },
            "meta": {
                "executedAt": iso(started),
                "completedAt": iso(now),
                "durationInSeconds": round(now - started),
            },
        }
    }


async def command(request: web.Request) -> web.StreamResponse:
    ctx = authenticate(request)
    if isinstance(ctx, web.Response):
        return ctx
    path = request.match_info["cmd"]
    if path not in COMMANDS:
        return error_response(ApiFault("RESOURCE_NOT_FOUND", "PATH"), ctx.request_id)
    vc = open_vehicle(request, ctx, 1)  # commands count against the plan too [DOC §5.2]
    if isinstance(vc, web.Response):
        return vc
    permission, _ = COMMANDS[path]
    if permission not in vc.permissions:
        return error_response(ApiFault("PERMISSION"), ctx.request_id, status=403)
    percent = None
    if path == "charge/set-limit":
        try:
            doc = json.loads(await request.read() or b"null")
        except (ValueError, UnicodeDecodeError):
            doc = None
        percent = _percent(doc)
        if percent is None:
            return error_response(
                _invalid("percent", "an integer between 50 and 100"), ctx.request_id
            )
    if path.startswith("charge-port/") and vc.car.make.upper() not in CHARGE_PORT_MAKES:
        return error_response(ApiFault("COMPATIBILITY", "VEHICLE_NOT_CAPABLE"), ctx.request_id)
    if (path.startswith("charge") and vc.car.powertrain == "ICE") or path not in COMMANDS:
        return error_response(ApiFault("COMPATIBILITY", "VEHICLE_NOT_CAPABLE"), ctx.request_id)
    fault, _ = _fault(vc, "command")
    if fault is not None:
        return error_response(fault, ctx.request_id)
    clock = ctx.v3.cloud.clock
    started = clock.now()
    slow = ctx.v3.knobs.slow_commands
    if slow <= 0:
        refused = _execute(vc, path, percent)
        if refused is not None:
            return error_response(refused, ctx.request_id)
        return _json(200, _execution(vc, path, percent, started), ctx)
    # 202 now, no Content-Length, the final body later on the same connection [DOC commands
    # overview, §2.5]; an error body's status may differ from the HTTP status [3P-LIVE]
    resp = web.StreamResponse(status=202, headers={"SC-Request-Id": ctx.request_id})
    resp.content_type = "application/json"
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    await resp.write(b" ")  # headers and a first byte go out now
    await clock.sleep(slow)
    refused = _execute(vc, path, percent)
    final = (
        error_body(refused, ctx.request_id)
        if refused is not None
        else _execution(vc, path, percent, started)
    )
    try:
        await resp.write(json.dumps(final).encode())
        await resp.write_eof()
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        pass  # the client gave up; the command still ran
    return resp


def routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v3/connections", connections)
    r.add_get("/v3/connections/{cid}", get_connection)
    r.add_delete("/v3/connections/{cid}", delete_connection)
    r.add_delete("/v3/users/{uid}", delete_user)
    r.add_get("/v3/vehicles/{vid}", vehicle)
    r.add_get("/v3/vehicles/{vid}/signals", signals)
    r.add_get("/v3/vehicles/{vid}/signals/{code}", one_signal)
    r.add_post("/v3/vehicles/{vid}/commands/{cmd:.+}", command)
