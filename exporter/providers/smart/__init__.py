"""The smart (#1/#3/#5) cloud provider: signing, EU/INTL login, token ladder, parsing, commands.

Importing the package costs nothing: the config loader reads the account keys from
``exporter.providers.smart.settings`` without loading the client (aiohttp and all), and the
registry imports :mod:`exporter.providers.smart.entry` (``ENTRY``) only when it builds a provider.
The names below are still importable from here; each is loaded on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from exporter.providers.smart.entry import (
        ENTRY,
        SmartHosts,
        SmartProvider,
        account_settings,
        build,
    )

__all__ = ["ENTRY", "SmartHosts", "SmartProvider", "account_settings", "build"]

_LAZY: Final = frozenset(__all__)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module("exporter.providers.smart.entry"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
