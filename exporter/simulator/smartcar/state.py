"""The simulated Smartcar's memory: apps, users, grants, tokens, limits and fault knobs.

HTTP handlers (connect, token, api) are thin; the rules live here so they read in one place and
tests can reach the knobs directly. Every time comes from the injected clock, so a test can jump 59
days and see a refresh token still work, or 61 days and see it refused.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from exporter.clock import Clock, ScaledClock
from exporter.simulator.persist import lookup
from exporter.simulator.smartcar import catalog
from exporter.simulator.smartcar.car import Car, StaticCar
from exporter.simulator.smartcar.errors import ApiFault
from exporter.simulator.smartcar.ratelimit import TokenBucket, month_key

DAY: Final = 86400.0
_NS: Final = uuid.UUID("6f1d1d0e-8f2a-4d63-9a57-3c1b0c6f6a10")


@dataclass
class SimApp:
    """A Smartcar application as registered in the Dashboard."""

    client_id: str
    client_secret: str
    management_token: str
    redirect_uris: tuple[str, ...]
    webhook_url: str | None = None
    webhook_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    webhook_name: str = "carmetrics"
    webhook_signals: tuple[str, ...] = catalog.DEFAULT_WEBHOOK_SIGNALS
    webhook_triggers: tuple[str, ...] = catalog.DEFAULT_TRIGGERS
    requests_per_vehicle_month: int = 500
    verified: bool = False


@dataclass
class Grant:
    code: str
    client_id: str
    redirect_uri: str
    user_id: str
    vins: tuple[str, ...]
    scopes: frozenset[str]
    issued_at: float
    mode: str
    used: bool = False
    issued_real: float = field(default_factory=time.monotonic)


@dataclass
class AccessToken:
    client_id: str
    user_id: str
    vins: tuple[str, ...]
    scopes: frozenset[str]
    expires_at: float
    mode: str


@dataclass
class RefreshToken:
    client_id: str
    user_id: str
    vins: tuple[str, ...]
    scopes: frozenset[str]
    expires_at: float
    mode: str
    used_at: float | None = None


@dataclass(frozen=True)
class LoginResult:
    """What a Connect login leads to: vehicles, or a Connect error with its extra query items."""

    user_id: str = ""
    vins: tuple[str, ...] = ()
    error: str | None = None
    extra: tuple[tuple[str, str], ...] = ()


@dataclass
class _Fault:
    fault: ApiFault
    remaining: int  # < 0: until cleared


class TokenError(Exception):
    """An OAuth token-endpoint error: (status, error, description)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


_N_VEHICLES: Final = re.compile(r"^(\d{1,3})-vehicles@smartcar\.com$")
_VIN_LOGIN: Final = re.compile(r"^([a-z0-9]{17})@([a-z]+)\.smartcar\.com$")


