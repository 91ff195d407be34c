"""The Smartcar provider: API v3 by default (one application token, ``/connections``, one
``GET /signals`` per poll, payload-4.0 webhooks), v2 behind ``api_version = 2`` (Connect, token
rotation, ``/batch`` polling) for applications that have not migrated.

Importing the package costs nothing: the config loader reads the account keys from
``exporter.providers.smartcar.settings`` without loading the clients (aiohttp and all), and the
registry imports :mod:`exporter.providers.smartcar.entry` (``ENTRY``) only when it builds a
provider. The names below are still importable from here; each is loaded on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from exporter.providers.smartcar.entry import (
        ENTRY,
        SmartcarProvider,
        SmartcarSettings,
        SmartcarV3Provider,
        SmartcarV3Settings,
        account_settings,
        build,
        from_account,
    )

__all__ = [
    "ENTRY",
    "SmartcarProvider",
    "SmartcarSettings",
    "SmartcarV3Provider",
    "SmartcarV3Settings",
    "account_settings",
    "build",
    "from_account",
]

_LAZY: Final = frozenset(__all__)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module("exporter.providers.smartcar.entry"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
