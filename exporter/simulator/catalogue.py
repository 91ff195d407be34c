"""The small catalogue of simulated car models.

Both cloud simulators render their payloads from the same provider-neutral vehicle model; what
differs between a smart #1 and a Ford Mach-E is only this table: battery size, how much energy the
car needs, how fast it can charge, and the identifiers a cloud reports for it. The numbers are
round public figures, good enough for plausible physics, not a spec sheet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class VehicleSpec:
    """One car model.

    ``consumption_kwh_100km`` is the consumption at a steady 90 km/h and 20 °C; the physics scales
    drag and rolling resistance so that this operating point matches, and speed, stop-and-go and
    cold change it from there. ``cloud`` is the cloud the model is normally reached through
    ("smart" or "smartcar"); ``series`` and ``model_code`` are only meaningful for smart cars.
    """

    key: str
    make: str
    model: str
    year: int
    battery_kwh: float  # usable capacity
    consumption_kwh_100km: float
    max_ac_kw: float
    max_dc_kw: float
    pack_voltage: tuple[float, float]  # (empty, full) open-circuit voltage of the traction battery
    cloud: str
    series: str = ""
    model_code: str = ""
    mat_prefix: str = ""
    vin_prefix: str = ""  # the first 8 characters of a VIN of this model (WMI + descriptor)
    sunroof: bool = False
    mass_kg: float = 1900.0
    tyre_kpa: tuple[float, float] = (250.0, 260.0)  # cold pressure front, rear
    dc_taper_soc: float = 55.0  # DC power stays at peak up to this SoC (%)

    @property
    def proprietary_platform(self) -> int:
        """1 for the cars served from the v2 API host (the #5 generation), else 0."""
        return 1 if self.series.startswith("HY") else 0


def _smart(
    key: str, series: str, code: str, kwh: float, cons: float, dc: float, volts: tuple[float, float]
) -> VehicleSpec:
    return VehicleSpec(
        key=key,
        make="smart",
        model=key,
        year=2025,
        battery_kwh=kwh,
        consumption_kwh_100km=cons,
        max_ac_kw=22.0,
        max_dc_kw=dc,
        pack_voltage=volts,
        cloud="smart",
        series=series,
        model_code=code,
        mat_prefix=series[:2] + "1",
        vin_prefix=f"HESXR{key[1]}C4",
        sunroof=key == "#5",
        mass_kg=1950.0 if key != "#5" else 2300.0,
        dc_taper_soc=55.0 if key != "#5" else 60.0,
    )


CATALOGUE: Final[dict[str, VehicleSpec]] = {
    spec.key: spec
    for spec in (
        _smart("#1", "HX11", "HX11_EUL_Premium+_RWD_000", 62.0, 15.0, 150.0, (370.0, 465.0)),
        _smart("#3", "HC11", "HC11_EUL_Premium_RWD_000", 62.0, 14.6, 150.0, (370.0, 465.0)),
        _smart("#5", "HY11", "HY11_EUL_Premium_AWD_000", 94.0, 17.0, 400.0, (640.0, 800.0)),
        VehicleSpec(
            "Tesla Model 3",
            "Tesla",
            "Model 3",
            2024,
            57.5,
            12.8,
            11.0,
            170.0,
            (330.0, 400.0),
            "smartcar",
            mass_kg=1760.0,
            tyre_kpa=(290.0, 290.0),
        ),
        VehicleSpec(
            "Ford Mustang Mach-E",
            "Ford",
            "Mustang Mach-E",
            2023,
            91.0,
            17.8,
            11.0,
            150.0,
            (340.0, 430.0),
            "smartcar",
            mass_kg=2200.0,
            tyre_kpa=(250.0, 250.0),
        ),
        VehicleSpec(
            "Volkswagen ID.4",
            "Volkswagen",
            "ID.4",
            2024,
            77.0,
            16.2,
            11.0,
            135.0,
            (330.0, 410.0),
            "smartcar",
            mass_kg=2100.0,
            tyre_kpa=(250.0, 270.0),
        ),
    )
}


def spec_for(key: str | VehicleSpec) -> VehicleSpec:
    """Look a model up by its catalogue key ("#1", "Tesla Model 3", ...); a spec passes through."""
    if isinstance(key, VehicleSpec):
        return key
    try:
        return CATALOGUE[key]
    except KeyError:
        known = ", ".join(repr(k) for k in CATALOGUE)
        raise ValueError(
            f"unknown simulated vehicle model {key!r}; expected one of {known}"
        ) from None
