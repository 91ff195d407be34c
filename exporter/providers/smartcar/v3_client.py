"""Smartcar API v3 over HTTP: connections, vehicles, signals, path-based commands, subscriptions.

Every signals and command request names the user in ``sc-user-id`` (required there, smartcar-v3.md
§1.3). The application token comes from ``AppTokenSource``; a 401 drops it and the request is
retried once with a fresh one. Commands get a long read timeout because a long-running command
answers 202 and streams its final body on the same connection (§2.5; the official SDK waits 310 s);
when our own timeout fires first the outcome is *unknown* (the car may have acted), reported as
``CommandOutcomeUnknown`` and never retried blindly: ``verify_command`` re-reads the signal.
Credentials only go to the configured origins; nothing logs a token or a body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp

from exporter.providers.base import (
    BadReply,
    CommandReceipt,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from exporter.providers.smartcar.errors import SmartcarError
from exporter.providers.smartcar.v3_errors import parse_v3_error, v3_provider_error
from exporter.providers.smartcar.v3_parse import Parsed, parse_signals
from exporter.providers.smartcar.v3_token import USER_AGENT, AppTokenSource

COMMAND_TIMEOUT: Final = 310.0  # the SDK's requester timeout [SDK-PY helpers.py, §2.1]
READ_TIMEOUT: Final = 60.0
PAGE_SIZE: Final = 100

# carmetrics command -> v3 path [DOC commands overview, §2.5]
COMMAND_PATHS: Final[Mapping[str, str]] = {
    "lock": "security/lock",
    "unlock": "security/unlock",
    "charge_start": "charge/start",
    "charge_stop": "charge/stop",
    "charge_limit": "charge/set-limit",
    "charge_port_open": "charge-port/open",
    "charge_port_close": "charge-port/close",
}


class SmartcarV3Error(Exception):
    """A non-2xx v3 reply, parsed (the caller maps it with ``v3_provider_error``)."""

    def __init__(self, error: SmartcarError) -> None:
        super().__init__(error.key)
        self.error = error


class CommandOutcomeUnknown(UpstreamTimeout):
    """Our timeout fired before Smartcar's final answer: the command may or may not have run."""


@dataclass(frozen=True, slots=True)
class V3Urls:
    """Origins (no ``/v3``): ``iam`` serves ``/oauth2/token``, the others ``/v3/...``."""

    iam: str = "https://iam.smartcar.com"
    vehicle_api: str = "https://vehicle.api.smartcar.com"
    management_api: str = "https://management.api.smartcar.com"

    def origins(self) -> frozenset[str]:
        out = set()
        for url in (self.iam, self.vehicle_api, self.management_api):
            p = urlsplit(url)
            out.add(f"{p.scheme}://{p.netloc}".lower())
        return frozenset(out)


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    connection_id: str
    user_id: str
    vehicle_id: str
    permissions: tuple[str, ...]
    make: str = ""
    model: str = ""
    year: int | None = None


def unwrap(doc: Any) -> Mapping[str, Any]:
    """A single resource, ``data``-wrapped (2026 docs) or at top level (2025 fixtures) [§2.2]."""
    if isinstance(doc, Mapping):
        inner = doc.get("data")
        if isinstance(inner, Mapping):
            return inner
        return doc
    raise BadReply("reply is not a JSON object", code="shape")


