"""``carmetrics report``: one HTML file a person can open, mail or archive, with nothing beside it.

Plots are embedded as base64 PNGs (and also written next to the HTML for reuse); styles are inline;
no script, font or stylesheet is fetched, so the report opens offline and stays private. Tables show
the latest rows; the CLI's CSV/JSON output is the place for everything.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from .bundle import Analysis
from .output import VIEWS, cell, flags_column
from .plots import FIGURES

T = TypeVar("T")
MAX_TABLE_ROWS = 50

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em
auto;max-width:1180px; color:#222;padding:0 1em}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:2px solid #4c72b0;padding-bottom:.2em}
h3{margin-top:1.6em} table{border-collapse:collapse;font-size:.82em;margin:.5em 0}
th,td{padding:.2em .6em;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}
th{background:#f3f5f9}td.t,th.t{text-align:left}
.kpi{display:flex;gap:1.2em;flex-wrap:wrap;margin:1em 0} .kpi
div{background:#f3f5f9;border-radius:6px;padding:.6em 1em} .kpi b{display:block;font-size:1.4em}
img{max-width:100%;border:1px solid #eee;margin:.4em 0} .note{color:#777;font-size:.85em}
"""


def _table(df: pd.DataFrame, kind: str, limit: int = MAX_TABLE_ROWS) -> str:
    view = VIEWS[kind]
    if df.empty:
        return f'<p class="note">No {html.escape(kind)} in this period.</p>'
    shown = df.tail(limit).assign(flags=flags_column(df.tail(limit)))
    head = "".join(
        f'<th class="{"t" if dec is None else ""}">{html.escape(h)}</th>' for _, h, dec in view
    )
    body = []
    for rec in shown[[c for c, _, _ in view]].itertuples(index=False, name=None):
        cells = "".join(
            f'<td class="{"t" if dec is None else ""}">{html.escape(cell(v, dec))}</td>'
            for v, (_, _, dec) in zip(rec, view, strict=True)
        )
        body.append(f"<tr>{cells}</tr>")
    more = (
        f'<p class="note">Latest {limit} of {len(df)} rows; '
        f"use <code>carmetrics {kind} --format csv</code> for all.</p>"
        if len(df) > limit
        else ""
    )
    return f"<table><tr>{head}</tr>{''.join(body)}</table>{more}"


def _kpis(a: Analysis) -> str:
    t, c = a.trips, a.charges
    dist = float(t["distance_km"].sum()) if len(t) else 0.0
    used = float(t["energy_kwh"].sum()) if len(t) else 0.0
    added = float(c["energy_added_kwh"].sum()) if len(c) else 0.0
    cost = float(c["cost"].sum(min_count=1)) if len(c) and "cost" in c else float("nan")
    cur = a.settings.tariffs.currency
    cons = used / dist * 100 if dist > 0 else float("nan")
    items = [
        ("trips", f"{len(t)}"),
        ("distance", f"{dist:,.0f} km"),
        ("energy used", f"{used:,.0f} kWh"),
        ("consumption", "-" if cons != cons else f"{cons:.1f} kWh/100 km"),
        ("charging sessions", f"{len(c)}"),
        ("energy charged", f"{added:,.0f} kWh"),
    ]
    if cost == cost:
        items.append(("charging cost", f"{cost:,.2f} {cur}".strip()))
        if dist > 0:
            items.append(("cost per 100 km", f"{cost / dist * 100:,.2f} {cur}".strip()))
    return (
        '<div class="kpi">'
        + "".join(f"<div>{html.escape(k)}<b>{html.escape(v)}</b></div>" for k, v in items)
        + "</div>"
    )


def _costs(a: Analysis, out: Path, vin: str) -> str:
    """Monthly cost by place and AC/DC, and cost per 100 km over time (needs [tariffs])."""
    from .costs import monthly_costs
    from .plots import monthly_costs as plot

    parts = ["<h3>Costs</h3>"]
    if not a.settings.tariffs.tariffs:
        parts.append(
            '<p class="note">No [tariffs] in the configuration: add one (README, "Places and '
            'costs") to see what charging cost.</p>'
        )
        return "\n".join(parts)
    png = plot(a)
    if png is not None:
        (out / f"{vin}_costs.png").write_bytes(png)
        data = base64.b64encode(png).decode("ascii")
        parts.append(f'<img alt="Charging costs" src="data:image/png;base64,{data}">')
    parts.append(_table(monthly_costs(a.charges, a.settings), "costs", limit=200))
    return "\n".join(parts)


def _section(a: Analysis, out: Path, progress: Callable[..., Iterator[Any]] | None) -> str:
    samples = a.samples
    vin = str(samples["vin"].iloc[0])
    tz = a.settings.tz(vin)
    t0 = pd.Timestamp(samples["ts"].min(), unit="s", tz="UTC").tz_convert(tz)
    t1 = pd.Timestamp(samples["ts"].max(), unit="s", tz="UTC").tz_convert(tz)
    model = samples["model"].iloc[0] if "model" in samples.columns else None
    cap = a.prepared.capacity_by_vin.get(vin)
    parts = [
        f"<h2>{html.escape(vin)}{' (' + html.escape(str(model)) + ')' if model else ''}</h2>",
        f'<p class="note">{t0:%Y-%m-%d %H:%M} to {t1:%Y-%m-%d %H:%M} ({html.escape(str(tz))}), '
        f"{len(samples):,} samples; usable capacity used for kWh: {cap:.1f} kWh.</p>",
        _kpis(a),
    ]
    figures: Iterable[tuple[str, str, Callable[[Analysis], bytes | None]]] = FIGURES
    if progress is not None:
        figures = progress(FIGURES, f"plotting {vin}")
    for key, title, fn in figures:
        png = fn(a)
        parts.append(f"<h3>{html.escape(title)}</h3>")
        if png is None:
            parts.append('<p class="note">Nothing to plot in this period.</p>')
            continue
        (out / f"{vin}_{key}.png").write_bytes(png)
        data = base64.b64encode(png).decode("ascii")
        parts.append(f'<img alt="{html.escape(title)}" src="data:image/png;base64,{data}">')
    parts += [
        "<h3>Per month</h3>",
        _table(a.summary("month"), "summary"),
        "<h3>Trips</h3>",
        _table(a.trips, "trips"),
        "<h3>Charging sessions</h3>",
        _table(a.charges, "charges"),
        _costs(a, out, vin),
        "<h3>Idle drain</h3>",
        _table(a.drain, "drain"),
        "<h3>Efficiency</h3>",
        _table(a.efficiency(), "efficiency", limit=200),
        "<h3>Battery capacity</h3>",
        _table(a.battery, "battery", limit=200),
    ]
    return "\n".join(parts)


def write_report(
    analyses: Iterable[Analysis],
    out: Path | str,
    *,
    title: str = "carmetrics report",
    progress: Callable[..., Iterator[Any]] | None = None,
) -> Path:
    """Write ``out/report.html`` and the PNGs for every analysis with samples; returns its path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sections = [_section(a, out, progress) for a in analyses if len(a.samples)]
    if not sections:
        sections = ['<p class="note">No samples in the chosen period.</p>']
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{_CSS}</style></head>
<body><h1>{html.escape(title)}</h1>
<p class="note">Made {made}. Times are each vehicle's local time. Trips whose source is "journal"
come from the car's own trip log (exact times, distance and energy); the others are reconstructed
from the reports, their energy is SoC change times usable capacity; "inferred" trips and "unseen"
charges happened between two reports and have approximate times.</p> {"".join(sections)} </body></html>
"""
    path = out / "report.html"
    path.write_text(doc, encoding="utf-8")
    return path
