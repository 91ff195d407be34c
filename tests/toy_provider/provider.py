"""The toy cloud's client: ``GET /cars`` lists the account's cars, ``GET /cars/{vin}`` reads one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Self

import aiohttp
from pydantic import Field, ValidationInfo, model_validator

from exporter.config import AccountConfig, ConfigError
from exporter.providers.base import (
    BadReply,
    BaseProvider,
    PollResult,
    ProviderContext,
    UpstreamUnavailable,
    VehicleNotLinked,
)
from exporter.settings import AccountSection, invalid, missing, read_section, required
from exporter.snapshot import Snapshot, VehicleInfo

LOOPBACK: Final = "http://127.0.0.1:<port>"


class ToyAccount(AccountSection):
    """``[[accounts]] provider = "toy"``: the keys the config loader and check-config validate."""

    url: str | None = Field(default=None, description=LOOPBACK)

    @model_validator(mode="after")
    def _loopback(self, info: ValidationInfo) -> Self:
        if self.url is None:
            if required(self, info):
                raise missing("url", f"expected {LOOPBACK}")
        elif not self.url.startswith("http://127.0.0.1:"):
            raise invalid(f"expected {LOOPBACK}", field="url", value=self.url)
        return self


@dataclass(frozen=True, slots=True)
class ToySettings:
    account: str
    url: str


def account_settings(account: AccountConfig, ctx: ProviderContext) -> ToySettings:
    """``url``: the toy cloud's base URL (loopback only: it is a test cloud)."""
    m = read_section(ToyAccount, account.raw(), account.where)
    if m.url is None:  # a simulator account, too, needs it by now
        raise ConfigError(f"{account.key('url')} is missing: expected {LOOPBACK}")
    return ToySettings(account.name, m.url.rstrip("/"))


def build(settings: ToySettings, ctx: ProviderContext) -> ToyProvider:
    return ToyProvider(settings, ctx)


class ToyProvider(BaseProvider):
    name = "toy"

    def __init__(self, settings: ToySettings, ctx: ProviderContext) -> None:
        self.settings = settings
        self.account = settings.account
        self.ctx = ctx

    async def start(self) -> None:
        return None

    async def _get(self, path: str) -> object:
        try:
            async with self.ctx.session.get(self.settings.url + path) as resp:
                if resp.status == 404:
                    raise VehicleNotLinked("not on this toy account", code="404")
                if resp.status != 200:
                    raise UpstreamUnavailable("toy cloud error", code=str(resp.status))
                return await resp.json()
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"toy cloud unreachable: {exc}") from None

    async def vehicles(self) -> list[VehicleInfo]:
        cars = await self._get("/cars")
        if not isinstance(cars, list):
            raise BadReply("/cars is not a list")
        return [VehicleInfo(str(v), "toy", "Toy", "One", account=self.account) for v in cars]

    async def poll(self, vin: str) -> PollResult:
        try:
            body = await self._get(f"/cars/{vin}")
            if not isinstance(body, dict) or not isinstance(body.get("soc"), int | float):
                raise BadReply("reply without a soc")
            t = float(body.get("time", self.ctx.clock.now()))
            values = {"battery_soc": float(body["soc"]) / 100.0}
            return PollResult(Snapshot.build(vin, "toy", t, self.ctx.clock.now(), values))
        except (VehicleNotLinked, UpstreamUnavailable, BadReply) as exc:
            return PollResult(error=exc)
