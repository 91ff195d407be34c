"""The smart trip journal on the accuracy bench's direct path, answered in-process.

The bench reads each smart car's journal through the provider's own ``JournalReader`` (grant,
14-day windows, pages, 8153 handling, the track of each new trip, ``parse_trip``/``parse_track``),
scheduled by the runtime's own ``JournalFetcher`` (every ``journal_interval``, and
``AFTER_DRIVE_S`` after the polls saw a drive end). Only the HTTP hop, signing and the token are
skipped: each request is answered by the simulator's own render functions
(``exporter/simulator/smart/journal.py``) at that moment of the moved clock, so a trip shows only
once the car has parked and only if it started while the car's trip recording was on.

With a fault rate (the "faults" regime) the journal's calls fail as the simulated cloud's do:
every endpoint of a faulty cloud misbehaves, the journal's too. They draw from their own
generator, so turning the journal on or off leaves the polls' faults where they were.
"""

from __future__ import annotations

from typing import Any, Final

from exporter.journal import JournalTrip
from exporter.providers.base import BadReply, RateLimited, UpstreamUnavailable
from exporter.providers.smart.journal import GRANT, JOURNAL, NO_DATA, TRACK, JournalReader
from exporter.providers.smart.settings import SmartAccount
from exporter.simulator.faults import DEFAULT_MIX, FaultKind, Faults
from exporter.simulator.fleet import Fleet
from exporter.simulator.smart import journal as sim_journal

# what a smart account reads its journals at unless its config says otherwise
JOURNAL_INTERVAL_S: Final = float(SmartAccount.model_fields["journal_interval"].default)


class SimJournal:
    """The journal side of the simulated smart cloud for one fleet, without HTTP."""

    def __init__(self, fleet: Fleet, fault_rate: float = 0.0, seed: int = 1) -> None:
        self.fleet = fleet
        self.faults = Faults(seed=seed)
        if fault_rate > 0:
            for kind in DEFAULT_MIX:
                self.faults.set_rate(kind, fault_rate / len(DEFAULT_MIX))
        self._granted: set[str] = set()  # the cloud's grants (the simulated cloud's ``grants``)
        self.reader = JournalReader(self.call, self._token, "bench")
        self.calls = 0

    @staticmethod
    async def _token() -> str:
        return "bench"  # one token for the run: the grant is posted once per car, as it would be

    async def trips(
        self, vin: str, since: float, now: float, routed: frozenset[str]
    ) -> list[JournalTrip]:
        return await self.reader.trips(vin, since, now, routed)

    async def call(
        self, vin: str, method: str, path: str, query: list[tuple[str, str]], body: object | None
    ) -> Any:
        """One journal request answered as the simulated cloud answers it; the reply's ``data``,
        or the typed error the smart transport raises for the cloud's answer."""
        self.calls += 1
        fault = self.faults.pick("smart", "track" if path == TRACK else "journal", vin)
        kind = fault.kind if fault is not None else None
        if kind is FaultKind.RATE_LIMITED and fault is not None:
            raise RateLimited("429", code="429", retry_after=fault.retry_after)
        if kind is FaultKind.SERVER_ERROR:
            raise UpstreamUnavailable("smart cloud answered HTTP 500", code="500")
        data = self._answer(vin, method, path, dict(query), body)
        if kind is FaultKind.DATA_UNAVAILABLE or data is None:
            raise UpstreamUnavailable("no data", code=NO_DATA)
        if kind is FaultKind.MALFORMED_JSON:
            raise BadReply("truncated JSON", code="json")
        if kind is FaultKind.GARBAGE_FIELDS and fault is not None:
            self.faults.garble(data, fault)
        return data  # TOKEN_EXPIRED: renewed by the provider, then the call works

    def _answer(
        self, vin: str, method: str, path: str, q: dict[str, str], body: object | None
    ) -> dict[str, Any] | None:
        if method == "POST" and path == GRANT:
            if isinstance(body, dict) and body.get("vin") in self.fleet:
                self._granted.add(str(body["vin"]))
            return {}
        start, end = int(q["startTime"]) / 1000.0, int(q["endTime"]) / 1000.0
        if path == JOURNAL:
            if vin not in self._granted:
                return None  # 8153 until the account posted the grant (reference §3.2)
            page, size = max(1, int(q.get("pageIndex", "1"))), max(1, int(q.get("pageSize", "20")))
            return sim_journal.journal_page(self.fleet, vin, start, end, page, size)
        if path == TRACK:  # the simulated cloud's default: a track as soon as the trip ended
            size = max(1, min(500, int(q.get("pageSize", "500"))))
            return sim_journal.track_page(self.fleet, vin, start, end, size)
        raise BadReply(f"the bench's journal does not answer {method} {path}", code="1405")
