"""Which providers exist: ``provider = "<name>"`` in an ``[[accounts]]`` entry -> its registry entry.

An entry says how to read the account's settings (raising ``ConfigError`` naming the key) and how to
build a provider from those settings and a :class:`~exporter.providers.base.ProviderContext`; it may
also add web routes (an OAuth callback, a webhook endpoint). Adding a provider is one folder under
``exporter/providers/`` plus one line in :data:`ENTRIES` (see docs/ARCHITECTURE.md, "Add a provider").
Tests register throw-away providers with :func:`register`. An entry's ``model`` names its account
keys (an ``exporter.settings.AccountSection``), so the config loader validates an account without
knowing the provider.
"""

from __future__ import annotations

from typing import Any

from exporter.config import AccountConfig, ConfigError
from exporter.providers import smart, smartcar
from exporter.providers.base import Provider, ProviderContext
from exporter.providers.entry import ProviderEntry, WebContext

__all__ = [
    "ENTRIES",
    "PROVIDERS",
    "ProviderEntry",
    "WebContext",
    "build",
    "entry_for",
    "register",
    "unregister",
]


ENTRIES: dict[str, ProviderEntry[Any]] = {
    smart.ENTRY.name: smart.ENTRY,
    smartcar.ENTRY.name: smartcar.ENTRY,
}
# The config loader's view of the same table (provider name -> entry with its ``model``).
PROVIDERS = ENTRIES


def register(entry: ProviderEntry[Any]) -> None:
    """Add (or replace) an entry at run time: for tests and plug-ins; the shipped ones are above."""
    ENTRIES[entry.name] = entry


def unregister(name: str) -> None:
    ENTRIES.pop(name, None)


def entry_for(account: AccountConfig) -> ProviderEntry[Any]:
    entry = ENTRIES.get(account.provider)
    if entry is None:
        raise ConfigError(
            f"{account.key('provider')} = {account.provider!r}: unknown provider; expected one "
            f"of: {', '.join(sorted(ENTRIES))}"
        )
    return entry


def build(account: AccountConfig, ctx: ProviderContext) -> Provider:
    """The provider for ``account``: settings validated first (``ConfigError`` names the key)."""
    entry = entry_for(account)
    return entry.build(entry.settings(account, ctx), ctx)
