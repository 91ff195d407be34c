"""The building blocks of the carmetrics dashboards: targets, panels, layout and variables.

Every panel is built through :class:`Panel`, which always writes a unit, a datasource by fixed uid
and refIds, so the structural test and the end-to-end test can rely on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from exporter.signals import CHARGING_STATES, POWER_STATES

JSON = dict[str, Any]

PROM: Final[JSON] = {"type": "prometheus", "uid": "prometheus"}
SQLITE: Final[JSON] = {"type": "frser-sqlite-datasource", "uid": "carmetrics-sqlite"}
SCHEMA_VERSION: Final = 42  # Grafana 13.1 (the image pinned in docker-compose.yml)

VIN: Final = 'vin=~"$vin"'  # the label filter every Prometheus query carries
SQL_VIN: Final = "vin IN (${vin:singlequote})"
SQL_RANGE: Final = "ts >= $__from / 1000 AND ts < $__to / 1000"


def sql_where(time_column: str = "ts") -> str:
    """The filter every SQL panel carries: the selected vehicles and the dashboard's time range."""
    return f"WHERE {SQL_VIN} AND {time_column} >= $__from / 1000 AND {time_column} < $__to / 1000"


GREEN, RED, YELLOW, BLUE, GREY = "green", "red", "#EAB839", "blue", "text"

# --- targets --------------------------------------------------------------------------------------


def prom(expr: str, legend: str = "{{vin}}", *, instant: bool = False, table: bool = False) -> JSON:
    """A Prometheus query. Instant for panels that show the current value, range for graphs."""
    return {
        "datasource": PROM,
        "editorMode": "code",
        "expr": expr,
        "format": "table" if table else "time_series",
        "instant": instant or table,
        "legendFormat": legend,
        "range": not (instant or table),
    }


def sql(query: str, *, series: bool = False) -> JSON:
    """A frser-sqlite-datasource query; ``time`` is the one time-formatted column by convention."""
    text = " ".join(line.strip() for line in query.strip().splitlines())
    return {
        "datasource": SQLITE,
        "queryText": text,
        "queryType": "time series" if series else "table",
        "rawQueryText": text,
        "timeColumns": ["time"],
    }


# --- panels ---------------------------------------------------------------------------------------


def mapping(*pairs: tuple[int, str, str]) -> list[JSON]:
    """Value mappings for 0/1 and state series: (value, text, colour)."""
    return [
        {
            "type": "value",
            "options": {
                str(value): {"color": colour, "index": i, "text": text}
                for i, (value, text, colour) in enumerate(pairs)
            },
        }
    ]


def thresholds(base: str, *steps: tuple[float, str]) -> JSON:
    return {
        "mode": "absolute",
        "steps": [{"color": base, "value": None}] + [{"color": c, "value": v} for v, c in steps],
    }


@dataclass
class Panel:
    type: str
    title: str
    unit: str
    targets: list[JSON]
    description: str = ""
    w: int = 6
    h: int = 6
    decimals: int | None = None
    min: float | None = None
    max: float | None = None
    mappings: list[JSON] = field(default_factory=list)
    thresholds: JSON | None = None
    options: JSON = field(default_factory=dict)
    custom: JSON = field(default_factory=dict)
    overrides: list[JSON] = field(default_factory=list)
    transformations: list[JSON] = field(default_factory=list)
    color: JSON | None = None

    def render(self, panel_id: int, x: int, y: int) -> JSON:
        defaults: JSON = {"unit": self.unit, "mappings": self.mappings}
        defaults["thresholds"] = self.thresholds or thresholds(GREEN)
        defaults["color"] = self.color or {
            "mode": "thresholds" if self.type in STATE_TYPES else "palette-classic"
        }
        for key in ("decimals", "min", "max"):
            value = getattr(self, key)
            if value is not None:
                defaults[key] = value
        if self.custom:
            defaults["custom"] = self.custom
        datasource = self.targets[0]["datasource"]
        targets = [{**t, "refId": chr(ord("A") + i)} for i, t in enumerate(self.targets)]
        out: JSON = {
            "id": panel_id,
            "type": self.type,
            "title": self.title,
            "description": self.description,
            "datasource": datasource,
            "gridPos": {"h": self.h, "w": self.w, "x": x, "y": y},
            "fieldConfig": {"defaults": defaults, "overrides": self.overrides},
            "options": {**DEFAULT_OPTIONS.get(self.type, {}), **self.options},
            "targets": targets,
        }
        if self.transformations:
            out["transformations"] = self.transformations
        return out


