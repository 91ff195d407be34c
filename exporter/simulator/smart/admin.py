"""A small control API under ``/_sim/`` on the api v1 host, for scripts and manual poking.

Not part of the real cloud and not signed: it only exists on the loopback simulator. Tests may use
it or manipulate the simulator objects in-process; the client under test always goes through the
real paths.

    GET  /_sim/info                      urls, demo logins, VINs, clock
    POST /_sim/advance {"seconds": N}    move a manual/scaled clock forward
    GET  /_sim/faults                    current fault rules
    GET  /_sim/faults/log                what was injected
    POST /_sim/faults {"kind", "count" | "rate", "endpoint", "vin", ...}   add a fault
    POST /_sim/faults/reset              drop all fault rules
    GET  /_sim/ground_truth/{vin}        trips and charging sessions so far
    GET  /_sim/state/{vin}               the car's last report and live state
    GET  /_sim/reports/{vin}             distinct reports served to clients
    POST /_sim/select {"username", "vin"}   another client selects a car on that account
    POST /_sim/plug {"vin", "kind": "AC"|"DC"}  plug a parked car in now (it starts charging)
    POST /_sim/accounts/{username}/vehicles {"model"} | {"vin"}   a car joins the account (a new
                                         car of that model, or one the fleet has): its VIN
    DELETE /_sim/accounts/{username}/vehicles/{vin}   the car leaves the account (sold, unshared):
                                         gone from the vehicle list, its calls refused as for
                                         any VIN not on the account
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from exporter.simulator.faults import FaultKind
from exporter.simulator.smart.cloud import SmartCloud


def install(app: web.Application, cloud: SmartCloud) -> None:
    fleet = cloud.fleet

    async def body(request: web.Request) -> dict[str, Any]:
        try:
            got = json.loads(await request.read() or b"{}")
        except ValueError:
            raise web.HTTPBadRequest(text="body must be JSON") from None
        if not isinstance(got, dict):
            raise web.HTTPBadRequest(text="body must be a JSON object")
        return got

    def known_vin(request: web.Request) -> str:
        vin = request.match_info["vin"]
        if vin not in fleet:
            raise web.HTTPNotFound(text=f"no simulated vehicle {vin}")
        return vin

    async def info(_request: web.Request) -> web.Response:
        return web.json_response({**cloud.info(), "now": cloud.clock.now()})

    async def advance(request: web.Request) -> web.Response:
        seconds = (await body(request)).get("seconds")
        mover = getattr(cloud.clock, "advance", None)
        if not isinstance(seconds, int | float) or seconds < 0 or mover is None:
            raise web.HTTPBadRequest(text="need {'seconds': N >= 0} and a clock that can advance")
        mover(float(seconds))
        return web.json_response({"now": cloud.clock.now(), "reports": fleet.tick()})

    async def faults_get(_request: web.Request) -> web.Response:
        return web.json_response(cloud.faults.describe())

    async def faults_log(_request: web.Request) -> web.Response:
        return web.json_response([e.to_dict() for e in cloud.faults.log])

    async def faults_add(request: web.Request) -> web.Response:
        spec = await body(request)
        try:
            kind = FaultKind(spec.pop("kind"))
            params = {
                k: v for k, v in spec.items() if k in {"retry_after", "status", "hang", "value"}
            }
            if "fields" in spec:
                params["fields"] = tuple(spec["fields"])
            where = {k: spec.get(k) for k in ("endpoint", "vin", "cloud")}
            if "rate" in spec:
                cloud.faults.set_rate(kind, float(spec["rate"]), **where, **params)
            else:
                cloud.faults.script(kind, int(spec.get("count", 1)), **where, **params)
        except (KeyError, ValueError, TypeError) as exc:
            raise web.HTTPBadRequest(text=f"bad fault: {exc}") from None
        return web.json_response(cloud.faults.describe())

    async def faults_reset(_request: web.Request) -> web.Response:
        cloud.faults.reset()
        return web.json_response(cloud.faults.describe())

    async def truth(request: web.Request) -> web.Response:
        return web.json_response(fleet.ground_truth(known_vin(request)))

    async def state(request: web.Request) -> web.Response:
        vin = known_vin(request)
        return web.json_response(
            {"reported": fleet.state(vin).to_dict(), "live": fleet.live_state(vin).to_dict()}
        )

    async def reports(request: web.Request) -> web.Response:
        vin = known_vin(request)
        served = cloud.served.get(vin)
        return web.json_response(
            {
                "vin": vin,
                "served": served.count if served else 0,
                "recent_update_times_ms": list(served.recent) if served else [],
                "uploaded": fleet.reports(vin),
            }
        )

    async def select(request: web.Request) -> web.Response:
        spec = await body(request)
        try:
            cloud.select(str(spec["username"]), spec.get("vin"))
        except KeyError as exc:
            raise web.HTTPNotFound(text=f"unknown account {exc}") from None
        return web.json_response({"ok": True})

    async def plug(request: web.Request) -> web.Response:
        spec = await body(request)
        vin = str(spec.get("vin", ""))
        if vin not in fleet:
            raise web.HTTPNotFound(text=f"no simulated vehicle {vin}")
        return web.json_response({"ok": fleet.plug_in(vin, str(spec.get("kind", "AC")))})

    async def journal(request: web.Request) -> web.Response:
        spec = await body(request)
        vin = str(spec.get("vin", ""))
        if vin not in fleet:
            raise web.HTTPNotFound(text=f"no simulated vehicle {vin}")
        fleet.set_journal_recording(vin, bool(spec.get("on", True)))
        return web.json_response({"ok": True})

    def account_of(request: web.Request) -> Any:
        acc = cloud.identity.account(request.match_info["username"])
        if acc is None:
            raise web.HTTPNotFound(text="unknown account")
        return acc

    async def car_joins(request: web.Request) -> web.Response:
        acc = account_of(request)
        spec = await body(request)
        vin = spec.get("vin")
        if vin is None:
            try:
                vin = fleet.add(str(spec.get("model", "#1")), cloud="smart")
            except (KeyError, ValueError) as exc:
                raise web.HTTPBadRequest(text=f"bad model: {exc}") from None
        elif vin not in fleet:
            raise web.HTTPNotFound(text=f"no simulated vehicle {vin}")
        if vin not in acc.vins:
            acc.vins.append(vin)
        if acc.region == "INTL":
            cloud.intl_vins.add(vin)
        return web.json_response({"vin": vin, "vins": list(acc.vins)})

    async def car_leaves(request: web.Request) -> web.Response:
        acc = account_of(request)
        vin = request.match_info["vin"]
        if vin not in acc.vins:
            raise web.HTTPNotFound(text=f"{vin} is not on this account")
        acc.vins.remove(vin)
        if acc.selected == vin:
            acc.selected = None
        return web.json_response({"vins": list(acc.vins)})

    r = app.router
    r.add_post("/_sim/accounts/{username}/vehicles", car_joins)
    r.add_delete("/_sim/accounts/{username}/vehicles/{vin}", car_leaves)
    r.add_post("/_sim/plug", plug)
    r.add_post("/_sim/journal", journal)
    r.add_get("/_sim/info", info)
    r.add_post("/_sim/advance", advance)
    r.add_get("/_sim/faults", faults_get)
    r.add_get("/_sim/faults/log", faults_log)
    r.add_post("/_sim/faults", faults_add)
    r.add_post("/_sim/faults/reset", faults_reset)
    r.add_get("/_sim/ground_truth/{vin}", truth)
    r.add_get("/_sim/state/{vin}", state)
    r.add_get("/_sim/reports/{vin}", reports)
    r.add_post("/_sim/select", select)