class SmartcarV3Client:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        urls: V3Urls,
        tokens: AppTokenSource,
        *,
        command_timeout: float = COMMAND_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        page_size: int = PAGE_SIZE,
        mode: str = "live",
    ) -> None:
        self.session = session
        self.urls = urls
        self.tokens = tokens
        self.command_timeout = command_timeout
        self.read_timeout = read_timeout
        self.page_size = page_size
        # the connections listed: Smartcar's default is live only [3P-LIVE §2.3]
        self.mode = "live" if mode == "live" else "simulated"
        self._origins = urls.origins()
        self.requests = 0  # HTTP requests sent to the vehicle/management API (bench, tests)
        self.absent_total: dict[str, int] = {}  # ERROR | UNAVAILABLE | UNPARSED -> signals

    def _check(self, url: str) -> str:
        p = urlsplit(url)
        if f"{p.scheme}://{p.netloc}".lower() not in self._origins:
            raise BadReply(f"refusing to send credentials to {p.scheme}://{p.netloc}")
        return url

    async def request(
        self,
        method: str,
        path: str,
        *,
        user: str | None = None,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        management: bool = False,
        read_timeout: float | None = None,
    ) -> tuple[int, Any]:
        """(status, parsed JSON or None). Raises SmartcarV3Error on >= 400."""
        base = self.urls.management_api if management else self.urls.vehicle_api
        url = self._check(f"{base}/v3{path}")
        for attempt in (1, 2):
            token = await self.tokens.get()
            headers = {"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT}
            if user is not None:
                headers["sc-user-id"] = user
            status, raw, resp_headers = await self._send(
                method, url, headers, body, params, read_timeout or self.read_timeout, path
            )
            if status == 401 and attempt == 1:
                self.tokens.drop(token)  # expired or revoked: one fresh token, one retry
                continue
            break
        if status >= 400:
            raise SmartcarV3Error(parse_v3_error(status, raw, resp_headers))
        if not raw.strip():
            return status, None
        try:
            return status, json.loads(raw)
        except ValueError:
            raise BadReply(f"non-JSON reply to {method} {path}", code="json") from None

    async def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: Any,
        params: Mapping[str, str] | None,
        read_timeout: float,
        path: str,
    ) -> tuple[int, bytes, dict[str, str]]:
        self.requests += 1
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30.0, sock_read=read_timeout)
        try:
            async with self.session.request(
                method, url, json=body, params=params, headers=headers, timeout=timeout
            ) as resp:
                return resp.status, await resp.read(), dict(resp.headers)
        except TimeoutError:
            raise UpstreamTimeout(f"{method} {_label(path)} timed out", code="timeout") from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(
                f"Smartcar API unreachable: {type(exc).__name__}", code="connect"
            ) from None

    # --- connections and vehicles -----------------------------------------------------------------
    async def connections(
        self, user_id: str | None = None, vehicle_id: str | None = None
    ) -> list[ConnectionInfo]:
        """Every connection of the application (filtered), across pages [DOC list-connections]."""
        out: list[ConnectionInfo] = []
        number = 1
        while True:
            params = {
                "page[number]": str(number),
                "page[size]": str(self.page_size),
                "filter[vehicle.mode]": self.mode,
            }
            if user_id:
                params["filter[userId]"] = user_id
            if vehicle_id:
                params["filter[vehicleId]"] = vehicle_id
            _, doc = await self.request("GET", "/connections", params=params)
            data = doc.get("data") if isinstance(doc, Mapping) else None
            if not isinstance(data, list):
                raise BadReply("/connections reply lacks data[]", code="shape")
            out.extend(c for c in (_connection(item) for item in data) if c is not None)
            meta = doc.get("meta") if isinstance(doc.get("meta"), Mapping) else {}
            links = doc.get("links") if isinstance(doc.get("links"), Mapping) else {}
            total = meta.get("totalCount") if isinstance(meta, Mapping) else None
            more = bool(links.get("next")) if isinstance(links, Mapping) else False
            if isinstance(total, int):
                more = number * self.page_size < total
            if not data or not more:
                return out
            number += 1

    async def vehicle(self, vehicle_id: str) -> Mapping[str, Any]:
        """The vehicle's attributes (make, model, year, powertrainType); no sc-user-id [§1.3]."""
        _, doc = await self.request("GET", f"/vehicles/{vehicle_id}")
        attrs = unwrap(doc).get("attributes")
        return attrs if isinstance(attrs, Mapping) else unwrap(doc)

    # --- signals ----------------------------------------------------------------------------------
    async def signals(self, user_id: str, vehicle_id: str) -> list[Mapping[str, Any]]:
        """All signals in one call (the reply is one page [INF §2.4])."""
        _, doc = await self.request("GET", f"/vehicles/{vehicle_id}/signals", user=user_id)
        data = doc.get("data") if isinstance(doc, Mapping) else None
        if not isinstance(data, list):
            raise BadReply("/signals reply lacks data[]", code="shape")
        return [item for item in data if isinstance(item, Mapping)]

    async def read(self, user_id: str, vehicle_id: str) -> Parsed:
        """One poll: one ``GET /signals`` mapped to canonical values. A per-signal ERROR or
        UNAVAILABLE leaves that signal absent and is counted in ``absent_total``; only a failed
        request raises (a ProviderError)."""
        try:
            items = await self.signals(user_id, vehicle_id)
        except SmartcarV3Error as exc:
            raise v3_provider_error(exc.error) from None
        parsed = parse_signals(items)
        for status in parsed.absent.values():
            kind = status.split(":", 1)[0]
            self.absent_total[kind] = self.absent_total.get(kind, 0) + 1
        return parsed

    async def signal(self, user_id: str, vehicle_id: str, code: str) -> Mapping[str, Any]:
        _, doc = await self.request("GET", f"/vehicles/{vehicle_id}/signals/{code}", user=user_id)
        return unwrap(doc)

    # --- commands ---------------------------------------------------------------------------------
    async def command(
        self, user_id: str, vehicle_id: str, name: str, percent: int | None = None
    ) -> CommandReceipt:
        """Send one command. Raises CommandRejected (VEHICLE_STATE, ...), CommandOutcomeUnknown
        (our timeout: verify, do not resend) or another ProviderError."""
        path = COMMAND_PATHS.get(name)
        if path is None:
            raise BadReply(f"command {name!r} has no Smartcar v3 path", code="command")
        body = None
        if name == "charge_limit":
            if percent is None or not 50 <= percent <= 100:
                raise BadReply("charge limit must be 50-100 %", code="command")
            body = {"data": {"attributes": {"percent": int(percent)}}}  # [DOC set-charge-limit]
        try:
            _, doc = await self.request(
                "POST",
                f"/vehicles/{vehicle_id}/commands/{path}",
                user=user_id,
                body=body,
                read_timeout=self.command_timeout,
            )
        except SmartcarV3Error as exc:
            raise v3_provider_error(exc.error, command=True) from None
        except UpstreamTimeout:
            raise CommandOutcomeUnknown(
                f"{name}: no final answer within {self.command_timeout:.0f} s; outcome unknown",
                code="unknown_outcome",
            ) from None
        # a 202's streamed body may carry an error whose status differs from the HTTP one [§2.5]
        if isinstance(doc, Mapping) and isinstance(doc.get("errors"), list):
            raise v3_provider_error(parse_v3_error(200, doc), command=True)
        data = unwrap(doc) if doc is not None else {}
        attrs = data.get("attributes") if isinstance(data.get("attributes"), Mapping) else {}
        status = attrs.get("status") if isinstance(attrs, Mapping) else None
        value = status.get("value") if isinstance(status, Mapping) else None
        return CommandReceipt(
            accepted=value in ("SUCCESS", "PENDING", None),
            reply=f"{name}: {value or 'no status'}",
            cloud_id=str(data.get("id") or ""),
        )

    async def verify_command(
        self, user_id: str, vehicle_id: str, name: str, percent: int | None = None
    ) -> bool | None:
        """Did ``name`` take effect? Read back the signal it changes; None when unknowable."""
        code = {
            "lock": "closure-islocked",
            "unlock": "closure-islocked",
            "charge_start": "charge-ischarging",
            "charge_stop": "charge-ischarging",
            "charge_limit": "charge-chargelimits",
            "charge_port_open": "charge-ischargingportflapopen",
            "charge_port_close": "charge-ischargingportflapopen",
        }.get(name)
        if code is None:
            return None
        item = await self.signal(user_id, vehicle_id, code)
        attrs = item.get("attributes") if isinstance(item.get("attributes"), Mapping) else item
        body = attrs.get("body") if isinstance(attrs, Mapping) else None
        if not isinstance(body, Mapping):
            return None
        if name in ("lock", "unlock"):
            return body.get("value") is (name == "lock")
        if name in ("charge_start", "charge_stop"):
            return body.get("value") is (name == "charge_start")
        if name in ("charge_port_open", "charge_port_close"):
            return body.get("value") is (name == "charge_port_open")
        limit = parse_signals([item]).values.get("charge_limit")
        return None if limit is None or percent is None else round(float(limit) * 100) == percent

    # --- management API ---------------------------------------------------------------------------
    async def webhooks(self) -> list[Mapping[str, Any]]:
        _, doc = await self.request("GET", "/webhooks", management=True)
        data = doc.get("data") if isinstance(doc, Mapping) else None
        return [w for w in data if isinstance(w, Mapping)] if isinstance(data, list) else []

    async def subscribe(self, webhook_id: str, user_id: str, vehicle_id: str) -> bool:
        """True when created (202), False when it existed already (409) [DOC create-subscription]."""
        attrs = {"webhookId": webhook_id, "userId": user_id, "vehicleId": vehicle_id}
        try:
            await self.request(
                "POST",
                "/subscriptions",
                body={"data": {"type": "subscription", "attributes": attrs}},
                management=True,
            )
        except SmartcarV3Error as exc:
            if exc.error.status == 409:
                return False
            raise
        return True

    async def subscriptions(self, vehicle_id: str | None = None) -> list[Mapping[str, Any]]:
        params = {"filter[vehicleId]": vehicle_id} if vehicle_id else None
        _, doc = await self.request("GET", "/subscriptions", params=params, management=True)
        data = doc.get("data") if isinstance(doc, Mapping) else None
        return [s for s in data if isinstance(s, Mapping)] if isinstance(data, list) else []

    async def unsubscribe(self, subscription_id: str) -> None:
        await self.request("DELETE", f"/subscriptions/{subscription_id}", management=True)


