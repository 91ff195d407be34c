"""The simulated Smartcar's v3 memory: applications, app tokens, connections, webhooks, knobs.

It sits on the v2 ``SmartcarCloud`` and shares its cars, clock, rate-limit buckets, plan counter
and scripted faults, so one car is the same car through v2 and v3 and one request budget is spent
by both. What is new in v3 lives here (smartcar-v3.md §0.2): one application token instead of
per-vehicle tokens, the end user named by ``sc-user-id``, connections as REST resources, and
webhooks/subscriptions on the management API.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from exporter.simulator.persist import lookup
from exporter.simulator.smartcar import catalog
from exporter.simulator.smartcar.state import SimApp, SmartcarCloud, TokenError

TOKEN_TTL: Final = 3600.0  # 1 h, no refresh token [DOC request-access-token, §1.2]
_NS: Final = uuid.UUID("0b5c7d4e-2f61-4a0e-8a3c-7d9e1f2a3b4c")


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class V3App:
    """An application's v3 credentials (smartcar-v3.md §1.1): the ``client_...`` API client id and
    secret (iam token), the Application ID (a UUID, Connect's ``client_id``, equal to the legacy
    v2 client id [3P-LIVE]) and the Application Management Token (webhook HMAC key)."""

    client_id: str
    client_secret: str
    application_id: str
    management_token: str


@dataclass
class AppToken:
    application_id: str
    expires_at: float


@dataclass
class Connection:
    id: str
    application_id: str
    user_id: str
    vin: str
    permissions: tuple[str, ...]
    created_at: float
    mode: str = "live"
    external_id: str | None = None


@dataclass
class Webhook:
    """A webhook as configured in the Dashboard (no ``POST /webhooks`` exists [3P-LIVE §2.6])."""

    id: str
    application_id: str
    name: str
    callback_uri: str | None
    data: tuple[str, ...]
    triggers: tuple[str, ...]
    error_callback_uri: str | None = None
    is_enabled: bool = True
    auto_subscribe: bool = False
    verified: bool = False


@dataclass
class Subscription:
    id: str
    webhook_id: str
    user_id: str
    vin: str
    created_at: float


@dataclass
class Knobs:
    """Switches tests and scripts turn (all default to the documented behaviour)."""

    # Serve SDK-6.19.1-style requests: a v2 per-vehicle token on v3 reads, no sc-user-id (§1.4:
    # "may accept legacy tokens behind a compatibility flag"). Off = the live API's strictness.
    legacy_tokens: bool = False
    # The signal store is filled only for subscribed vehicles [3P-LIVE §2.4]: data [] / 404.
    empty_until_subscribed: bool = False
    # ISO-8601 signal timestamps with ingestedAt (2026 live REST [3P-LIVE]) instead of epoch ms.
    iso_timestamps: bool = False
    # How many plan requests one GET /signals costs: "call" (1) or "signal" (one per signal);
    # the reference leaves it open (§7 q6).
    signals_cost: str = "call"
    # > 0: commands answer 202 at once and stream the final body this many (simulated) seconds
    # later on the same connection [DOC commands overview, §2.5].
    slow_commands: float = 0.0
    # Webhook trigger shape: "documented" data.triggers[{code,name,group}] or "observed" top-level
    # triggers[{type: SIGNAL_UPDATED, signal: {...}}] (§4.4 forms 1 and 3).
    trigger_shape: str = "documented"
    # Sign VERIFY too (the docs say every delivery is signed; captures show it unsigned, §4.3).
    sign_verify: bool = False


@dataclass
class V3Cloud:
    """All v3 state, over the shared v2 cloud."""

    cloud: SmartcarCloud
    token_ttl: float = TOKEN_TTL
    apps: dict[str, V3App] = field(default_factory=dict)  # by API client_id
    tokens: dict[str, AppToken] = field(default_factory=dict)
    connections: dict[str, Connection] = field(default_factory=dict)
    webhooks: dict[str, Webhook] = field(default_factory=dict)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    charge_port_open: dict[str, bool] = field(default_factory=dict)  # vin -> door open
    knobs: Knobs = field(default_factory=Knobs)
    token_calls: int = 0
    subscribe_listeners: list[Callable[[Subscription], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cloud.connect_hooks.append(self._on_connect)

    # --- setup ------------------------------------------------------------------------------------
    def add_app(self, app: V3App, redirect_uris: tuple[str, ...]) -> V3App:
        """Register ``app``; its Application ID is also a Connect client (the legacy v2 id)."""
        self.apps[app.client_id] = app
        if app.application_id not in self.cloud.apps:
            self.cloud.add_app(
                SimApp(
                    client_id=app.application_id,
                    client_secret=secrets.token_hex(16),
                    management_token=app.management_token,
                    redirect_uris=redirect_uris,
                )
            )
        return app

    def app_by_id(self, application_id: str) -> V3App | None:
        return next((a for a in self.apps.values() if a.application_id == application_id), None)

    def add_webhook(self, hook: Webhook) -> Webhook:
        self.webhooks[hook.id] = hook
        return hook

    # --- ids --------------------------------------------------------------------------------------
    def vehicle_id(self, application_id: str, vin: str) -> str:
        """Per application, and the same id v2 hands out for the same app (migration back-fill)."""
        return self.cloud.vehicle_id(application_id, vin)

    def vin_of(self, application_id: str, vehicle_id: str) -> str | None:
        return self.cloud.vin_of(application_id, vehicle_id)

    # --- iam --------------------------------------------------------------------------------------
    def issue_token(self, client_id: str, client_secret: str) -> dict[str, object]:
        """client_credentials [DOC request-access-token]: 1 h, no refresh token."""
        self.token_calls += 1
        app = self.apps.get(client_id)
        if app is None or not secrets.compare_digest(app.client_secret, client_secret):
            raise TokenError(401, "invalid_client", "Invalid client credentials.")
        now = self.cloud.clock.now()
        self.tokens = {k: v for k, v in self.tokens.items() if v.expires_at > now}
        value = secrets.token_urlsafe(24)
        self.tokens[value] = AppToken(app.application_id, now + self.token_ttl)
        return {"access_token": value, "token_type": "Bearer", "expires_in": int(self.token_ttl)}

    def app_token(self, value: str) -> AppToken | None:
        tok = lookup(self.tokens, value)  # a restarted simulator knows it by digest
        if tok is None or self.cloud.clock.now() >= tok.expires_at:
            return None
        return tok

    def expire_tokens(self) -> int:
        """Knob: every app token dies now (a client must fetch a new one after its 401)."""
        n = len(self.tokens)
        self.tokens.clear()
        return n

    # --- connections ------------------------------------------------------------------------------
    def connect(
        self,
        application_id: str,
        user_id: str,
        vins: Iterable[str],
        permissions: Iterable[str],
        mode: str = "live",
    ) -> list[Connection]:
        """Create (or renew) the user's connections; a re-connect replaces the grant."""
        out = []
        perms = tuple(sorted(set(permissions)))
        mode = "live" if mode == "live" else "simulated"  # Connect's legacy "test" is simulated
        for vin in vins:
            cid = str(uuid.uuid5(_NS, f"{application_id}/{user_id}/{vin}"))
            conn = Connection(
                cid, application_id, user_id, vin, perms, self.cloud.clock.now(), mode
            )
            self.connections[cid] = conn
            self.cloud.revoked.discard((application_id, vin))
            out.append(conn)
            for hook in self.webhooks.values():
                if hook.application_id == application_id and hook.auto_subscribe:
                    self.subscribe(hook.id, user_id, vin)
        return out

    def _on_connect(
        self, client_id: str, user_id: str, vins: tuple[str, ...], scopes: frozenset[str], mode: str
    ) -> list[tuple[str, str]]:
        """Connect succeeded for ``client_id``: a v3 application gets connections, and the
        redirect gains ``user_id`` [DOC handle-the-response, §1.5]."""
        if self.app_by_id(client_id) is None:
            return []
        self.connect(client_id, user_id, vins, scopes, mode)
        return [("user_id", user_id)]

    def connections_of(self, application_id: str) -> list[Connection]:
        return sorted(
            (
                c
                for c in self.connections.values()
                if c.application_id == application_id
                and (application_id, c.vin) not in self.cloud.revoked
            ),
            key=lambda c: (c.created_at, c.id),  # sorted by connection date [DOC]
        )

    def connection(self, application_id: str, user_id: str, vin: str) -> Connection | None:
        cid = str(uuid.uuid5(_NS, f"{application_id}/{user_id}/{vin}"))
        conn = self.connections.get(cid)
        if conn is None or (application_id, vin) in self.cloud.revoked:
            return None
        return conn

    def disconnect(self, connection_id: str) -> Connection | None:
        conn = self.connections.pop(connection_id, None)
        if conn is not None:
            for sid, sub in list(self.subscriptions.items()):
                if sub.vin == conn.vin and sub.user_id == conn.user_id:
                    del self.subscriptions[sid]
        return conn

    # --- subscriptions ----------------------------------------------------------------------------
    def subscription_for(self, webhook_id: str, user_id: str, vin: str) -> Subscription | None:
        return next(
            (
                s
                for s in self.subscriptions.values()
                if s.webhook_id == webhook_id and s.user_id == user_id and s.vin == vin
            ),
            None,
        )

    def subscribe(self, webhook_id: str, user_id: str, vin: str) -> Subscription | None:
        """None when it already exists (409)."""
        if self.subscription_for(webhook_id, user_id, vin) is not None:
            return None
        sub = Subscription(str(uuid.uuid4()), webhook_id, user_id, vin, self.cloud.clock.now())
        self.subscriptions[sub.id] = sub
        for cb in list(self.subscribe_listeners):
            cb(sub)
        return sub

    def subscribed(self, application_id: str, vin: str) -> bool:
        """Is the vehicle on an enabled webhook of the app (what fills the signal store)?"""
        return any(
            s.vin == vin
            and (h := self.webhooks.get(s.webhook_id)) is not None
            and h.application_id == application_id
            and h.is_enabled
            for s in self.subscriptions.values()
        )


ALL_PERMISSIONS: Final = tuple(sorted(catalog.PERMISSIONS))
