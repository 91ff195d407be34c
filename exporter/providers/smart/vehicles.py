"""The account's vehicle list: which cars exist, what they are, and which API host serves each.

The #5 (series ``HY``, proprietary platform 1) is served only by the v2 host; asking v1 about it
answers 8063/8060 (reference §0, §5). Routing follows the series prefix like every working client,
with the platform flag as a tie-breaker for series we do not know.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

from exporter.providers.base import BadReply
from exporter.snapshot import VehicleInfo

log = logging.getLogger("exporter.providers.smart")

MODELS: Final = {"HX": "#1", "HC": "#3", "HY": "#5"}
V2_SERIES: Final = frozenset({"HY"})


@dataclass(frozen=True, slots=True)
class VehicleRecord:
    vin: str
    series: str  # seriesCodeVs, e.g. HX11, HC11_IL, HY11
    model_code: str  # modelCode, sent as x-vehicle-series by INTL
    mat_code: str  # matCode, sent URL-encoded in X-VEHICLE-SERIES / X-VEHICLE-MODEL
    v2: bool  # served by the v2 API host

    @property
    def model(self) -> str:
        return MODELS.get(self.series[:2].upper(), "")

    def info(self, account: str) -> VehicleInfo:
        return VehicleInfo(
            vin=self.vin,
            provider="smart",
            make="smart",
            model=self.model,
            series=self.series,
            account=account,
        )


def uses_v2(series: str, proprietary_platform: object) -> bool:
    prefix = series[:2].upper()
    if prefix in MODELS:
        return prefix in V2_SERIES
    log.warning("smart: unknown vehicle series %r; routing by its platform flag", series)
    return str(proprietary_platform) == "1"


def parse_vehicle_list(data: Any) -> list[VehicleRecord]:
    """``data`` of ``/device-platform/user/vehicle/secure``; entries without a VIN are skipped."""
    items = data.get("list") if isinstance(data, dict) else None
    if items is None and isinstance(data, dict):
        return []
    if not isinstance(items, list):
        raise BadReply("vehicle list reply has no list")
    out: list[VehicleRecord] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        vin = item.get("vin")
        if not isinstance(vin, str) or not vin:
            continue
        series = str(item.get("seriesCodeVs") or item.get("seriesName") or "")
        out.append(
            VehicleRecord(
                vin=vin,
                series=series,
                model_code=str(item.get("modelCode") or ""),
                mat_code=str(item.get("matCode") or ""),
                v2=uses_v2(series, item.get("proprietaryPlatform")),
            )
        )
    return out
