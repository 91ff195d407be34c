"""Render one time-series panel of a dashboard to PNG with matplotlib, from a live Prometheus.

A picture of a panel for the docs without running Grafana (and without screenshots of a browser):
the panel's own queries, with its legend format and unit, over a time window of Prometheus data::

    python grafana/render_panel.py --prometheus http://127.0.0.1:9090 \\
        --dashboard grafana/dashboards/charging.json --panel "State of charge and charge limit" \\
        --minutes 30 --out docs/panel-soc.png

The end-to-end test renders a panel this way from the Prometheus it started.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from dashgen.queries import expand_prom  # noqa: E402

JSON = dict[str, Any]
Series = tuple[str, list[float], list[float]]  # legend, unix times, values

_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def query_range(base: str, expr: str, start: float, end: float, step: float) -> list[JSON]:
    """Prometheus ``/api/v1/query_range``; raises on an error reply."""
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{base}/api/v1/query_range?{params}", timeout=10) as r:
        reply: JSON = json.load(r)
    if reply.get("status") != "success":
        raise RuntimeError(f"{expr}: {reply.get('error')}")
    result: list[JSON] = reply["data"]["result"]
    return result


def legend(fmt: str, labels: dict[str, str]) -> str:
    """Grafana's legend format: ``{{label}}`` replaced by the series' label value."""
    return _LEGEND.sub(lambda m: str(labels.get(m.group(1), "")), fmt).strip()


def vehicles(base: str) -> list[str]:
    """The ``vin`` variable's values: ``label_values(carmetrics_vehicle_info, vin)``."""
    params = urllib.parse.urlencode({"match[]": "carmetrics_vehicle_info"})
    with urllib.request.urlopen(f"{base}/api/v1/label/vin/values?{params}", timeout=10) as r:
        return [str(v) for v in json.load(r)["data"]]


def panel_series(
    base: str, panel: JSON, vins: list[str], start: float, end: float, step: float
) -> list[Series]:
    """Every series of every target of the panel, named by the panel's legend format."""
    out: list[Series] = []
    span = f"{max(1, round(end - start))}s"
    for target in panel["targets"]:
        expr = expand_prom(
            target["expr"],
            vins,
            rate_interval=f"{max(4 * step, 4)}s",
            range_=span,
            interval=f"{step}s",
        )
        for s in query_range(base, expr, start, end, step):
            name = legend(target["legendFormat"], s["metric"])
            times = [float(t) for t, _ in s["values"]]
            out.append((name, times, [float(v) for _, v in s["values"]]))
    return out


def _clock(x: float, _pos: int | None = None) -> str:
    return datetime.fromtimestamp(x, UTC).strftime("%H:%M:%S")


def dashed(panel: JSON) -> list[re.Pattern[str]]:
    """Series-name patterns the panel draws dashed (``byRegexp`` overrides of custom.lineStyle)."""
    out = []
    for o in panel["fieldConfig"].get("overrides", []):
        styled = any(p["id"] == "custom.lineStyle" for p in o["properties"])
        if styled and o["matcher"]["id"] == "byRegexp":
            out.append(re.compile(o["matcher"]["options"]))
    return out


def render(
    series: list[Series],
    title: str,
    unit: str,
    out: Path,
    dashed_names: list[re.Pattern[str]] | None = None,
) -> None:
    """Draw the series the way the panel shows them (step lines, unit on the axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_hex
    from matplotlib.ticker import EngFormatter, FuncFormatter, PercentFormatter

    fig, ax = plt.subplots(figsize=(9, 3.6), dpi=110)
    colours: dict[str, str] = {}
    for name, times, values in sorted(series):
        dash = any(p.fullmatch(name) for p in dashed_names or [])
        # a dashed companion (e.g. "VIN limit") takes the colour of its solid series ("VIN ...")
        key = name.split(" ")[0]
        line = ax.step(
            times,
            values,
            where="post",
            label=name,
            linewidth=1.4,
            linestyle="--" if dash else "-",
            color=colours.get(key),
        )
        colours.setdefault(key, to_hex(line[0].get_color()))
    formatters = {
        "percentunit": PercentFormatter(1.0),
        "watt": EngFormatter(unit="W"),
        "volt": EngFormatter(unit="V"),
        "amp": EngFormatter(unit="A"),
        "s": EngFormatter(unit="s"),
    }
    labels = {"lengthkm": "km", "celsius": "°C", "pressurebar": "bar", "velocitykmh": "km/h"}
    if unit in formatters:
        ax.yaxis.set_major_formatter(formatters[unit])
    elif unit in labels:
        ax.set_ylabel(labels[unit])
    ax.xaxis.set_major_formatter(FuncFormatter(_clock))
    ax.set_xlabel("time (UTC)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prometheus", required=True, help="base URL, e.g. http://127.0.0.1:9090")
    ap.add_argument("--dashboard", required=True, type=Path)
    ap.add_argument("--panel", required=True, help="panel title")
    ap.add_argument("--vin", action="append", help="a vehicle to show (repeat; default all)")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--step", type=float, default=5.0, help="seconds between points")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)
    dashboard = json.loads(args.dashboard.read_text())
    panel = next(p for p in dashboard["panels"] if p["title"] == args.panel)
    end = time.time()
    base = args.prometheus.rstrip("/")
    vins = args.vin or vehicles(base)
    series = panel_series(base, panel, vins, end - args.minutes * 60, end, args.step)
    if not series:
        print("no data for that panel in that window", file=sys.stderr)
        return 1
    unit = panel["fieldConfig"]["defaults"]["unit"]
    render(series, f"{dashboard['title']}: {panel['title']}", unit, args.out, dashed(panel))
    print(f"wrote {args.out} ({len(series)} series)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
