"""What the simulated Smartcar must remember across a restart (``exporter.simulator.persist``).

Users exist only through what they were given, so this is: the v2 access and refresh tokens
(digests only), revoked and subscribed vehicles, the v3 application tokens (digests), connections
and webhook subscriptions, and the test-login cars Connect created (``2-vehicles@smartcar.com``)
so a connection never points at a car the restarted simulator does not have. Apps, webhooks and the
demo user's own connection are rebuilt from the seed; the Dashboard registration (redirect URI,
webhook callback) is redone by the exporter at each start.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from exporter.simulator.persist import digest
from exporter.simulator.smartcar.car import StaticCar
from exporter.simulator.smartcar.server import SmartcarSimulator
from exporter.simulator.smartcar.state import AccessToken, RefreshToken
from exporter.simulator.smartcar.v3_state import AppToken, Connection, Subscription


def _grant(tok: AccessToken | RefreshToken) -> dict[str, Any]:
    out = dataclasses.asdict(tok)
    out["vins"] = list(tok.vins)
    out["scopes"] = sorted(tok.scopes)
    return out


def dump(sim: SmartcarSimulator) -> dict[str, Any]:
    cloud, v3 = sim.cloud, sim.v3
    now = cloud.clock.now()
    cloud._purge(now)  # dead tokens are not worth a line
    return {
        "access": {digest(k): _grant(v) for k, v in cloud.access.items()},
        "refresh": {digest(k): _grant(v) for k, v in cloud.refresh.items()},
        "revoked": sorted(list(p) for p in cloud.revoked),
        "subscriptions": sorted(list(p) for p in cloud.subscriptions),
        "test_cars": {
            vin: car.powertrain for vin, car in cloud.cars.items() if isinstance(car, StaticCar)
        },
        "v3_tokens": {
            digest(k): dataclasses.asdict(v) for k, v in v3.tokens.items() if v.expires_at > now
        },
        "connections": [dataclasses.asdict(c) for c in v3.connections.values()],
        "v3_subscriptions": [dataclasses.asdict(s) for s in v3.subscriptions.values()],
    }


def load(sim: SmartcarSimulator, data: Mapping[str, Any]) -> None:
    """Restore ``dump``'s output (KeyError/TypeError/ValueError on a malformed one)."""
    cloud, v3 = sim.cloud, sim.v3
    for vin, powertrain in dict(data["test_cars"]).items():
        cloud._test_car(str(vin), str(powertrain))

    def grant(raw: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(raw)
        out["vins"] = tuple(str(v) for v in raw["vins"])
        out["scopes"] = frozenset(str(s) for s in raw["scopes"])
        return out

    access = {str(k): AccessToken(**grant(v)) for k, v in dict(data["access"]).items()}
    refresh = {str(k): RefreshToken(**grant(v)) for k, v in dict(data["refresh"]).items()}
    revoked = {(str(a), str(b)) for a, b in data["revoked"]}
    subscribed = {(str(a), str(b)) for a, b in data["subscriptions"]}
    tokens = {str(k): AppToken(**v) for k, v in dict(data["v3_tokens"]).items()}
    conns = [
        Connection(**{**c, "permissions": tuple(c["permissions"])}) for c in data["connections"]
    ]
    subs = [Subscription(**s) for s in data["v3_subscriptions"]]
    for c in conns:
        if c.vin not in cloud.cars:
            raise ValueError(f"a saved connection names an unknown car {c.vin[:3]}…")
    # all parsed: apply (the demo user's own connection is already there and is simply renewed)
    cloud.access.update(access)
    cloud.refresh.update(refresh)
    cloud.revoked |= revoked
    cloud.subscriptions |= subscribed
    v3.tokens.update(tokens)
    v3.connections.update({c.id: c for c in conns})
    known = {(s.webhook_id, s.user_id, s.vin) for s in v3.subscriptions.values()}
    for s in subs:
        if (s.webhook_id, s.user_id, s.vin) not in known:
            v3.subscriptions[s.id] = s
