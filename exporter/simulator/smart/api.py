"""The vehicle API hosts (v1 ``api.ecloudeu.com``, v2 ``apiv2.ecloudeu.com``) and the OTA host.

Every request runs the same gauntlet, in the order a real gateway + service would apply it:
transport faults (429/403/5xx/timeout), the HMAC signature (``1445``) and nonce (``1443``), the API
token (``1402``), then per-VIN rules: the VIN must belong to the account (``8006``), a #5 must use
the v2 host (``8063``, ``8060`` for commands), and the account's single selected vehicle must be
this VIN unless the request binds itself with ``X-Vehicle-IDENTIFIER`` (``8006``/``4038``/``8160``
otherwise). Only then the handler renders the car's last report; reply faults (``8153``, truncated
JSON, garbage leaves) apply last.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from exporter.simulator.faults import Fault, FaultKind
from exporter.simulator.smart import commands, render, signing, wire
from exporter.simulator.smart import journal as sim_journal
from exporter.simulator.smart.cloud import CLOUD, SmartCloud
from exporter.simulator.smart.identity import Account, Token

SESSION_PATH = "/auth/account/session/secure"


@dataclass
class Call:
    """One authenticated request that passed the gateway checks."""

    request: web.Request
    body: bytes
    token: Token
    account: Account
    fault: Fault | None
    vin: str | None = None


Handler = Callable[[Call], Awaitable[web.Response]]


def _key_for(request: web.Request, token: Token | None) -> bytes:
    if token is not None:
        return signing.INTL_KEY if token.region == "INTL" else signing.EU_KEY
    identity = request.query.get("identity_type", "")
    if identity == "smart-israel" or request.headers.get("x-app-id", "").upper().startswith(
        "SMARTAPP-"
    ):
        return signing.INTL_KEY
    return signing.EU_KEY


async def _gateway(
    cloud: SmartCloud, request: web.Request, endpoint: str, vin: str | None
) -> tuple[web.Response | None, bytes, Fault | None]:
    """Transport faults, then signature + nonce. Returns (reply or None, body, fault)."""
    fault = cloud.faults.pick(CLOUD, endpoint, vin)
    if fault is not None:
        reply = await wire.transport_fault(cloud.faults, fault, login_host=False)
        if reply is not None:
            return reply, b"", None
    body = await request.read()
    token_value = request.headers.get("authorization")
    token = cloud.identity.known(token_value, "api_access") if token_value else None
    key = _key_for(request, token)
    strict = cloud.config.strict
    if strict:
        missing = _missing_app_header(request.headers, key)
        if missing:
            return wire.error("1400", f"Illegal parameter: header {missing}"), body, None
    url = request.rel_url
    if not signing.verify(
        key, request.headers, request.method, url.raw_path, url.raw_query_string, body
    ):
        return wire.error("1445"), body, None
    tolerance = cloud.config.timestamp_tolerance
    if strict and tolerance is not None:
        # the check is for a wrong clock, not for latency: on an accelerated clock a request's
        # real transit time is worth ``speed`` simulated seconds, so the window scales with it
        tolerance *= float(getattr(cloud.clock, "effective_speed", 1.0))
        try:
            skew = abs(int(request.headers["x-timestamp"]) / 1000.0 - cloud.clock.now())
        except (KeyError, ValueError):
            skew = float("inf")
        if skew > tolerance:
            return wire.error("1446"), body, None
    if cloud.nonce_seen(request.headers["x-api-signature-nonce"]):
        return wire.error("1443"), body, None
    return None, body, fault


# The app headers every signed request carries. Reference §2: evcc sends only this subset and
# works, so the server checks at least these; the values are the region's app identifiers.
_APP_HEADERS: Final = {
    signing.EU_KEY: {"x-app-id": "SmartAPPEU", "x-operator-code": "SMART"},
    signing.INTL_KEY: {"x-app-id": "SMARTAPP-ISRAEL", "x-operator-code": "SMART-ISRAEL"},
}
_PRESENT: Final = ("content-type", "x-device-identifier", "x-api-signature-nonce", "x-timestamp")


def _missing_app_header(headers: Mapping[str, str], key: bytes) -> str:
    """The first required app header that is absent or wrong ('' when all are right)."""
    if headers.get("accept") != signing.ACCEPT:
        return "accept"
    if headers.get("x-api-signature-version") != "1.0":
        return "x-api-signature-version"
    for name, want in _APP_HEADERS[key].items():
        if headers.get(name) != want:
            return name
    for name in _PRESENT:
        if not headers.get(name):
            return name
    return ""


def _authed(cloud: SmartCloud, endpoint: str, handler: Handler, *, vin_scoped: bool = False) -> Any:
    """Wrap ``handler`` with the gateway, token and fault logic for ``endpoint``."""

    async def wrapped(request: web.Request) -> web.Response:
        vin = request.match_info.get("vin") if vin_scoped else None
        reply, body, fault = await _gateway(cloud, request, endpoint, vin)
        if reply is not None:
            return reply
        ident = cloud.identity
        value = request.headers.get("authorization", "")
        known = ident.known(value, "api_access")
        if fault is not None and known is not None:
            if fault.kind is FaultKind.TOKEN_EXPIRED:
                ident.expire(known.value)
            elif fault.kind is FaultKind.MAIN_TOKEN_EXPIRED:
                ident.expire(known.value)
                ident.expire(known.parent)
            elif fault.kind is FaultKind.OTHER_CLIENT_SELECTED:
                cloud.other_client_selects(known.account, vin)
        token = ident.get(value, "api_access")
        if token is None:
            return wire.error(
                "1402", "The access token is invalid" if known is None else "Token expired"
            )
        return await handler(Call(request, body, token, token.account, fault, vin))

    return wrapped


def _finish(cloud: SmartCloud, call: Call, data: Any, **envelope: Any) -> web.Response:
    """Apply reply faults (8153, truncated JSON, garbage leaves) to a success reply."""
    fault = call.fault
    if fault is not None and fault.kind is FaultKind.DATA_UNAVAILABLE:
        return wire.error("8153")
    body = wire.ok_body(data, **envelope)
    if fault is not None and fault.kind is FaultKind.MALFORMED_JSON:
        return wire.malformed(body)
    if fault is not None and fault.kind is FaultKind.GARBAGE_FIELDS and isinstance(data, dict):
        cloud.faults.garble(data, fault)
    return wire.send(body)


def _vin_rules(cloud: SmartCloud, call: Call, *, v2: bool, endpoint: str) -> web.Response | None:
    vin = call.vin or ""
    acc = call.account
    if vin not in acc.vins or vin not in cloud.fleet:
        return wire.error("8006")
    spec = cloud.fleet.vehicle(vin).spec
    if spec.proprietary_platform and not v2:
        return wire.error("8060" if endpoint == "command" else "8063")
    if endpoint in cloud.config.select_code:
        bound = call.request.headers.get("X-Vehicle-IDENTIFIER") == vin
        if acc.selected != vin and not bound:
            return wire.error(cloud.config.select_code[endpoint])
    return None


# ---------------------------------------------------------------------------- handlers


def api_app(cloud: SmartCloud, *, v2: bool) -> web.Application:
    fleet = cloud.fleet

    async def session_create(request: web.Request) -> web.Response:
        reply, body, fault = await _gateway(cloud, request, "session", None)
        if reply is not None:
            return reply
        ident = cloud.identity
        if fault is not None and fault.kind is FaultKind.DATA_UNAVAILABLE:
            return wire.session_error(8153)
        try:
            payload = json.loads(body)
        except ValueError:
            return wire.session_error(1400)
        if not isinstance(payload, dict):
            return wire.session_error(1400)
        identity_type = request.query.get("identity_type", "smart")
        if identity_type == "smart-israel":
            code = ident.get(str(payload.get("authCode", "")), "auth_code")
            if code is None or code.used:
                return wire.session_error(1400, "Invalid authCode")
            code.used = True
            intl = ident.issue(
                "intl_oauth", code.account, ident.lifetimes.oauth_access, region="INTL"
            )
            access, refresh = ident.mint_session(intl, "INTL")
            return wire.session_ok(_session_data(access, refresh))
        if identity_type != "smart":
            return wire.session_error(1400)
        given = str(payload.get("accessToken", ""))
        if fault is not None and fault.kind is FaultKind.MAIN_TOKEN_EXPIRED:
            ident.expire(given)
        oauth = ident.get(given, "oauth_access")
        if oauth is None:
            return wire.session_error(1501)
        access, refresh = ident.mint_session(oauth, "EU")
        return wire.session_ok(_session_data(access, refresh))

    async def session_refresh(request: web.Request) -> web.Response:
        reply, body, _fault = await _gateway(cloud, request, "session", None)
        if reply is not None:
            return reply
        ident = cloud.identity
        try:
            payload = json.loads(body)
        except ValueError:
            return wire.session_error(1400)
        client_id = request.headers.get("X-CLIENT-ID", "")
        if not isinstance(payload, dict) or not client_id or "refreshToken" not in payload:
            return wire.session_error(1400)
        value = str(payload.get("refreshToken", ""))
        known = ident.known(value, "api_refresh")
        if known is None or known.client_id != client_id:
            return wire.session_error(1400)
        refresh = ident.get(value, "api_refresh")
        if refresh is None:
            return wire.session_error(1501, "refresh token expired")
        ident.expire(refresh.value)
        oauth = ident.issue("oauth_access", refresh.account, ident.lifetimes.oauth_access)
        access, new_refresh = ident.mint_session(oauth, refresh.region)
        ident.expire(access.value)  # the PUT hands out a new OAuth token, not a usable session
        data = {
            "accessToken": oauth.value,
            "refreshToken": new_refresh.value,
            "clientId": new_refresh.client_id,
            "expiresIn": 4579200,
            "userId": refresh.account.user_id,
        }
        return wire.session_ok(data)

    async def vehicles(call: Call) -> web.Response:
        acc = call.account
        q = call.request.query
        if q.get("userId", acc.user_id) != acc.user_id:
            return wire.error("1400")
        items = [
            render.vehicle_list_item(
                vin,
                fleet.vehicle(vin).spec,
                current=vin == acc.selected,
                intl=vin in cloud.intl_vins,
                created_ms=cloud.created_ms,
            )
            for vin in acc.vins
            if vin in fleet
        ]
        return _finish(cloud, call, {"list": items}, message="operation succeed")

    async def select(call: Call) -> web.Response:
        try:
            payload = json.loads(call.body)
        except ValueError:
            return wire.error("1400")
        vin = payload.get("vin") if isinstance(payload, dict) else None
        if not isinstance(vin, str) or not vin:
            return wire.error("1400")
        if not cloud.identity.matches(call.token, payload.get("sessionToken")):
            return wire.error("1402", "The access token is invalid")
        call.vin = vin
        problem = _vin_rules(cloud, call, v2=v2, endpoint="select")
        if problem is not None:
            return problem
        call.account.selected = vin
        fault = call.fault
        if fault is not None and fault.kind is FaultKind.DATA_UNAVAILABLE:
            return wire.error("8153")
        body = wire.ok_body({"result": 1}, message="Successful.", hint="success")
        return wire.send(body)

    def vin_handler(endpoint: str, render_data: Callable[[Call, str], Any]) -> Any:
        async def handler(call: Call) -> web.Response:
            problem = _vin_rules(cloud, call, v2=v2, endpoint=endpoint)
            if problem is not None:
                return problem
            q = call.request.query
            if "userId" in q and q["userId"] != call.account.user_id:
                return wire.error("1400")
            return _finish(cloud, call, render_data(call, call.vin or ""))

        return _authed(cloud, endpoint, handler, vin_scoped=True)

    def status_data(call: Call, vin: str) -> Any:
        car = fleet.vehicle(vin)
        state = fleet.state(vin)
        ms = round(state.report_time * 1000)
        # a report counts as served only if the reply carrying it goes out readable (_finish turns
        # these two faults into an 8153 or a truncated body)
        lost = call.fault is not None and call.fault.kind in (
            FaultKind.DATA_UNAVAILABLE,
            FaultKind.MALFORMED_JSON,
        )
        if not lost:
            cloud.report_served(vin, ms)
            cloud.log_poll(call.account.username, vin, call.token.parent, ms)
        return render.vehicle_status(vin, car.spec, state)

    def soc_data(_call: Call, vin: str) -> Any:
        car = fleet.vehicle(vin)
        return render.soc_setting(fleet.state(vin), car.charge_limit_time)

    def state_data(_call: Call, vin: str) -> Any:
        car = fleet.vehicle(vin)
        state = fleet.state(vin)
        return render.vehicle_state(
            vin,
            state,
            state.report_time + car.traits.sleep_report_s,
            journal=car.journal_recording(cloud.clock.now()),
        )

    def qrvs_data(_call: Call, vin: str) -> Any:
        return render.dc_charge_info(fleet.state(vin))

    def tbox_data(_call: Call, vin: str) -> Any:
        return render.tbox_info(vin, fleet.state(vin))

    async def command(call: Call) -> web.Response:
        problem = _vin_rules(cloud, call, v2=v2, endpoint="command")
        if problem is not None:
            return problem
        vin = call.vin or ""
        strict = cloud.config.strict
        try:
            payload = json.loads(call.body)
            if strict:
                commands.check_strict(payload)
                if payload.get("userId", call.account.user_id) != call.account.user_id:
                    raise commands.IllegalParameter("userId is not this account's")
            service, cmds = commands.parse(payload)
        except (ValueError, commands.IllegalParameter) as exc:
            return wire.error("1400", f"Illegal parameter: {exc}")
        refusal = None
        late = None
        if call.fault is not None and call.fault.kind is FaultKind.CAR_REFUSES:
            late = "the vehicle did not carry out the remote command"
        for name, params in cmds:
            # strict: the cloud queues the message; the car judges it when it acts, so a refusal
            # shows only in its later reports (reference §3.4: the reply is acceptance only)
            ok, reason = fleet.apply_command(vin, name, params, deferred=strict, refuse=late)
            if not ok:
                refusal = reason
                break
        now_ms = str(int(cloud.clock.now() * 1000))
        data = {
            "diagnostics": None,
            "serviceResult": {
                "error": None if refusal is None else {"code": "CMD_REFUSED", "message": refusal},
                "operationResult": 1 if refusal is None else 0,
            },
            "trackPoint": None,
            "vin": vin,
            "sessionId": secrets.token_hex(16),
            "serviceId": service,
            "taskId": None,
            "timestamp": now_ms,
        }
        return _finish(cloud, call, data)

    async def grant(call: Call) -> web.Response:
        # reference §3.2 (authorization/insert): the per-session grant that unlocks journalLogV4;
        # observed to rotate the API token (the next call answers 1402), so clients cache it per
        # token (pysmarthashtag account.py grant_journal_authorization)
        try:
            payload = json.loads(call.body)
        except ValueError:
            return wire.error("1400")
        if not isinstance(payload, dict) or payload.get("serviceCode") != "travelLogBusiCode":
            return wire.error("1400")
        vin = payload.get("vin")
        if vin not in call.account.vins:
            return wire.error("8006")
        cloud.grants.add((call.account.user_id, str(vin)))
        reply = _finish(cloud, call, {})
        if cloud.config.journal_grant_rotates_token:
            cloud.identity.expire(call.token.value)
        return reply

    async def journal(call: Call) -> web.Response:
        # reference §3.2 (journalLogV4) and §4.1: 8153 without the grant, for an empty window (the
        # car's trip recording off: nothing was written) and past the last page; newest first,
        # ``totleSize`` (sic) in the pagination block (pysmarthashtag account.py get_trip_journal)
        vin = call.vin or ""
        if vin not in call.account.vins or vin not in fleet:
            return wire.error("8006")
        if (call.account.user_id, vin) not in cloud.grants:
            return wire.error("8153")
        q = call.request.query
        try:
            start, end = int(q["startTime"]) / 1000.0, int(q["endTime"]) / 1000.0
            page, size = max(1, int(q.get("pageIndex", "1"))), max(1, int(q.get("pageSize", "20")))
        except (KeyError, ValueError):
            return wire.error("1400")
        if "userId" in q and q["userId"] != call.account.user_id:
            return wire.error("1400")
        data = sim_journal.journal_page(fleet, vin, start, end, page, size)
        return wire.error("8153") if data is None else _finish(cloud, call, data)

    async def journal_switch(call: Call) -> web.Response:
        # the app's "record trips" switch: PUT .../status/journalLog/{vin} with a JOU body,
        # serviceParameters jou=enable|disable; the reply is the plain envelope (pysmarthashtag
        # control/journal.py, const.py API_JOURNAL_TOGGLE_URL, replys/journal_toggle_success.json)
        problem = _vin_rules(cloud, call, v2=v2, endpoint="command")
        if problem is not None:
            return problem
        try:
            payload = json.loads(call.body)
        except ValueError:
            return wire.error("1400")
        params = payload.get("serviceParameters") if isinstance(payload, dict) else None
        values = {
            str(p.get("key")): str(p.get("value"))
            for p in (params if isinstance(params, list) else [])
            if isinstance(p, dict)
        }
        if payload.get("serviceId") != "JOU" or values.get("jou") not in ("enable", "disable"):
            return wire.error("1400", "Illegal parameter: serviceId JOU with jou=enable|disable")
        fleet.set_journal_recording(call.vin or "", values["jou"] == "enable")
        return _finish(cloud, call, {})

    async def trackpoints(call: Call) -> web.Response:
        # reference §3.2 (journal-service history): one trip's GPS track, newest first, at most
        # 500 points (pageSize); no grant needed. Each point is only a position in integer
        # milli-arc-seconds - no time, no altitude (pysmarthashtag vehicle/trackpoints.py and its
        # recorded trackpoints_response.json). 8153 when there is none, and (``track_delay``)
        # while the trip ended too recently to have been processed. Faults: endpoint "track".
        vin = call.vin or ""
        if vin not in call.account.vins or vin not in fleet:
            return wire.error("8006")
        q = call.request.query
        try:
            start, end = int(q["startTime"]) / 1000.0, int(q["endTime"]) / 1000.0
            size = max(1, min(500, int(q.get("pageSize", "500"))))
        except (KeyError, ValueError):
            return wire.error("1400")
        data = sim_journal.track_page(fleet, vin, start, end, size, cloud.config.track_delay)
        return wire.error("8153") if data is None else _finish(cloud, call, data)

    async def not_found(request: web.Request) -> web.Response:
        return web.Response(
            status=404,
            text=json.dumps({"code": "1405", "message": "resource not found", "success": False}),
            content_type="application/json",
        )

    app = web.Application()
    r = app.router
    r.add_post(SESSION_PATH, session_create)
    r.add_put(SESSION_PATH, session_refresh)
    r.add_get("/device-platform/user/vehicle/secure", _authed(cloud, "vehicles", vehicles))
    r.add_post("/device-platform/user/session/update", _authed(cloud, "select", select))
    r.add_get("/remote-control/vehicle/status/soc/{vin}", vin_handler("soc", soc_data))
    r.add_get("/remote-control/vehicle/status/state/{vin}", vin_handler("state", state_data))
    r.add_get("/remote-control/vehicle/status/{vin}", vin_handler("status", status_data))
    r.add_get("/remote-control/vehicle/telematics/{vin}", vin_handler("tbox", tbox_data))
    r.add_put(
        "/remote-control/vehicle/telematics/{vin}",
        _authed(cloud, "command", command, vin_scoped=True),
    )
    r.add_get("/geelyTCAccess/tcservices/vehicle/status/qrvs/{vin}", vin_handler("qrvs", qrvs_data))
    r.add_post("/remote-control/user/authorization/insert", _authed(cloud, "journal", grant))
    r.add_get(
        "/geelyTCAccess/tcservices/vehicle/status/journalLogV4/{vin}",
        _authed(cloud, "journal", journal, vin_scoped=True),
    )
    r.add_put(
        "/remote-control/vehicle/status/journalLog/{vin}",
        _authed(cloud, "command", journal_switch, vin_scoped=True),
    )
    r.add_get(
        "/vehicle-history-service/journal-service/vehicle/status/history/{vin}",
        _authed(cloud, "track", trackpoints, vin_scoped=True),
    )
    app.router.add_route("*", "/{tail:(?!_sim/).*}", not_found)
    return app


def _session_data(access: Token, refresh: Token) -> dict[str, Any]:
    return {
        "expiresIn": 4579200,
        "deviceType": "mobile",
        "clientId": access.client_id,
        "idToken": "",
        "resultCode": "0",
        "alias": "",
        "accessToken": access.value,
        "tcToken": "",
        "resultMessage": "Success",
        "userId": access.account.user_id,
        "refreshToken": refresh.value,
    }


# ---------------------------------------------------------------------------- OTA


def ota_app(cloud: SmartCloud) -> web.Application:
    async def info(request: web.Request) -> web.Response:
        vin = request.match_info["vin"]
        fault = cloud.faults.pick(CLOUD, "ota", vin)
        if fault is not None:
            reply = await wire.transport_fault(cloud.faults, fault, login_host=False)
            if reply is not None:
                return reply
        token = request.headers.get("access_token", "")
        ident = cloud.identity
        owner = None
        for kind in ("oauth_access", "api_access", "intl_oauth"):
            tok = ident.get(token, kind)
            if tok is not None:
                owner = tok.account
                break
        if owner is None:
            return web.json_response({"code": "401", "message": "Unauthorized"}, status=401)
        if vin not in owner.vins or vin not in cloud.fleet:
            return web.json_response({"code": "1003", "message": "no OTA record"}, status=200)
        if owner.region == "INTL":
            return web.json_response({"code": "403", "message": "Forbidden"}, status=403)
        return web.json_response(render.ota_info(cloud.fleet.vehicle(vin).spec, intl=False))

    app = web.Application()
    app.router.add_get("/app/info/{vin}", info)
    return app
