"""Writing result frames as a readable table, CSV, JSON or Parquet.

Files carry every column with full precision (machines read them); the terminal table shows the
columns a person scans, rounded, with local times shortened to minutes. Units are in column names
(``distance_km``, ``energy_kwh``) so no file needs a legend.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
from pathlib import Path
from typing import Final

import pandas as pd

FORMATS: Final = ("table", "csv", "json", "parquet")

# What the terminal table shows per kind of result: (column, header, decimals or None for text).
VIEWS: Final[dict[str, tuple[tuple[str, str, int | None], ...]]] = {
    "trips": (
        ("vin", "vin", None),
        ("start_local", "start", None),
        ("end_local", "end", None),
        ("duration_min", "min", 0),
        ("distance_km", "km", 1),
        ("avg_speed_kmh", "km/h", 0),
        ("start_place", "from", None),
        ("end_place", "to", None),
        ("start_soc_pct", "soc%", 0),
        ("end_soc_pct", "->%", 0),
        ("energy_kwh", "kWh", 2),
        ("consumption_kwh_100km", "kWh/100km", 1),
        ("outside_temp_c", "°C", 0),
        ("source", "source", None),
        ("flags", "notes", None),
    ),
    "charges": (
        ("vin", "vin", None),
        ("start_local", "start", None),
        ("end_local", "end", None),
        ("duration_min", "min", 0),
        ("kind", "type", None),
        ("place", "place", None),
        ("start_soc_pct", "soc%", 0),
        ("end_soc_pct", "->%", 0),
        ("energy_added_kwh", "kWh", 2),
        ("energy_grid_kwh", "grid kWh", 2),
        ("avg_power_kw", "avg kW", 1),
        ("peak_power_kw", "peak kW", 1),
        ("cost", "cost", 2),
        ("flags", "notes", None),
    ),
    "drain": (
        ("vin", "vin", None),
        ("start_local", "start", None),
        ("end_local", "end", None),
        ("duration_h", "h", 1),
        ("soc_lost_pct", "soc lost %", 1),
        ("energy_kwh", "kWh", 2),
        ("avg_power_w", "avg W", 0),
        ("pct_per_day", "%/day", 2),
        ("outside_temp_c", "°C", 0),
    ),
    "efficiency": (
        ("vin", "vin", None),
        ("dimension", "by", None),
        ("band", "band", None),
        ("trips", "trips", 0),
        ("distance_km", "km", 0),
        ("energy_kwh", "kWh", 1),
        ("consumption_kwh_100km", "kWh/100km", 1),
        ("avg_speed_kmh", "km/h", 0),
    ),
    "battery": (
        ("vin", "vin", None),
        ("month", "month", None),
        ("sessions", "sessions", 0),
        ("capacity_kwh", "kWh", 1),
        ("capacity_p25_kwh", "p25", 1),
        ("capacity_p75_kwh", "p75", 1),
        ("nominal_kwh", "nominal", 1),
        ("health_pct", "health %", 1),
        ("health_low_pct", "90% from", 1),
        ("health_high_pct", "to", 1),
        ("note", "note", None),
    ),
    "summary": (
        ("vin", "vin", None),
        ("period", "period", None),
        ("drives", "drives", 0),
        ("distance_km", "km", 1),
        ("driving_h", "h", 1),
        ("energy_used_kwh", "used kWh", 1),
        ("consumption_kwh_100km", "kWh/100km", 1),
        ("charges", "charges", 0),
        ("energy_charged_kwh", "charged kWh", 1),
        ("dc_share_pct", "DC %", 0),
        ("cost", "cost", 2),
        ("cost_per_100km", "cost/100km", 2),
    ),
    "places": (
        ("vin", "vin", None),
        ("place", "place", None),
        ("latitude", "lat", 5),
        ("longitude", "lon", 5),
        ("visits", "visits", 0),
        ("nights", "nights", 0),
        ("hours_parked", "h parked", 0),
    ),
    "costs": (
        ("month", "month", None),
        ("vin", "vin", None),
        ("place", "place", None),
        ("kind", "type", None),
        ("sessions", "sessions", 0),
        ("energy_added_kwh", "kWh", 1),
        ("energy_grid_kwh", "grid kWh", 1),
        ("cost", "cost", 2),
        ("currency", "currency", None),
    ),
}


def flags_column(df: pd.DataFrame) -> pd.Series:
    parts = []
    for col, word in (("inferred", "inferred"), ("unseen", "unseen"), ("ongoing", "ongoing")):
        if col in df.columns:
            parts.append(df[col].astype(bool).map({True: word, False: ""}))
    if not parts:
        return pd.Series([""] * len(df), index=df.index)
    joined = parts[0]
    for p in parts[1:]:
        joined = joined.str.cat(p, sep=" ")
    return joined.str.strip()


def cell(value: object, decimals: int | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if decimals is None:
        text = str(value)
        # 2026-01-05T08:12:33+01:00 -> 2026-01-05 08:12 (the zone is the vehicle's, said once)
        if len(text) >= 16 and text[10:11] == "T":
            return text[:10] + " " + text[11:16]
        return text
    if isinstance(value, bool):
        return str(value)
    return f"{float(value):.{decimals}f}" if isinstance(value, int | float) else str(value)


def render_table(df: pd.DataFrame, kind: str) -> str:
    """A fixed-width text table of the view for ``kind`` (all columns when the kind is unknown)."""
    view = VIEWS.get(kind)
    if view is None:
        return df.to_string(index=False)
    if df.empty:
        return f"(no {kind})"
    d = df.assign(flags=flags_column(df))
    view = tuple(v for v in view if v[0] in d.columns)  # e.g. no source column: one source
    headers = [h for _, h, _ in view]
    rows = [
        [cell(v, dec) for v, (_, _, dec) in zip(r, view, strict=True)]
        for r in d[[c for c, _, _ in view]].itertuples(index=False, name=None)
    ]
    numeric = [dec is not None for _, _, dec in view]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        out = [
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(cells, widths, numeric, strict=True)
        ]
        return "  ".join(out).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def _public(df: pd.DataFrame) -> pd.DataFrame:
    return df[[c for c in df.columns if not str(c).startswith("_")]]


def to_json_text(df: pd.DataFrame) -> str:
    records = json.loads(_public(df).to_json(orient="records", double_precision=10))
    return json.dumps(records, indent=1, ensure_ascii=False) + "\n"


def write(df: pd.DataFrame, fmt: str, out: Path | None, kind: str) -> str | None:
    """Write ``df`` to ``out`` in ``fmt``; return the text instead when ``out`` is None."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    data = _public(df)
    if fmt == "parquet":
        if out is None:
            raise ValueError("--format parquet writes a binary file: give --out FILE")
        if importlib.util.find_spec("pyarrow") is None:
            raise ValueError("--format parquet needs pyarrow: pip install 'carmetrics[parquet]'")
        data.to_parquet(out, index=False)
        return None
    if fmt == "csv":
        buf = io.StringIO()
        # nanometre precision is plenty and hides binary float noise (1.7, not 1.7000000000000015)
        data.round(9).to_csv(buf, index=False)
        text = buf.getvalue()
    elif fmt == "json":
        text = to_json_text(data)
    else:
        text = render_table(data, kind) + "\n"
    if out is None:
        return text
    Path(out).write_text(text, encoding="utf-8")
    return None
