"""Fault injection for the cloud simulators: rates, scripted one-shots, a log, a reset.

A fault is picked per request by (cloud, endpoint, VIN). Scripted faults ("the next 3 status calls
for VIN X answer 8153") win over rates and are consumed in order; rates are drawn from a seeded
generator so a run with faults is still reproducible. Each cloud decides how a kind looks on its
wire (the smart cloud answers 1402 with HTTP 200 and a JSON envelope, a 5xx with an HTML
maintenance page, and so on); this module only decides *whether* and *which*.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Final

from exporter.clock import Clock


class FaultKind(StrEnum):
    TOKEN_EXPIRED = "token_expired"  # smart 1402: the presented API token really dies
    MAIN_TOKEN_EXPIRED = "main_token_expired"  # smart 1501: API token and OAuth token die
    DATA_UNAVAILABLE = "data_unavailable"  # smart 8153
    OTHER_CLIENT_SELECTED = "other_client_selected"  # another app selects a different car -> 8006
    RATE_LIMITED = "rate_limited"  # HTTP 429 with Retry-After
    FORBIDDEN = "forbidden"  # HTTP 403 with Retry-After (quota / WAF page)
    SERVER_ERROR = "server_error"  # 5xx with an HTML body
    TIMEOUT = "timeout"  # the server hangs longer than any sane client timeout
    MALFORMED_JSON = "malformed_json"  # HTTP 200, truncated JSON
    GARBAGE_FIELDS = "garbage_fields"  # a valid reply with ""/null/garbage leaves
    # smart Gigya accounts.login answers a challenge instead of a session: captcha (401020),
    # lockout (403120) or pending consent/registration (206001); ``code`` picks one
    LOGIN_CHALLENGE = "login_challenge"
    CAR_REFUSES = "car_refuses"  # smart: the cloud accepts a command, the car refuses it later


# What a global ``simulator.fault_rate`` spreads over: transient trouble a client must ride out.
DEFAULT_MIX: Final = (
    FaultKind.DATA_UNAVAILABLE,
    FaultKind.SERVER_ERROR,
    FaultKind.RATE_LIMITED,
    FaultKind.MALFORMED_JSON,
    FaultKind.GARBAGE_FIELDS,
    FaultKind.TOKEN_EXPIRED,
)


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault to apply.

    ``retry_after`` (s) for 429/403; ``status`` for server errors; ``hang`` (real seconds) for
    timeouts, default the Faults' ``hang_seconds``; ``fields`` (dotted paths below the reply's
    ``data``) and ``value`` for garbage fields (default: a few random leaves, mixed garbage).
    """

    kind: FaultKind
    retry_after: float = 30.0
    status: int = 503
    hang: float | None = None
    fields: tuple[str, ...] = ()
    value: Any = "__mixed__"
    code: str = ""  # a vendor code to answer with (login challenges); "" = the kind's default


@dataclass(slots=True)
class _Rule:
    fault: Fault
    cloud: str | None
    endpoint: str | None
    vin: str | None
    remaining: int | None = None  # scripted: how many more requests
    rate: float = 0.0  # rate rule: probability per matching request

    def matches(self, cloud: str, endpoint: str, vin: str | None) -> bool:
        return (
            (self.cloud is None or self.cloud == cloud)
            and (self.endpoint is None or self.endpoint == endpoint)
            and (self.vin is None or self.vin == vin)
        )


