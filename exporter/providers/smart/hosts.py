"""Base URLs of the smart cloud, and the allowlist every one of them must pass.

The client carries a password and long-lived tokens, so every base URL passes the one allowlist
rule of ``exporter.urls`` against the hosts listed here; anything else stops start-up with a
ConfigError naming the offending key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from exporter.config import ConfigError
from exporter.urls import check_base_url, origin

# EU: the seed's allowlist, plus Gigya's socialize host: the EU login cannot bootstrap without
# ``socialize.getIDs`` (reference §1.1 step 1.5).
EU_ALLOWED_HOSTS: Final = frozenset(
    {
        "api.ecloudeu.com",
        "apiv2.ecloudeu.com",
        "auth.smart.com",
        "awsapi.future.smart.com",
        "ota.srv.smart.com",
        "socialize.eu1.gigya.com",
    }
)
# INTL: the login host, and the "INTL" vehicle-API hosts of pysmarthashtag's region preset
# (reference §0). hello_smart's working INTL code sends vehicle data to the ecloudeu hosts, which
# stay the default; the ecloudap hosts are allowed so an account can point ``hosts.api_v1`` /
# ``hosts.api_v2`` at them (docs/SMART_COMMANDS.md, "INTL facts").
INTL_ALLOWED_HOSTS: Final = frozenset(
    {
        "sg-app-api.smart.com",
        "api.ecloudap.com",
        "apiv2.ecloudap.com",
    }
)
ALLOWED_HOSTS: Final = EU_ALLOWED_HOSTS | INTL_ALLOWED_HOSTS
HOST_KEYS: Final = ("awsapi", "socialize", "auth", "api_v1", "api_v2", "sg_app_api", "ota")


@dataclass(frozen=True, slots=True)
class SmartHosts:
    """One base URL per upstream host (no trailing slash). Validated on construction.

    ``simulator`` allows loopback URLs; ``key_prefix`` is the config path used in error messages
    (e.g. ``accounts[0].hosts``).
    """

    awsapi: str = "https://awsapi.future.smart.com"
    socialize: str = "https://socialize.eu1.gigya.com"
    auth: str = "https://auth.smart.com"
    api_v1: str = "https://api.ecloudeu.com"
    api_v2: str = "https://apiv2.ecloudeu.com"
    sg_app_api: str = "https://sg-app-api.smart.com"
    ota: str = "https://ota.srv.smart.com"
    simulator: bool = dataclasses.field(default=False, compare=False)
    key_prefix: str = dataclasses.field(default="hosts", compare=False)

    def __post_init__(self) -> None:
        for key in HOST_KEYS:
            raw = getattr(self, key)
            clean = check_url(raw, key=f"{self.key_prefix}.{key}", simulator=self.simulator)
            object.__setattr__(self, key, clean)

    @classmethod
    def for_region(
        cls,
        region: str,
        overrides: Mapping[str, Any] | None = None,
        *,
        simulator: bool = False,
        key_prefix: str = "hosts",
    ) -> SmartHosts:
        """The real defaults with ``overrides`` (a config table or the simulator's URLs)."""
        del region  # EU and INTL use the same hosts; INTL differs in the login host it *uses*.
        fields: dict[str, Any] = {}
        for key, value in (overrides or {}).items():
            if key not in HOST_KEYS:
                raise ConfigError(
                    f"{key_prefix}.{key}: unknown host key; expected one of: {', '.join(HOST_KEYS)}"
                )
            fields[key] = value
        return cls(**fields, simulator=simulator, key_prefix=key_prefix)

    def origins(self) -> frozenset[str]:
        """``scheme://host[:port]`` of every base URL: the only places a request may go."""
        return frozenset(origin_of(getattr(self, k)) for k in HOST_KEYS)

    def allows(self, url: str) -> bool:
        return origin_of(url) in self.origins()


def origin_of(url: str) -> str:
    return origin(url)


def check_url(value: object, *, key: str, simulator: bool) -> str:
    """Return the normalised base URL or raise ConfigError naming ``key`` (rule: exporter.urls)."""
    try:
        return check_base_url(value, ALLOWED_HOSTS, simulator=simulator)
    except ValueError as exc:
        raise ConfigError(f"{key} = {value!r}: {exc}") from None


# Real defaults. INTL logs in at sg-app-api and exchanges its session on apiv2; vehicle data of both
# regions lives on api/apiv2.ecloudeu.com (hello_smart's working INTL code; reference §0).
EU_HOSTS: Final = SmartHosts()
INTL_HOSTS: Final = SmartHosts()
