"""The smart car's own trip log: ``journalLogV4`` and the per-trip track, read into JournalTrips.

The protocol (reference §3.2 and §4.1; pysmarthashtag ``account.py``): the journal answers 8153 until
the account posts the ``travelLogBusiCode`` authorisation for the car, and that post rotates the API
token (the next call answers 1402 and the session is renewed). So the grant is remembered per access
token: under the same token it is not posted again, after any renewal it is. The journal is paged
newest first (``pageIndex`` 1.., ``totleSize`` (sic) in the pagination block) over a time window of
at most 14 days; 8153 on the first page means "nothing in this window" (also: the car's trip
recording is off), on a later page "no more pages". Each trip's track is a second call on the same
host, positions only (integer milli-arc-seconds, newest first, at most 500), 8153 when there is none
- or none yet: a fresh trip's 8153 leaves the route unread until ``TRACK_PENDING_S`` has passed.
Values arrive as strings (seed 004 "Data Types"); numbers are accepted too.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Final

from exporter.journal import JournalTrip
from exporter.providers.base import ProviderError, RateLimited, UpstreamUnavailable

log = logging.getLogger("exporter.providers.smart")

GRANT: Final = "/remote-control/user/authorization/insert"
JOURNAL: Final = "/geelyTCAccess/tcservices/vehicle/status/journalLogV4/{vin}"
TRACK: Final = "/vehicle-history-service/journal-service/vehicle/status/history/{vin}"
SERVICE_CODE: Final = "travelLogBusiCode"
PAGE_SIZE: Final = 20  # what the app (and pysmarthashtag) asks for
WINDOW_S: Final = 14 * 86400.0  # the app's window; a longer catch-up is read window by window
TRACK_SIZE: Final = 500  # the cap the cloud states in the track's pagination
NO_DATA: Final = "8153"
TRACK_PENDING_S: Final = 48 * 3600.0
"""How long after a trip ended a track answered 8153 still means "not yet", not "none".

8153 is all the track endpoint says both for a trip it has no track for and for a fresh trip whose
track the cloud has not processed yet (issue 14; reference §4.1 and pysmarthashtag only say
"treat as empty"). Stored as an empty route, a fresh trip would never be asked again (a stored
route, '' included, is never re-read), so until a trip is this old an 8153 leaves its route NULL
and the next read asks again; after, the empty route is stored for good. Two days: many times any
plausible processing delay, and few enough retries (a read every ``journal_interval``, 6 h by
default) to cost nothing; the reader's window keeps such trips in reach
(``exporter.journal_fetch.ROUTE_RETRY_S``)."""
MAS_PER_DEGREE: Final = 3_600_000.0

# (vin, method, path template, query, body) -> the reply's ``data``; raises ProviderError
Call = Callable[[str, str, str, list[tuple[str, str]], object | None], Awaitable[Any]]


def num(value: object) -> float | None:
    """A finite number from a number or a numeric string; None for '', null, text, NaN."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        x = float(value)
    elif isinstance(value, str):
        try:
            x = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return x if math.isfinite(x) else None


def _position(node: object) -> tuple[float, float] | None:
    pos = node.get("position") if isinstance(node, dict) else None
    if not isinstance(pos, dict):
        return None
    lat, lon = num(pos.get("latitude")), num(pos.get("longitude"))
    if lat is None or lon is None:
        return None
    lat, lon = lat / MAS_PER_DEGREE, lon / MAS_PER_DEGREE
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return None
    return lat, lon


def page_items(data: object) -> tuple[list[Any], int | None]:
    """(``data.list``, ``data.pagination.totleSize``) of a journal or track reply."""
    if not isinstance(data, dict):
        return [], None
    items = data.get("list")
    pagination = data.get("pagination")
    total = num(pagination.get("totleSize")) if isinstance(pagination, dict) else None
    return (items if isinstance(items, list) else []), (None if total is None else int(total))