STATE_TYPES: Final = {"stat", "gauge", "bargauge", "state-timeline", "table"}
REDUCE: Final[JSON] = {"calcs": ["lastNotNull"], "fields": "", "values": False}
LEGEND: Final[JSON] = {"displayMode": "list", "placement": "bottom", "showLegend": True}
DEFAULT_OPTIONS: Final[dict[str, JSON]] = {
    "stat": {
        "reduceOptions": REDUCE,
        "colorMode": "value",
        "graphMode": "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "textMode": "auto",
        "wideLayout": True,
    },
    "gauge": {"reduceOptions": REDUCE, "showThresholdLabels": False, "showThresholdMarkers": True},
    "bargauge": {
        "reduceOptions": REDUCE,
        "displayMode": "gradient",
        "orientation": "horizontal",
        "showUnfilled": True,
        "valueMode": "color",
    },
    "timeseries": {"legend": LEGEND, "tooltip": {"mode": "multi", "sort": "none"}},
    "state-timeline": {
        "alignValue": "left",
        "legend": LEGEND,
        "mergeValues": True,
        "rowHeight": 0.9,
        "showValue": "auto",
        "tooltip": {"mode": "single", "sort": "none"},
    },
    "barchart": {
        "legend": LEGEND,
        "orientation": "auto",
        "showValue": "auto",
        "stacking": "normal",
        "xTickLabelSpacing": 0,
        "tooltip": {"mode": "multi", "sort": "none"},
    },
    "table": {"cellHeight": "sm", "showHeader": True},
}

LINE: Final[JSON] = {
    "drawStyle": "line",
    "fillOpacity": 10,
    "lineInterpolation": "stepAfter",
    "lineWidth": 1,
    "showPoints": "never",
    "spanNulls": 900000,  # ms: join points of a car polled every 10-15 min while parked
}


def stat(title: str, unit: str, *targets: JSON, **kw: Any) -> Panel:
    return Panel("stat", title, unit, [*targets], **kw)


def graph(title: str, unit: str, *targets: JSON, **kw: Any) -> Panel:
    kw.setdefault("custom", LINE)
    kw.setdefault("w", 12)
    kw.setdefault("h", 8)
    return Panel("timeseries", title, unit, [*targets], **kw)


def timeline(title: str, *targets: JSON, **kw: Any) -> Panel:
    kw.setdefault("w", 24)
    kw.setdefault("h", 6)
    kw.setdefault("custom", {"fillOpacity": 80, "lineWidth": 0})
    return Panel("state-timeline", title, "none", [*targets], **kw)


def hide_columns(*names: str, rename: dict[str, str] | None = None) -> JSON:
    return {
        "id": "organize",
        "options": {
            "excludeByName": {n: True for n in names},
            "renameByName": rename or {},
        },
    }


LOCKED = mapping((0, "Unlocked", RED), (1, "Locked", GREEN))
OPEN = mapping((0, "Closed", GREEN), (1, "Open", RED))
ON_OFF = mapping((0, "Off", GREY), (1, "On", BLUE))
YES_NO = mapping((0, "No", GREY), (1, "Yes", BLUE))
UP_DOWN = mapping((0, "Down", RED), (1, "Up", GREEN))
PROM_META: Final = ("Time", "__name__", "job", "instance")

# Colour and text per state of the two state-set signals (every state in exporter.signals).
STATE_STYLE: Final[dict[str, tuple[str, str]]] = {
    "disconnected": ("unplugged", GREY),
    "plugged": ("plugged, not charging", YELLOW),
    "charging": ("charging (AC)", GREEN),
    "dc_charging": ("DC fast charging", BLUE),
    "complete": ("complete", "purple"),
    "error": ("charging error", RED),
    "off": ("off", GREY),
    "accessory": ("accessory", YELLOW),
    "on": ("on", GREEN),
    "driving": ("driving", BLUE),
}


