"""What charging costs: tariffs from ``[tariffs]`` in config.toml, and piecewise pricing of a session.

Example::

    [tariffs]
    currency = "EUR"
    default = "public_ac"      # sessions at places without a tariff (optional)
    dc = "public_dc"           # DC sessions at places without a tariff (optional)
    ac_efficiency = 0.90       # energy into the battery / energy from the grid
    dc_efficiency = 0.95

    [tariffs.home]
    price_per_kwh = 0.32
    windows = [                # time-of-use: local time where the car charges
      { days = "all", start = "22:00", end = "06:00", price_per_kwh = 0.18 },
    ]

    [tariffs.public_dc]
    price_per_kwh = 0.59
    session_fee = 0.50

A window covers ``start`` to ``end`` local time on its ``days`` ("all", "weekday", "weekend", or a
list such as ["sat", "sun"]); one whose end is not after its start runs past midnight into the next
day. Where windows overlap, the later one in the list wins. Outside every window the tariff's
``price_per_kwh`` applies.

Charging efficiency defaults: AC 0.90 — ADAC's 2022 wallbox measurements at 11 kW lost 6.3–9.7 % of
the grid energy (Fiat 500e, Tesla Model 3, VW ID.3, Renault Zoe), more at low power; DC 0.95 — the
car's on-board charger is bypassed and the charger meters its own DC output, so only the cable,
battery and thermal management losses remain (an estimate: no second published measurement).
Both are settings because cars differ.

The table is a settings model (``exporter.settings``): one-line errors naming the key, unknown keys
refused with the close match suggested, nan/inf refused. This module imports nothing heavy:
``carmetrics check-config`` validates ``[tariffs]`` through it.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any, Final, Self
from zoneinfo import ZoneInfo

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from exporter.settings import ConfigError, Section, invalid, read_section

AC_EFFICIENCY: Final = 0.90
DC_EFFICIENCY: Final = 0.95
_DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_SETS: Final = {
    "all": frozenset(range(7)),
    "weekday": frozenset(range(5)),
    "weekend": frozenset({5, 6}),
}
WEEK_MIN: Final = 7 * 1440
_WINDOW: Final = "{days, start, end, price_per_kwh}"


class TariffError(ConfigError):
    """One user-facing line naming the ``tariffs`` key that is wrong."""


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday
    start_min: int  # minutes after local midnight
    end_min: int  # 1..1440; not after start: runs into the next day
    price_per_kwh: float


@dataclass(frozen=True)
class Tariff:
    name: str
    price_per_kwh: float
    session_fee: float = 0.0
    windows: tuple[Window, ...] = ()

    def week(self) -> tuple[list[float], list[int]]:
        """The price at each minute of the week (Monday 00:00 first), and the minutes at which it
        changes; computed once per tariff."""
        return _schedule(self)


@lru_cache(maxsize=64)
def _schedule(tariff: Tariff) -> tuple[list[float], list[int]]:
    prices = [tariff.price_per_kwh] * WEEK_MIN
    for w in tariff.windows:
        length = (w.end_min - w.start_min) % 1440 or 1440
        for day in w.days:
            first = day * 1440 + w.start_min
            for m in range(first, first + length):
                prices[m % WEEK_MIN] = w.price_per_kwh
    return prices, [m for m in range(WEEK_MIN) if prices[m] != prices[m - 1]]


@dataclass(frozen=True)
class Tariffs:
    tariffs: Mapping[str, Tariff] = field(default_factory=dict)
    currency: str = ""
    default: str | None = None
    dc: str | None = None
    ac_efficiency: float = AC_EFFICIENCY
    dc_efficiency: float = DC_EFFICIENCY

    def for_session(self, place_tariff: str | None, kind: str) -> Tariff | None:
        """A place's own tariff, else the DC one for DC, else the default (None: not priced)."""
        name = place_tariff or (self.dc if kind == "dc" and self.dc else None) or self.default
        return self.tariffs.get(name) if name else None

    def efficiency(self, kind: str) -> float:
        return self.dc_efficiency if kind == "dc" else self.ac_efficiency


# --- the table as written -------------------------------------------------------------------------


def _clock(value: object, *, end: bool) -> int:
    """``"HH:MM"`` -> minutes after midnight (``"24:00"`` only as an end)."""
    text = value if isinstance(value, str) else ""
    parts = text.split(":")
    ok = len(parts) == 2 and all(p.isdigit() and len(p) == 2 for p in parts)
    h, m = (int(parts[0]), int(parts[1])) if ok else (-1, -1)
    limit = 24 if end else 23
    if not ok or not (0 <= h <= limit and 0 <= m <= 59) or (h == 24 and m != 0):
        raise invalid("expected a local time such as '06:30'")
    return h * 60 + m


def _days(value: object) -> frozenset[int]:
    if isinstance(value, str) and value in _DAY_SETS:
        return _DAY_SETS[value]
    if isinstance(value, list) and value and all(isinstance(d, str) for d in value):
        try:
            return frozenset(_DAYS.index(str(d).lower()[:3]) for d in value)
        except ValueError:
            pass
    raise invalid("expected 'all', 'weekday', 'weekend' or a list such as ['sat', 'sun']")


Price = Annotated[float, Field(ge=0, description="a price (a number >= 0)")]
Share = Annotated[float, Field(ge=0.5, le=1.0, description="a share from 0.5 to 1.0")]
TIME: Final = "a local time such as '06:30'"


