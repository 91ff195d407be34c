"""What a car report must show for a command to count as done.

The cloud's acceptance only says the message was queued; a car that is out of coverage, asleep or in
a refusing state (charge start while unplugged) still yields "accepted". Success is therefore judged
from the canonical signals of a report the car made *after* the command was sent. Commands whose
effect no report carries (horn, lights, seat heating) have no expectation: acceptance is the most
that can be observed, and the outcome says exactly that.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from exporter.providers.base import Command
from exporter.signals import Value
from exporter.snapshot import Snapshot

CHARGING: Final = ("charging", "dc_charging")
WINDOWS: Final = tuple(
    f"window_open_{w}" for w in ("front_left", "front_right", "rear_left", "rear_right")
)


@dataclass(frozen=True, slots=True)
class Expectation:
    """``group`` names what the command acts on: a later command on the same group supersedes it."""

    group: str
    description: str
    signals: tuple[str, ...]
    test: Callable[[Mapping[str, Value]], bool]

    def check(self, snap: Snapshot) -> bool | None:
        """True/False when the report carries the signals, None when it says nothing about them."""
        if not any(snap.values.get(s) is not None for s in self.signals):
            return None
        return self.test(snap.values)

    def observed(self, snap: Snapshot) -> str:
        """What the report showed, for the outcome's detail text."""
        shown = [f"{s} = {_fmt(snap.values.get(s))}" for s in self.signals]
        return ", ".join(shown)


def _fmt(v: Value) -> str:
    if v is None:
        return "unknown"
    if isinstance(v, bool):
        return "true" if v else "false"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _is(signal: str, want: Value) -> Callable[[Mapping[str, Value]], bool]:
    return lambda v: v.get(signal) == want


def _windows_closed(v: Mapping[str, Value]) -> bool:
    known = [v.get(w) for w in WINDOWS if v.get(w) is not None]
    return bool(known) and not any(known)


def expectation(command: Command) -> Expectation | None:
    """The state that proves ``command`` worked, or None when no report can show it."""
    name = command.name
    if name in ("lock", "unlock"):
        want = name == "lock"
        return Expectation("locks", f"locked = {_fmt(want)}", ("locked",), _is("locked", want))
    if name in ("climate_start", "climate_stop"):
        want = name == "climate_start"
        return Expectation(
            "climate",
            f"climate_active = {_fmt(want)}",
            ("climate_active",),
            _is("climate_active", want),
        )
    if name == "charge_start":
        return Expectation(
            "charging",
            "charging_state in (charging, dc_charging)",
            ("charging_state",),
            lambda v: v.get("charging_state") in CHARGING,
        )
    if name == "charge_stop":
        return Expectation(
            "charging",
            "charging_state not in (charging, dc_charging)",
            ("charging_state",),
            lambda v: (
                v.get("charging_state") is not None and v.get("charging_state") not in CHARGING
            ),
        )
    if name == "charge_limit":
        raw = command.params.get("percent")
        ratio = float(raw) / 100.0 if isinstance(raw, int | float) else -1.0

        def limit_reached(v: Mapping[str, Value]) -> bool:
            got = v.get("charge_limit")
            return isinstance(got, float) and abs(got - ratio) < 0.005

        return Expectation(
            "charge_limit", f"charge_limit = {ratio:g}", ("charge_limit",), limit_reached
        )
    if name == "windows_close":
        return Expectation("windows", "every window_open = false", WINDOWS, _windows_closed)
    return None  # horn, flash, find, seat_heating: nothing in a report shows them
