"""The smart cloud as a :class:`~exporter.providers.base.Provider`.

One instance is one account. The cloud binds an account's session to one "selected" vehicle at a
time, so every VIN-scoped sequence (select, status, soc, state / a command) runs under a per-account
lock, and each data call also carries the ``X-Vehicle-*`` binding headers. A call that fails for a
reason with a known remedy gets that remedy once: a renewed token (1402), a re-selection
(8006/4038/8160) or the other API host (8063/8060). Everything else surfaces as a typed error, and a
snapshot is all-or-nothing: status and soc must both arrive, otherwise nothing is returned.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import quote

import aiohttp

from exporter.clock import Clock
from exporter.config import AccountConfig
from exporter.journal import JournalTrip
from exporter.providers.base import (
    BadReply,
    BaseProvider,
    Command,
    CommandReceipt,
    CommandRejected,
    PollResult,
    ProviderError,
    RateLimited,
    TokenStore,
    UpstreamUnavailable,
    VehicleNotLinked,
)
from exporter.providers.smart import commands
from exporter.providers.smart.auth import ApiSession, Authenticator
from exporter.providers.smart.breaker import BREAKERS, BreakerRegistry
from exporter.providers.smart.errors import (
    TokenExpired,
    VehicleNotSelected,
    VehicleUnbound,
    WrongHost,
)
from exporter.providers.smart.hosts import SmartHosts
from exporter.providers.smart.journal import JOURNAL, JournalReader
from exporter.providers.smart.parse import parse_status, to_snapshot
from exporter.providers.smart.settings import SmartSettings, read_settings
from exporter.providers.smart.transport import Reply, SignedApi, Transport, mask_path
from exporter.providers.smart.vehicles import VehicleRecord, parse_vehicle_list
from exporter.snapshot import Snapshot, VehicleInfo

log = logging.getLogger("exporter.providers.smart")

VEHICLE_LIST: Final = "/device-platform/user/vehicle/secure"
SELECT: Final = "/device-platform/user/session/update"
STATUS: Final = "/remote-control/vehicle/status/{vin}"
SOC: Final = "/remote-control/vehicle/status/soc/{vin}"
STATE: Final = "/remote-control/vehicle/status/state/{vin}"
DC_INFO: Final = "/geelyTCAccess/tcservices/vehicle/status/qrvs/{vin}"  # the #5's DC charge info
TELEMATICS: Final = "/remote-control/vehicle/telematics/{vin}"
STATUS_QUERY: Final = (("latest", "True"), ("target", "basic,more"))
SOC_QUERY: Final = (("setting", "charging"),)
UNBOUND_LIMIT: Final = 3  # 8040 is a race right after a refresh until it repeats this often


class SmartProvider(BaseProvider):
    """Provider for one smart account (EU or INTL)."""

    name = "smart"
    # Send the X-Vehicle-* headers that bind each data call to its VIN. Without them every call
    # depends on the account-wide selection, which another app can change at any moment.
    bind_vin_headers = True

    def __init__(
        self,
        account: AccountConfig | SmartSettings,
        session: aiohttp.ClientSession,
        clock: Clock,
        tokens: TokenStore,
        hosts: SmartHosts | None = None,
        *,
        sim_urls: Mapping[str, str] | None = None,
        breakers: BreakerRegistry | None = None,
    ) -> None:
        # an AccountConfig is validated here (tools, tests); the registry passes SmartSettings
        if isinstance(account, AccountConfig):
            self.settings = read_settings(account, hosts, sim_urls)
            self.account = account.name
        else:
            self.settings = account
            self.account = account.account
        self._clock = clock
        region = self.settings.region
        self.transport = Transport(
            session, self.settings.hosts, clock, timeout=self.settings.request_timeout
        )
        self.api = SignedApi(self.transport, region, region.new_device_id())
        self.auth = Authenticator(
            api=self.api,
            region=region,
            username=self.settings.username,
            password=self.settings.password,
            store=tokens,
            store_key=f"smart:{self.account}",
            clock=clock,
            breaker=(breakers or BREAKERS).for_user(region.name, self.settings.username),
        )
        self._vehicles: dict[str, VehicleRecord] = {}
        self._lock = asyncio.Lock()  # one selected car per account
        self._last_soc: dict[str, object] = {}  # VIN -> last good status/soc reply (charge limit)
        self._selected: tuple[str, str] | None = None  # (vin, access token it was selected with)
        self._unbound: dict[str, int] = {}  # consecutive 8040 answers per VIN
        self._journal = JournalReader(self._journal_call, self._access_token, self.account)
        # per car, built on its first call and reused by every poll (a record is immutable, so a
        # replaced record - the other API host - gets its own entry): the binding headers, which
        # are never changed after they are built, and each data path with the VIN filled in
        self._bindings: dict[VehicleRecord, Mapping[str, str]] = {}
        self._paths: dict[tuple[str, str], str] = {}

    # -- Provider protocol ---------------------------------------------------------------------

    async def start(self) -> None:
        await self.auth.session()

    async def vehicles(self) -> list[VehicleInfo]:
        reply = await self._call(
            "GET", self.transport.hosts.api_v1, VEHICLE_LIST, query=[("needSharedCar", "1")]
        )
        records = parse_vehicle_list(reply.data)
        wanted = self.settings.vins
        if wanted is not None:
            missing = wanted - {r.vin for r in records}
            if missing:
                log.warning(
                    "smart %s: %d configured VIN(s) not on the account", self.account, len(missing)
                )
            records = [r for r in records if r.vin in wanted]
        self._vehicles = {r.vin: self._vehicles.get(r.vin, r) for r in records}
        kept = set(self._vehicles.values())  # a car that left takes its cached headers with it
        self._bindings = {r: h for r, h in self._bindings.items() if r in kept}
        self._paths = {k: p for k, p in self._paths.items() if k[1] in self._vehicles}
        return [r.info(self.account) for r in self._vehicles.values()]

    async def poll(self, vin: str) -> PollResult:
        try:
            return await self._poll(vin)
        except ProviderError as exc:
            return PollResult(error=exc)

    async def _poll(self, vin: str) -> PollResult:
        rec = await self._record(vin)
        status = await self._vin_call(rec, "GET", STATUS, query=STATUS_QUERY, user=True)
        try:
            soc = await self._vin_call(rec, "GET", SOC, query=SOC_QUERY)
        except ProviderError as exc:
            # the report itself (status) was read: keep it, with the last known charge
            # limit, and let the poll still count as failed for backoff/Retry-After
            return PollResult(self._status_only(vin, rec, status.data), exc)
        self._last_soc[vin] = soc.data
        limited: list[RateLimited] = []  # a Retry-After on an optional call ends the poll's calls
        state = await self._best_effort(rec, STATE, limited)  # only sharpens power_state
        dc_info = None
        if rec.v2 and _dc_connected(status.data) and not limited:
            dc_info = await self._best_effort(rec, DC_INFO, limited)  # measured DC volts and amps
        try:
            parsed = parse_status(
                status.data,
                soc.data,
                state.data if state else None,
                series=rec.series,
                dc_info=dc_info.data if dc_info else None,
            )
            snap = to_snapshot(vin, parsed, self._clock.now())
        except ValueError as exc:  # a value the signal table refuses: a parser bug, keep old data
            raise BadReply(f"status reply could not be converted: {exc}") from None
        # with a Retry-After the report is still complete: the scheduler stores it and honours it
        return PollResult(snap, limited[0] if limited else None)

    def _status_only(self, vin: str, rec: VehicleRecord, status: object) -> Snapshot | None:
        """The report from the status reply alone (charge limit from the last soc reply seen)."""
        try:
            parsed = parse_status(status, self._last_soc.get(vin), series=rec.series)
            return to_snapshot(vin, parsed, self._clock.now())
        except (ValueError, ProviderError):
            return None

    async def _best_effort(
        self, rec: VehicleRecord, path: str, limited: list[RateLimited]
    ) -> Reply | None:
        """An optional call: its failure costs only its detail, except a Retry-After, which is
        collected so no further request for the car is sent before it expires."""
        try:
            return await self._vin_call(rec, "GET", path)
        except RateLimited as exc:
            limited.append(exc)
            return None
        except ProviderError as exc:
            log.debug("smart %s: optional %s skipped (code %s)", self.account, path, exc.code)
            return None

    def supported_commands(self, vin: str) -> frozenset[str]:
        return commands.SUPPORTED

    def validate_command(self, vin: str, command: Command) -> None:
        """Raise CommandRejected for parameters this cloud cannot encode (a charge limit off the
        5 % grid), before anything is sent; the command API answers such a request with 422."""
        rec = self._vehicles.get(vin)
        commands.build(command, rec.series if rec else "")

    async def command(self, vin: str, command: Command) -> CommandReceipt:
        rec = await self._record(vin)
        call = commands.build(command, rec.series)
        session = await self.auth.session()
        body = call.body(str(int(self._clock.now() * 1000)), session.user_id)
        try:
            # commands always select the car first, as the apps do
            reply = await self._vin_call(rec, "PUT", TELEMATICS, body=body, select=True)
        except ProviderError as exc:
            if _is_refusal(exc):
                raise CommandRejected(
                    f"the smart cloud refused {command.name}", code=exc.code
                ) from None
            raise
        data = reply.data if isinstance(reply.data, dict) else {}
        result = data.get("serviceResult")
        error = result.get("error") if isinstance(result, dict) else None
        if error:
            code = str(error.get("code", "")) if isinstance(error, dict) else ""
            raise CommandRejected(f"the car refused {command.name}", code=code)
        cloud_id = data.get("sessionId") or data.get("taskId") or ""
        return CommandReceipt(
            accepted=True,
            reply=f"{call.service_id} accepted (code {reply.code or '-'})",
            cloud_id=str(cloud_id),
        )

    def journal_interval(self, vin: str) -> float:
        return self.settings.journal_interval

    async def journal(self, vin: str, since: float, routed: frozenset[str]) -> list[JournalTrip]:
        """The car's own trip log (journalLogV4) from ``since``; see ``smart/journal.py``."""
        return await self._journal.trips(vin, since, self._clock.now(), routed)

    async def _journal_call(
        self, vin: str, method: str, path: str, query: list[tuple[str, str]], body: object | None
    ) -> object:
        """A journal request with the poll's remedies (renewal, re-selection, other host). The
        grant carries no VIN binding headers (as the app sends it); the journal carries userId."""
        rec = await self._record(vin)
        grant = body is not None
        reply = await self._vin_call(
            rec, method, path, query=query, body=body, user=path == JOURNAL, bind=not grant
        )
        return reply.data

    async def _access_token(self) -> str:
        return (await self.auth.session()).access_token

    async def close(self) -> None:
        """Cancel a token renewal in flight; the HTTP session belongs to the caller and tokens are
        already saved."""
        await self.auth.close()

    # -- calls ---------------------------------------------------------------------------------

    async def _record(self, vin: str) -> VehicleRecord:
        if vin not in self._vehicles:
            await self.vehicles()
        rec = self._vehicles.get(vin)
        if rec is None:
            raise VehicleNotLinked("this VIN is not (or no longer) on the smart account")
        return rec

    def _base(self, rec: VehicleRecord) -> str:
        hosts = self.transport.hosts
        return hosts.api_v2 if rec.v2 else hosts.api_v1

    async def _once(
        self,
        method: str,
        base: str,
        path: str,
        session: ApiSession,
        *,
        query: Iterable[tuple[str, str]] = (),
        body: object | None = None,
        user: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        q = (*query, ("userId", session.user_id)) if user else tuple(query)
        sent = headers
        if self.settings.region.name == "INTL" and session.client_id:
            sent = {**(headers or {}), "x-client-id": session.client_id}  # never the cached one
        return await self.api.call(
            method, base, path, query=q, body=body, token=session.access_token, headers=sent
        )

    async def _call(
        self,
        method: str,
        base: str,
        path: str,
        *,
        query: Iterable[tuple[str, str]] = (),
        user: bool = True,
    ) -> Reply:
        """An account-level call (no VIN): one token renewal on 1402."""
        session = await self.auth.session()
        try:
            return await self._once(method, base, path, session, query=query, user=user)
        except TokenExpired:
            session = await self.auth.renew(session.access_token)
            return await self._once(method, base, path, session, query=query, user=user)

    async def _vin_call(
        self,
        rec: VehicleRecord,
        method: str,
        path_template: str,
        *,
        query: Iterable[tuple[str, str]] = (),
        body: object | None = None,
        user: bool = False,
        select: bool = False,
        bind: bool = True,
    ) -> Reply:
        """A VIN-scoped call, with each known remedy applied at most once.

        With the per-request VIN binding headers a data call needs no account-wide selection, so
        polls of one account's cars run in parallel; ``session/update`` (under the account lock,
        because the account has one selected car) happens only for commands, when binding is off, or
        after the cloud said the car is not selected (8006/4038/8160)."""
        path = self._paths.get((path_template, rec.vin))
        if path is None:
            path = self._paths[(path_template, rec.vin)] = path_template.format(vin=rec.vin)
        renewed = reselected = switched = False
        rotated = 0
        while True:
            session = await self.auth.session()
            headers = self._headers_for(rec) if self.bind_vin_headers and bind else None
            try:
                if select or reselected or not self.bind_vin_headers:
                    async with self._lock:
                        await self._select(rec, session)
                        reply = await self._once(
                            method, self._base(rec), path, session,
                            query=query, body=body, user=user, headers=headers,
                        )  # fmt: skip
                else:
                    reply = await self._once(
                        method, self._base(rec), path, session,
                        query=query, body=body, user=user, headers=headers,
                    )  # fmt: skip
            except TokenExpired:
                cur = self.auth.state.api
                if cur is not None and cur.access_token != session.access_token and rotated < 3:
                    # another call replaced the token meanwhile (a journal grant rotates it):
                    # not our renewal to spend, retry with the current one
                    rotated += 1
                    continue
                if renewed:
                    raise
                renewed = True
                await self.auth.renew(session.access_token)
                continue
            except VehicleNotSelected as exc:
                if reselected:
                    raise
                reselected = True
                log.info("smart %s: %s: code %s, re-selecting", self.account, path, exc.code)
                self._selected = None
                continue
            except WrongHost as exc:
                if switched:
                    raise
                switched = True
                rec = dataclasses.replace(rec, v2=not rec.v2)
                self._vehicles[rec.vin] = rec
                self._selected = None
                log.warning(
                    "smart %s: %s: code %s, switching to the %s host",
                    self.account,
                    mask_path(path),
                    exc.code,
                    "v2" if rec.v2 else "v1",
                )
                continue
            except VehicleUnbound as exc:
                count = self._unbound[rec.vin] = self._unbound.get(rec.vin, 0) + 1
                if count >= UNBOUND_LIMIT:
                    raise VehicleNotLinked(
                        f"no vehicle bound to this VIN ({count} times in a row)", code=exc.code
                    ) from None
                raise UpstreamUnavailable(
                    "vehicle binding not ready yet; retry next poll", code=exc.code
                ) from None
            self._unbound.pop(rec.vin, None)
            return reply

    async def _select(self, rec: VehicleRecord, session: ApiSession) -> None:
        """``session/update``: make ``rec`` the account's current car for this session token."""
        if self._selected == (rec.vin, session.access_token):
            return
        body = {"vin": rec.vin, "sessionToken": session.access_token, "language": ""}
        await self._once("POST", self._base(rec), SELECT, session, body=body)
        self._selected = (rec.vin, session.access_token)

    def _headers_for(self, rec: VehicleRecord) -> Mapping[str, str]:
        """``_binding(rec)``, built once per record (the model code's quoting included)."""
        got = self._bindings.get(rec)
        if got is None:
            got = self._bindings[rec] = self._binding(rec)
        return got

    def _binding(self, rec: VehicleRecord) -> dict[str, str]:
        """Per-request VIN binding, so another client switching the account's car cannot break us.
        INTL's own ``x-vehicle-series`` is the model code (same header name, case-insensitive)."""
        headers = {"X-Vehicle-IDENTIFIER": rec.vin}
        encoded = quote(rec.mat_code, safe="")
        if self.settings.region.name == "INTL":
            if rec.model_code:
                headers["X-VEHICLE-SERIES"] = rec.model_code
        elif encoded:
            headers["X-VEHICLE-SERIES"] = encoded
        if encoded:
            headers["X-VEHICLE-MODEL"] = encoded
        return headers


def _dc_connected(status: object) -> bool:
    vs = status.get("vehicleStatus") if isinstance(status, dict) else None
    avs = vs.get("additionalVehicleStatus") if isinstance(vs, dict) else None
    ev = avs.get("electricVehicleStatus") if isinstance(avs, dict) else None
    return isinstance(ev, dict) and str(ev.get("dcDcConnectStatus")) == "3"


def _is_refusal(exc: ProviderError) -> bool:
    """A cloud code saying 'no' to a command, as opposed to auth, limits, transport or garbage."""
    if isinstance(exc, RateLimited | VehicleNotLinked) or exc.reason in {"auth", "timeout"}:
        return False
    if isinstance(exc, BadReply):
        return bool(exc.code)  # 1400/1405; a garbled reply may hide an accepted command
    if isinstance(exc, UpstreamUnavailable):
        return exc.code not in {"", "8153"} and not (len(exc.code) == 3 and exc.code.isdigit())
    return False
