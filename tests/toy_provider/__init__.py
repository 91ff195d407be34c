"""A toy provider, written by following docs/ARCHITECTURE.md "Add a provider" and nothing else.

One folder (this one: settings, provider, its simulated cloud), one registry line (``ENTRY``, which
a shipped provider adds to ``exporter.providers.registry.ENTRIES``; the test registers it with
``registry.register``) and its test (tests/test_toy_provider.py). It reads one signal,
``battery_soc``.
"""

from __future__ import annotations

from exporter.providers.entry import ProviderEntry
from tests.toy_provider.provider import (
    ToyAccount,
    ToyProvider,
    ToySettings,
    account_settings,
    build,
)

ENTRY = ProviderEntry("toy", account_settings, build, model=ToyAccount)

__all__ = ["ENTRY", "ToyAccount", "ToyProvider", "ToySettings"]
