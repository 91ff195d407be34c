"""The report's figures (matplotlib, Agg backend: no display needed, same PNG on every machine).

Each function takes one vehicle's results and returns PNG bytes, or None when there is nothing to
draw (no DC sessions, no idle periods) so the report says so instead of showing an empty frame.
Times on axes are the vehicle's local time.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from typing import Any, cast

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .battery import battery_side
from .bundle import Analysis
from .prep import local_times

# matplotlib.dates is untyped; these names give its three helpers a type for mypy --strict.
_date2num = cast(Callable[..., Any], mdates.date2num)
_AutoDateLocator = cast(Callable[..., Any], mdates.AutoDateLocator)
_ConciseDateFormatter = cast(Callable[..., Any], mdates.ConciseDateFormatter)

DPI = 110
TRIP_COLOUR = "#4c72b0"
AC_COLOUR = "#55a868"
DC_COLOUR = "#dd8452"
UNSEEN_COLOUR = "#c0c0c0"
MAX_LINE_POINTS = 20_000


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _local(a: Analysis, ts: np.ndarray, vins: np.ndarray) -> pd.Series:
    return local_times(ts, vins, a.settings)


def soc_timeline(a: Analysis, detail_days: float = 14.0) -> bytes | None:
    """SoC over time; trips shaded blue, AC charging green, DC orange, unseen charges grey.

    Over more than three weeks single trips are thinner than a pixel, so a second panel repeats the
    last ``detail_days`` where they can be told apart.
    """
    d = a.samples
    d = d.loc[d["battery_soc"].notna()]
    if d.empty:
        return None
    span_days = (float(d["ts"].iloc[-1]) - float(d["ts"].iloc[0])) / 86400.0
    windows = [float(d["ts"].iloc[0])]
    if span_days > 1.5 * detail_days:
        windows.append(float(d["ts"].iloc[-1]) - detail_days * 86400.0)
    fig, axes = plt.subplots(len(windows), 1, figsize=(11, 3.4 * len(windows)), squeeze=False)
    for ax, since in zip(axes[:, 0], windows, strict=True):
        _soc_panel(a, ax, d.loc[d["ts"] >= since], since)
    axes[0, 0].set_title("State of charge, trips and charging")
    if len(windows) > 1:
        axes[1, 0].set_title(f"Last {detail_days:g} days", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def _soc_panel(a: Analysis, ax: Any, d: pd.DataFrame, since: float) -> None:
    step = max(1, len(d) // MAX_LINE_POINTS)
    line = d.iloc[::step]
    t = _local(a, line["ts"].to_numpy(), line["vin"].to_numpy())
    full = _date2num(t.iloc[-1]) - _date2num(t.iloc[0])
    min_width = max(full / 1500.0, 1e-4)

    def spans(frame: pd.DataFrame, colour: str, label: str) -> None:
        frame = frame.loc[frame["end_ts"] >= since]
        if frame.empty:
            ax.fill_between([], [], color=colour, alpha=0.35, label=label)
            return
        lo = _local(a, np.maximum(frame["start_ts"].to_numpy(), since), frame["vin"].to_numpy())
        hi = _local(a, frame["end_ts"].to_numpy(), frame["vin"].to_numpy())
        x0 = _date2num(lo.to_numpy())
        # Over months a 20-minute trip is narrower than a pixel: give every span a visible width.
        w = np.maximum(_date2num(hi.to_numpy()) - x0, min_width)
        ax.broken_barh(list(zip(x0, w, strict=True)), (0, 100), color=colour, alpha=0.35, lw=0)
        ax.fill_between([], [], color=colour, alpha=0.35, label=label)

    ch = a.charges
    unseen = ch["unseen"].astype(bool)
    spans(a.trips, TRIP_COLOUR, "trip")
    spans(ch.loc[(ch["kind"] == "ac") & ~unseen], AC_COLOUR, "AC charge")
    spans(ch.loc[(ch["kind"] == "dc") & ~unseen], DC_COLOUR, "DC charge")
    spans(ch.loc[unseen], UNSEEN_COLOUR, "unseen charge")
    ax.plot(
        t.to_numpy(), line["battery_soc"].to_numpy() * 100.0, color="black", lw=0.8, label="SoC"
    )
    ax.set_ylim(0, 100)
    ax.set_ylabel("state of charge (%)")
    ax.set_xlim(t.iloc[0], t.iloc[-1])
    loc = _AutoDateLocator()
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(_ConciseDateFormatter(loc))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)


def charging_curves(a: Analysis, max_sessions: int = 12) -> bytes | None:
    """Power vs SoC for each DC session (most recent ``max_sessions``), one panel per session."""
    ch = a.charges
    dc = ch.loc[(ch["kind"] == "dc") & ~ch["unseen"].astype(bool)].tail(max_sessions)
    if dc.empty:
        return None
    d = a.samples
    n = len(dc)
    cols = min(4, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.0 * cols, 2.5 * rows), squeeze=False, sharey=True
    )
    peak = 0.0
    for ax, s in zip(axes.flat, dc.itertuples(index=False), strict=False):
        m = (d["ts"] >= s.start_ts) & (d["ts"] <= s.end_ts) & d["charging_power"].notna()
        seg = d.loc[m & (d["charging_power"] > 0)]
        ax.plot(
            seg["battery_soc"] * 100.0,
            seg["charging_power"] / 1000.0,
            ".-",
            color=DC_COLOUR,
            ms=3,
            lw=1,
        )
        peak = max(peak, float(seg["charging_power"].max() / 1000.0) if len(seg) else 0.0)
        ax.set_title(
            f"{str(s.start_local)[:16].replace('T', ' ')}\n"
            f"{s.energy_added_kwh:.1f} kWh, peak {s.peak_power_kw:.0f} kW",
            fontsize=8,
        )
        ax.set_xlim(0, 100)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("power (kW)", fontsize=8)
    for ax in axes[-1, :]:
        ax.set_xlabel("SoC (%)", fontsize=8)
    axes[0, 0].set_ylim(0, max(peak * 1.1, 1.0))
    fig.suptitle("DC charging curves (power vs SoC)", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def consumption_vs_temperature(a: Analysis) -> bytes | None:
    """Each trip of 1 km or more as a dot (size: distance) and the distance-weighted band means."""
    t = a.trips
    t = t.loc[(t["distance_km"] >= 1) & t["energy_kwh"].notna() & t["outside_temp_c"].notna()]
    if t.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    size = np.clip(t["distance_km"].to_numpy(), 1, 200) * 1.5
    ax.scatter(
        t["outside_temp_c"],
        t["consumption_kwh_100km"],
        s=size,
        alpha=0.35,
        color=TRIP_COLOUR,
        lw=0,
        label="trip (size: km)",
    )
    eff = a.efficiency("temperature")
    eff = eff.loc[eff["band"] != "unknown"]
    if len(eff):
        mid = eff["band"].str.extract(r"([+-]\d+)\.\.")[0].astype(float) + 2.5
        ax.plot(
            mid,
            eff["consumption_kwh_100km"],
            "o-",
            color="black",
            lw=1.5,
            label="band average (distance-weighted)",
        )
    hi = float(np.nanpercentile(t["consumption_kwh_100km"], 99))
    ax.set_ylim(0, max(hi * 1.15, 10))
    ax.set_xlabel("outside temperature (°C)")
    ax.set_ylabel("consumption (kWh/100 km)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Consumption vs outside temperature")
    return _png(fig)


def monthly(a: Analysis) -> bytes | None:
    """Distance per month, and energy used vs charged (AC/DC stacked) per month."""
    m = a.summary("month")
    if m.empty:
        return None
    x = np.arange(len(m))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
    ax1.bar(x, m["distance_km"], color=TRIP_COLOUR)
    ax1.set_ylabel("distance (km)")
    ax1.set_title("Distance per month")
    w = 0.4
    ax2.bar(x - w / 2, m["energy_used_kwh"], w, color=TRIP_COLOUR, label="used driving")
    ax2.bar(x + w / 2, m["ac_kwh"], w, color=AC_COLOUR, label="charged AC")
    ax2.bar(x + w / 2, m["dc_kwh"], w, bottom=m["ac_kwh"], color=DC_COLOUR, label="charged DC")
    other = m["energy_charged_kwh"] - m["ac_kwh"] - m["dc_kwh"]
    if (other > 0).any():
        ax2.bar(
            x + w / 2,
            other,
            w,
            bottom=m["ac_kwh"] + m["dc_kwh"],
            color=UNSEEN_COLOUR,
            label="charged (type unknown)",
        )
    ax2.set_ylabel("energy (kWh)")
    ax2.set_title("Energy per month")
    ax2.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    for ax in (ax1, ax2):
        ax.set_xticks(x, m["period"], rotation=45 if len(m) > 6 else 0, fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _png(fig)


def idle_drain(a: Analysis) -> bytes | None:
    """Average drain (W) of each parked period over time, coloured by outside temperature."""
    d = a.drain
    if d.empty:
        return None
    t = _local(a, d["start_ts"].to_numpy(), d["vin"].to_numpy())
    fig, ax = plt.subplots(figsize=(11, 3.2))
    temp = d["outside_temp_c"].to_numpy()
    sc = ax.scatter(
        t.to_numpy(),
        d["avg_power_w"],
        c=np.nan_to_num(temp, nan=np.nanmean(temp) if np.isfinite(temp).any() else 0.0),
        cmap="coolwarm",
        s=np.clip(d["duration_h"].to_numpy() * 2, 8, 120),
        alpha=0.8,
        lw=0,
    )
    med = float(d["avg_power_w"].median())
    ax.axhline(med, color="black", lw=1, ls="--", label=f"median {med:.0f} W")
    fig.colorbar(sc, ax=ax, label="outside °C", pad=0.01)
    loc = _AutoDateLocator()
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(_ConciseDateFormatter(loc))
    ax.set_ylabel("average drain (W)")
    ax.set_ylim(bottom=min(0.0, float(d["avg_power_w"].min()) * 1.1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(f"Idle drain (parked ≥ {a.settings.idle_hours:g} h; size: hours parked)")
    return _png(fig)


def capacity(a: Analysis) -> bytes | None:
    """Per-session capacity estimates, the monthly median with its quartile band, and nominal."""
    est = battery_side(a.capacity_estimates)
    if est.empty:
        return None
    t = _local(a, est["start_ts"].to_numpy(), est["vin"].to_numpy())
    fig, ax = plt.subplots(figsize=(11, 3.4))
    colours = np.where(est["kind"] == "dc", DC_COLOUR, AC_COLOUR)
    scale = est["ac_scale"].dropna()
    note = f"; AC / {float(scale.iloc[0]):.3f}" if len(scale) else ""
    ax.scatter(
        t.to_numpy(),
        est["capacity_kwh"],
        c=list(colours),
        s=14,
        alpha=0.6,
        lw=0,
        label=f"session estimate (green AC, orange DC{note})",
    )
    b = a.battery
    configured: float | None = None
    if len(b):
        mid = pd.to_datetime(b["month"] + "-15")
        ax.plot(mid, b["capacity_kwh"], "o-", color="black", lw=1.5, label="monthly median")
        ax.fill_between(
            mid,
            b["capacity_p25_kwh"],
            b["capacity_p75_kwh"],
            color="black",
            alpha=0.12,
            label="interquartile range",
        )
        nominal = b["nominal_kwh"].dropna()
        if len(nominal):
            configured = float(nominal.iloc[0])
            ax.axhline(
                configured, color="grey", ls=":", lw=1.2, label=f"configured {configured:.1f} kWh"
            )
    vals = est["capacity_kwh"].to_numpy()
    lo, hi = np.nanpercentile(vals, [2, 98])
    if configured is not None:  # the configured line must be on the plot, or it says nothing
        lo, hi = min(lo, configured), max(hi, configured)
    pad = max((hi - lo) * 0.3, 2.0)
    ax.set_ylim(lo - pad, hi + pad)
    # from the first estimate on: the month's median sits mid-month and would otherwise stretch
    # the axis back to before any data
    first, last = t.min(), t.max()
    if last > first:
        ax.set_xlim(left=first, right=last + (last - first) * 0.02)
    loc = _AutoDateLocator()
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(_ConciseDateFormatter(loc))
    ax.set_ylabel("usable capacity (kWh)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_title("Battery capacity estimated from charging sessions")
    return _png(fig)


def monthly_costs(a: Analysis) -> bytes | None:
    """Charging cost per month stacked by place, and cost per 100 km driven over the months."""
    from .costs import monthly_costs as table

    c = table(a.charges, a.settings)
    if c.empty or not c["cost"].notna().any():
        return None
    by = c.pivot_table(index="month", columns="place", values="cost", aggfunc="sum").fillna(0.0)
    m = a.summary("month").set_index("period")
    per100 = m["cost_per_100km"].reindex(by.index)
    x = np.arange(len(by))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
    bottom = np.zeros(len(by))
    colours = plt.get_cmap("tab10")
    for i, place in enumerate(by.columns):
        ax1.bar(x, by[place], bottom=bottom, color=colours(i % 10), label=str(place))
        bottom += by[place].to_numpy()
    cur = a.settings.tariffs.currency
    ax1.set_ylabel(f"cost ({cur})" if cur else "cost")
    ax1.set_title("Charging cost per month, by place")
    ax1.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax2.plot(x, per100.to_numpy(dtype="float64"), marker="o", color=TRIP_COLOUR)
    ax2.set_ylabel(f"{cur} per 100 km" if cur else "per 100 km")
    ax2.set_title("Cost per 100 km driven")
    ax2.set_ylim(bottom=0)
    for ax in (ax1, ax2):
        ax.set_xticks(x, by.index, rotation=45 if len(by) > 6 else 0, fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _png(fig)


def trip_routes(a: Analysis, max_trips: int = 12) -> bytes | None:
    """Each recent trip's track as the car logged it (journal trackpoints), one panel per trip.

    Drawn offline from the points alone (no map tiles: nothing is fetched, no position leaves the
    machine). Longitude against latitude at equal ground scale (the x axis shrunk by cos(latitude)),
    so a route keeps its shape; a circle marks the start, a square the end."""
    from exporter import polyline

    routes = a.routes.tail(max_trips)
    tracks: list[tuple[str, list[tuple[float, float]]]] = []
    for tid, route in zip(routes["trip_id"].astype(str), routes["route"], strict=True):
        pts = list(polyline.points_of(route if isinstance(route, str) else None))
        if len(pts) >= 2:
            tracks.append((tid, pts))
    if not tracks:
        return None
    trips = a.trips
    titles: dict[str, str] = {}
    if "trip_id" in trips.columns:
        for tid, start, km, kwh in zip(
            trips["trip_id"],
            trips["start_local"],
            pd.to_numeric(trips["distance_km"], errors="coerce"),
            pd.to_numeric(trips["energy_kwh"], errors="coerce"),
            strict=True,
        ):
            if isinstance(tid, str) and tid:
                when = str(start)[:16].replace("T", " ")
                what = "" if math.isnan(kwh) else f"{km:.1f} km, {kwh:.1f} kWh"
                titles[tid] = f"{when}\n{what}".strip()
    n = len(tracks)
    cols = min(4, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 3.0 * rows), squeeze=False)
    for ax, (tid, pts) in zip(axes.flat, tracks, strict=False):
        lat = np.array([p[0] for p in pts])
        lon = np.array([p[1] for p in pts])
        ax.plot(lon, lat, "-", color=TRIP_COLOUR, lw=1.4)
        ax.plot(lon[0], lat[0], "o", color=AC_COLOUR, ms=5)
        ax.plot(lon[-1], lat[-1], "s", color=DC_COLOUR, ms=5)
        ax.set_aspect(
            1.0 / max(math.cos(math.radians(float(lat.mean()))), 0.01), adjustable="datalim"
        )
        ax.set_title(titles.get(tid, ""), fontsize=8)
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.3)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    fig.suptitle("Trip routes from the car's own log (circle: start, square: end)", fontsize=10)
    fig.tight_layout()
    return _png(fig)


FIGURES = (
    ("soc", "State of charge with trips and charges", soc_timeline),
    ("charging_curves", "DC charging curves", charging_curves),
    ("consumption_temperature", "Consumption vs temperature", consumption_vs_temperature),
    ("monthly", "Monthly distance and energy", monthly),
    ("idle_drain", "Idle drain", idle_drain),
    ("capacity", "Capacity over time", capacity),
    ("routes", "Trip routes", trip_routes),
)
