"""The shared vehicle model (``Fleet``/``SimVehicle``) seen as Smartcar ``Car`` objects.

The smart simulator and this one render the same cars, so a car driving in one simulator is the car
whose odometer the Smartcar API reports. Units are converted once, here, from the model's natural
units (%, km, kPa) to the SI ``CarReading``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from exporter.clock import Clock
from exporter.simulator.fleet import Fleet
from exporter.simulator.smartcar.car import DOORS, WHEELS, CarReading, CarRefused
from exporter.simulator.smartcar.server import SmartcarSimulator
from exporter.simulator.smartcar.state import SimApp, SmartcarCloud

# The model's refusal reasons -> Smartcar VEHICLE_STATE codes.
REFUSALS: Final = (
    ("in motion", "IN_MOTION"),
    ("door is open", "DOOR_OPEN"),
    ("not plugged", "CHARGING_PLUG_NOT_CONNECTED"),
    ("limit already reached", "FULLY_CHARGED"),
)


class FleetCar:
    """One fleet car as a Smartcar ``Car``."""

    def __init__(self, fleet: Fleet, vin: str) -> None:
        self.fleet = fleet
        self.vin = vin
        spec = fleet.vehicle(vin).spec
        self.make = spec.make.upper()
        self.model = spec.model
        self.year = spec.year
        self.powertrain = "BEV"
        self._capacity = spec.battery_kwh

    def read(self) -> CarReading:
        s = self.fleet.state(self.vin)
        return CarReading(
            time=s.report_time,
            soc=s.soc / 100.0,
            range_m=s.range_km * 1000.0,
            odometer_m=s.odometer_km * 1000.0,
            latitude=s.lat if s.gps_fix else None,
            longitude=s.lon if s.gps_fix else None,
            heading=s.heading_deg,
            speed_mps=s.speed_kmh / 3.6,
            plugged=s.plugged,
            charging=s.charging,
            charge_limit=s.charge_limit / 100.0,
            charge_power_w=s.charge_power_kw * 1000.0,
            locked=s.locked,
            doors_open=dict(zip(DOORS, s.door_open, strict=True)),
            windows_open={w: pct > 0.0 for w, pct in zip(DOORS, s.window_open, strict=True)},
            sunroof_open=s.sunroof_open if s.sunroof_fitted else None,
            trunk_open=s.trunk_open,
            hood_open=s.hood_open,
            tyre_pressure_pa={w: kpa * 1000.0 for w, kpa in zip(WHEELS, s.tyre_kpa, strict=True)},
            capacity_kwh=self._capacity,
            asleep=not s.awake,
        )

    def command(self, name: str, value: float | None = None) -> None:
        params = {"percent": round(value * 100.0)} if name == "charge_limit" and value else None
        ok, reason = self.fleet.apply_command(self.vin, name, params)
        if not ok:
            code = next((c for text, c in REFUSALS if text in reason), "UNKNOWN")
            raise CarRefused(code, reason)

    def on_change(self, callback: Callable[[], None]) -> None:
        vin = self.vin

        def relay(changed: str) -> None:
            if changed == vin:
                callback()

        self.fleet.on_change(relay)


@dataclass(frozen=True)
class DemoApp:
    """Credentials of the simulator's demo application (simulator-only, fresh each start)."""

    client_id: str
    client_secret: str
    management_token: str


def demo_cloud(
    fleet: Fleet,
    clock: Clock,
    *,
    redirect_uris: tuple[str, ...] = (
        "http://127.0.0.1:8477/connect/smartcar/callback",
        "http://localhost:8477/connect/smartcar/callback",
    ),
    webhook_url: str | None = None,
) -> tuple[SmartcarCloud, DemoApp]:
    """A cloud holding the fleet's Smartcar cars as the demo owner's vehicles, plus a demo app."""
    cloud = SmartcarCloud(clock)
    for vin in fleet.vins_for("smartcar"):
        cloud.add_car(FleetCar(fleet, vin))
    creds = DemoApp(
        client_id="carmetrics-demo",
        client_secret=secrets.token_urlsafe(24),
        management_token=secrets.token_urlsafe(24),
    )
    cloud.add_app(
        SimApp(
            client_id=creds.client_id,
            client_secret=creds.client_secret,
            management_token=creds.management_token,
            redirect_uris=redirect_uris,
            webhook_url=webhook_url,
        )
    )
    return cloud, creds


async def start_for_fleet(
    fleet: Fleet, clock: Clock, host: str = "127.0.0.1"
) -> tuple[SmartcarSimulator, DemoApp]:
    """Start the Smartcar simulator for ``fleet`` (the runner's one-line registration target)."""
    cloud, creds = demo_cloud(fleet, clock)
    sim = SmartcarSimulator(cloud, host=host)
    await sim.start()
    return sim, creds
