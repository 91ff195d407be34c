"""The shared vehicle model (``Fleet``/``SimVehicle``) seen as Smartcar ``Car`` objects.

The smart simulator and this one render the same cars, so a car driving in one simulator is the car
whose odometer the Smartcar API reports. Units are converted once, here, from the model's natural
units (%, km, kPa) to the SI ``CarReading``.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from exporter.clock import Clock
from exporter.simulator.context import CloudHandle, SimContext
from exporter.simulator.fleet import Fleet
from exporter.simulator.smartcar import memory
from exporter.simulator.smartcar.car import DOORS, WHEELS, CarReading, CarRefused
from exporter.simulator.smartcar.server import SmartcarSimulator
from exporter.simulator.smartcar.state import SimApp, SmartcarCloud
from exporter.simulator.smartcar.v3_signals import CATALOGUE
from exporter.simulator.smartcar.v3_state import ALL_PERMISSIONS, V3App, V3Cloud, Webhook

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
            door_locked=dict(zip(DOORS, s.door_locked, strict=True)),
            cabin_temp_c=s.cabin_temp_c,
            outside_temp_c=s.outside_temp_c,
            climate_on=s.climate_on,
            climate_target_c=s.climate_target_c,
            battery_12v_pct=s.battery_12v_pct,
            charge_voltage_v=s.charge_voltage_v if s.charging else None,
            charge_current_a=s.charge_current_a if s.charging else None,
            time_to_full_min=s.time_to_full_min,
            dc_charging=s.dc,
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
    """Credentials of the simulator's demo application. Deterministic per seed so scripts can
    reuse them; they open nothing but the loopback simulator."""

    client_id: str
    client_secret: str
    management_token: str
    webhook_id: str

    def login(self, email: str) -> dict[str, str]:
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "management_token": self.management_token,
            "webhook_id": self.webhook_id,
            "email": email,
        }


def _demo_secret(seed: int, what: str) -> str:
    return "sim-" + hashlib.sha256(f"smartcar/{seed}/{what}".encode()).hexdigest()[:24]


DEFAULT_REDIRECTS: Final = (
    "http://127.0.0.1:8477/connect/smartcar/callback",
    "http://localhost:8477/connect/smartcar/callback",
)


@dataclass(frozen=True)
class DemoV3:
    """The demo application's v3 credentials, webhook and pre-connected users."""

    app: V3App
    webhook_id: str
    users: tuple[tuple[str, tuple[str, ...]], ...]  # (user id, vehicle ids)

    def login(self) -> dict[str, Any]:
        return {
            "client_id": self.app.client_id,
            "client_secret": self.app.client_secret,
            "application_id": self.app.application_id,
            "management_token": self.app.management_token,
            "webhook_id": self.webhook_id,
            "users": [{"user_id": u, "vehicle_ids": list(v)} for u, v in self.users],
        }


# Trigger signals of the demo webhook; its data is the whole catalogue.
DEMO_TRIGGERS: Final = (
    "tractionbattery-stateofcharge",
    "charge-ischarging",
    "charge-ischargingcableconnected",
    "closure-islocked",
    "odometer-traveleddistance",
)


def demo_v3(
    cloud: SmartcarCloud,
    seed: int = 42,
    redirect_uris: tuple[str, ...] = DEFAULT_REDIRECTS,
    vins: list[str] | None = None,
) -> tuple[V3Cloud, DemoV3]:
    """The demo application in v3 form: API credentials (client_..., smartcar-v3.md §1.1), a UUID
    Application ID for Connect, one Dashboard webhook, and the owner pre-connected to ``vins``
    (default: the owner's cars) with every permission, so data flows without a browser."""
    v3 = V3Cloud(cloud)
    app = v3.add_app(
        V3App(
            client_id="client_" + _demo_secret(seed, "v3_client_id")[4:],
            client_secret=_demo_secret(seed, "v3_client_secret"),
            application_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"carmetrics-demo/{seed}")),
            management_token=_demo_secret(seed, "v3_management_token"),
        ),
        redirect_uris,
    )
    hook = v3.add_webhook(
        Webhook(
            id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"carmetrics-demo/{seed}/webhook")),
            application_id=app.application_id,
            name="carmetrics",
            callback_uri=None,
            data=tuple(CATALOGUE),
            triggers=DEMO_TRIGGERS,
        )
    )
    owner = cloud.user_id(cloud.owner_email)
    cars = list(cloud.owner_vins) if vins is None else vins
    # simulated mode, as the demo account connects (Connect mode=simulated)
    v3.connect(app.application_id, owner, cars, ALL_PERMISSIONS, mode="simulated")
    ids = tuple(v3.vehicle_id(app.application_id, v) for v in cars)
    return v3, DemoV3(app, hook.id, ((owner, ids),) if cars else ())


def demo_cloud(
    fleet: Fleet,
    clock: Clock,
    *,
    vins: list[str] | None = None,
    seed: int = 42,
    redirect_uris: tuple[str, ...] = DEFAULT_REDIRECTS,
    webhook_url: str | None = None,
) -> tuple[SmartcarCloud, DemoApp]:
    """A cloud holding the fleet's Smartcar cars as the demo owner's vehicles, plus a demo app."""
    cloud = SmartcarCloud(clock)
    for vin in fleet.vins_for("smartcar") if vins is None else vins:
        cloud.add_car(FleetCar(fleet, vin))
    creds = DemoApp(
        client_id="carmetrics-demo",
        client_secret=_demo_secret(seed, "client_secret"),
        management_token=_demo_secret(seed, "management_token"),
        webhook_id="5a8e0c1e-5a4b-4d0e-9a6b-0c2d1f3e4a5b",
    )
    cloud.add_app(
        SimApp(
            client_id=creds.client_id,
            client_secret=creds.client_secret,
            management_token=creds.management_token,
            redirect_uris=redirect_uris,
            webhook_url=webhook_url,
            webhook_id=creds.webhook_id,
        )
    )
    return cloud, creds


async def start_cloud(ctx: SimContext) -> CloudHandle | None:
    """The runner's factory: serve the fleet's Smartcar cars (``ctx.groups["smartcar"]``)."""
    vins = list(ctx.groups.get("smartcar", []))
    if not vins:
        return None
    cloud, creds = demo_cloud(ctx.fleet, ctx.clock, vins=vins, seed=ctx.cfg.seed)
    cloud.shared_faults = ctx.faults
    v3, v3_creds = demo_v3(cloud, ctx.cfg.seed)
    options = dict(ctx.options.get("smartcar", {}))
    if ctx.cfg.connect_port or ctx.cfg.connect_listen != "127.0.0.1":
        options.setdefault("connect_bind", (ctx.cfg.connect_listen, ctx.cfg.connect_port))
    sim = SmartcarSimulator(cloud, host=ctx.host, v3=v3, **options)
    urls = await sim.start()
    return CloudHandle(
        name="smartcar",
        urls={k: urls[k] for k in ("connect", "auth", "api")},
        logins={"smartcar": creds.login(cloud.owner_email), "smartcar_v3": v3_creds.login()},
        vins={"smartcar": vins},
        close=sim.stop,
        service=sim,
        extra_urls={"smartcar_v3": sim.v3_urls},
        dump=lambda: memory.dump(sim),
        load=lambda data: memory.load(sim, data),
    )