class WindowSection(Section):
    """One time-of-use window of a tariff: ``start``/``end`` are read as minutes after midnight."""

    days: frozenset[int] = Field(default=_DAY_SETS["all"], description="the days it applies")
    start: int = Field(description=TIME)
    end: int = Field(description=TIME)
    price_per_kwh: Price

    @field_validator("days", mode="before")
    @classmethod
    def _read_days(cls, value: object) -> frozenset[int]:
        return _days(value)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _read_clock(cls, value: object, info: ValidationInfo) -> int:
        return _clock(value, end=info.field_name == "end")


class TariffSection(Section):
    """``[tariffs.<name>]``."""

    price_per_kwh: float = Field(ge=0, description="the price of one kWh (a number >= 0)")
    session_fee: Price = 0.0
    windows: list[WindowSection] = Field(default_factory=list, description=f"a list of {_WINDOW}")


class TariffsSection(Section):
    """``[tariffs]``: a few settings, and every other key a named tariff table."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, TariffSection] = Field(init=False)

    currency: str = Field(default="", description="a currency code such as 'EUR'")
    default: str | None = Field(default=None, description="the name of a [tariffs.<name>] table")
    dc: str | None = Field(default=None, description="the name of a [tariffs.<name>] table")
    ac_efficiency: Share = AC_EFFICIENCY
    dc_efficiency: Share = DC_EFFICIENCY

    @model_validator(mode="before")
    @classmethod
    def _only_tables(cls, data: Any) -> Any:
        """A key that is not a setting must be a tariff table; a scalar is most likely a typo."""
        if isinstance(data, Mapping):
            settings = list(cls.model_fields)
            for key, value in data.items():
                if key not in settings and not isinstance(value, Mapping):
                    near = difflib.get_close_matches(str(key), settings, n=1)
                    maybe = f" did you mean {near[0]!r}?" if near else ""
                    raise invalid(
                        f"unknown key;{maybe} expected currency, default, dc, ac_efficiency, "
                        "dc_efficiency or a [tariffs.<name>] table",
                        field=str(key),
                    )
        return data

    @field_validator("currency")
    @classmethod
    def _code(cls, value: str) -> str:
        if len(value) > 8:
            raise invalid("expected a currency code such as 'EUR'")
        return value

    @model_validator(mode="after")
    def _references(self) -> Self:
        names = self.tariffs()
        for key in ("default", "dc"):
            ref = getattr(self, key)
            if ref is not None and ref not in names:
                known = ", ".join(sorted(names)) or "none defined"
                raise invalid(
                    f"expected the name of a [tariffs.<name>] table ({known})",
                    field=key,
                    value=ref,
                )
        return self

    def tariffs(self) -> dict[str, TariffSection]:
        return dict(self.__pydantic_extra__ or {})


def tariffs_from_config(raw: object) -> Tariffs:
    """The ``[tariffs]`` table (absent: no prices, default efficiencies)."""
    if raw is None:
        return Tariffs()
    try:
        m = read_section(TariffsSection, raw, "tariffs")
    except TariffError:
        raise
    except ConfigError as exc:
        raise TariffError(str(exc)) from None
    tariffs = {
        name: Tariff(
            name,
            t.price_per_kwh,
            t.session_fee,
            tuple(Window(w.days, w.start, w.end, w.price_per_kwh) for w in t.windows),
        )
        for name, t in m.tariffs().items()
    }
    return Tariffs(tariffs, m.currency, m.default, m.dc, m.ac_efficiency, m.dc_efficiency)


# --- pricing ------------------------------------------------------------------------------------


def _minute_of_week(local: datetime) -> int:
    return local.weekday() * 1440 + local.hour * 60 + local.minute


def split(t0: float, t1: float, tariff: Tariff, zone: str) -> list[tuple[float, float, float]]:
    """``[t0, t1)`` (unix s) cut where the tariff's price changes: (start, end, price) pieces."""
    if not t1 > t0:
        return []
    prices, changes = tariff.week()
    tz = ZoneInfo(zone)
    out: list[tuple[float, float, float]] = []
    t = t0
    while t < t1:
        local = datetime.fromtimestamp(t, tz)
        m = _minute_of_week(local)
        price = prices[m]
        ahead = [c for c in changes if c > m] or [c + WEEK_MIN for c in changes]
        if not ahead:  # one price all week
            out.append((t, t1, price))
            break
        floor = local.replace(second=0, microsecond=0)
        boundary = (floor + timedelta(minutes=ahead[0] - m)).timestamp()
        nxt = min(t1, max(boundary, t + 1e-6))
        out.append((t, nxt, price))
        t = nxt
    # adjacent pieces of one price (a DST shift can cut one) join again
    merged: list[tuple[float, float, float]] = []
    for piece in out:
        if merged and merged[-1][2] == piece[2] and merged[-1][1] == piece[0]:
            merged[-1] = (merged[-1][0], piece[1], piece[2])
        else:
            merged.append(piece)
    return merged


def price_session(
    profile: Sequence[tuple[float, float, float]],
    energy_grid_kwh: float,
    tariff: Tariff,
    zone: str,
) -> float:
    """The cost of a session: its grid energy spread over ``profile`` (start, end, weight) pieces —
    weight is the energy drawn in that piece in any unit, e.g. power × time — each part priced by
    the window it falls in, plus the session fee. Not rounded (round the total, not the parts)."""
    total_w = sum(w for _, _, w in profile if w > 0)
    if not math.isfinite(energy_grid_kwh) or energy_grid_kwh <= 0 or total_w <= 0:
        return tariff.session_fee if math.isfinite(energy_grid_kwh) else math.nan
    cost = tariff.session_fee
    for a, b, w in profile:
        if w <= 0 or b <= a:
            continue
        kwh = energy_grid_kwh * w / total_w
        for p0, p1, price in split(a, b, tariff, zone):
            cost += kwh * (p1 - p0) / (b - a) * price
    return cost
