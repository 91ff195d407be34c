"""A fleet of simulated cars on one clock, shared by every cloud simulator.

The fleet owns the cars and the clock; clouds only read reports (``state``), send commands
(``apply_command``) and listen for new reports (``on_change``, e.g. to push webhooks). VINs are
deterministic from the seed: smart cars get a plausible ``HESXR?C4…`` VIN with a valid check digit,
cars reached through the Smartcar simulator start with ``0SC``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from exporter.clock import Clock
from exporter.simulator.catalogue import VehicleSpec, spec_for
from exporter.simulator.environment import CITIES
from exporter.simulator.state import VehicleState
from exporter.simulator.vehicle import SimVehicle

log = logging.getLogger(__name__)

_VIN_CHARS: Final = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
_TRANSLIT: Final = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_WEIGHTS: Final = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_YEAR: Final = {2023: "P", 2024: "R", 2025: "S", 2026: "T", 2027: "V"}

ChangeCallback = Callable[[str], None]


@dataclass(frozen=True)
class Event:
    """One thing done to a car from outside: a remote command or a cable plugged in."""

    t: float
    vin: str
    kind: str  # "command" | "plug"
    name: str  # the command, or the plug kind ("AC", "DC")
    params: dict[str, Any] = field(default_factory=dict)
    deferred: bool = False
    refuse: str = ""


def vin_check_digit(vin: str) -> str:
    """ISO 3779 / North-American check digit (position 9)."""
    total = sum(_TRANSLIT[c] * w for c, w in zip(vin, _WEIGHTS, strict=True))
    r = total % 11
    return "X" if r == 10 else str(r)


def make_vin(prefix: str, year: int, rng: random.Random) -> str:
    """17 characters: 8 of prefix (padded), check digit, model year, plant, 6-digit serial."""
    head = (prefix + "".join(rng.choice(_VIN_CHARS) for _ in range(8)))[:8]
    tail = _YEAR.get(year, "S") + rng.choice("SNBG") + f"{rng.randrange(1_000_000):06d}"
    draft = head + "0" + tail
    return head + vin_check_digit(draft) + tail


class Fleet:
    """Cars created from ``specs`` (catalogue keys or VehicleSpec), living on ``clock`` from now on.

    ``demo`` makes the first simulated minutes lively (one car leaves soon, one is charging), which
    the interactive demo wants and tests usually do not.
    """

    def __init__(
        self,
        specs: Iterable[VehicleSpec | str] = (),
        seed: int = 42,
        clock: Clock | None = None,
        *,
        demo: bool = False,
    ) -> None:
        if clock is None:
            from exporter.clock import RealClock

            clock = RealClock()
        self.clock = clock
        self.seed = seed
        self.demo = demo
        self._cars: dict[str, SimVehicle] = {}
        self._callbacks: list[ChangeCallback] = []
        # what was done to the cars from outside (commands, plugs), in order: with the seed and
        # each car's start this is the fleet's whole history, so a restarted simulator can
        # replay it (``exporter.simulator.persist``)
        self.events: list[Event] = []
        for spec in specs:
            self.add(spec)

    # ------------------------------------------------------------------ membership

    def add(
        self, spec: VehicleSpec | str, *, cloud: str | None = None, t0: float | None = None
    ) -> str:
        """Create one more car; returns its VIN. ``cloud`` defaults to the model's usual cloud;
        ``t0`` (default: now) is when its life starts (a restored car starts where it first did)."""
        sp = spec_for(spec)
        cloud = cloud or sp.cloud
        index = len(self._cars)
        rng = random.Random(f"vin/{self.seed}/{index}/{sp.key}/{cloud}")
        prefix = sp.vin_prefix if cloud == "smart" and sp.vin_prefix else "0SC"
        vin = make_vin(prefix, sp.year, rng)
        while vin in self._cars:
            vin = make_vin(prefix, sp.year, rng)
        city = CITIES[random.Random(f"city/{self.seed}/{index}").randrange(len(CITIES))]
        if self.demo:  # one city keeps a demo map readable
            city = CITIES[0]
        self._cars[vin] = SimVehicle(
            vin,
            sp,
            seed=self.seed,
            t0=self.clock.now() if t0 is None else t0,
            city=city,
            cloud=cloud,
            index=index,
            demo=self.demo,
        )
        return vin

    def discard(self, vin: str) -> None:
        """Forget a car that was never used (the runner rebuilds it with its saved start)."""
        self._cars.pop(vin, None)

    @property
    def vins(self) -> list[str]:
        return list(self._cars)

    def vins_for(self, cloud: str) -> list[str]:
        """The VINs of the cars reached through ``cloud`` ("smart" or "smartcar")."""
        return [vin for vin, car in self._cars.items() if car.cloud == cloud]

    def vehicle(self, vin: str) -> SimVehicle:
        try:
            return self._cars[vin]
        except KeyError:
            raise KeyError(f"no simulated vehicle with VIN {vin}") from None

    def __contains__(self, vin: object) -> bool:
        return vin in self._cars

    def __len__(self) -> int:
        return len(self._cars)

    # ------------------------------------------------------------------ reading

    def state(self, vin: str) -> VehicleState:
        """The car's last report as of the clock's now (shared object: read, don't mutate)."""
        car = self.vehicle(vin)
        new = car.advance(self.clock.now())
        if new:
            self._notify(vin)
        return car.state(self.clock.now())

    def live_state(self, vin: str) -> VehicleState:
        """The physical state now, reported or not (for tests and ground-truth checks)."""
        car = self.vehicle(vin)
        if car.advance(self.clock.now()):
            self._notify(vin)
        return car.live_state(self.clock.now())

    def ground_truth(self, vin: str, *, include_open: bool = False) -> dict[str, Any]:
        """Every finished trip and charging session of the car so far, JSON-serialisable."""
        car = self.vehicle(vin)
        if car.advance(self.clock.now()):
            self._notify(vin)
        out = car.truth.to_dict(include_open=include_open)
        # where the car lives and works (for scoring place discovery); an underground car park has
        # no GPS fix, so its "work" cannot be seen in the reports
        out["places"] = {
            "home": list(car.traits.home),
            "work": list(car.traits.work),
            "work_has_gps": not car.traits.underground_work,
        }
        return out

    def reports(self, vin: str) -> int:
        """How many reports the car has uploaded since it was created."""
        return self.vehicle(vin).reports

    # ------------------------------------------------------------------ commands and changes

    def apply_command(
        self,
        vin: str,
        name: str,
        params: Mapping[str, Any] | None = None,
        *,
        deferred: bool = False,
        refuse: str | None = None,
    ) -> tuple[bool, str]:
        """Send a remote command; (accepted, reason). The effect shows a few seconds later.
        ``deferred``/``refuse``: see ``SimVehicle.apply_command`` (the car judges it later)."""
        car = self.vehicle(vin)
        before = car.reports
        now = self.clock.now()
        self.events.append(
            Event(now, vin, "command", name, dict(params or {}), deferred, refuse or "")
        )
        result = car.apply_command(name, params, now, deferred=deferred, refuse=refuse)
        if car.reports != before:
            self._notify(vin)
        return result

    def plug_in(self, vin: str, kind: str = "AC") -> bool:
        """Test/demo control: plug a cable into a parked car now (AC: its home wallbox; DC: a
        150 kW charger); it charges from its next report on. False when driving or plugged."""
        now = self.clock.now()
        self.events.append(Event(now, vin, "plug", kind))
        return self.vehicle(vin).plug_in(now, kind)

    def replay(self, events: Iterable[Event]) -> None:
        """Do again, at their own times, what was done to the cars before a restart (in order;
        each car catches up to the event first, exactly as it did the first time)."""
        for e in events:
            car = self.vehicle(e.vin)
            if e.kind == "command":
                car.apply_command(
                    e.name, e.params, e.t, deferred=e.deferred, refuse=e.refuse or None
                )
            elif e.kind == "plug":
                car.plug_in(e.t, e.name)
            else:
                raise ValueError(f"unknown fleet event {e.kind!r}")
            self.events.append(e)

    def on_change(self, callback: ChangeCallback) -> Callable[[], None]:
        """Call ``callback(vin)`` whenever a car uploaded at least one new report; returns an
        unsubscribe function. Reports appear when cars are advanced (any read, ``tick`` or the
        background ``run`` loop), and one call covers all reports produced by one catch-up."""
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return unsubscribe

    def _notify(self, vin: str) -> None:
        for cb in list(self._callbacks):
            try:
                cb(vin)
            except Exception:  # a listener's bug must not break the simulated cars
                log.exception("fleet on_change listener failed", extra={"event": "sim_listener"})

    def tick(self) -> int:
        """Advance every car to now; returns the number of new reports."""
        now = self.clock.now()
        total = 0
        for vin, car in self._cars.items():
            new = car.advance(now)
            if new:
                total += new
                self._notify(vin)
        return total

    async def run(self, every: float = 1.0) -> None:
        """Tick forever every ``every`` real seconds (so ``on_change`` listeners hear reports even
        when nobody polls). Cancel the task to stop."""
        while True:
            self.tick()
            await asyncio.sleep(every)
