"""The simulated smart cloud: shared state behind all its hosts, and starting/stopping them.

One ``SmartCloud`` owns the accounts and tokens (``Identity``), the per-account selected vehicle,
the nonce cache, the login-gateway throttle and the count of car reports served per VIN. Each
upstream host (awsapi, socialize, auth, api v1, api v2, sg-app-api, ota) is its own aiohttp
application on its own loopback port, with the real paths, and every redirect points at the
simulator's own base URLs, so a client only swaps base URLs.
"""

from __future__ import annotations

import collections
import hashlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from exporter.clock import Clock
from exporter.simulator.faults import Faults
from exporter.simulator.fleet import Fleet
from exporter.simulator.smart.identity import Account, Identity, Lifetimes

API_KEY: Final = "3_L94eyQ-wvJhWm7Afp1oBhfTGXZArUfSHHW9p9Pncg513hZELXsxCfMWHrF8f5P5a"
CLIENT_ID: Final = "SeQMUFqDOSuEF0Iqi5bB2Dco"
INTL_CA_KEY: Final = "204587190"
HOSTS: Final = ("awsapi", "socialize", "auth", "api_v1", "api_v2", "sg_app_api", "ota")

CLOUD: Final = "smart"


@dataclass
class SmartCloudConfig:
    """Knobs of the simulated smart cloud (all times in simulated seconds)."""

    lifetimes: Lifetimes = field(default_factory=Lifetimes)
    login_limit: int = 30  # login chains allowed per window before the WAF blocks
    login_window: float = 600.0
    login_block: float = 1800.0
    # strict (the default): refuse what the real cloud refuses - command bodies outside the
    # documented parameter sets, a stale x-timestamp, missing app headers, a Gigya login without
    # the app's origin - and judge commands in the car after accepting them. Lenient: the older,
    # forgiving simulator (every client dialect, refusals at once), kept for experiments.
    strict: bool = True
    # |x-timestamp - simulator clock| above this is refused (code 1446) in strict mode; None: never.
    # Real seconds: on an accelerated clock (the demo, the soak) it is scaled by the clock's speed.
    timestamp_tolerance: float | None = 300.0
    nonce_ttl: float = 3600.0
    journal_grant_rotates_token: bool = True
    # a trip's track is answered 8153 until the trip ended this long ago (the cloud has not
    # processed it yet); 0: at once. The real delay is not published: reference §3.2/§4.1 and
    # pysmarthashtag (account.py get_trip_trackpoints) only say 8153 means "no track", which a
    # client cannot tell from "no track yet" (issue 14); this knob lets tests model the latter
    track_delay: float = 0.0
    require_webview_ua: bool = True  # awsapi answers 403 to the iOS app user agent
    select_code: dict[str, str] = field(
        default_factory=lambda: {
            "status": "8006",
            "soc": "4038",
            "state": "8006",
            "qrvs": "8006",
            "command": "8160",
        }
    )


class LoginThrottle:
    """The login gateway's WAF: too many login chains in a window block everyone for a while."""

    def __init__(self, clock: Clock, limit: int, window: float, block: float) -> None:
        self.clock = clock
        self.limit = limit
        self.window = window
        self.block = block
        self._times: collections.deque[float] = collections.deque()
        self.blocked_until = 0.0
        self.attempts = 0
        self.rejected = 0

    def check(self) -> float | None:
        """Count one login attempt; seconds to wait if blocked, else None."""
        now = self.clock.now()
        self.attempts += 1
        if now < self.blocked_until:
            self.rejected += 1
            return self.blocked_until - now
        while self._times and self._times[0] <= now - self.window:
            self._times.popleft()
        self._times.append(now)
        if self.limit > 0 and len(self._times) > self.limit:
            self.blocked_until = now + self.block
            self.rejected += 1
            return self.block
        return None

    def blocked(self) -> float | None:
        """Seconds left in a running block (without counting an attempt)."""
        left = self.blocked_until - self.clock.now()
        return left if left > 0 else None


@dataclass
class Served:
    """Distinct car reports (updateTime) handed out for one VIN."""

    count: int = 0
    last_ms: int = -1
    recent: collections.deque[int] = field(default_factory=lambda: collections.deque(maxlen=200))


@dataclass(frozen=True)
class Captured:
    """One request as it arrived (for wire comparisons): host key, method, raw path and query,
    the header names (lower case) and the body bytes."""

    host: str
    method: str
    path: str
    query: str
    headers: frozenset[str]
    body: bytes
    header_values: tuple[tuple[str, str], ...] = ()