class SmartcarCloud:
    """All state of the simulated Smartcar platform."""

    def __init__(
        self,
        clock: Clock,
        *,
        access_ttl: float = 7200.0,
        refresh_ttl: float = 60 * DAY,
        code_ttl: float = 600.0,
        refresh_grace: float = 60.0,
        app_bucket: tuple[float, float] = (120.0, 2.0 / 60.0),
        vehicle_bucket: tuple[float, float] = (30.0, 30.0 / 3600.0),
    ) -> None:
        self.clock = clock
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.code_ttl = code_ttl
        self.refresh_grace = refresh_grace
        self._app_bucket_cfg = app_bucket
        self._vehicle_bucket_cfg = vehicle_bucket
        self.apps: dict[str, SimApp] = {}
        self.cars: dict[str, Car] = {}
        self.owner_vins: list[str] = []  # the default login's vehicles (the simulated fleet)
        self.owner_email = "owner@example.com"
        self.grants: dict[str, Grant] = {}
        self.access: dict[str, AccessToken] = {}
        self.refresh: dict[str, RefreshToken] = {}
        self.revoked: set[tuple[str, str]] = set()  # (client_id, vin) disconnected
        self.subscriptions: set[tuple[str, str]] = set()  # (client_id, vin) on the app's webhook
        self.calls: dict[tuple[str, str, str], int] = {}  # (client_id, vin, month) -> billable
        self.token_calls = 0
        self._app_buckets: dict[str, TokenBucket] = {}
        self._vehicle_buckets: dict[tuple[str, str], TokenBucket] = {}
        self._faults: dict[str, list[_Fault]] = {}  # vin ("*" = every vehicle) -> scripted faults
        self.token_faults: list[TokenError] = []
        self.listeners: list[Callable[[str], None]] = []  # called with a VIN when a car changes
        self.shared_faults: Any = None  # the runner's Faults (rates/scripts shared by all clouds)
        # Called on a successful Connect (client_id, user_id, vins, scopes, mode); each returns
        # extra redirect query items (v3 adds ``user_id``, smartcar-v3.md §1.5).
        self.connect_hooks: list[
            Callable[[str, str, tuple[str, ...], frozenset[str], str], list[tuple[str, str]]]
        ] = []

    # --- setup ------------------------------------------------------------------------------------
    def add_app(self, app: SimApp) -> SimApp:
        self.apps[app.client_id] = app
        return app

    def add_car(self, car: Car, *, owner: bool = True) -> Car:
        self.cars[car.vin] = car
        if owner and car.vin not in self.owner_vins:
            self.owner_vins.append(car.vin)
        vin = car.vin
        car.on_change(lambda: self._changed(vin))
        return car

    def _changed(self, vin: str) -> None:
        for cb in list(self.listeners):
            cb(vin)

    def _test_car(self, vin: str, powertrain: str = "BEV") -> Car:
        car = self.cars.get(vin)
        if car is None:
            make = "LAND ROVER" if vin.startswith("0SCLR") else "AUDI"
            car = StaticCar(vin, self.clock.now, make=make, powertrain=powertrain)
            self.add_car(car, owner=False)
        return car

    # --- ids --------------------------------------------------------------------------------------
    @staticmethod
    def vehicle_id(client_id: str, vin: str) -> str:
        """Vehicle ids are per application and stable across reconnects."""
        return str(uuid.uuid5(_NS, f"{client_id}/{vin}"))

    @staticmethod
    def user_id(email: str) -> str:
        return str(uuid.uuid5(_NS, f"user/{email.lower()}"))

    def vin_of(self, client_id: str, vehicle_id: str) -> str | None:
        for vin in self.cars:
            if self.vehicle_id(client_id, vin) == vehicle_id:
                return vin
        return None

    # --- Connect ----------------------------------------------------------------------------------
    def login(self, email: str, mode: str) -> LoginResult:
        """Resolve a Connect login to vehicles or a Connect error, per Smartcar's test logins."""
        email = email.strip().lower()
        uid = self.user_id(email)
        vins: list[str] = []
        if email == catalog.SERVER_ERROR_LOGIN:
            return LoginResult(uid, error="server_error")
        if email == catalog.INVALID_SUBSCRIPTION_LOGIN[0]:
            self._test_car(catalog.INVALID_SUBSCRIPTION_LOGIN[1])
            return LoginResult(uid, error="invalid_subscription")
        if email == catalog.INCOMPATIBLE_LOGIN[0]:
            car = self._test_car(catalog.INCOMPATIBLE_LOGIN[1])
            return LoginResult(uid, error="vehicle_incompatible", extra=self._car_extra(car))
        if email == catalog.SUCCESSFUL_REQUEST_LOGIN[0]:
            vins = [self._test_car(catalog.SUCCESSFUL_REQUEST_LOGIN[1]).vin]
        elif email in catalog.ERROR_LOGINS:
            vins = [self._test_car(catalog.ERROR_LOGINS[email]).vin]
        elif m := _N_VEHICLES.match(email):
            n = int(m.group(1))
            vins = [self._test_car(f"0SCN{n:03d}{i:010d}"[:17]).vin for i in range(n)]
        elif m := _VIN_LOGIN.match(email):
            vin, level = m.group(1).upper(), m.group(2)
            if level == "incompatible":
                car = self._test_car(vin)
                return LoginResult(uid, error="vehicle_incompatible", extra=self._car_extra(car))
            vins = [self._test_car(vin, catalog.VIN_LEVELS.get(level, "PHEV")).vin]
        else:
            vins = list(self.owner_vins)
        test_login = any(v.startswith("0SC") for v in vins)
        if mode == "live" and test_login:
            return LoginResult(uid, error="configuration_error")
        if not vins:
            return LoginResult(uid, error="no_vehicles")
        return LoginResult(uid, tuple(vins))

    @staticmethod
    def _car_extra(car: Car) -> tuple[tuple[str, str], ...]:
        return (
            ("vin", car.vin),
            ("make", car.make),
            ("model", car.model),
            ("year", str(car.year)),
        )

    def incompatible(self, vins: Iterable[str], required: Iterable[str]) -> str | None:
        """The first VIN that cannot serve a ``required:`` permission, if any."""
        need = set(required)
        for vin in vins:
            if need & catalog.NOT_CAPABLE.get(self.cars[vin].powertrain, frozenset()):
                return vin
        return None

    def issue_code(
        self,
        client_id: str,
        redirect_uri: str,
        user_id: str,
        vins: Iterable[str],
        scopes: Iterable[str],
        mode: str,
    ) -> str:
        code = str(uuid.uuid4())
        vins = tuple(vins)
        for vin in vins:
            self.revoked.discard((client_id, vin))
        self.grants[code] = Grant(
            code,
            client_id,
            redirect_uri,
            user_id,
            vins,
            frozenset(scopes),
            self.clock.now(),
            mode,
        )
        return code

    def reauthenticate(self, client_id: str, vin: str) -> None:
        """A successful /oauth/reauthenticate: the owner fixed the account issue."""
        self.clear_faults(vin, types=("CONNECTED_SERVICES_ACCOUNT",))

    # --- token endpoint ---------------------------------------------------------------------------
    def check_client(self, client_id: str, client_secret: str) -> SimApp:
        app = self.apps.get(client_id)
        if app is None or not secrets.compare_digest(app.client_secret, client_secret):
            raise TokenError(401, "invalid_client", "Invalid client credentials.")
        return app

    def _new_pair(
        self, client_id: str, user_id: str, vins: tuple[str, ...], scopes: frozenset[str], mode: str
    ) -> dict[str, object]:
        now = self.clock.now()
        self._purge(now)
        at, rt = str(uuid.uuid4()), str(uuid.uuid4())
        self.access[at] = AccessToken(client_id, user_id, vins, scopes, now + self.access_ttl, mode)
        self.refresh[rt] = RefreshToken(
            client_id, user_id, vins, scopes, now + self.refresh_ttl, mode
        )
        return {
            "access_token": at,
            "token_type": "Bearer",
            "expires_in": int(self.access_ttl),
            "refresh_token": rt,
        }

    def _purge(self, now: float) -> None:
        """Forget dead tokens so a long demo does not grow without bound."""
        self.access = {k: v for k, v in self.access.items() if v.expires_at > now}
        self.refresh = {
            k: v
            for k, v in self.refresh.items()
            if v.expires_at > now and (v.used_at is None or now <= v.used_at + self.refresh_grace)
        }

    def _scripted_token_fault(self) -> None:
        if self.token_faults:
            raise self.token_faults.pop(0)

    def _code_expired(self, grant: Grant, now: float) -> bool:
        """A code lives ``code_ttl`` seconds. On an accelerated demo clock (ScaledClock) that is
        measured in real seconds: OAuth codes are a human-scale timeout (approve, get redirected),
        and 10 minutes at 600x would be one second. Tests on a ManualClock jump simulated time."""
        if isinstance(self.clock, ScaledClock):
            return time.monotonic() > grant.issued_real + self.code_ttl
        return now > grant.issued_at + self.code_ttl

    def exchange_code(self, app: SimApp, code: str, redirect_uri: str) -> dict[str, object]:
        self.token_calls += 1
        self._scripted_token_fault()
        grant = self.grants.get(code)
        now = self.clock.now()
        if (
            grant is None
            or grant.client_id != app.client_id
            or grant.used
            or self._code_expired(grant, now)
        ):
            raise TokenError(400, "invalid_grant", f"Invalid code: {code}.")
        if redirect_uri != grant.redirect_uri:
            raise TokenError(400, "invalid_grant", f"Unauthorized redirect_uri: {redirect_uri}")
        grant.used = True
        return self._new_pair(app.client_id, grant.user_id, grant.vins, grant.scopes, grant.mode)

    def refresh_grant(self, app: SimApp, refresh_token: str) -> dict[str, object]:
        """Rotate: a new pair each time; the used refresh token dies ``refresh_grace`` later."""
        self.token_calls += 1
        self._scripted_token_fault()
        rt = lookup(self.refresh, refresh_token)  # a restarted simulator knows it by digest
        now = self.clock.now()
        dead = rt is None or rt.client_id != app.client_id or now >= rt.expires_at
        if rt is not None and rt.used_at is not None and now > rt.used_at + self.refresh_grace:
            dead = True
        if dead or rt is None:
            raise TokenError(400, "invalid_grant", f"Invalid refresh_token: {refresh_token}.")
        if rt.used_at is None:
            rt.used_at = now
        return self._new_pair(app.client_id, rt.user_id, rt.vins, rt.scopes, rt.mode)

    def live_refresh_tokens(self, client_id: str) -> list[str]:
        """Refresh tokens that would still be accepted now (tests: 'was the only one lost?')."""
        now = self.clock.now()
        return [
            t
            for t, r in self.refresh.items()
            if r.client_id == client_id
            and now < r.expires_at
            and (r.used_at is None or now <= r.used_at + self.refresh_grace)
        ]

    # --- API auth and limits ----------------------------------------------------------------------
    def bearer(self, token: str) -> AccessToken | None:
        at = lookup(self.access, token)
        if at is None or self.clock.now() >= at.expires_at:
            return None
        return at

    def app_bucket(self, client_id: str) -> TokenBucket:
        b = self._app_buckets.get(client_id)
        if b is None:
            cap, rate = self._app_bucket_cfg
            b = self._app_buckets[client_id] = TokenBucket(cap, rate, self.clock.now())
        return b

    def vehicle_bucket(self, client_id: str, vin: str) -> TokenBucket:
        b = self._vehicle_buckets.get((client_id, vin))
        if b is None:
            cap, rate = self._vehicle_bucket_cfg
            b = self._vehicle_buckets[(client_id, vin)] = TokenBucket(cap, rate, self.clock.now())
        return b

    def billable(self, client_id: str, vin: str, n: int = 1) -> bool:
        """Count ``n`` requests against the plan; False (nothing counted) when over the limit."""
        key = (client_id, vin, month_key(self.clock.now()))
        used = self.calls.get(key, 0)
        if used + n > self.apps[client_id].requests_per_vehicle_month:
            return False
        self.calls[key] = used + n
        return True

    def calls_this_month(self, client_id: str, vin: str) -> int:
        return self.calls.get((client_id, vin, month_key(self.clock.now())), 0)

    # --- fault knobs ------------------------------------------------------------------------------
    def inject(self, vin: str, fault: ApiFault, times: int = 1) -> None:
        """Answer the next ``times`` vehicle requests for ``vin`` ("*": any) with ``fault``;
        ``times < 0`` until ``clear_faults``."""
        self._faults.setdefault(vin, []).append(_Fault(fault, times))

    def clear_faults(self, vin: str, types: Iterable[str] | None = None) -> None:
        keep = set(types) if types is not None else None
        self._faults[vin] = [
            f for f in self._faults.get(vin, []) if keep is not None and f.fault.type not in keep
        ]

    def scripted_fault(self, vin: str) -> ApiFault | None:
        """Consume the next scripted fault for ``vin`` (or for every vehicle), if any."""
        for key in (vin, "*"):
            queue = self._faults.get(key)
            while queue:
                f = queue[0]
                if f.remaining == 0:
                    queue.pop(0)
                    continue
                if f.remaining > 0:
                    f.remaining -= 1
                return f.fault
        return None

    @staticmethod
    def vin_fault(vin: str, path: str) -> ApiFault | None:
        """A simulated-error VIN's own error; the static paths (VIN, attributes, permissions) are
        spared, as the reference says."""
        err = catalog.ERROR_VINS.get(vin)
        if err is None or path in catalog.STATIC_PATHS:
            return None
        return ApiFault(*err)
