"""A registry entry: how one kind of provider is configured, built and given web routes.

Its own module so that each provider package can declare its ``ENTRY`` without importing the
registry; it imports nothing at run time, so the registry stays as light as the config loader.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from aiohttp import web
    from prometheus_client import CollectorRegistry

    from exporter.config import AccountConfig
    from exporter.providers.base import Provider, ProviderContext
    from exporter.settings import AccountSection
    from exporter.snapshot import VehicleInfo


@dataclass(frozen=True, slots=True)
class WebContext:
    """What an entry's web routes may use: its own accounts and providers, nothing of the runtime."""

    accounts: Sequence[AccountConfig]  # the configured accounts of this entry's provider
    providers: Callable[[], list[Provider]]  # the running providers of this entry, by account
    vehicles: Callable[[], Mapping[str, VehicleInfo]]  # every exported car (names for pages)
    links: list[tuple[str, str]]  # the landing page's links (label, href); append to add one
    registry: CollectorRegistry  # where an entry's own metrics collector is registered


S = TypeVar("S")  # a provider kind's settings type


@dataclass(frozen=True, slots=True)
class ProviderEntry(Generic[S]):
    """One provider kind. ``settings(account, ctx)`` validates the account (``ConfigError``);
    ``build(settings, ctx)`` makes the provider; ``web(app, wctx)`` adds routes once per app;
    ``model`` declares the account's keys for the config loader (exporter.settings)."""

    name: str
    settings: Callable[[AccountConfig, ProviderContext], S]
    build: Callable[[S, ProviderContext], Provider]
    web: Callable[[web.Application, WebContext], None] | None = field(default=None)
    # The declared account keys (types, bounds, secrets) the config loader and check-config
    # validate before anything runs; None: the entry's ``settings`` parser is the only check.
    model: type[AccountSection] | None = field(default=None)