class SmartCloud:
    """State shared by the smart hosts; see the module docstring."""

    def __init__(
        self,
        fleet: Fleet,
        faults: Faults,
        clock: Clock,
        config: SmartCloudConfig | None = None,
    ) -> None:
        self.fleet = fleet
        self.faults = faults
        self.clock = clock
        self.config = config or SmartCloudConfig()
        self.identity = Identity(clock, self.config.lifetimes)
        self.throttle = LoginThrottle(
            clock, self.config.login_limit, self.config.login_window, self.config.login_block
        )
        self.urls: dict[str, str] = {}
        self.served: dict[str, Served] = {}
        self.intl_vins: set[str] = set()
        self.grants: set[tuple[str, str]] = set()  # (user_id, vin) with the journal grant
        self.created_ms = int(clock.now() * 1000) - 400 * 86_400_000
        self._nonces: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._runners: list[web.AppRunner] = []
        self.logins: dict[str, dict[str, str]] = {}
        self.captured: list[Captured] | None = None  # a list: every request is recorded there
        # called with one dict per password login and per car report read (the fleet drill counts
        # which session polled which car when; ``bench.simproc --request-log`` writes them out)
        self.request_log: Callable[[dict[str, Any]], None] | None = None

    # ------------------------------------------------------------------ accounts

    def add_account(
        self, name: str, username: str, password: str, region: str, vins: list[str]
    ) -> Account:
        acc = self.identity.add_account(username, password, region, vins)
        if region == "INTL":
            self.intl_vins.update(vins)
        self.logins[name] = {"username": username, "password": password, "region": region}
        return acc

    def select(self, username: str, vin: str | None) -> None:
        """What another app on the same account does: select a different car."""
        acc = self.identity.account(username)
        if acc is None:
            raise KeyError(username)
        acc.selected = vin

    def other_client_selects(self, acc: Account, vin: str | None) -> None:
        """Fault: another client selects some other car of the account (or none)."""
        others = [v for v in acc.vins if v != vin]
        acc.selected = others[0] if others else None

    # ------------------------------------------------------------------ bookkeeping

    def nonce_seen(self, nonce: str) -> bool:
        """Record ``nonce``; True when it was already used within the nonce TTL."""
        now = self.clock.now()
        while self._nonces:
            first, expiry = next(iter(self._nonces.items()))
            if expiry > now and len(self._nonces) < 200_000:
                break
            self._nonces.pop(first)
        if nonce in self._nonces and self._nonces[nonce] > now:
            return True
        self._nonces[nonce] = now + self.config.nonce_ttl
        return False

    def log_login(self, username: str) -> None:
        if self.request_log is not None:
            self.request_log({"event": "login", "t": time.time(), "account": username})

    def log_poll(self, username: str, vin: str, session: str, update_ms: int) -> None:
        """A car's status read: which login session (a digest, never the token) read which
        report when (wall time, comparable across processes)."""
        if self.request_log is not None:
            digest = hashlib.sha256(session.encode()).hexdigest()[:12]
            self.request_log(
                {
                    "event": "poll",
                    "t": time.time(),
                    "account": username,
                    "vin": vin,
                    "session": digest,
                    "report_ms": update_ms,
                }
            )

    def report_served(self, vin: str, update_ms: int) -> None:
        served = self.served.setdefault(vin, Served())
        if update_ms > served.last_ms:
            served.count += 1
            served.last_ms = update_ms
            served.recent.append(update_ms)

    def served_count(self, vin: str) -> int:
        """Distinct car reports (updateTimes) this cloud has served for ``vin``."""
        got = self.served.get(vin)
        return got.count if got else 0

    # ------------------------------------------------------------------ serving

    def applications(self) -> dict[str, web.Application]:
        from exporter.simulator.smart import admin, api, login

        apps = {
            "awsapi": login.awsapi_app(self),
            "socialize": login.socialize_app(self),
            "auth": login.auth_app(self),
            "api_v1": api.api_app(self, v2=False),
            "api_v2": api.api_app(self, v2=True),
            "sg_app_api": login.intl_app(self),
            "ota": api.ota_app(self),
        }
        admin.install(apps["api_v1"], self)
        for key, app in apps.items():
            app.middlewares.append(self._recorder(key))
        return apps

    def _recorder(self, host: str) -> Any:
        """A middleware recording each request into ``captured`` while that is a list."""

        @web.middleware
        async def record(request: web.Request, handler: Any) -> web.StreamResponse:
            if self.captured is not None and not request.path.startswith("/_sim/"):
                body = await request.read()  # cached: the handler reads it again
                self.captured.append(
                    Captured(
                        host,
                        request.method,
                        request.rel_url.raw_path,
                        request.rel_url.raw_query_string,
                        frozenset(k.lower() for k in request.headers),
                        body,
                        tuple((k.lower(), v) for k, v in request.headers.items()),
                    )
                )
            response: web.StreamResponse = await handler(request)
            return response

        return record

    async def start(self, host: str = "127.0.0.1") -> dict[str, str]:
        """Serve every host on its own free port; returns (and keeps) the base URLs."""
        apps = self.applications()
        socks: dict[str, socket.socket] = {}
        for key in HOSTS:
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, 0))
            socks[key] = sock
            port = sock.getsockname()[1]
            shown = f"[{host}]" if ":" in host else host
            self.urls[key] = f"http://{shown}:{port}"
        for key in HOSTS:
            runner = web.AppRunner(apps[key], access_log=None, handle_signals=False)
            await runner.setup()
            await web.SockSite(runner, socks[key]).start()
            self._runners.append(runner)
        return dict(self.urls)

    async def close(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()

    def info(self) -> dict[str, Any]:
        return {
            "urls": dict(self.urls),
            "logins": {k: dict(v) for k, v in self.logins.items()},
            "vins": {
                name: list(acc.vins)
                for name, acc in (
                    (n, self.identity.account(v["username"])) for n, v in self.logins.items()
                )
                if acc is not None
            },
        }