def _label(path: str) -> str:
    """A path for messages without ids (bounded, secret-free)."""
    parts = [p for p in path.split("/") if p]
    return "/".join(p for i, p in enumerate(parts) if not (i > 0 and parts[i - 1] == "vehicles"))


def _connection(item: Any) -> ConnectionInfo | None:
    """One connection resource [DOC get-connection, §2.3]; a malformed one is skipped."""
    if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
        return None
    rel = item.get("relationships") if isinstance(item.get("relationships"), Mapping) else {}
    attrs = item.get("attributes") if isinstance(item.get("attributes"), Mapping) else {}

    def rel_id(name: str) -> str | None:
        r = rel.get(name) if isinstance(rel, Mapping) else None
        d = r.get("data") if isinstance(r, Mapping) else None
        v = d.get("id") if isinstance(d, Mapping) else None
        return v if isinstance(v, str) and v else None

    user = rel_id("user")
    vehicle = rel_id("vehicle")
    if user is None and isinstance(attrs, Mapping) and isinstance(attrs.get("user"), Mapping):
        uid = attrs["user"].get("id")
        user = uid if isinstance(uid, str) else None
    if user is None or vehicle is None:
        return None
    perms = attrs.get("permissions") if isinstance(attrs, Mapping) else None
    car = attrs.get("vehicle") if isinstance(attrs, Mapping) else None
    car = car if isinstance(car, Mapping) else {}
    year = car.get("year")
    return ConnectionInfo(
        connection_id=str(item["id"]),
        user_id=user,
        vehicle_id=vehicle,
        permissions=tuple(str(p) for p in perms) if isinstance(perms, list) else (),
        make=str(car.get("make") or ""),
        model=str(car.get("model") or ""),
        year=int(year)
        if isinstance(year, int) or (isinstance(year, str) and year.isdigit())
        else None,
    )
