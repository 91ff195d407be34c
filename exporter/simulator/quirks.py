"""Rare events in a car's life that break naive trip detection, each drawn once per car.

They are off in the default fleet (the demo stays plausible) and switched on with
``Fleet(..., rare=True)``, which the accuracy bench does: then every car gets one, by its index in
the fleet, so a bench of three models meets each kind.

* ``odometer_reset``: the instrument cluster or telematics unit is replaced and the reported
  odometer starts again from a low value, for good (the physical car drives on). Clouds pass the
  new unit's reading through unchanged (smart-cloud-api.md §3.3 "Odometer" is the unit's own
  counter); analysis must carry the step over rather than drop every later reading.
* ``holiday``: parked at home for days. After ``DEEP_SLEEP_AFTER_S`` parked the car stops its
  periodic uploads until it is used again, so a poller sees the same old report for days
  (logger-anchors.md §2.3: a sleeping car answers from the cloud's cache; "asleep: no rows").
* ``miles_from``: the owner switches the car (the OEM account) to imperial; a Smartcar v3 signal
  then carries distances in miles with ``"unit": "miles"`` (smartcar-v3.md §3.2 "Imperial units
  seen or handled: miles, psi, gallons" [3P-LIVE]). Only the Smartcar simulator renders it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

from exporter.simulator.environment import DAY

DEEP_SLEEP_AFTER_S: Final = 1.5 * DAY
KINDS: Final = ("odometer_reset", "holiday", "miles")


@dataclass(frozen=True, slots=True)
class Quirks:
    """The rare events of one car (all None: a plain car)."""

    odometer_reset_at: float | None = None
    odometer_reset_to_km: float = 0.0
    holiday_from: float | None = None
    holiday_until: float | None = None
    miles_from: float | None = None

    @staticmethod
    def draw(seed: int, vin: str, index: int, t0: float, cloud: str) -> Quirks:
        """The event of the car at ``index`` in a ``rare`` fleet, within its first three weeks.

        Index 0, 3, ... get an odometer reset; 1, 4, ... a holiday; 2, 5, ... a unit switch on
        Smartcar (on the smart cloud, which has no unit choice, an odometer reset instead).
        """
        rng = random.Random(f"quirks/{seed}/{vin}")
        kind = KINDS[index % len(KINDS)]
        if kind == "miles" and cloud != "smartcar":
            kind = "odometer_reset"
        at = t0 + rng.uniform(3.0, 18.0) * DAY
        if kind == "odometer_reset":
            return Quirks(odometer_reset_at=at, odometer_reset_to_km=rng.uniform(0.0, 60.0))
        if kind == "holiday":
            return Quirks(holiday_from=at, holiday_until=at + rng.uniform(3.0, 6.0) * DAY)
        return Quirks(miles_from=at)

    def on_holiday(self, t: float) -> bool:
        return (
            self.holiday_from is not None
            and self.holiday_until is not None
            and self.holiday_from <= t < self.holiday_until
        )


PLAIN: Final = Quirks()