@dataclass(frozen=True, slots=True)
class Injected:
    """One entry of the injection log."""

    time: float
    kind: str
    cloud: str
    endpoint: str
    vin: str | None
    scripted: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Faults:
    """The fault plan shared by every simulated cloud of one simulator."""

    clock: Clock | None = None
    seed: int = 0
    hang_seconds: float = 40.0
    log: list[Injected] = field(default_factory=list)
    _rules: list[_Rule] = field(default_factory=list)
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(f"faults/{self.seed}")

    # ------------------------------------------------------------------ configuring

    def script(
        self,
        kind: FaultKind | str,
        count: int = 1,
        *,
        endpoint: str | None = None,
        vin: str | None = None,
        cloud: str | None = None,
        **params: Any,
    ) -> None:
        """The next ``count`` matching requests get this fault (after earlier scripts ran out)."""
        fault = Fault(FaultKind(kind), **params)
        self._rules.append(_Rule(fault, cloud, endpoint, vin, remaining=int(count)))

    def set_rate(
        self,
        kind: FaultKind | str,
        rate: float,
        *,
        endpoint: str | None = None,
        vin: str | None = None,
        cloud: str | None = None,
        **params: Any,
    ) -> None:
        """Each matching request gets this fault with probability ``rate`` (0 removes the rule)."""
        fk = FaultKind(kind)
        self._rules = [
            r
            for r in self._rules
            if not (
                r.remaining is None
                and r.fault.kind == fk
                and (r.cloud, r.endpoint, r.vin) == (cloud, endpoint, vin)
            )
        ]
        if rate > 0:
            fault = Fault(fk, **params)
            self._rules.append(_Rule(fault, cloud, endpoint, vin, rate=min(1.0, float(rate))))

    def set_global_rate(self, rate: float) -> None:
        """Spread ``rate`` evenly over the usual transient faults (``simulator.fault_rate``)."""
        for kind in DEFAULT_MIX:
            self.set_rate(kind, rate / len(DEFAULT_MIX))

    def reset(self) -> None:
        """Forget every script and rate (the log stays, so tests can still inspect it)."""
        self._rules.clear()

    # ------------------------------------------------------------------ using

    def pick(self, cloud: str, endpoint: str, vin: str | None = None) -> Fault | None:
        """The fault for this request, if any; scripted faults first, then rates."""
        for rule in self._rules:
            if (
                rule.remaining is not None
                and rule.remaining > 0
                and rule.matches(cloud, endpoint, vin)
            ):
                rule.remaining -= 1
                if rule.remaining == 0:
                    self._rules.remove(rule)
                return self._record(rule.fault, cloud, endpoint, vin, scripted=True)
        for rule in self._rules:
            if (
                rule.remaining is None
                and rule.matches(cloud, endpoint, vin)
                and self._rng.random() < rule.rate
            ):
                return self._record(rule.fault, cloud, endpoint, vin, scripted=False)
        return None

    def _record(
        self, fault: Fault, cloud: str, endpoint: str, vin: str | None, *, scripted: bool
    ) -> Fault:
        now = self.clock.now() if self.clock is not None else 0.0
        self.log.append(Injected(now, fault.kind.value, cloud, endpoint, vin, scripted))
        if len(self.log) > 10_000:
            del self.log[:5_000]
        return fault

    def hang_for(self, fault: Fault) -> float:
        return self.hang_seconds if fault.hang is None else fault.hang

    def describe(self) -> dict[str, Any]:
        """The current plan, JSON-friendly (for the admin API)."""
        return {
            "hang_seconds": self.hang_seconds,
            "rules": [
                {
                    "kind": r.fault.kind.value,
                    "cloud": r.cloud,
                    "endpoint": r.endpoint,
                    "vin": r.vin,
                    "remaining": r.remaining,
                    "rate": r.rate,
                }
                for r in self._rules
            ],
        }

    def garble(self, data: Any, fault: Fault) -> Any:
        """Corrupt leaves of ``data`` in place per ``fault`` and return it."""
        if fault.fields:
            for path in fault.fields:
                _set_path(data, path.split("."), self._garbage(fault.value))
            return data
        leaves = list(_leaf_paths(data, []))
        if not leaves:
            return data
        for path in self._rng.sample(leaves, k=max(1, len(leaves) // 10)):
            _set_path(data, path, self._garbage(fault.value))
        return data

    def _garbage(self, value: Any) -> Any:
        if value != "__mixed__":
            return value
        return self._rng.choice(("", None, "garbage", "NaN", "-1e999", "{}", "2047x"))


def _leaf_paths(node: Any, prefix: list[str]) -> Any:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaf_paths(v, [*prefix, k])
    elif prefix:
        yield prefix


def _set_path(node: Any, path: list[str], value: Any) -> None:
    for key in path[:-1]:
        if not isinstance(node, dict) or key not in node:
            return
        node = node[key]
    if isinstance(node, dict) and path:
        node[path[-1]] = value