def state_code(metric: str, states: tuple[str, ...]) -> tuple[str, list[JSON]]:
    """One number per vehicle for a state set (the index of the state that is 1) and its mapping.

    A state set is one 0/1 series per state; a timeline or stat wants one series per vehicle whose
    value names the state. Multiplying each state's series by its index and summing per vin gives
    exactly that, in plain PromQL.
    """
    parts = [f'{metric}{{{VIN}, state="{state}"}} * {i}' for i, state in enumerate(states)]
    expr = "sum by (vin) (" + " or ".join(parts) + ")"
    pairs = [(i, STATE_STYLE[state][0], STATE_STYLE[state][1]) for i, state in enumerate(states)]
    return expr, mapping(*pairs)


CHARGING_CODE, CHARGING_MAP = state_code("carmetrics_charging_state", CHARGING_STATES)
POWER_CODE, POWER_MAP = state_code("carmetrics_power_state", POWER_STATES)


# --- dashboards -----------------------------------------------------------------------------------


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    panels: list[Panel]
    sqlite: bool = False
    time_from: str = "now-24h"
    tags: tuple[str, ...] = ()

    def render(self) -> JSON:
        rendered, x, y, row_h = [], 0, 0, 0
        for i, panel in enumerate(self.panels, start=1):
            if x + panel.w > 24:
                x, y, row_h = 0, y + row_h, 0
            rendered.append(panel.render(i, x, y))
            x += panel.w
            row_h = max(row_h, panel.h)
        return {
            "annotations": {"list": [ANNOTATION]},
            "description": self.description,
            "editable": False,
            "fiscalYearStartMonth": 0,
            "graphTooltip": 1,
            "id": None,
            "links": [NAV],
            "panels": rendered,
            "refresh": "" if self.sqlite else "1m",
            "schemaVersion": SCHEMA_VERSION,
            "tags": ["carmetrics", *self.tags],
            "templating": {"list": [sql_vin_variable() if self.sqlite else prom_vin_variable()]},
            "time": {"from": self.time_from, "to": "now"},
            "timepicker": {},
            "timezone": "browser",
            "title": self.title,
            "uid": self.uid,
            "version": 1,
        }


ANNOTATION: Final[JSON] = {
    "builtIn": 1,
    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
    "enable": True,
    "hide": True,
    "iconColor": "rgba(0, 211, 255, 1)",
    "name": "Annotations & Alerts",
    "type": "dashboard",
}
NAV: Final[JSON] = {
    "asDropdown": True,
    "includeVars": True,
    "keepTime": True,
    "tags": ["carmetrics"],
    "title": "carmetrics",
    "type": "dashboards",
}
ALL: Final[JSON] = {"selected": True, "text": ["All"], "value": ["$__all"]}


def prom_vin_variable() -> JSON:
    query = "label_values(carmetrics_vehicle_info, vin)"
    return {
        "current": ALL,
        "datasource": PROM,
        "definition": query,
        "includeAll": True,
        "label": "Vehicle",
        "multi": True,
        "name": "vin",
        "options": [],
        "query": {
            "qryType": 1,
            "query": query,
            "refId": "PrometheusVariableQueryEditor-VariableQuery",
        },
        "refresh": 2,
        "regex": "",
        "sort": 1,
        "type": "query",
    }


def sql_vin_variable() -> JSON:
    query = "SELECT vin FROM vehicles ORDER BY vin"
    return {
        "current": ALL,
        "datasource": SQLITE,
        "definition": query,
        "includeAll": True,
        "label": "Vehicle",
        "multi": True,
        "name": "vin",
        "options": [],
        "query": query,
        "refresh": 1,
        "regex": "",
        "sort": 1,
        "type": "query",
    }


def unit_override(column: str, unit: str) -> JSON:
    """A table column with its own unit (the panel's default unit covers the rest)."""
    return {
        "matcher": {"id": "byName", "options": column},
        "properties": [{"id": "unit", "value": unit}],
    }
