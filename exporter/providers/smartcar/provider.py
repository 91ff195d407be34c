"""The Smartcar provider: connections (one per Connect grant), polling through ``/batch``, webhooks,
the request budget and everything that turns Smartcar's errors into owner-facing state.

A *connection* is one Connect grant: a rotating token pair plus the vehicles the owner selected.
Connections persist in the token vault (``smartcar:<account>:conn:<id>``; the index of ids under
``smartcar:<account>:index``) so a restart resumes polling without a new Connect.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

import aiohttp

from exporter.clock import Clock
from exporter.hub import Outcome, from_the_future
from exporter.logs import mask_vin
from exporter.providers.base import (
    AuthError,
    BadReply,
    BaseProvider,
    Command,
    CommandReceipt,
    CommandRejected,
    PollResult,
    ProviderError,
    ReauthRequired,
    Sink,
    TokenStore,
    UpstreamUnavailable,
    VehicleNotLinked,
)
from exporter.providers.smartcar import scopes
from exporter.providers.smartcar.budget import Budget, month_end
from exporter.providers.smartcar.client import SmartcarApiError, SmartcarClient
from exporter.providers.smartcar.errors import SmartcarError, parse_error, to_provider_error
from exporter.providers.smartcar.parse import finish_v3, parse_time, v2_values, v3_values
from exporter.providers.smartcar.rotation import RenewalPolicy, RotatingToken
from exporter.providers.smartcar.settings import SmartcarSettings
from exporter.providers.smartcar.webhooks import (
    Dedupe,
    WebhookRejected,
    parse_envelope,
    verify_answer,
    verify_signature,
)
from exporter.signals import Value
from exporter.snapshot import Snapshot, VehicleInfo

log = logging.getLogger(__name__)

NAME: Final = "smartcar"
COMMAND_PATHS: Final = {
    "lock": ("/security", {"action": "LOCK"}, "control_security"),
    "unlock": ("/security", {"action": "UNLOCK"}, "control_security"),
    "charge_start": ("/charge", {"action": "START"}, "control_charge"),
    "charge_stop": ("/charge", {"action": "STOP"}, "control_charge"),
    "charge_limit": ("/charge/limit", {}, "control_charge"),
}


@dataclass
class VehicleRef:
    vehicle_id: str
    connection: str
    info: VehicleInfo
    permissions: tuple[str, ...]
    paths: list[str]


@dataclass
class Connection:
    id: str
    token: RotatingToken
    user_id: str = ""
    vins: list[str] = field(default_factory=list)
    renewal: asyncio.Task[None] | None = None


@dataclass
class Reauth:
    """A vehicle whose connection only the owner can repair."""

    reason: str
    url: str  # where the owner fixes it (our own reconnect page)
    since: float
    last_probe: float
    from_webhook: str = ""  # the VEHICLE_ERROR key that raised it, cleared by its RESOLVED


@dataclass
class WebhookResult:
    status: int
    body: dict[str, Any]
    snapshot: Snapshot | None = None
    outcome: str = ""


class SmartcarProvider(BaseProvider):
    """One Smartcar application (``[[accounts]]`` entry) and every car connected to it.

    What arrives outside a poll (a Connect grant, a webhook, a repaired connection) goes to
    ``sink``; without one (a bench, a test of the client alone) it is only returned.
    """

    name = NAME

    def __init__(
        self,
        settings: SmartcarSettings,
        session: aiohttp.ClientSession,
        clock: Clock,
        store: TokenStore,
        sink: Sink | None = None,
    ) -> None:
        self.settings = settings
        self.sink = sink
        self._http = session
        # a simulator account's Dashboard registration: (admin URL, webhook callback or None)
        self.dashboard: tuple[str, str | None] | None = None
        self.account = settings.account
        self.clock = clock
        self.store = store
        self.client = SmartcarClient(session, settings, clock)
        self.budget = Budget(
            store,
            f"smartcar:{self.account}:budget",
            clock,
            per_vehicle=settings.budget_calls_per_vehicle,
            reserve=settings.budget_reserve_calls,
            app_per_month=settings.budget_app_calls_per_month,
        )
        self.policy = RenewalPolicy(renew_after=settings.token_renew_days * 86400.0)
        self._conns: dict[str, Connection] = {}
        self._vehicles: dict[str, VehicleRef] = {}
        self.reauth: dict[str, Reauth] = {}
        self.vehicle_errors: dict[str, dict[str, str]] = {}  # vin -> {TYPE:CODE -> user message}
        self.resolved_errors: dict[str, set[str]] = {}  # vin -> keys seen and since RESOLVED
        self._signal_times: dict[str, dict[str, float]] = {}
        self._failures: Counter[tuple[str, str]] = Counter()  # (vin, kind) consecutive
        self.webhook_seen: dict[str, float] = {}
        self.webhook_events: Counter[tuple[str, str]] = Counter()  # (event type, outcome)
        self.verified_at: float | None = None
        self.dedupe = Dedupe()
        self._started = False

    # --- persistence ------------------------------------------------------------------------------
    @property
    def _index_key(self) -> str:
        return f"smartcar:{self.account}:index"

    def _conn_key(self, conn_id: str) -> str:
        return f"smartcar:{self.account}:conn:{conn_id}"

    def _save_index(self) -> None:
        self.store.save(self._index_key, {"connections": sorted(self._conns)})

    def _token(self, conn_id: str) -> RotatingToken:
        return RotatingToken(
            self.store, self._conn_key(conn_id), self.clock, self.client.refresh, self.policy
        )

    def _adopt(self, conn: Connection, vehicles: Sequence[Mapping[str, Any]]) -> list[VehicleInfo]:
        infos = []
        conn.vins = []
        for v in vehicles:
            vin = str(v.get("vin", ""))
            if not vin:
                continue
            perms = tuple(str(p) for p in v.get("permissions", []))
            info = VehicleInfo(
                vin=vin,
                provider=NAME,
                make=str(v.get("make", "")).title(),
                model=str(v.get("model", "")),
                year=str(v.get("year", "")),
                account=self.account,
            )
            self._vehicles[vin] = VehicleRef(
                str(v["id"]), conn.id, info, perms, list(scopes.paths_for(perms, self.settings))
            )
            conn.vins.append(vin)
            infos.append(info)
        return infos

    # --- Provider protocol ------------------------------------------------------------------------
    async def start(self) -> None:
        """Load stored connections (no network: polling starts with what the vault holds)."""
        if self._started:
            return
        if self.dashboard is not None:
            await self._register_with_simulator(*self.dashboard)
        self._started = True
        index = self.store.load(self._index_key) or {}
        ids = index.get("connections")
        for conn_id in ids if isinstance(ids, list) else []:
            token = self._token(str(conn_id))
            if not token.load():
                continue
            extra = token.extra
            conn = Connection(str(conn_id), token, str(extra.get("user_id") or ""))
            self._conns[conn.id] = conn
            vehicles = extra.get("vehicles")
            self._adopt(conn, list(vehicles) if isinstance(vehicles, list) else [])
            self._start_renewal(conn)
        if self._conns:
            log.info(
                "smartcar connections loaded",
                extra={"account": self.account, "vehicles": len(self._vehicles)},
            )

    async def _register_with_simulator(self, admin: str, webhook: str | None) -> None:
        """What a developer does once in Smartcar's Dashboard, done by request to the simulator:
        allow our redirect URI and point the webhook callback at us."""
        body = {"redirect_uri": self.settings.redirect_uri, "webhook_url": webhook}
        try:
            async with self._http.post(f"{admin}/{self.settings.client_id}", json=body) as resp:
                if resp.status != 200:
                    raise UpstreamUnavailable(
                        f"the simulator refused the Dashboard registration (HTTP {resp.status})",
                        code=str(resp.status),
                    )
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"simulator not reachable: {exc}") from None

    def _start_renewal(self, conn: Connection) -> None:
        if conn.renewal is None or conn.renewal.done():
            conn.renewal = asyncio.create_task(
                self._renew(conn), name=f"smartcar-renew-{conn.id[:8]}"
            )

    async def _renew(self, conn: Connection) -> None:
        """Proactive renewal; it only ends when Smartcar refused the refresh token for good."""
        await conn.token.run_renewal()
        if conn.token.pair is not None:
            for vin in conn.vins:
                self._mark_reauth(vin, "the refresh token was refused at renewal")

    async def vehicles(self) -> list[VehicleInfo]:
        """The cars of every connection, re-read from Smartcar: a car whose owner revoked access
        (or that left the account) is dropped. A connection that cannot be asked keeps its cars."""
        for conn in list(self._conns.values()):
            if conn.token.pair is None or not conn.vins:
                continue
            try:
                ids = set(await self._with_token(conn.vins[0], conn, self.client.vehicle_ids))
            except (ProviderError, SmartcarApiError) as exc:
                log.info(
                    "smartcar vehicle list not re-read; keeping the known cars",
                    extra={"account": self.account, "error": str(exc)[:200]},
                )
                continue
            gone = [v for v in conn.vins if self._vehicles[v].vehicle_id not in ids]
            if gone:
                self._drop_connection(conn, keep=set(gone))  # keep: the VINs that leave it
                self._save_index()
                for vin in gone:
                    self._vehicles.pop(vin, None)
                    self.reauth.pop(vin, None)
                    log.info(
                        "smartcar vehicle no longer connected",
                        extra={"vin": mask_vin(vin), "account": self.account},
                    )
        return [ref.info for ref in self._vehicles.values()]

    def supported_commands(self, vin: str) -> frozenset[str]:
        ref = self._vehicles.get(vin)
        if ref is None:
            return frozenset()
        return frozenset(n for n, (_, _, perm) in COMMAND_PATHS.items() if perm in ref.permissions)

    async def close(self) -> None:
        """Cancel every renewal (the proactive loops and any refresh in flight)."""
        for conn in self._conns.values():
            if conn.renewal is not None:
                conn.renewal.cancel()
        tasks = [c.renewal for c in self._conns.values() if c.renewal is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for conn in self._conns.values():
            await conn.token.close()

    def reauth_links(self) -> dict[str, str]:
        """VIN -> our reconnect page (relative: the exporter may sit behind a proxy)."""
        out = {}
        for vin in sorted(self.reauth):
            href = self.reconnect_url(vin)
            out[vin] = href[href.index("/connect/smartcar/reconnect") :]
        return out

    def known_vins(self) -> list[str]:
        return list(self._vehicles)

    def error_states(self, vin: str) -> dict[str, bool]:
        """Every VEHICLE_ERROR key seen for ``vin``: True while active, False once resolved."""
        out = dict.fromkeys(self.resolved_errors.get(vin, set()), False)
        out.update(dict.fromkeys(self.vehicle_errors.get(vin, {}), True))
        return out

    def vehicle_id(self, vin: str) -> str | None:
        ref = self._vehicles.get(vin)
        return ref.vehicle_id if ref else None

    def vin_of(self, vehicle_id: str) -> str | None:
        for vin, ref in self._vehicles.items():
            if ref.vehicle_id == vehicle_id:
                return vin
        return None

    # --- Connect ----------------------------------------------------------------------------------
    async def connect(self, code: str) -> list[VehicleInfo]:
        """Finish a Connect flow: exchange the code, commit the tokens, discover the vehicles."""
        pair = await self.client.exchange_code(code)
        conn_id = uuid.uuid4().hex
        conn = Connection(conn_id, self._token(conn_id))
        conn.token.install(pair, extra={"user_id": "", "vehicles": []})  # durable before use
        self._conns[conn.id] = conn
        self._save_index()
        access = await conn.token.access_token()
        conn.user_id = await self.client.user_id(access)
        found: list[dict[str, Any]] = []
        for vehicle_id in await self.client.vehicle_ids(access):
            items = await self.client.batch(access, vehicle_id, ["/", "/vin"])
            attrs = next((i.body for i in items if i.path == "/" and i.ok), {})
            vin_body = next((i.body for i in items if i.path == "/vin" and i.ok), {})
            vin = str(vin_body.get("vin") or "")
            if not vin:
                log.warning("smartcar vehicle without a readable VIN skipped")
                continue
            perms = await self.client.permissions(access, vehicle_id)
            self.budget.record(vin, 3)
            found.append(
                {
                    "id": vehicle_id,
                    "vin": vin,
                    "make": attrs.get("make", ""),
                    "model": attrs.get("model", ""),
                    "year": attrs.get("year", ""),
                    "permissions": perms,
                }
            )
        # a reconnect of the same owner replaces the older grants for the same cars
        vins = {v["vin"] for v in found}
        for old in [c for c in self._conns.values() if c.id != conn.id]:
            if old.user_id == conn.user_id or set(old.vins) <= vins:
                self._drop_connection(old, keep=vins)
        conn.token.update_extra(user_id=conn.user_id, vehicles=found)
        infos = self._adopt(conn, found)
        self._save_index()
        self._start_renewal(conn)
        for info in infos:
            self._clear_reauth(info.vin)
            self._failures.pop((info.vin, "rate"), None)
        if self.settings.webhooks and self.settings.webhook_id:
            for info in infos:
                await self._subscribe(conn, info.vin)
        if self.sink is not None:
            for info in infos:
                self.sink.vehicle_added(info)
                self.sink.request_poll(info.vin)
        log.info(
            "smartcar connected",
            extra={
                "account": self.account,
                "vehicles": ", ".join(mask_vin(i.vin) for i in infos) or "none",
            },
        )
        return infos

    async def _subscribe(self, conn: Connection, vin: str) -> None:
        ref = self._vehicles[vin]
        assert self.settings.webhook_id is not None
        try:
            self.budget.spend(vin, 1, reserve_ok=True)
            token = await conn.token.access_token()
            await self.client.subscribe(token, ref.vehicle_id, self.settings.webhook_id)
        except (ProviderError, SmartcarApiError) as exc:
            log.warning(
                "smartcar webhook subscription failed; polling continues",
                extra={"vin": mask_vin(vin), "error": str(exc)},
            )

    def _drop_connection(self, conn: Connection, keep: set[str]) -> None:
        remaining = [v for v in conn.vins if v not in keep]
        if remaining:
            conn.vins = remaining
            stored = conn.token.extra.get("vehicles")
            vehicles = [
                v
                for v in (stored if isinstance(stored, list) else [])
                if isinstance(v, dict) and v.get("vin") in remaining
            ]
            conn.token.update_extra(vehicles=vehicles)
            return
        if conn.renewal is not None:
            conn.renewal.cancel()
        conn.token.forget()
        self._conns.pop(conn.id, None)

    def reauthenticated(self, vehicle_id: str) -> str | None:
        """The owner finished Connect's re-authentication for ``vehicle_id``; returns the VIN."""
        vin = self.vin_of(vehicle_id)
        if vin is not None:
            self._clear_reauth(vin)
            if self.sink is not None:
                self.sink.request_poll(vin)
        return vin

    # --- re-authentication state ------------------------------------------------------------------
    def reconnect_url(self, vin: str) -> str:
        """Our own page that restarts Connect for this car (absolute, from the redirect URI)."""
        p = urlsplit(self.settings.redirect_uri)
        ref = self._vehicles.get(vin)
        query = urlencode({"account": self.account, "vehicle": ref.vehicle_id if ref else ""})
        return f"{p.scheme}://{p.netloc}/connect/smartcar/reconnect?{query}"

    def _mark_reauth(self, vin: str, reason: str, *, from_webhook: str = "") -> Reauth:
        now = self.clock.now()
        known = self.reauth.get(vin)
        if known is not None:
            known.reason = reason
            known.from_webhook = from_webhook or known.from_webhook
            return known
        r = Reauth(reason, self.reconnect_url(vin), now, now, from_webhook)
        self.reauth[vin] = r
        log.warning(
            "smartcar connection needs the owner to reconnect: open %s",
            r.url,
            extra={"vin": mask_vin(vin), "reason": reason, "account": self.account},
        )
        return r

    def _clear_reauth(self, vin: str) -> None:
        if self.reauth.pop(vin, None) is not None:
            log.info("smartcar connection repaired", extra={"vin": mask_vin(vin)})

    # --- polling ----------------------------------------------------------------------------------
    def min_poll_interval(self, vin: str) -> float:
        """The scheduler's floor: spread the month's budget; slower while webhooks deliver."""
        ref = self._vehicles.get(vin)
        cost = len(ref.paths) if ref and ref.paths else 1
        floor = self.budget.min_interval(vin, cost)
        now = self.clock.now()
        if self.webhooks_live(vin):
            floor = max(floor, self.settings.webhook_poll_interval)
        r = self.reauth.get(vin)
        if r is not None:
            floor = max(floor, r.last_probe + self.settings.reauth_probe_interval - now)
        return floor

    def webhooks_live(self, vin: str) -> bool:
        seen = self.webhook_seen.get(vin)
        return (
            self.settings.webhooks
            and seen is not None
            and self.clock.now() - seen < 2 * self.settings.webhook_poll_interval
        )

    def _error(self, vin: str, err: SmartcarError, *, command: bool = False) -> ProviderError:
        kind = (
            "rate" if err.type == "RATE_LIMIT" else ("state" if err.type == "VEHICLE_STATE" else "")
        )
        attempt = 1
        if kind:
            self._failures[(vin, kind)] += 1
            attempt = self._failures[(vin, kind)]
        if err.needs_reauth:
            self._mark_reauth(vin, err.key)
        if err.type == "BILLING" and err.code == "VEHICLE_REQUEST_LIMIT":
            self.budget.exhausted(vin)
        now = self.clock.now()
        return to_provider_error(
            err,
            command=command,
            reauth_url=self.reconnect_url(vin),
            attempt=attempt,
            month_end_in=month_end(now) - now,
        )

    async def _with_token(self, vin: str, conn: Connection, call: Callable[[str], Any]) -> Any:
        """Run ``call(access_token)``; on a 401 refresh once (single-flight) and retry."""
        try:
            token = await conn.token.access_token()
        except ReauthRequired as exc:
            for v in conn.vins:
                self._mark_reauth(v, f"token refresh refused ({exc.code})")
            raise ReauthRequired(
                str(exc), code=exc.code, reauth_url=self.reconnect_url(vin)
            ) from None
        try:
            return await call(token)
        except SmartcarApiError as exc:
            if exc.error.type != "AUTHENTICATION":
                raise
        try:
            token = await conn.token.refresh_now(token)
        except ReauthRequired as exc:
            for v in conn.vins:
                self._mark_reauth(v, f"token refresh refused ({exc.code})")
            raise ReauthRequired(
                str(exc), code=exc.code, reauth_url=self.reconnect_url(vin)
            ) from None
        return await call(token)

    async def poll(self, vin: str) -> PollResult:
        try:
            return PollResult(await self._read(vin))
        except ProviderError as exc:
            return PollResult(error=exc)

    async def _read(self, vin: str) -> Snapshot:
        ref = self._vehicles.get(vin)
        if ref is None:
            raise VehicleNotLinked("vehicle is not connected to this Smartcar account")
        conn = self._conns[ref.connection]
        now = self.clock.now()
        r = self.reauth.get(vin)
        if r is not None:
            if now - r.last_probe < self.settings.reauth_probe_interval:
                raise ReauthRequired(
                    f"waiting for the owner to reconnect ({r.reason})",
                    code=r.reason,
                    reauth_url=r.url,
                )
            r.last_probe = now  # one probe a day: an account fixed in the maker's app heals
        if not ref.paths:
            raise BadReply("none of the wanted signals is granted for this vehicle", code="scope")
        paths = list(ref.paths)
        self.budget.spend(vin, len(paths))
        spent = [False]

        async def call(token: str) -> Any:
            if spent[0]:
                self.budget.spend(vin, len(paths), reserve_ok=True)
            spent[0] = True
            return await self.client.batch(token, ref.vehicle_id, paths)

        try:
            items = await self._with_token(vin, conn, call)
        except SmartcarApiError as exc:
            raise self._error(vin, exc.error) from None
        values: dict[str, Value] = {}
        times: list[float] = []
        failed: list[tuple[str, SmartcarError]] = []
        for item in items:
            if item.ok:
                values.update(v2_values(item.path, item.body))
                t = parse_time(item.headers.get("sc-data-age"))
                if t is not None:
                    times.append(t)
            else:
                failed.append((item.path, parse_error(item.status, item.body)))
        for path, err in failed:
            # a path this car cannot serve, or (next to paths that worked) one the owner did not
            # grant: never pay for it again. A PERMISSION on every path is a grant problem instead.
            drop = err.type == "COMPATIBILITY" or (err.type == "PERMISSION" and bool(values))
            if drop and path in ref.paths:
                ref.paths.remove(path)
                log.info(
                    "smartcar path dropped from polling",
                    extra={"vin": mask_vin(vin), "path": path, "error": err.key},
                )
        failures = [err for _, err in failed]
        if not values:
            worst = next((f for f in failures if f.needs_reauth), None) or (
                failures[0] if failures else None
            )
            if worst is None:
                raise BadReply("batch reply held no data", code="empty")
            raise self._error(vin, worst)
        for f in failures:
            if f.needs_reauth and f.type != "PERMISSION":  # a per-path PERMISSION was dropped
                self._mark_reauth(vin, f.key)
        self._failures.pop((vin, "rate"), None)
        self._failures.pop((vin, "state"), None)
        if not any(f.needs_reauth and f.type != "PERMISSION" for f in failures):
            self._clear_reauth(vin)
        car_time = max(times) if times else now
        self._note_times(vin, values, car_time)
        return Snapshot.build(vin, NAME, car_time, self.clock.now(), values, source="poll")

    def _note_times(self, vin: str, values: Mapping[str, Value], t: float) -> None:
        now = self.clock.now()
        if from_the_future(t, now):
            return  # the hub refuses the report; its time must not make genuine signals "older"
        known = self._signal_times.setdefault(vin, {})
        for name in values:
            old = known.get(name, float("-inf"))
            if t > old or from_the_future(old, now):
                known[name] = t

    # --- commands ---------------------------------------------------------------------------------
    async def command(self, vin: str, command: Command) -> CommandReceipt:
        ref = self._vehicles.get(vin)
        if ref is None:
            raise VehicleNotLinked("vehicle is not connected to this Smartcar account")
        spec = COMMAND_PATHS.get(command.name)
        if spec is None or spec[2] not in ref.permissions:
            raise CommandRejected(
                f"{command.name} is not available for this vehicle via Smartcar",
                code="unsupported",
            )
        path, fixed, _ = spec
        payload: dict[str, Any] = dict(fixed)
        if command.name == "charge_limit":
            pct = command.params.get("percent", command.params.get("limit"))
            if not isinstance(pct, int | float) or isinstance(pct, bool):
                raise BadReply("charge_limit needs a percent parameter", code="params")
            payload = {"limit": round(float(pct) / 100.0 if pct > 1 else float(pct), 2)}
        conn = self._conns[ref.connection]
        self.budget.spend(vin, 1, reserve_ok=True)

        async def call(token: str) -> Any:
            return await self.client.action(token, ref.vehicle_id, path, payload)

        try:
            body = await self._with_token(vin, conn, call)
        except SmartcarApiError as exc:
            raise self._error(vin, exc.error, command=True) from None
        return CommandReceipt(
            accepted=body.get("status") == "success",
            reply=str(body.get("message") or body.get("status") or "")[:120],
        )

    # --- webhooks ---------------------------------------------------------------------------------
    def handle_webhook(self, raw: bytes, signature: str | None) -> WebhookResult:
        """Answer one POST to the webhook endpoint (see ``webhooks`` for the security rules); an
        accepted report goes to the sink."""
        result = self._webhook(raw, signature)
        snap = result.snapshot
        if snap is not None and self.sink is not None and self.sink.publish(snap) == Outcome.STALE:
            self.webhook_events[("VEHICLE_STATE", "older_than_poll")] += 1
        return result

    def _webhook(self, raw: bytes, signature: str | None) -> WebhookResult:
        amt = self.settings.management_token
        if not self.settings.webhooks or amt is None:
            return WebhookResult(404, {"error": "webhooks are not enabled"}, outcome="disabled")
        try:
            answer = verify_answer(amt.reveal(), raw)
        except WebhookRejected as exc:
            self.webhook_events[("VERIFY", "invalid")] += 1
            return WebhookResult(exc.status, {"error": exc.reason}, outcome="invalid")
        if answer is not None:
            self.verified_at = self.clock.now()
            self.webhook_events[("VERIFY", "answered")] += 1
            log.info("smartcar webhook VERIFY answered", extra={"account": self.account})
            return WebhookResult(200, answer, outcome="answered")
        if not verify_signature(amt.reveal(), raw, signature):
            self.webhook_events[("unknown", "bad_signature")] += 1
            log.warning("smartcar webhook with a bad or missing SC-Signature refused")
            return WebhookResult(401, {"error": "invalid signature"}, outcome="bad_signature")
        try:
            env = parse_envelope(raw)
        except WebhookRejected as exc:
            self.webhook_events[("unknown", "invalid")] += 1
            return WebhookResult(exc.status, {"error": exc.reason}, outcome="invalid")
        now = self.clock.now()
        etype = env.event_type if env.event_type in ("VEHICLE_STATE", "VEHICLE_ERROR") else "other"
        if self.dedupe.seen(env.event_id, now):
            self.webhook_events[(etype, "duplicate")] += 1
            return WebhookResult(200, {"status": "duplicate"}, outcome="duplicate")
        vin = self.vin_of(env.vehicle_id or "")
        if vin is None:
            self.webhook_events[(etype, "unknown_vehicle")] += 1
            log.info("smartcar webhook for a vehicle not connected here ignored")
            return WebhookResult(200, {"status": "ignored"}, outcome="unknown_vehicle")
        try:
            if env.event_type == "VEHICLE_STATE":
                return self._vehicle_state(vin, env, now)
            if env.event_type == "VEHICLE_ERROR":
                return self._vehicle_error(vin, env)
        except Exception:
            self.dedupe.forget(env.event_id)  # let Smartcar's retry try again
            raise
        self.webhook_events[("other", "ignored")] += 1
        return WebhookResult(200, {"status": "ignored"}, outcome="ignored")

    def _vehicle_state(self, vin: str, env: Any, now: float) -> WebhookResult:
        known = {  # a time from the future (kept before the bound existed) orders nothing
            k: t
            for k, t in self._signal_times.setdefault(vin, {}).items()
            if not from_the_future(t, now)
        }
        accepted: dict[str, Value] = {}
        times: list[float] = []
        stale = 0
        for sig in env.signals:
            if sig.body is None:
                continue
            t = sig.oem_updated_at or env.delivered_at or now
            vals = v3_values(sig.code, sig.body)
            fresh = {
                k: v
                for k, v in vals.items()
                if t >= known.get("charging_state" if k == "_charging" else k, float("-inf"))
            }
            stale += len(vals) - len(fresh)
            if fresh:
                accepted.update(fresh)
                times.append(t)
        values = finish_v3(accepted)
        self.webhook_seen[vin] = now
        if not values:
            self.webhook_events[("VEHICLE_STATE", "stale")] += 1
            return WebhookResult(200, {"status": "stale"}, outcome="stale")
        car_time = max(times)
        self._note_times(vin, values, car_time)
        snap = Snapshot.build(vin, NAME, car_time, now, values, source="webhook")
        self.webhook_events[("VEHICLE_STATE", "accepted")] += 1
        if stale:
            log.debug("smartcar webhook: older signals ignored", extra={"count": stale})
        return WebhookResult(200, {"status": "ok"}, snapshot=snap, outcome="accepted")

    def _vehicle_error(self, vin: str, env: Any) -> WebhookResult:
        active = self.vehicle_errors.setdefault(vin, {})
        for err in env.errors:
            key = err.key
            if err.state == "RESOLVED":
                self.resolved_errors.setdefault(vin, set()).add(key)
                if active.pop(key, None) is not None:
                    log.info(
                        "smartcar vehicle error resolved",
                        extra={"vin": mask_vin(vin), "error": key},
                    )
                r = self.reauth.get(vin)
                if r is not None and r.from_webhook == key:
                    self._clear_reauth(vin)
                continue
            active[key] = err.user_message or err.description
            log.warning(
                "smartcar vehicle error: %s",
                err.user_message or err.description or key,
                extra={"vin": mask_vin(vin), "error": key, "resolution": err.resolution or ""},
            )
            needs = err.type == "PERMISSION" or (
                err.type == "CONNECTED_SERVICES_ACCOUNT"
                and err.code in ("ACCOUNT_ISSUE", "AUTHENTICATION_FAILED", "PERMISSION")
            )
            if needs or err.resolution == "REAUTHENTICATE":
                self._mark_reauth(vin, key, from_webhook=key)
        self.webhook_events[("VEHICLE_ERROR", "accepted")] += 1
        return WebhookResult(200, {"status": "ok"}, outcome="accepted")


__all__ = ["NAME", "AuthError", "SmartcarProvider", "WebhookResult"]
