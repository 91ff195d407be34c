"""Smartcar Connect for a v3 account: the authorize URL and what its redirect means.

v3 changes two things (smartcar-v3.md §1.5): Connect's ``client_id`` is the Application ID (a
UUID), not the ``client_...`` API id [3P-LIVE]; and the success redirect carries ``user_id`` (plus
``state``, and a ``code`` that v3 clients ignore: there is no code exchange). Some older docs spell
it ``userId`` [3P-LIVE wbyoung], so both are read. Errors are unchanged (``error`` +
``error_description``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

from exporter.providers.smartcar.v3_settings import SmartcarV3Settings

# Permissions the v3 signal mapping reads (smartcar-v3.md §3.4 mapping), scope minimisation.
READ_SCOPES: Final = (
    "read_vehicle_info",
    "read_vin",
    "read_battery",
    "read_charge",
    "read_odometer",
    "read_security",
    "read_tires",
    "read_speedometer",
    "read_thermometer",
    "read_climate",
)
COMMAND_SCOPES: Final = ("control_security", "control_charge")


def permissions(settings: SmartcarV3Settings) -> tuple[list[str], set[str]]:
    """(all permissions, required ones)."""
    if settings.scopes is not None:
        perms = list(dict.fromkeys(settings.scopes))
    else:
        perms = list(READ_SCOPES)
        if settings.location:
            perms.append("read_location")
        if settings.commands:
            perms += COMMAND_SCOPES
    required = set(settings.required_scopes or ()) & set(perms) or {"read_vin"} & set(perms)
    return perms, required


def authorize_url(settings: SmartcarV3Settings, state: str, *, make: str | None = None) -> str:
    perms, required = permissions(settings)
    scope = " ".join(f"required:{p}" if p in required else p for p in perms)
    query = [
        ("response_type", "code"),
        ("client_id", settings.application_id),
        ("redirect_uri", settings.redirect_uri),
        ("scope", scope),
        ("state", state),
        ("mode", settings.mode),
    ]
    brand = make or settings.make
    if brand:
        query.append(("make", brand))
    if settings.single_select:
        query.append(("single_select", "true"))
    return f"{settings.connect_url}/oauth/authorize?{urlencode(query)}"


@dataclass(frozen=True, slots=True)
class Redirect:
    state: str | None
    user_id: str | None = None
    error: str | None = None
    description: str = ""


def parse_redirect(query: Mapping[str, str]) -> Redirect:
    """The redirect's meaning; ``code`` is ignored on purpose (no v3 code exchange)."""
    state = query.get("state")
    if query.get("error"):
        return Redirect(state, error=query["error"], description=query.get("error_description", ""))
    user = query.get("user_id") or query.get("userId")
    if not user:
        return Redirect(state, error="missing_user_id", description="the redirect had no user_id")
    return Redirect(state, user_id=user)
