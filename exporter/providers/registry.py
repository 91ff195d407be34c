"""Which providers exist: ``provider = "<name>"`` in an ``[[accounts]]`` entry -> its registry entry.

An entry says how to read the account's settings (raising ``ConfigError`` naming the key) and how to
build a provider from those settings and a :class:`~exporter.providers.base.ProviderContext`; it may
also add web routes (an OAuth callback, a webhook endpoint). Adding a provider is one folder under
``exporter/providers/`` plus one line in :data:`ENTRIES` (see docs/ARCHITECTURE.md, "Add a provider").
Tests register throw-away providers with :func:`register`. An entry's ``model`` names its account
keys (an ``exporter.settings.AccountSection``), so the config loader validates an account without
knowing the provider.

The shipped providers are :class:`Shipped` entries, named by where their parts live: the config
loader (``check-config``, the analysis commands, ``run``'s first step) imports only the account
model; the implementation, with aiohttp and the cloud clients, is imported when a provider is built.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any

from exporter.config import AccountConfig, ConfigError
from exporter.providers.entry import ProviderEntry, WebContext

if TYPE_CHECKING:
    from exporter.providers.base import Provider, ProviderContext
    from exporter.settings import AccountSection

__all__ = [
    "ENTRIES",
    "PROVIDERS",
    "ProviderEntry",
    "Shipped",
    "WebContext",
    "build",
    "entry_for",
    "register",
    "unregister",
]


def _load(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(import_module(module), name)


@dataclass(frozen=True)
class Shipped:
    """A provider of this package: ``model`` and ``entry`` are ``"module:name"`` paths, imported
    on first use (the model's module must not import the implementation)."""

    name: str
    model_path: str
    entry_path: str

    @functools.cached_property
    def model(self) -> type[AccountSection]:
        model: type[AccountSection] = _load(self.model_path)
        return model

    @functools.cached_property
    def entry(self) -> ProviderEntry[Any]:
        entry: ProviderEntry[Any] = _load(self.entry_path)
        if entry.name != self.name or entry.model is not self.model:
            raise RuntimeError(f"{self.entry_path} does not match its registry line {self}")
        return entry


ENTRIES: dict[str, ProviderEntry[Any] | Shipped] = {
    "smart": Shipped(
        "smart",
        "exporter.providers.smart.settings:SmartAccount",
        "exporter.providers.smart.entry:ENTRY",
    ),
    "smartcar": Shipped(
        "smartcar",
        "exporter.providers.smartcar.settings:SmartcarAccount",
        "exporter.providers.smartcar.entry:ENTRY",
    ),
}
# The config loader's view of the same table (provider name -> entry with its ``model``).
PROVIDERS = ENTRIES


def register(entry: ProviderEntry[Any]) -> None:
    """Add (or replace) an entry at run time: for tests and plug-ins; the shipped ones are above."""
    ENTRIES[entry.name] = entry


def unregister(name: str) -> None:
    ENTRIES.pop(name, None)


def entry_for(account: AccountConfig) -> ProviderEntry[Any]:
    """The full entry (the implementation imported now, if it was not yet)."""
    entry = ENTRIES.get(account.provider)
    if entry is None:
        raise ConfigError(
            f"{account.key('provider')} = {account.provider!r}: unknown provider; expected one "
            f"of: {', '.join(sorted(ENTRIES))}"
        )
    return entry.entry if isinstance(entry, Shipped) else entry


def build(account: AccountConfig, ctx: ProviderContext) -> Provider:
    """The provider for ``account``: settings validated first (``ConfigError`` names the key)."""
    entry = entry_for(account)
    return entry.build(entry.settings(account, ctx), ctx)
