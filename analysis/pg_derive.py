"""``carmetrics db derive`` on a PostgreSQL history."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from exporter.dbtarget import PgTarget
from exporter.history import HistoryError

from .derive import DeriveResult
from .settings import Settings


def derive(
    target: PgTarget,
    settings: Settings,
    *,
    vin: str | None = None,
    rebuild: bool = False,
    progress: Callable[[Iterable[str]], Iterable[str]] | None = None,
) -> list[DeriveResult]:
    raise HistoryError(f"db derive on PostgreSQL ({target}) is not available yet")
