"""HTTP to the smart cloud: one guarded send, and signed calls to the vehicle API with its envelope.

Every request goes through :meth:`Transport.send`, which refuses URLs outside the configured hosts,
bounds the time spent, and turns transport failures and HTTP statuses into typed errors. The vehicle
API's signed calls sit on top (:class:`SignedApi`): they build the canonical query that is both
signed and sent, unwrap the ``{code, data, message}`` envelope, and retry exactly once on a repeated
nonce. Logs carry the method, a VIN-masked path and the code; never a token, a password or a body.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import msgspec
from yarl import URL

from exporter.clock import Clock
from exporter.providers.base import (
    BadReply,
    ProviderError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from exporter.providers.smart.errors import (
    SUCCESS_CODES,
    ClockSkew,
    NonceRepeated,
    SigningError,
    error_for_code,
    error_for_http,
)
from exporter.providers.smart.hosts import SmartHosts, origin_of
from exporter.providers.smart.signing import Region, canonical_query, signed_headers

log = logging.getLogger("exporter.providers.smart")

_LONG_ID: Final = re.compile(r"(?<=/)([A-Za-z0-9]{6,})([A-Za-z0-9]{4})(?=/|$)")


def mask_path(path: str) -> str:
    """Mask VIN-like path segments (keep the last 4 characters) so a log line never holds a VIN."""

    def _mask(m: re.Match[str]) -> str:
        word = m.group(0)
        return "****" + m.group(2) if any(c.isdigit() for c in word) else word

    return _LONG_ID.sub(_mask, path)


@dataclass(frozen=True, slots=True)
class RawReply:
    status: int
    headers: Mapping[str, str]
    text: str
    url: str


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful envelope: ``data`` is whatever the cloud put there (dict, list, None...)."""

    code: str
    data: Any
    message: str


