"""The Smartcar API v3 provider: one application token, cars discovered from ``/connections``.

What changes against v2 (smartcar-v3.md §0.2, §5.3) and shapes this class:

- There are no per-car tokens to store or rotate: the application token is fetched on demand.
  The vault only keeps the budget counts and a VIN cache (a VIN costs one billed signal read).
- Cars come from ``GET /connections`` (all users of the application), which is also how owners
  connected under v2 are back-filled on migration; a connection that disappears (revoked, deleted
  user) takes its car out at the next re-listing. Connect only names the user (``user_id``).
- A poll is one ``GET /signals`` for the car's user (``sc-user-id``); what it costs in billed calls
  is the ``signals_cost`` setting (open question in the reference), and the budget follows it.
- Webhooks are payload 4.0 (``V3WebhookReceiver``); an accepted report goes to the sink.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

import aiohttp

from exporter.clock import Clock
from exporter.hub import Outcome
from exporter.logs import mask_vin
from exporter.providers.base import (
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
from exporter.providers.smartcar.budget import Budget
from exporter.providers.smartcar.errors import SmartcarError
from exporter.providers.smartcar.v3_client import (
    ConnectionInfo,
    SmartcarV3Client,
    SmartcarV3Error,
    V3Urls,
)
from exporter.providers.smartcar.v3_errors import v3_provider_error
from exporter.providers.smartcar.v3_settings import SmartcarV3Settings
from exporter.providers.smartcar.v3_token import AppTokenSource
from exporter.providers.smartcar.v3_webhooks import V3WebhookReceiver
from exporter.snapshot import Snapshot, VehicleInfo

log = logging.getLogger(__name__)

NAME: Final = "smartcar"
# carmetrics command -> the permission its v3 path needs [INF from v2 names, smartcar-v3.md §2.5]
COMMAND_PERMISSIONS: Final = {
    "lock": "control_security",
    "unlock": "control_security",
    "charge_start": "control_charge",
    "charge_stop": "control_charge",
    "charge_limit": "control_charge",
}


@dataclass
class V3Vehicle:
    vehicle_id: str
    user_id: str
    info: VehicleInfo
    permissions: tuple[str, ...]


@dataclass(frozen=True)
class WebhookResult:
    status: int
    body: dict[str, Any]
    snapshot: Snapshot | None = None
    outcome: str = ""


class SmartcarV3Provider(BaseProvider):
    """One Smartcar application (``[[accounts]]`` entry with ``api_version = 3``)."""

    name = NAME

    def __init__(
        self,
        settings: SmartcarV3Settings,
        session: aiohttp.ClientSession,
        clock: Clock,
        store: TokenStore,
        sink: Sink | None = None,
    ) -> None:
        self.settings = settings
        self.account = settings.account
        self.sink = sink
        self.clock = clock
        self.store = store
        self._http = session
        tokens = AppTokenSource(
            session, settings.token_url, settings.client_id, settings.client_secret, clock
        )
        self.client = SmartcarV3Client(
            session,
            V3Urls(settings.iam_url, settings.vehicle_api_url, settings.management_api_url),
            tokens,
            command_timeout=settings.command_timeout,
            mode=settings.mode,
        )
        self.budget = Budget(
            store,
            f"smartcar:{self.account}:budget",
            clock,
            per_vehicle=settings.budget_calls_per_vehicle,
            reserve=settings.budget_reserve_calls,
            app_per_month=settings.budget_app_calls_per_month,
        )
        self.receiver = (
            V3WebhookReceiver(settings.management_token, clock)
            if settings.management_token is not None
            else None
        )
        # a simulator account's Dashboard registration: (admin URLs, webhook callback or None)
        self.dashboard: tuple[str, str, str | None] | None = None
        self._vehicles: dict[str, V3Vehicle] = {}
        self._vin_cache: dict[str, str] = {}  # vehicle id -> VIN (a VIN read is billed)
        self.reauth: dict[str, str] = {}
        self.vehicle_errors: dict[str, dict[str, str]] = {}
        self.resolved_errors: dict[str, set[str]] = {}
        self.webhook_seen: dict[str, float] = {}
        self.webhook_events: Counter[tuple[str, str]] = Counter()
        self._subscribed: set[str] = set()

    # --- persistence ------------------------------------------------------------------------------
    @property
    def _vin_key(self) -> str:
        return f"smartcar:{self.account}:v3:vins"

    def _save_vins(self) -> None:
        self.store.save(self._vin_key, {"vins": dict(self._vin_cache)})

    # --- Provider protocol ------------------------------------------------------------------------
    async def start(self) -> None:
        got = self.store.load(self._vin_key) or {}
        vins = got.get("vins")
        if isinstance(vins, dict):
            self._vin_cache = {str(k): str(v) for k, v in vins.items()}
        if self.dashboard is not None:
            await self._register_with_simulator(*self.dashboard)

    async def _register_with_simulator(
        self, apps_admin: str, hooks_admin: str, webhook: str | None
    ) -> None:
        """What a developer does once in the Dashboard, done by request to the simulator: allow
        our redirect URI for the Application ID and point the webhook's callback at us."""
        calls = [
            (
                f"{apps_admin}/{self.settings.application_id}",
                {"redirect_uri": self.settings.redirect_uri},
            )
        ]
        if webhook and self.settings.webhook_id:
            calls.append((f"{hooks_admin}/{self.settings.webhook_id}", {"callback_uri": webhook}))
        for url, body in calls:
            try:
                async with self._http.post(url, json=body) as resp:
                    if resp.status != 200:
                        raise UpstreamUnavailable(
                            f"the simulator refused the Dashboard registration (HTTP {resp.status})"
                        )
            except aiohttp.ClientError as exc:
                raise UpstreamUnavailable(f"simulator not reachable: {exc}") from None

    async def vehicles(self) -> list[VehicleInfo]:
        """Every car connected to the application now; a car whose connection went is dropped.
        When ``/connections`` cannot be read the known cars stay."""
        try:
            conns = await self.client.connections()
        except (ProviderError, SmartcarV3Error) as exc:
            if not self._vehicles:
                raise _provider_error(exc) from None
            log.info(
                "smartcar connections not re-read; keeping the known cars",
                extra={"account": self.account, "error": str(exc)[:200]},
            )
            return [v.info for v in self._vehicles.values()]
        seen: dict[str, V3Vehicle] = {}
        for conn in conns:
            ref = await self._adopt(conn)
            if ref is not None and ref.info.vin not in seen:
                seen[ref.info.vin] = ref
        for vin in set(self._vehicles) - set(seen):
            log.info(
                "smartcar vehicle no longer connected",
                extra={"vin": mask_vin(vin), "account": self.account},
            )
        self._vehicles = seen
        if self.settings.webhooks and self.settings.webhook_id:
            for ref in seen.values():
                await self._subscribe(ref)
        return [v.info for v in seen.values()]

    async def _adopt(self, conn: ConnectionInfo) -> V3Vehicle | None:
        vin = self._vin_cache.get(conn.vehicle_id)
        if vin is None:
            try:
                item = await self.client.signal(
                    conn.user_id, conn.vehicle_id, "vehicleidentification-vin"
                )
            except (ProviderError, SmartcarV3Error) as exc:
                log.warning(
                    "smartcar vehicle without a readable VIN skipped",
                    extra={"account": self.account, "error": str(exc)[:200]},
                )
                return None
            attrs = item.get("attributes")
            body = attrs.get("body") if isinstance(attrs, Mapping) else None
            value = body.get("value") if isinstance(body, Mapping) else None
            if not isinstance(value, str) or len(value) != 17:
                return None
            vin = value
            self.budget.record(vin, 1)
            self._vin_cache[conn.vehicle_id] = vin
            self._save_vins()
        info = VehicleInfo(
            vin=vin,
            provider=NAME,
            make=conn.make.title(),
            model=conn.model,
            year=str(conn.year or ""),
            account=self.account,
        )
        return V3Vehicle(conn.vehicle_id, conn.user_id, info, conn.permissions)

    async def _subscribe(self, ref: V3Vehicle) -> None:
        key = f"{ref.user_id}/{ref.vehicle_id}"
        if key in self._subscribed or self.settings.webhook_id is None:
            return
        try:
            await self.client.subscribe(self.settings.webhook_id, ref.user_id, ref.vehicle_id)
            self._subscribed.add(key)  # created (202) or already there (409): both fine
        except (ProviderError, SmartcarV3Error) as exc:
            log.warning(
                "smartcar webhook subscription failed; polling continues",
                extra={"vin": mask_vin(ref.info.vin), "error": str(exc)[:200]},
            )

    async def connected(self, user_id: str) -> list[VehicleInfo]:
        """Connect named ``user_id``: re-list, and announce that user's cars."""
        before = set(self._vehicles)
        await self.vehicles()
        infos = [v.info for v in self._vehicles.values() if v.user_id == user_id]
        if self.sink is not None:
            for info in infos:
                if info.vin not in before:
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

    def supported_commands(self, vin: str) -> frozenset[str]:
        ref = self._vehicles.get(vin)
        if ref is None or not self.settings.commands:
            return frozenset()
        return frozenset(n for n, p in COMMAND_PERMISSIONS.items() if p in ref.permissions)

    def reconnect_url(self, vin: str) -> str:
        """Our own page that restarts Connect for this car (absolute, from the redirect URI)."""
        p = urlsplit(self.settings.redirect_uri)
        query = urlencode({"account": self.account, "vehicle": self.vehicle_id(vin) or ""})
        return f"{p.scheme}://{p.netloc}/connect/smartcar/reconnect?{query}"

    def reauth_links(self) -> dict[str, str]:
        """VIN -> our reconnect page (relative: the exporter may sit behind a proxy)."""
        out = {}
        for vin in sorted(self.reauth):
            href = self.reconnect_url(vin)
            out[vin] = href[href.index("/connect/smartcar/reconnect") :]
        return out

    def _mark_reauth(self, vin: str, code: str) -> None:
        """Remember that only the owner can fix the car's connection; said once in the log."""
        if vin not in self.reauth:
            log.warning(
                "smartcar connection needs the owner to reconnect: open %s",
                self.reconnect_url(vin),
                extra={"vin": mask_vin(vin), "code": code, "account": self.account},
            )
        self.reauth[vin] = code

    def known_vins(self) -> list[str]:
        return list(self._vehicles)

    def vehicle_id(self, vin: str) -> str | None:
        ref = self._vehicles.get(vin)
        return ref.vehicle_id if ref else None

    def vin_of(self, vehicle_id: str) -> str | None:
        return next((v for v, r in self._vehicles.items() if r.vehicle_id == vehicle_id), None)

    def error_states(self, vin: str) -> dict[str, bool]:
        out = dict.fromkeys(self.resolved_errors.get(vin, set()), False)
        out.update(dict.fromkeys(self.vehicle_errors.get(vin, {}), True))
        return out

    # --- polling ----------------------------------------------------------------------------------
    def min_poll_interval(self, vin: str) -> float:
        """Spread the month's budget at ``signals_cost`` calls per poll; slower while webhooks
        deliver."""
        floor = self.budget.min_interval(vin, self.settings.signals_cost)
        seen = self.webhook_seen.get(vin)
        live = (
            self.settings.webhooks
            and seen is not None
            and self.clock.now() - seen < 2 * self.settings.webhook_poll_interval
        )
        return max(floor, self.settings.webhook_poll_interval) if live else floor

    async def poll(self, vin: str) -> PollResult:
        ref = self._vehicles.get(vin)
        if ref is None:
            return PollResult(error=VehicleNotLinked("vehicle is not connected to this account"))
        try:
            self.budget.spend(vin, self.settings.signals_cost)
            parsed = await self.client.read(ref.user_id, ref.vehicle_id)
        except ProviderError as exc:
            if exc.code == "BILLING:VEHICLE_REQUEST_LIMIT":
                self.budget.exhausted(vin)
            if isinstance(exc, ReauthRequired):  # only the owner can fix it: a new Connect
                self._mark_reauth(vin, exc.code)
                exc.reauth_url = exc.reauth_url or self.reconnect_url(vin)
            return PollResult(error=exc)
        now = self.clock.now()
        if not parsed.values:
            common = _common_error(parsed.absent)
            if common is not None:
                # every signal failed the same way (the per-signal form of an account or vehicle
                # error [DOC get-signal example: CONNECTED_SERVICES_ACCOUNT, REAUTHENTICATE])
                failed = v3_provider_error(common)
                if isinstance(failed, ReauthRequired):
                    self._mark_reauth(vin, failed.code)
                    failed.reauth_url = self.reconnect_url(vin)
                return PollResult(error=failed)
            # e.g. the signal store is still empty (filled once the car is subscribed)
            return PollResult(error=UpstreamUnavailable("no signal values yet", code="empty"))
        self.reauth.pop(vin, None)
        car_time = parsed.newest or now
        values = {k: v for k, v in parsed.values.items() if k != "last_update"}
        return PollResult(Snapshot.build(vin, NAME, car_time, now, values))

    # --- commands ---------------------------------------------------------------------------------
    def validate_command(self, vin: str, command: Command) -> None:
        if command.name not in COMMAND_PERMISSIONS:
            raise CommandRejected(
                f"{command.name} is not a Smartcar v3 command", code="unsupported"
            )
        if command.name == "charge_limit":
            percent = command.params.get("percent")
            if isinstance(percent, bool) or not isinstance(percent, int | float):
                raise CommandRejected("charge_limit needs percent", code="VALIDATION")
            if not 50 <= percent <= 100 or int(percent) != percent:
                raise CommandRejected("percent must be a whole number 50-100", code="VALIDATION")

    async def command(self, vin: str, command: Command) -> CommandReceipt:
        ref = self._vehicles.get(vin)
        if ref is None:
            raise VehicleNotLinked("vehicle is not connected to this account")
        self.validate_command(vin, command)
        if command.name not in self.supported_commands(vin):
            raise CommandRejected(f"{command.name} is not granted for this car", code="PERMISSION")
        self.budget.spend(vin, 1, reserve_ok=True)
        percent = command.params.get("percent")
        return await self.client.command(
            ref.user_id,
            ref.vehicle_id,
            command.name,
            int(percent) if isinstance(percent, int | float) else None,
        )

    # --- webhooks ---------------------------------------------------------------------------------
    def handle_webhook(self, raw: bytes, headers: Mapping[str, str]) -> WebhookResult:
        """Answer a delivery; an accepted report goes to the sink."""
        if self.receiver is None:
            return WebhookResult(404, {"error": "webhooks are not configured"})
        out = self.receiver.handle(raw, headers)
        env = out.envelope
        kind = env.event_type if env is not None else ("VERIFY" if out.reply else "invalid")
        if out.reply is not None:
            self.webhook_events[("VERIFY", "answered")] += 1
            return WebhookResult(200, out.reply, outcome="verified")
        if out.status >= 400 or env is None:
            self.webhook_events[(kind, "rejected")] += 1
            return WebhookResult(out.status, {"error": "rejected"}, outcome="rejected")
        if out.duplicate:
            self.webhook_events[(kind, "duplicate")] += 1
            return WebhookResult(200, {"status": "duplicate"}, outcome="duplicate")
        vin = self.vin_of(env.vehicle_id or "")
        if vin is None:
            self.webhook_events[(kind, "unknown_vehicle")] += 1
            return WebhookResult(200, {"status": "ignored"}, outcome="unknown_vehicle")
        self.webhook_seen[vin] = self.clock.now()
        if kind == "VEHICLE_ERROR":
            for e in env.errors:
                active = self.vehicle_errors.setdefault(vin, {})
                if e.state == "RESOLVED":
                    active.pop(e.key, None)
                    self.resolved_errors.setdefault(vin, set()).add(e.key)
                else:
                    active[e.key] = e.user_message or e.description
            self.webhook_events[(kind, "recorded")] += 1
            return WebhookResult(200, {"status": "ok"}, outcome="recorded")
        parsed = out.parsed
        if parsed is None or not parsed.values:
            self.webhook_events[(kind, "empty")] += 1
            return WebhookResult(200, {"status": "ok"}, outcome="empty")
        now = self.clock.now()
        values = {k: v for k, v in parsed.values.items() if k != "last_update"}
        snap = Snapshot.build(vin, NAME, parsed.newest or now, now, values, source="webhook")
        outcome = "accepted"
        if self.sink is not None and self.sink.publish(snap) == Outcome.STALE:
            outcome = "stale"
        self.webhook_events[(kind, outcome)] += 1
        return WebhookResult(200, {"status": "ok"}, snapshot=snap, outcome=outcome)


def _common_error(absent: Mapping[str, str]) -> SmartcarError | None:
    """The one ``ERROR:<type>:<code>`` the failed signals share, leaving out what fails for good
    on this car (COMPATIBILITY: not fitted; PERMISSION: not granted) and UNAVAILABLE values."""
    keys = {
        v
        for v in absent.values()
        if v.startswith("ERROR:") and not v.startswith(("ERROR:COMPATIBILITY", "ERROR:PERMISSION"))
    }
    if len(keys) != 1:
        return None
    (key,) = keys
    parts = key.split(":")
    if parts[0] != "ERROR" or len(parts) < 2:
        return None
    code = parts[2] if len(parts) > 2 and parts[2] else None
    return SmartcarError(status=0, type=parts[1], code=code, description="every signal failed")


def _provider_error(exc: Exception) -> ProviderError:
    if isinstance(exc, SmartcarV3Error):
        return v3_provider_error(exc.error)
    if isinstance(exc, ProviderError):
        return exc
    return BadReply(str(exc)[:200])
