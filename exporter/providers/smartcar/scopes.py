"""Scope minimisation: which permissions and batch paths the enabled signals need, and the Connect
URL that asks for exactly those.

Smartcar charges per path and owners grant per permission, so both follow from one table: each v2
path lists the canonical signals it fills and the permission it needs. A path whose signals nobody
wants is neither requested at Connect nor read in a poll.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

from exporter.providers.smartcar.settings import SmartcarSettings
from exporter.signals import BY_NAME

_DOOR_SIGNALS: Final = tuple(
    f"{kind}_{d}"
    for kind in ("door_open",)
    for d in ("front_left", "front_right", "rear_left", "rear_right", "trunk", "hood")
)
_WINDOW_SIGNALS: Final = tuple(
    f"window_open_{w}" for w in ("front_left", "front_right", "rear_left", "rear_right")
)
_TYRE_SIGNALS: Final = tuple(
    f"tyre_pressure_{w}" for w in ("front_left", "front_right", "rear_left", "rear_right")
)


@dataclass(frozen=True, slots=True)
class PathSpec:
    path: str
    permission: str
    signals: tuple[str, ...]
    private: bool = False  # location: only with the account's ``location = true``


PATHS: Final = (
    PathSpec("/battery", "read_battery", ("battery_soc", "electric_range")),
    PathSpec("/charge", "read_charge", ("charging_state", "charger_connected")),
    PathSpec("/charge/limit", "read_charge", ("charge_limit",)),
    PathSpec("/odometer", "read_odometer", ("odometer",)),
    PathSpec("/location", "read_location", ("latitude", "longitude"), private=True),
    PathSpec(
        "/security",
        "read_security",
        ("locked", *_DOOR_SIGNALS, *_WINDOW_SIGNALS, "sunroof_open"),
    ),
    PathSpec("/tires/pressure", "read_tires", _TYRE_SIGNALS),
)
for _spec in PATHS:
    for _name in _spec.signals:
        assert _name in BY_NAME, _name  # the table may only name canonical signals

# Identity: the VIN is our key for a car and make/model/year label it; without them nothing works.
IDENTITY: Final = ("read_vehicle_info", "read_vin")
# Essential beyond identity: a car we cannot read the odometer of logs nothing useful.
ESSENTIAL: Final = ("read_odometer",)
CONTROL: Final = ("control_security", "control_charge")


def wanted_paths(settings: SmartcarSettings) -> tuple[PathSpec, ...]:
    return tuple(p for p in PATHS if settings.location or not p.private)


def permissions(settings: SmartcarSettings) -> tuple[list[str], set[str]]:
    """(permissions to request, the ones marked ``required:``), in a stable order."""
    if settings.scopes is not None:
        perms = list(dict.fromkeys(settings.scopes))
    else:
        perms = list(IDENTITY)
        for spec in wanted_paths(settings):
            if spec.permission not in perms:
                perms.append(spec.permission)
        if settings.commands:
            perms.extend(CONTROL)
    if settings.required_scopes is not None:
        required = set(settings.required_scopes) & set(perms)
    else:
        required = {p for p in (*IDENTITY, *ESSENTIAL) if p in perms}
    return perms, required


def scope_string(settings: SmartcarSettings) -> str:
    perms, required = permissions(settings)
    return " ".join(f"required:{p}" if p in required else p for p in perms)


def authorize_url(
    settings: SmartcarSettings,
    state: str,
    *,
    make: str | None = None,
    single_select: bool | None = None,
    single_select_vin: str | None = None,
    force: bool = False,
) -> str:
    """The Connect URL (what the SDKs' ``get_auth_url`` builds, with our scopes)."""
    query: list[tuple[str, str]] = [
        ("response_type", "code"),
        ("client_id", settings.client_id),
        ("redirect_uri", settings.redirect_uri),
        ("scope", scope_string(settings)),
        ("state", state),
        ("approval_prompt", "force" if force else "auto"),
        ("mode", settings.mode),
    ]
    brand = make or settings.make
    if brand:
        query.append(("make", brand.upper()))
    single = settings.single_select if single_select is None else single_select
    if single or single_select_vin:
        query.append(("single_select", "true"))
    if single_select_vin:
        query.append(("single_select_vin", single_select_vin))
    return f"{settings.connect_url}/oauth/authorize?{urlencode(query)}"


def reauth_url(settings: SmartcarSettings, vehicle_id: str, state: str) -> str:
    query = urlencode(
        [
            ("response_type", "vehicle_id"),
            ("client_id", settings.client_id),
            ("vehicle_id", vehicle_id),
            ("redirect_uri", settings.redirect_uri),
            ("state", state),
        ]
    )
    return f"{settings.connect_url}/oauth/reauthenticate?{query}"


def paths_for(granted: Iterable[str], settings: SmartcarSettings) -> tuple[str, ...]:
    """The batch paths one poll reads: wanted by the signals and granted by the owner."""
    have = set(granted)
    return tuple(p.path for p in wanted_paths(settings) if p.permission in have)