class Transport:
    """Guarded HTTP over the shared session (never closed here: the caller owns it)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        hosts: SmartHosts,
        clock: Clock,
        *,
        timeout: float = 20.0,
    ) -> None:
        self.session = session
        self.hosts = hosts
        self.clock = clock
        self.timeout = timeout
        self._client_timeout = _bounded(session.timeout, timeout)
        self._origins = hosts.origins()
        self._login_origins = frozenset(
            origin_of(u) for u in (hosts.awsapi, hosts.auth, hosts.socialize, hosts.sg_app_api)
        )
        # (origin, length) per allowed origin, longest first: the prefix test of _origin()
        self._prefixes = sorted(((o, len(o)) for o in self._origins), key=lambda p: -p[1])
        self._base_origins: dict[str, str] = {}  # base URL -> its origin, learnt from send(base=)

    def _origin(self, url: str) -> str:
        """``origin_of(url)`` without parsing the URL on every request: a URL that starts with an
        allowed origin followed by the end of the authority has exactly that origin; anything
        else (other case, another host) takes the full parse."""
        for origin, n in self._prefixes:
            if url.startswith(origin) and (len(url) == n or url[n] in "/?#"):
                return origin
        return origin_of(url)

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        ok_statuses: Iterable[int] = (),
        base: str | None = None,
    ) -> RawReply:
        """Send one request without following redirects. Statuses >= 400 raise a typed error unless
        listed in ``ok_statuses``. ``base``: the part of ``url`` before its path (the signed calls
        know it), so the host check is a dictionary lookup instead of a parse per request."""
        if base is not None and url.startswith(base) and url[len(base) : len(base) + 1] == "/":
            # url = base + "/...": the path cannot move the authority, so base's origin is url's
            origin = self._base_origins.get(base) or self._base_origins.setdefault(
                base, self._origin(url)
            )
        else:
            origin = self._origin(url)
        if origin not in self._origins:
            # Guard against a redirect or a config bug sending credentials elsewhere.
            raise BadReply(f"refusing to call {origin}: not one of the configured smart hosts")
        target = URL(url, encoded=True)
        try:
            async with self.session.request(
                method,
                target,
                headers=headers,  # aiohttp copies them; never changed here
                data=body,
                allow_redirects=False,
                timeout=self._client_timeout,  # covers connecting, sending and reading the body
            ) as resp:
                raw = await resp.read()
                reply = RawReply(
                    resp.status,
                    resp.headers,  # read-only and case-insensitive; outlives the response
                    raw.decode("utf-8", errors="replace"),
                    url,  # redirects are not followed: the reply is the requested URL's
                )
        except TimeoutError:
            log.warning(
                "smart %s %s: no answer within %.0f s", method, mask_path(target.path), self.timeout
            )
            raise UpstreamTimeout(f"no answer within {self.timeout:.0f} s") from None
        except aiohttp.ClientError as exc:
            log.warning("smart %s %s: %s", method, mask_path(target.path), type(exc).__name__)
            raise UpstreamUnavailable(f"connection failed ({type(exc).__name__})") from None
        if reply.status >= 400 and reply.status not in set(ok_statuses):
            err = error_for_http(
                reply.status,
                reply.text,
                reply.headers,
                self.clock.now(),
                login_gateway=origin in self._login_origins,
            )
            if err is not None:
                log.warning("smart %s %s: HTTP %s", method, mask_path(target.path), reply.status)
                raise err
        return reply


_DECODER: Final = msgspec.json.Decoder()


def decode_json(text: str) -> Any:
    """``json.loads(text)``, decoded by msgspec wherever it can be: about twice as fast on the
    status replies (docs/BENCHMARKS.md §1), and for any text it accepts the same objects (integers
    of any size included, which rules out orjson: it turns those beyond 64 bits into floats).

    What msgspec refuses and the standard library accepts (NaN/Infinity literals, numbers beyond
    a double, lone surrogates) goes to ``json.loads`` as before; BadReply for invalid JSON.
    """
    try:
        return _DECODER.decode(text)
    except msgspec.MsgspecError:
        pass
    try:
        return json.loads(text)
    except ValueError:
        raise BadReply("reply is not valid JSON") from None


def _bounded(base: aiohttp.ClientTimeout, seconds: float) -> aiohttp.ClientTimeout:
    """The session's timeouts with the total capped at ``seconds``, enforced by aiohttp's own
    per-request timer (an ``asyncio.timeout`` around the request would add a second timer to
    every request). aiohttp rounds totals above ``ceil_threshold`` up to a whole second; the
    threshold is raised so the cap holds to the moment."""
    total = seconds if not base.total or base.total <= 0 else min(base.total, seconds)
    return aiohttp.ClientTimeout(
        total=total,
        connect=base.connect,
        sock_read=base.sock_read,
        sock_connect=base.sock_connect,
        ceil_threshold=max(base.ceil_threshold, total + 1.0),
    )


def parse_envelope(reply: RawReply) -> Reply:
    """Unwrap ``{code, data, message}``; a non-success code raises its typed error."""
    text = reply.text.lstrip()
    if text.startswith("<") or "html" in reply.headers.get("Content-Type", "").lower():
        raise UpstreamUnavailable("an HTML page instead of JSON", code=str(reply.status))
    doc = decode_json(text)
    if not isinstance(doc, dict):
        raise BadReply("reply is not a JSON object")
    raw_code = doc.get("code")
    message = doc.get("message") if isinstance(doc.get("message"), str) else ""
    if isinstance(raw_code, bool) or not isinstance(raw_code, str | int):
        if raw_code is None and doc.get("success") is True:
            return Reply("", doc.get("data"), message or "")
        raise BadReply("reply has no usable code")
    code = str(raw_code)
    if code in SUCCESS_CODES:
        return Reply(code, doc.get("data"), message or "")
    raise error_for_code(code, message or "")


class SignedApi:
    """Signed, enveloped calls to the vehicle API hosts (reference §2, §3.1)."""

    def __init__(self, transport: Transport, region: Region, device_id: str) -> None:
        self.transport = transport
        self.region = region
        self.device_id = device_id

    async def call(
        self,
        method: str,
        base_url: str,
        path: str,
        *,
        query: Iterable[tuple[str, str]] = (),
        body: object | None = None,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        qs = canonical_query(query)  # a tuple is cached as it is; a generator is read once
        payload = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        url = f"{base_url}{path}" + (f"?{qs}" if qs else "")
        for attempt in (1, 2):
            nonce = self.region.new_nonce()
            stamp = str(int(self.transport.clock.now() * 1000))
            sent = signed_headers(
                self.region,
                method=method,
                path=path,
                query=qs,
                body=payload,
                timestamp_ms=stamp,
                nonce=nonce,
                device_id=self.device_id,
                token=token,
            )
            if headers:
                sent.update(headers)
            raw = await self.transport.send(
                method, url, headers=sent, body=payload, base=base_url if path[:1] == "/" else None
            )
            try:
                return parse_envelope(raw)
            except NonceRepeated as exc:
                if attempt == 2:
                    log.error("smart %s %s: nonce rejected twice", method, mask_path(path))
                    raise SigningError("nonce rejected twice", code=exc.code) from None
                continue
            except ClockSkew:
                log.error(
                    "smart %s %s: timestamp refused (code 1446): the clock signing requests is "
                    "off from the cloud's",
                    method,
                    mask_path(path),
                )
                raise
            except SigningError:
                log.error(
                    "smart %s %s: signature rejected (code 1445): a signing bug, not a cloud fault",
                    method,
                    mask_path(path),
                )
                raise
            except ProviderError as exc:
                # 8153 is the trip journal's everyday "nothing (more) here" (reference §4.1)
                quiet = exc.code == "8153" and "journal" in path
                log.log(
                    logging.DEBUG if quiet else logging.INFO,
                    "smart %s %s: code %s",
                    method,
                    mask_path(path),
                    exc.code or "-",
                )
                raise
        raise AssertionError("unreachable")  # pragma: no cover