def parse_trip(vin: str, item: object) -> JournalTrip | None:
    """One journal entry; None when it lacks a usable start and end (never a partial trip)."""
    if not isinstance(item, dict):
        return None
    start_ms, end_ms = num(item.get("startTime")), num(item.get("endTime"))
    if start_ms is None or end_ms is None or end_ms < start_ms or start_ms <= 0:
        return None
    trip_id = item.get("tripId")
    tid = str(trip_id).strip() if trip_id not in (None, "") else str(int(start_ms))
    odo_from, odo_to = num(item.get("startOdometer")), num(item.get("endOdometer"))
    km = num(item.get("traveledDistance"))
    if km is None and odo_from is not None and odo_to is not None:
        km = odo_to - odo_from
    if km is not None and km < 0:
        km = None
    per_100 = num(item.get("electricConsumption"))  # kWh/100 km (pysmarthashtag journal.py)
    energy = per_100 * km / 100.0 if per_100 is not None and km is not None else None
    speed = num(item.get("avgSpeed"))
    points = item.get("trackpoints")
    ends = [p for p in (points if isinstance(points, list) else []) if _position(p) is not None]
    first = _position(ends[0]) if ends else None
    last = _position(ends[-1]) if ends else None
    return JournalTrip(
        vin=vin,
        provider="smart",
        trip_id=tid,
        start_ts=start_ms / 1000.0,
        end_ts=end_ms / 1000.0,
        start_odometer_m=None if odo_from is None else odo_from * 1000.0,
        end_odometer_m=None if odo_to is None else odo_to * 1000.0,
        distance_m=None if km is None else km * 1000.0,
        avg_speed_mps=None if speed is None or speed < 0 else speed / 3.6,
        energy_kwh=energy if energy is None or energy >= 0 else None,
        regen_kwh=num(item.get("regeneratedEnergy")),
        start_latitude=first[0] if first else None,
        start_longitude=first[1] if first else None,
        end_latitude=last[0] if last else None,
        end_longitude=last[1] if last else None,
        start_address=_text(item.get("tripStartAddr")),
        end_address=_text(item.get("tripEndAddr")),
    )


def _text(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def parse_track(data: object) -> list[tuple[float, float]]:
    """A track reply's positions in driving order (the cloud sends newest first)."""
    items, _total = page_items(data)
    out = []
    for item in reversed(items):
        status = item.get("basicVehicleStatus") if isinstance(item, dict) else None
        pos = _position(status)
        if pos is not None:
            out.append(pos)
    return out


class JournalReader:
    """Reads one account's journals through the provider's signed, renewing ``call``."""

    def __init__(self, call: Call, token: Callable[[], Awaitable[str]], account: str) -> None:
        self._call = call
        self._token = token  # the access token in use now
        self._account = account
        self._granted: dict[str, str] = {}  # VIN -> the access token the grant is known under

    async def trips(
        self, vin: str, since: float, now: float, routed: frozenset[str]
    ) -> list[JournalTrip]:
        """Every logged trip that started in [since, now], oldest window first."""
        out: dict[str, JournalTrip] = {}
        lo = since
        while lo < now:
            hi = min(now, lo + WINDOW_S)
            for trip in await self._window(vin, lo, hi):
                out[trip.trip_id] = trip
            lo = hi
        trips = sorted(out.values(), key=lambda t: t.start_ts)
        return [t if t.trip_id in routed else await self._with_route(vin, t, now) for t in trips]

    async def _grant(self, vin: str) -> None:
        token = await self._token()
        if self._granted.get(vin) == token:
            return
        body = {"serviceCode": SERVICE_CODE, "authStatus": 1, "vin": vin}
        await self._call(vin, "POST", GRANT, [], body)
        self._granted[vin] = ""  # accepted; the token it holds under is known after the next call
        log.debug("smart %s: journal authorisation granted", self._account)

    async def _window(self, vin: str, lo: float, hi: float) -> list[JournalTrip]:
        await self._grant(vin)
        found: list[JournalTrip] = []
        page, seen, total = 1, 0, None
        while True:
            query = [
                ("endTime", str(int(hi * 1000))),
                ("pageIndex", str(page)),
                ("pageSize", str(PAGE_SIZE)),
                ("startTime", str(int(lo * 1000))),
            ]
            try:
                data = await self._call(vin, "GET", JOURNAL, query, None)
            except UpstreamUnavailable as exc:
                if exc.code != NO_DATA:
                    raise
                data = None  # nothing (more) in this window
            if page == 1:
                # the grant held under the token that just worked (the post rotated the old one)
                self._granted[vin] = await self._token()
            items, reported = page_items(data)
            total = reported if reported is not None else total
            seen += len(items)
            for item in items:
                trip = parse_trip(vin, item)
                if trip is None:
                    log.debug(
                        "smart %s: journal entry without a start and end skipped", self._account
                    )
                elif lo <= trip.start_ts <= hi:
                    found.append(trip)
            if not items or len(items) < PAGE_SIZE or (total is not None and seen >= total):
                return found
            page += 1

    async def _with_route(self, vin: str, trip: JournalTrip, now: float) -> JournalTrip:
        query = [
            ("endTime", str(round(trip.end_ts * 1000))),
            ("pageIndex", "0"),
            ("pageSize", str(TRACK_SIZE)),
            ("source", "tc"),
            ("startTime", str(round(trip.start_ts * 1000))),
        ]
        try:
            data = await self._call(vin, "GET", TRACK, query, None)
        except RateLimited:
            raise
        except ProviderError as exc:
            if exc.code != NO_DATA:
                # the trip is stored without its route; the next fetch asks again
                log.info("smart %s: trip track not read (code %s)", self._account, exc.code or "-")
                return trip
            if now - trip.end_ts < TRACK_PENDING_S:  # maybe not processed yet: ask again later
                log.debug("smart %s: trip track not there yet (8153); asked again", self._account)
                return trip
            data = None
        return replace(trip, route=parse_track(data))
