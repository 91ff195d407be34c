"""One simulated car: drives, parks, charges and uploads reports on a deterministic schedule.

Time is lazy. A car does nothing until somebody reads it; then it catches up from its last event to
``now`` on a fixed 10-second grid, so its life is the same whether it is read every second or once
a day. Catching up is cheap because only driving is stepped: a parked car (idle drain, cabin and
tyres cooling towards the weather) and a charging car (piecewise-linear power curve) are evaluated
in closed form from the start of their current segment, and only at the instants that matter
(reports and events). A fleet of 10,000 mostly-parked cars therefore costs little more than its
driving minutes.

What a cloud serves is the car's last *report*, not its live state: the car uploads every 60 s
while driving, charging or running its climate, at every discrete change (parked, locked, plugged,
command done), when it falls asleep 15 minutes after the last activity, and then only every few
hours. That is why ``state()`` returns the last report and why ``report_time`` moves only when the
car uploads.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from exporter.simulator import physics
from exporter.simulator.catalogue import VehicleSpec
from exporter.simulator.charging import (
    AC_EFFICIENCY,
    DC_EFFICIENCY,
    ChargeCurve,
    ac_curve,
    dc_curve,
    pack_voltage,
)
from exporter.simulator.environment import (
    DAY,
    City,
    Weather,
    day_number,
    next_local_midnight,
    terrain_altitude,
    unit_hash,
    utc_offset,
    weekday,
)
from exporter.simulator.plan import HOUR, Intent, Traits, day_plan, short_hop
from exporter.simulator.quirks import DEEP_SLEEP_AFTER_S, PLAIN, Quirks
from exporter.simulator.routes import Route, distance_m, make_route
from exporter.simulator.state import ALL_TRUE, CLOSED, SEATS, VehicleState
from exporter.simulator.truth import Charge, GroundTruth, Trip

STEP: Final = 10.0
REPORT_STEPS: Final = 6  # one upload per minute while driving
ACTIVE_REPORT_S: Final = 60.0  # while charging or running the climate
AWAKE_S: Final = 900.0  # the car falls asleep 15 minutes after the last activity
RESERVE_SOC: Final = 10.0  # below this a driving car stops at the next fast charger
DC_TARGET_SOC: Final = 80.0
RANGE_RESERVE_SOC: Final = 2.0  # % the range estimate keeps back
COMMAND_DELAY_S: Final = 5.0
# what the car itself can do (the simulator keeps its own list: it never imports client code; a
# test checks that every command the exporter can send is one the car knows)
COMMANDS: Final = (
    "lock",
    "unlock",
    "climate_start",
    "climate_stop",
    "charge_start",
    "charge_stop",
    "charge_limit",
    "horn",
    "flash",
    "find",
    "windows_close",
    "seat_heating",
    "windows_open",  # app-only: the exporter does not send it
)

_INF = math.inf
_K_CABIN: Final = math.exp(-STEP / 300.0)
_K_TYRE: Final = math.exp(-STEP / 900.0)


def grid_floor(t: float) -> float:
    return math.floor(t / STEP + 1e-9) * STEP


def grid_ceil(t: float) -> float:
    return math.ceil(t / STEP - 1e-9) * STEP


@dataclass(slots=True)
class _Drive:
    route: Route
    trip: Trip
    dest: str
    point: tuple[float, float] | None
    rng: random.Random
    urban_m: float
    cruise_kmh: float
    urban_kmh: float
    dist: float = 0.0
    steps: int = 0
    stop_steps: int = 0
    jam_steps: int = 0
    jam_kmh: float = 0.0
    out_minute: int = -1
    out: float = 0.0
    tyre_c: float = 0.0


class CommandError(ValueError):
    """A command the car refuses; the message is the reason shown to the caller."""


class SimVehicle:
    """A car living its own life from ``t0`` on; see the module docstring for the time model."""

    def __init__(
        self,
        vin: str,
        spec: VehicleSpec,
        *,
        seed: int,
        t0: float,
        city: City,
        cloud: str,
        index: int = 0,
        demo: bool = False,
        quirks: Quirks = PLAIN,
    ) -> None:
        self.vin = vin
        self.quirks = quirks
        self._odo_drop: float | None = None
        self.spec = spec
        self.cloud = cloud
        self.index = index
        self.seed = seed
        self.city = city
        self.weather = Weather(city, seed)
        rng = random.Random(f"traits/{seed}/{vin}")
        self.traits = Traits.draw(rng, city)
        self.truth = GroundTruth(vin)
        self.reports = 0
        self.command_delay = COMMAND_DELAY_S
        self.trackpoints: deque[tuple[float, float, float, float]] = deque(maxlen=4000)
        # the car's "record trips" setting (journalLogState) as (since, on) switches: the cloud's
        # journal holds only trips that started while it was on (pysmarthashtag control/journal.py)
        self.journal_switches: list[tuple[float, bool]] = [(float("-inf"), True)]
        self._scale = physics.traction_scale(spec)
        self._cons_avg = spec.consumption_kwh_100km * 1.08
        self._cons_recent = self._cons_avg * random.Random(f"range/{seed}/{vin}").uniform(1.0, 1.15)
        self._agenda: list[tuple[float, int, str, Any]] = []
        self._seq = itertools.count()
        self._gen = 0
        self._dep_gen = 0
        self._dep_pending = False
        self._climate_token = 0
        self.t0 = t0  # when its life started (a restarted simulator rebuilds it from here)
        self._t = grid_floor(t0)
        self._intents: deque[Intent] = deque()
        self._drive: _Drive | None = None
        self._location = "home"
        self._arrived_at = self._t - 8 * HOUR
        self._awake_until = self._t - 1.0
        self._sleep_t0 = self._t - round(rng.uniform(0, self.traits.sleep_report_s) / STEP) * STEP
        self._curve: ChargeCurve | None = None
        self._target_soc = 0.0
        self._charge: Charge | None = None
        self._user_stopped = False
        self._ac_phases = self.traits.home_phases
        self._station_kw = self.traits.home_station_kw
        self._resume: Route | None = None
        self._trips = 0
        self._limit_time = self._t - 30 * DAY
        nominal = (spec.tyre_kpa[0], spec.tyre_kpa[0], spec.tyre_kpa[1], spec.tyre_kpa[1])
        self._tyre_nominal = nominal
        self._tyre_cold = tuple(p - rng.uniform(0.0, 8.0) for p in nominal)
        self._tyre_leak = tuple(rng.uniform(0.2, 1.2) / (30 * DAY) for _ in nominal)
        self._tyre_fill_t = self._t
        self._service_due_t = self._t + rng.uniform(30, 700) * DAY
        odo = rng.uniform(1500.0, 40000.0)
        self._service_due_km = odo + rng.uniform(2000.0, 30000.0)
        out = self.weather.temperature(self._t)
        lat, lon = self.traits.home
        self._s = VehicleState(
            report_time=self._t,
            soc=rng.uniform(45.0, 90.0),
            charge_limit=self.traits.charge_limit,
            odometer_km=odo,
            lat=lat,
            lon=lon,
            altitude_m=terrain_altitude(lat, lon, city.elevation_m),
            heading_deg=rng.uniform(0, 360),
            park_since=self._arrived_at,
            cabin_temp_c=out,
            outside_temp_c=out,
            climate_target_c=self.traits.climate_target_c,
            sunroof_fitted=spec.sunroof,
            tyre_temp_c=(out, out, out, out),
            trip_km=rng.uniform(0, 40),
        )
        self._seg_t0 = self._t
        self._seg0 = self._s.copy()
        self._seg_out0 = out
        self._resume_ready = True
        self._plan_day(self._t, include_past=False)
        if demo:
            self._demo_kick(index)
        self._begin_segment()
        self._schedule_departure()
        self._report(self._t)
        self._reported = self._snapshot

    # ------------------------------------------------------------------ public

    def advance(self, now: float) -> int:
        """Catch up to ``now``; returns how many new reports the car uploaded meanwhile."""
        target = grid_floor(now)
        before = self.reports
        while True:
            t_agenda = self._agenda[0][0] if self._agenda else _INF
            t_step = self._t + STEP if self._drive is not None else _INF
            t_rep = self._next_periodic_report()
            te = min(t_agenda, t_step, t_rep)
            if te > target:
                break
            report = False
            if te == t_step:
                report = self._step(te)
            else:
                self._t = te
            while self._agenda and self._agenda[0][0] <= te:
                _, _, kind, data = heapq.heappop(self._agenda)
                report = self._handle(te, kind, data) or report
            if report or te == t_rep:
                self._report(te)
        if self.reports != before:
            self._reported = self._snapshot
        return self.reports - before

    def state(self, now: float) -> VehicleState:
        """The last report as of ``now``. Shared, do not mutate."""
        self.advance(now)
        return self._reported

    def live_state(self, now: float) -> VehicleState:
        """The physical state at ``now`` (on the 10 s grid), whether or not the car reported it."""
        self.advance(now)
        if self._drive is None:
            self._eval_parked(grid_floor(now))
        else:
            self._sync_drive(self._t)
        live = self._s.copy()
        live.report_time = grid_floor(now)
        return live

    @property
    def driving(self) -> bool:
        return self._drive is not None

    def set_journal_recording(self, t: float, on: bool) -> None:
        """Switch the car's trip recording (the app's "record trips"); trips starting from ``t``
        on follow the new setting, recorded ones stay in the cloud's journal."""
        self.journal_switches.append((t, on))

    def journal_recording(self, t: float) -> bool:
        """Whether a trip starting at ``t`` is written to the cloud's trip journal."""
        on = True
        for since, state in self.journal_switches:
            if since <= t:
                on = state
        return on

    def odometer_shown(self, km: float, t: float) -> float:
        """What the car's own unit showed at ``t`` for the physical odometer ``km``: after an
        odometer reset (a replaced cluster or telematics unit) the new unit's count, which the
        reports carry and the car's trip journal logs alike."""
        q = self.quirks
        if self._odo_drop is None or q.odometer_reset_at is None or t < q.odometer_reset_at:
            return km
        return km - self._odo_drop

    def plug_in(self, now: float, kind: str = "AC") -> bool:
        """Test/demo control, not a remote command: somebody plugs a cable in right now (charging
        starts at once, whatever the driver's habits). False while driving or already plugged."""
        live = self.live_state(now)
        if live.driving or live.plugged or kind not in {"AC", "DC"}:
            return False
        if kind == "DC":
            self._station_kw = 150.0
        self._push(max(grid_ceil(now), self._t + STEP), "plug", f"{kind}-now")
        return True

    def apply_command(
        self,
        name: str,
        params: Mapping[str, Any] | None,
        now: float,
        *,
        deferred: bool = False,
        refuse: str | None = None,
    ) -> tuple[bool, str]:
        """Validate a remote command against the live state and schedule its effect.

        The effect shows in the car's next report a few simulated seconds later (``command_delay``),
        like a real car that has to wake up and act. A command that cannot work in the current state
        (charge_start while unplugged, lock with a door open, anything but climate/windows while
        driving) is refused at once with a reason.

        ``deferred``: the cloud only queues the message and the car judges it when it acts, so a
        refusal comes after the acceptance (reference §3.4: the reply is the cloud's acceptance
        only). ``refuse``: the car will refuse it then with this reason whatever its state (out of
        coverage, a refusing ECU: the fault the strict cloud injects).
        """
        params = dict(params or {})
        if not deferred:
            live = self.live_state(now)
            try:
                self._validate(name, params, live)
            except CommandError as exc:
                self.truth.commands.append(
                    {"time": now, "name": name, "params": params, "ok": False, "reason": str(exc)}
                )
                return False, str(exc)
        when = max(grid_ceil(now + self.command_delay), self._t + STEP)
        self._push(when, "cmd", (name, params, now, refuse))
        return True, "accepted"

    # ------------------------------------------------------------------ agenda

    def _push(self, t: float, kind: str, data: Any = None) -> None:
        heapq.heappush(self._agenda, (t, next(self._seq), kind, data))

    def _handle(self, t: float, kind: str, data: Any) -> bool:
        """Run one agenda item at ``t``; True when the car uploads a report because of it."""
        handler = getattr(self, f"_on_{kind}")
        return bool(handler(t, data))

    def _next_periodic_report(self) -> float:
        if self._drive is not None:
            return _INF
        s = self._s
        if s.charging or s.climate_on:
            k = math.floor((self._t - self._seg_t0) / ACTIVE_REPORT_S + 1e-9) + 1
            return self._seg_t0 + k * ACTIVE_REPORT_S
        if self._t < self._awake_until:
            return _INF
        period = self.traits.sleep_report_s
        k = math.floor((self._t - self._sleep_t0) / period + 1e-9) + 1
        t = self._sleep_t0 + k * period
        q = self.quirks
        if q.holiday_until is not None and q.on_holiday(t):
            deep = max(self._arrived_at, q.holiday_from or t) + DEEP_SLEEP_AFTER_S
            if t >= deep:  # deep sleep: no uploads until the holiday is over
                k = math.ceil((q.holiday_until - self._sleep_t0) / period - 1e-9)
                t = max(self._sleep_t0 + k * period, t)
        return t

    def _report(self, t: float) -> None:
        if self._drive is None:
            self._eval_parked(t)
        else:
            self._sync_drive(t)
        s = self._s
        s.report_time = t
        if self._drive is not None:
            self.trackpoints.append((t, s.lat, s.lon, s.altitude_m))
        self._snapshot = s.copy()
        q = self.quirks
        if q.odometer_reset_at is not None and t >= q.odometer_reset_at:
            # a new cluster / telematics unit counts from its own low value from now on
            if self._odo_drop is None:
                self._odo_drop = s.odometer_km - q.odometer_reset_to_km
            self._snapshot.odometer_km -= self._odo_drop
        self.reports += 1
        if s.lights_flashing or s.horn:
            s.lights_flashing = s.horn = False

    # ------------------------------------------------------------------ parked segments

    def _begin_segment(self) -> None:
        """Freeze the current state as the start of a closed-form parked segment."""
        self._gen += 1
        self._seg_t0 = self._t
        self._seg_out0 = self.weather.temperature(self._t)
        s = self._s
        self._seg0 = s.copy()
        self._curve = None
        if s.charging:
            cap = self.spec.battery_kwh
            if s.dc:
                curve = dc_curve(
                    cap,
                    self.spec.max_dc_kw,
                    self._station_kw,
                    self.spec.dc_taper_soc,
                    s.outside_temp_c,
                )
            else:
                car = self.spec.max_ac_kw * AC_EFFICIENCY
                curve = ac_curve(cap, car, self._station_kw * AC_EFFICIENCY)
            self._curve = curve
            secs = curve.seconds_to(s.soc, self._target_soc)
            self._push(max(grid_ceil(self._t + secs), self._t + STEP), "charge_done", self._gen)

    def _eval_parked(self, t: float) -> None:
        """Set the dynamic fields of the live state to their values at ``t`` (closed form)."""
        s, s0 = self._s, self._seg0
        dt = t - self._seg_t0
        spec = self.spec
        out = self.weather.temperature(t)
        awake = s0.charging or s0.climate_on or t < self._awake_until
        curve = self._curve
        power = 0.0
        if curve is not None:
            soc = curve.soc_after(s0.soc, dt, self._target_soc)
            if soc < self._target_soc - 1e-6:
                power = curve.power(soc)
                s.time_to_full_min = curve.seconds_to(soc, self._target_soc) / 60.0
            else:
                s.time_to_full_min = 0.0
        else:
            drain = physics.IDLE_DRAIN_KW + (physics.AWAKE_KW if awake else 0.0)
            if s0.climate_on and not s0.plugged:
                drain += physics.hvac_kw(self._seg_out0, s0.climate_target_c)
            soc = max(0.0, s0.soc - drain * dt / 3600.0 / spec.battery_kwh * 100.0)
            s.time_to_full_min = None
        s.soc = soc
        s.outside_temp_c = out
        if s0.climate_on:
            target, target0, tau = s0.climate_target_c, s0.climate_target_c, 420.0
        else:
            target = out + 8.0 * self.weather.sun(t)
            target0 = self._seg_out0 + 8.0 * self.weather.sun(self._seg_t0)
            tau = 3600.0
        s.cabin_temp_c = target + (s0.cabin_temp_c - target0) * math.exp(-dt / tau)
        decay = math.exp(-dt / 2400.0)
        temps = tuple(out + (x - self._seg_out0) * decay for x in s0.tyre_temp_c)
        s.tyre_temp_c = temps  # type: ignore[assignment]
        self._set_tyre_pressures(t)
        s.awake = awake
        if awake:
            s.battery_12v_v = 14.2 + 0.04 * math.sin(t / 613.0)
            s.battery_12v_pct = 95.0
        else:
            days = max(0.0, t - self._sleep_t0) / DAY
            s.battery_12v_v = max(12.2, 12.62 - 0.012 * days + 0.01 * math.sin(t / 977.0))
            s.battery_12v_pct = max(60.0, 94.0 - 0.5 * days)
        s.power_mode = "accessory" if s0.climate_on else "off"
        self._set_charging_electricals(power)
        self._set_range_and_service(t)

    def _set_tyre_pressures(self, t: float) -> None:
        s = self._s
        age = t - self._tyre_fill_t
        s.tyre_kpa = tuple(  # type: ignore[assignment]
            physics.tyre_pressure_kpa(c - leak * age, temp)
            for c, leak, temp in zip(self._tyre_cold, self._tyre_leak, s.tyre_temp_c, strict=True)
        )

    def _set_charging_electricals(self, battery_kw: float) -> None:
        s = self._s
        s.pack_voltage_v = pack_voltage(s.soc, *self.spec.pack_voltage)
        if battery_kw <= 0.0 or not s.charging:
            s.charge_power_kw = s.charge_voltage_v = s.charge_current_a = 0.0
            s.charge_phases = 0
            return
        if s.dc:
            volts = s.pack_voltage_v + 6.0
            s.charge_power_kw = battery_kw
            s.charge_voltage_v = volts
            s.charge_current_a = battery_kw * 1000.0 / volts
            s.charge_phases = 0
        else:
            grid_kw = battery_kw / AC_EFFICIENCY
            s.charge_power_kw = grid_kw
            s.charge_phases = self._ac_phases
            if self._ac_phases == 3:
                s.charge_voltage_v = 400.0
                s.charge_current_a = grid_kw * 1000.0 / (math.sqrt(3) * 400.0)
            else:
                s.charge_voltage_v = 230.0
                s.charge_current_a = grid_kw * 1000.0 / 230.0

    def _set_range_and_service(self, t: float) -> None:
        """The car's own range estimate, not SoC x a constant.

        A real reply reads 128 km at 47 % next to 330 km at 100 % (pysmarthashtag
        tests/replys/vehicle_info.json; smart-cloud-api.md §3.3 "Range"): the estimate follows the
        consumption of the last drives and the temperature, and keeps a small reserve, while the
        range at 100 % follows the long-run average. So range / range-at-100 % is near, but never
        exactly, SoC, and it jumps when a drive ends.
        """
        s = self._s
        cap = self.spec.battery_kwh
        s.range_at_full_km = cap / self._cons_avg * 100.0
        cons_now = self._cons_recent * (1.0 + 0.012 * max(0.0, 12.0 - s.outside_temp_c))
        s.range_km = max(0.0, s.soc - RANGE_RESERVE_SOC) / 100.0 * cap / cons_now * 100.0
        s.service_km = self._service_due_km - s.odometer_km
        s.service_days = (self._service_due_t - t) / DAY

    # ------------------------------------------------------------------ driving

    def _step(self, t: float) -> bool:
        """One 10 s driving step ending at ``t``; True when the car uploads a report."""
        d = self._drive
        assert d is not None
        s = self._s
        rng = d.rng
        v0 = s.speed_kmh
        length = d.route.length_m
        urban = d.dist < d.urban_m or length - d.dist < d.urban_m
        if d.stop_steps > 0:
            d.stop_steps -= 1
            want = 0.0
        elif urban and d.steps > 0 and rng.random() < 0.07:
            # a red light or a junction: a report made now reads speed 0 with the drive train on
            # (smart-cloud-api.md §3.3 basicVehicleStatus usageMode/engineStatus), not the end of a drive
            d.stop_steps = rng.randint(1, 3)
            want = 0.0
        elif d.jam_steps > 0:
            d.jam_steps -= 1
            want = d.jam_kmh
        else:
            want = d.urban_kmh if urban else d.cruise_kmh
            if not urban and d.cruise_kmh > 100 and rng.random() < 0.004:
                d.jam_steps = rng.randint(6, 18)
                d.jam_kmh = rng.uniform(20.0, 60.0)
            want += rng.uniform(-4.0, 4.0)
        v1 = max(0.0, v0 + max(-35.0, min(25.0, want - v0)))
        ds = (v0 + v1) / 2.0 / 3.6 * STEP
        remaining = length - d.dist
        arrive = ds >= remaining
        if arrive:
            ds = max(0.0, remaining)
            v1 = 0.0
        minute = int(t // 60.0)
        if minute != d.out_minute:  # the weather moves slowly: one lookup per minute is plenty
            d.out_minute = minute
            d.out = self.weather.temperature(t)
        out = d.out
        energy = physics.step_energy_kwh(
            self.spec, self._scale, v0, v1, STEP, out, s.climate_target_c
        )
        d.dist += ds
        d.steps += 1
        km = ds / 1000.0
        s.odometer_km += km
        s.trip_km += km
        s.soc = max(0.0, s.soc - energy / self.spec.battery_kwh * 100.0)
        trip = d.trip
        trip.distance_km += km
        trip.energy_kwh += energy
        if v1 > trip.max_speed_kmh:
            trip.max_speed_kmh = v1
        s.speed_kmh = v1
        s.cabin_temp_c = s.climate_target_c + (s.cabin_temp_c - s.climate_target_c) * _K_CABIN
        hot = out + 12.0 + 0.1 * v1
        d.tyre_c = hot + (d.tyre_c - hot) * _K_TYRE
        self._t = t
        if arrive:
            self._sync_drive(t)
            self._arrive(t)
            return True
        if s.soc < RESERVE_SOC and length - d.dist > 2000.0:
            self._sync_drive(t)
            self._resume = d.route.tail(d.dist)
            self._resume_ready = False
            self._intents.appendleft(Intent(None, d.dest, "resume", d.point))
            self._arrive(t, charger=True)
            return True
        return d.steps % REPORT_STEPS == 0

    def _sync_drive(self, t: float) -> None:
        """Derive the slow or positional fields of a driving car (only when someone looks)."""
        d = self._drive
        assert d is not None
        s = self._s
        s.lat, s.lon, s.heading_deg = d.route.at(d.dist)
        s.altitude_m = terrain_altitude(s.lat, s.lon, self.city.elevation_m)
        s.outside_temp_c = d.out if d.out_minute >= 0 else self.weather.temperature(t)
        s.tyre_temp_c = (d.tyre_c, d.tyre_c, d.tyre_c, d.tyre_c)
        self._set_tyre_pressures(t)
        self._set_range_and_service(t)
        s.pack_voltage_v = pack_voltage(s.soc, *self.spec.pack_voltage)
        s.battery_12v_v = 14.25 + 0.03 * math.sin(t / 311.0)
        elapsed = t - d.trip.start
        s.avg_speed_kmh = d.trip.distance_km / (elapsed / 3600.0) if elapsed > 0 else 0.0

    def _start_trip(self, t: float, intent: Intent) -> None:
        s = self._s
        rng = random.Random(f"trip/{self.seed}/{self.vin}/{self._trips}")
        self._trips += 1
        here = (s.lat, s.lon)
        if intent.kind == "resume" and self._resume is not None:
            route = self._resume
        elif intent.dest == "work" and self._location == "home":
            route = self._commute_route()
        elif intent.dest == "home" and self._location == "work":
            route = self._commute_route().reversed()
        else:
            route = make_route(here, self._dest_point(intent), rng)
        self._resume = None
        length = route.length_m
        if length > 60_000:
            cruise = rng.uniform(110.0, 128.0)
        elif length > 12_000:
            cruise = rng.uniform(75.0, 95.0)
        else:
            cruise = rng.uniform(45.0, 60.0)
        trip = Trip(t, s.lat, s.lon, s.soc, s.odometer_km, intent.kind)
        self.truth.trips.append(trip)
        self.truth.trim()
        self._drive = _Drive(
            route=route,
            trip=trip,
            dest=intent.dest,
            point=intent.point,
            rng=rng,
            urban_m=min(2500.0, 0.25 * length),
            cruise_kmh=cruise * self.traits.speed_factor,
            urban_kmh=rng.uniform(38.0, 50.0),
            tyre_c=sum(s.tyre_temp_c) / 4.0,
        )

    def _commute_route(self) -> Route:
        rng = random.Random(f"commute/{self.seed}/{self.vin}")
        return make_route(self.traits.home, self.traits.work, rng)

    def _dest_point(self, intent: Intent) -> tuple[float, float]:
        if intent.dest == "home":
            return self.traits.home
        if intent.dest == "work":
            return self.traits.work
        assert intent.point is not None
        return intent.point

    def _arrive(self, t: float, *, charger: bool = False) -> None:
        d = self._drive
        assert d is not None
        s = self._s
        trip = d.trip
        trip.end = t
        trip.end_lat, trip.end_lon = s.lat, s.lon
        trip.soc_to = s.soc
        trip.odometer_to_km = s.odometer_km
        if trip.distance_km > 2.0:
            w = min(0.5, trip.distance_km / 200.0)
            self._cons_avg = self._cons_avg * (1 - w) + trip.energy_kwh / trip.distance_km * 100 * w
        if trip.distance_km > 0.5:  # the range estimate weighs the last drives heavily
            w = min(0.6, trip.distance_km / 25.0)
            cons = max(8.0, min(45.0, trip.energy_kwh / trip.distance_km * 100))
            self._cons_recent = self._cons_recent * (1 - w) + cons * w
        self._drive = None
        self._location = "charger" if charger else d.dest
        self._arrived_at = t
        s.driving = False
        s.speed_kmh = 0.0
        s.power_mode = "off"
        s.climate_on = False
        s.park_since = t
        s.door_open = (True, False, False, False)
        s.gps_fix = not (self._location == "work" and self.traits.underground_work)
        rng = d.rng
        if s.outside_temp_c > 20.0 and rng.random() < self.traits.window_ajar_p:
            s.window_open = (10.0, 0.0, 0.0, 0.0)
        self._push(t + 30.0, "door_close")
        if rng.random() >= self.traits.forget_lock_p:
            self._push(t + 60.0, "lock")
        if charger or (self._location == "point" and s.soc < 30.0):
            self._station_kw = rng.choice((50.0, 150.0, 150.0, 300.0))
            self._push(t + 120.0, "plug", "DC")
        elif self._location == "home" and (
            s.soc < self.traits.plug_below_soc or rng.random() < 0.15
        ):
            self._push(t + 120.0, "plug", "AC")
        self._awake_until = t - 1.0
        self._wake(t)
        self._begin_segment()
        self._schedule_departure()

    # ------------------------------------------------------------------ plans and departures

    def _plan_day(self, t: float, *, include_past: bool) -> None:
        tz = self.city.tz
        midnight = t - ((t + utc_offset(t, tz)) % DAY)
        rng = random.Random(f"day/{self.seed}/{self.vin}/{day_number(t, tz)}")
        pending_home = any(i.dest == "home" for i in self._intents)
        away = self._location != "home" and not pending_home and self._drive is None
        holiday = self.quirks.on_holiday(midnight + DAY / 2)
        plan = [] if holiday else day_plan(rng, self.traits, midnight, weekday(t, tz), away)
        if not holiday and not away:
            # a separate stream, so the rest of the plan stays what it was
            hop = random.Random(f"hop/{self.seed}/{self.vin}/{day_number(t, tz)}")
            plan = sorted(
                plan + short_hop(hop, self.traits, midnight, plan),
                key=lambda i: i.time if i.time is not None else 0.0,
            )
        for intent in plan:
            if include_past or intent.time is None or intent.time > t:
                self._intents.append(intent)
        self._push(next_local_midnight(t, tz), "midnight")

    def _on_midnight(self, t: float, _data: Any) -> bool:
        self._plan_day(t, include_past=True)
        self._schedule_departure()
        return False

    def _schedule_departure(self) -> None:
        if self._drive is not None or self._dep_pending:
            return
        while self._intents and self._intents[0].dest == self._location != "point":
            self._intents.popleft()
        if not self._intents:
            return
        intent = self._intents[0]
        if intent.time is None:
            if self._s.charging or not self._resume_ready:
                return  # leave when the fast charger is done
            wanted = self._t + 300.0
        else:
            wanted = intent.time
        dep = max(grid_ceil(wanted), grid_ceil(self._arrived_at + 600.0), self._t + 2 * STEP)
        self._dep_gen += 1
        self._dep_pending = True
        self._push(dep - 60.0 if dep - 60.0 > self._t else self._t + STEP, "prepare", self._dep_gen)

    def _on_prepare(self, t: float, gen: int) -> bool:
        if gen != self._dep_gen or self._drive is not None:
            return False
        self._eval_parked(t)
        s = self._s
        if s.plugged:
            self._unplug(t)
        s.locked = False
        s.door_locked = CLOSED
        s.trunk_locked = False
        s.door_open = (True, False, False, False)
        self._wake(t)
        self._begin_segment()
        self._push(t + 60.0, "depart", gen)
        return True

    def _on_depart(self, t: float, gen: int) -> bool:
        if gen != self._dep_gen or self._drive is not None:
            return False
        self._dep_pending = False
        self._eval_parked(t)
        while self._intents and self._intents[0].dest == self._location != "point":
            self._intents.popleft()
        if not self._intents:
            self._lock_all()
            self._begin_segment()
            return True
        intent = self._intents.popleft()
        s = self._s
        if s.plugged:
            self._unplug(t)
        if min(self._tyre_cold) < min(self._tyre_nominal) - 18.0 or (
            t - self._tyre_fill_t > 180 * DAY
        ):
            self._tyre_cold = self._tyre_nominal
            self._tyre_fill_t = t
        self._lock_all()
        s.door_open = CLOSED
        s.trunk_open = s.hood_open = False
        s.window_open = (0.0, 0.0, 0.0, 0.0)
        s.sunroof_open = False
        s.climate_on = True
        s.driving = True
        s.power_mode = "driving"
        s.awake = True
        s.gps_fix = True
        s.trip_km = 0.0
        s.avg_speed_kmh = 0.0
        s.charge_power_kw = s.charge_voltage_v = s.charge_current_a = 0.0
        s.charge_phases = 0
        s.time_to_full_min = None
        self._curve = None
        self._start_trip(t, intent)
        return True

    def _lock_all(self) -> None:
        s = self._s
        s.locked = True
        s.door_locked = ALL_TRUE
        s.trunk_locked = True

    # ------------------------------------------------------------------ parked events

    def _wake(self, t: float) -> None:
        until = t + AWAKE_S
        if until > self._awake_until:
            self._awake_until = until
            self._push(until, "sleep", until)

    def _on_sleep(self, t: float, until: float) -> bool:
        s = self._s
        if until != self._awake_until or self._drive is not None or s.charging or s.climate_on:
            return False
        self._eval_parked(t)
        self._sleep_t0 = t
        self._begin_segment()
        return True

    def _on_door_close(self, t: float, _data: Any) -> bool:
        if self._drive is not None:
            return False
        self._eval_parked(t)
        self._s.door_open = CLOSED
        self._begin_segment()
        return False

    def _on_lock(self, t: float, _data: Any) -> bool:
        if self._drive is not None or not self._s.doors_closed:
            return False
        self._eval_parked(t)
        self._lock_all()
        self._begin_segment()
        return True

    def _on_plug(self, t: float, kind: str) -> bool:
        if self._drive is not None or self._s.plugged:
            return False
        self._eval_parked(t)
        s = self._s
        s.plugged = True
        s.dc = kind.startswith("DC")
        force = kind.endswith("-now")  # the demo wants a car charging from the first minute
        self._user_stopped = False
        if s.dc:
            self._target_soc = min(DC_TARGET_SOC, s.charge_limit)
            self._ac_phases = 0
        else:
            self._target_soc = s.charge_limit
            self._station_kw = self.traits.home_station_kw
            self._ac_phases = self.traits.home_phases
        start_now = True
        if not s.dc and self.traits.scheduled_charging and not force:
            hour = ((t + utc_offset(t, self.city.tz)) % DAY) / HOUR
            if 6.0 <= hour < 22.0:
                start_now = False
                self._push(grid_ceil(t + (22.0 - hour) * HOUR), "charge_start", "schedule")
        if start_now and not self._start_charging(t):
            self._resume_ready = True
        self._wake(t)
        self._begin_segment()
        self._schedule_departure()
        return True

    def _start_charging(self, t: float) -> bool:
        s = self._s
        if not s.plugged or s.charging or s.soc >= self._target_soc - 0.5:
            return False
        s.charging = True
        s.awake = True
        if self._charge is not None:  # resumed after a pause: the same session goes on
            return True
        self._charge = Charge(t, "DC" if s.dc else "AC", s.soc, s.lat, s.lon)
        self.truth.charges.append(self._charge)
        if not s.dc:
            self._maybe_pause(t)
        return True

    def _maybe_pause(self, t: float) -> None:
        """Some home sessions pause and resume by themselves (the wallbox's load management, a
        tariff or solar window): the cable stays in and the session is one, as VWsFriend keeps a
        session whose charging resumes within 24 h (logger-anchors.md §2.6; evcc #14923: PV
        sessions that pause)."""
        rng = random.Random(f"pause/{self.seed}/{self.vin}/{len(self.truth.charges)}")
        if rng.random() >= 0.15:
            return
        cap = self.spec.battery_kwh
        kw = min(self.spec.max_ac_kw, self._station_kw) * AC_EFFICIENCY
        secs = max(0.0, self._target_soc - self._s.soc) / 100.0 * cap / max(kw, 1.0) * 3600.0
        if secs < 1800.0:
            return
        at = grid_ceil(t + rng.uniform(0.2, 0.7) * secs)
        self._push(at, "charge_pause", (self._charge, grid_ceil(rng.uniform(900.0, 5400.0))))

    def _on_charge_pause(self, t: float, data: tuple[Charge | None, float]) -> bool:
        charge, length = data
        s = self._s
        if self._drive is not None or charge is not self._charge or not s.charging:
            return False
        self._eval_parked(t)
        s.charging = False
        s.charge_power_kw = s.charge_voltage_v = s.charge_current_a = 0.0
        s.charge_phases = 0
        s.time_to_full_min = None
        self._wake(t)
        self._begin_segment()
        self._push(t + length, "charge_resume", charge)
        return True

    def _on_charge_resume(self, t: float, charge: Charge | None) -> bool:
        s = self._s
        if self._drive is not None or charge is not self._charge or s.charging or not s.plugged:
            return False
        self._eval_parked(t)
        if not self._start_charging(t):
            return False
        self._begin_segment()
        return True

    def _on_charge_start(self, t: float, _data: Any) -> bool:
        if self._drive is not None or self._user_stopped:
            return False
        self._eval_parked(t)
        if not self._start_charging(t):
            return False
        self._begin_segment()
        return True

    def _end_charging(self, t: float, reason: str) -> None:
        """Close the running session at ``t`` (the live state must be evaluated at ``t``)."""
        s = self._s
        if not s.charging and self._charge is None:
            return
        charge = self._charge
        curve = self._curve
        if charge is not None:
            charge.end = t
            charge.soc_to = s.soc
            added = max(0.0, s.soc - charge.soc_from) * self.spec.battery_kwh / 100.0
            charge.energy_added_kwh = added
            eff = DC_EFFICIENCY if s.dc else AC_EFFICIENCY
            charge.energy_grid_kwh = added / eff
            if curve is not None:
                lo, hi = charge.soc_from, max(charge.soc_from, s.soc)
                socs = [lo, hi, *(p for p, _ in curve.points if lo < p < hi)]
                peak = max(curve.power(x) for x in socs)
                charge.peak_power_kw = peak if s.dc else peak / AC_EFFICIENCY
            charge.ended_by = reason
        self._charge = None
        self._resume_ready = True
        s.charging = False
        s.charge_power_kw = s.charge_voltage_v = s.charge_current_a = 0.0
        s.charge_phases = 0
        s.time_to_full_min = None

    def _unplug(self, t: float) -> None:
        self._end_charging(t, "unplugged")
        s = self._s
        s.plugged = False
        s.dc = False

    def _on_charge_done(self, t: float, gen: int) -> bool:
        if gen != self._gen or not self._s.charging:
            return False
        self._eval_parked(t)
        self._end_charging(t, "limit")
        self._wake(t)
        self._begin_segment()
        self._schedule_departure()
        return True

    def _on_climate_off(self, t: float, token: int) -> bool:
        if token != self._climate_token or not self._s.climate_on or self._drive is not None:
            return False
        self._eval_parked(t)
        self._s.climate_on = False
        self._wake(t)
        self._begin_segment()
        return True

    def _on_clear_flash(self, t: float, _data: Any) -> bool:
        self._s.lights_flashing = self._s.horn = False
        return False

    # ------------------------------------------------------------------ demo

    def _demo_kick(self, index: int) -> None:
        """Make the first minutes of a demo lively: one car leaves soon, another is charging."""
        t = self._t
        if index % 3 == 0:
            point = (self.traits.home[0] + 0.03, self.traits.home[1] + 0.04)
            self._intents.appendleft(Intent(t + 120.0, "point", "errand", point))
            self._intents.insert(1, Intent(t + 1800.0, "home", "errand"))
            self._arrived_at = t - HOUR
        elif index % 3 == 1:
            self._s.soc = min(self._s.soc, 35.0)
            # stays home for the first hour whatever the time of day (a commute due now would
            # otherwise take it away before the cable goes in)
            self._arrived_at = t + HOUR - 600.0
            self._push(t + STEP, "plug", "AC-now")

    # ------------------------------------------------------------------ commands

    def _validate(self, name: str, params: dict[str, Any], live: VehicleState) -> None:
        if name not in COMMANDS:
            raise CommandError(f"unknown command {name!r}")
        driving = live.driving
        if name in {"lock", "unlock", "horn", "flash", "find", "windows_open"} and driving:
            raise CommandError("vehicle is in motion")
        if name == "lock" and not live.doors_closed:
            raise CommandError("a door is open")
        if name == "climate_start":
            temp = _number(params.get("temperature", live.climate_target_c), "temperature")
            if not 16.0 <= temp <= 30.0:
                raise CommandError("temperature must be between 16 and 30 °C")
            if not live.plugged and live.soc < 10.0 and not driving:
                raise CommandError("battery too low for climate")
        if name in {"charge_start", "charge_stop"}:
            if not live.plugged:
                raise CommandError("charging cable is not plugged in")
            if name == "charge_start" and not live.charging and live.soc >= live.charge_limit - 0.5:
                raise CommandError("charge limit already reached")
        if name == "charge_limit":
            pct = _number(params.get("percent"), "percent")
            if not 50.0 <= pct <= 100.0:
                raise CommandError("charge limit must be between 50 and 100 %")
        if name == "seat_heating":
            if params.get("seat") not in SEATS:
                raise CommandError(f"seat must be one of {', '.join(SEATS)}")
            level = _number(params.get("level"), "level")
            if level not in (0, 1, 2, 3):
                raise CommandError("level must be 0, 1, 2 or 3")

    def _on_cmd(self, t: float, data: tuple[str, dict[str, Any], float, str | None]) -> bool:
        name, params, asked, refuse = data
        parked = self._drive is None
        if parked:
            self._eval_parked(t)
        s = self._s
        entry: dict[str, Any] = {"time": asked, "effective": t, "name": name, "params": params}
        try:
            if refuse is not None:
                raise CommandError(refuse)
            self._validate(name, params, s)
            self._apply(t, name, params)
        except CommandError as exc:
            entry.update(ok=False, reason=str(exc))
        else:
            entry.update(ok=True, reason="done")
        self.truth.commands.append(entry)
        self._wake(t)
        if parked and self._drive is None:
            self._begin_segment()
            self._schedule_departure()
        return True

    def _apply(self, t: float, name: str, params: dict[str, Any]) -> None:
        s = self._s
        if name == "lock":
            self._lock_all()
        elif name == "unlock":
            s.locked = False
            s.door_locked = CLOSED
            s.trunk_locked = False
        elif name == "climate_start":
            s.climate_target_c = _number(
                params.get("temperature", s.climate_target_c), "temperature"
            )
            if self._drive is None:
                s.climate_on = True
                minutes = _number(params.get("duration", 30), "duration")
                self._climate_token += 1
                end = grid_ceil(t + max(1.0, min(60.0, minutes)) * 60.0)
                self._push(end, "climate_off", self._climate_token)
        elif name == "climate_stop":
            if self._drive is None:
                s.climate_on = False
        elif name == "charge_start":
            self._user_stopped = False
            self._target_soc = min(DC_TARGET_SOC, s.charge_limit) if s.dc else s.charge_limit
            self._start_charging(t)
        elif name == "charge_stop":
            self._user_stopped = True
            self._end_charging(t, "stopped")
        elif name == "charge_limit":
            s.charge_limit = _number(params.get("percent"), "percent")
            self._limit_time = t
            if s.plugged:
                self._target_soc = min(DC_TARGET_SOC, s.charge_limit) if s.dc else s.charge_limit
                if s.charging and s.soc >= self._target_soc - 0.01:
                    self._end_charging(t, "limit")
                elif not s.charging and not self._user_stopped:
                    self._start_charging(t)
        elif name in {"horn", "flash", "find"}:
            s.lights_flashing = name in {"flash", "find"}
            s.horn = name in {"horn", "find"}
            self._push(t + 30.0, "clear_flash")
        elif name == "windows_close":
            s.window_open = (0.0, 0.0, 0.0, 0.0)
            s.sunroof_open = False
        elif name == "windows_open":
            s.window_open = (10.0, 10.0, 10.0, 10.0)
        elif name == "seat_heating":
            levels = list(s.seat_heating)
            levels[SEATS.index(params["seat"])] = int(_number(params.get("level"), "level"))
            s.seat_heating = tuple(levels)  # type: ignore[assignment]

    @property
    def charge_limit_time(self) -> float:
        """When the charge limit was last set (the smart cloud reports it as ``socTime``)."""
        return self._limit_time

    @property
    def location(self) -> str:
        """Where the car is parked: home, work, point (a destination) or charger."""
        return self._location

    def distance_from_home_m(self) -> float:
        return distance_m(self._s.lat, self._s.lon, *self.traits.home)

    def describe(self) -> dict[str, Any]:
        """Static facts for admin/debug views."""
        return {
            "vin": self.vin,
            "model": self.spec.key,
            "cloud": self.cloud,
            "city": self.city.name,
            "home": list(self.traits.home),
            "work": list(self.traits.work),
            "charge_limit": self.traits.charge_limit,
            "home_station_kw": self.traits.home_station_kw,
            "scheduled_charging": self.traits.scheduled_charging,
            "seed_hash": round(unit_hash(self.seed, self.vin), 6),
        }


def _number(value: Any, name: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise CommandError(f"{name} must be a number, got {value!r}") from None
    if math.isnan(out) or math.isinf(out):
        raise CommandError(f"{name} must be a number, got {value!r}")
    return out
