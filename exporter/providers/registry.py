"""Every provider, by the name ``[[accounts]] provider = ...`` uses: the one list of clouds.

An entry names the model of the provider's account keys (an ``exporter.settings.AccountSection``),
so the loader validates an account without knowing the provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from exporter.providers.smart.settings import SmartAccount
from exporter.providers.smartcar.settings import SmartcarAccount
from exporter.settings import AccountSection


@dataclass(frozen=True, slots=True)
class ProviderEntry:
    name: str
    settings: type[AccountSection]


PROVIDERS: Final[dict[str, ProviderEntry]] = {
    e.name: e
    for e in (
        ProviderEntry("smart", settings=SmartAccount),
        ProviderEntry("smartcar", settings=SmartcarAccount),
    )
}
