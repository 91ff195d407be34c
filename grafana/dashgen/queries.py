"""Every query of a dashboard, and Grafana's variable expansion for the few variables they use.

The tests run each panel's query against a real Prometheus and a real history file; this module is
what turns ``{vin=~"$vin"}`` or ``vin IN (${vin:singlequote})`` into what Grafana would send. Any
variable not listed here is an error, so a dashboard cannot quietly grow a variable the tests do not
understand.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]

_PROM_VARS = re.compile(r"\$(?:\{)?(__rate_interval|__range|__interval|vin)(?:\})?")
_SQL_VARS = re.compile(r"\$\{vin:singlequote\}|\$__from|\$__to|\$vin\b")
_ANY_VAR = re.compile(r"\$\{?[A-Za-z_]\w*(?::\w+)?\}?")


@dataclass(frozen=True)
class Query:
    """One target of one panel."""

    dashboard: str
    panel: str
    ref_id: str
    datasource_type: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref_id}"


def queries(dashboard: JSON) -> Iterator[Query]:
    """The queries of every panel (Prometheus ``expr`` or SQLite ``rawQueryText``)."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            ds = target.get("datasource") or panel["datasource"]
            text = target.get("expr") if ds["type"] == "prometheus" else target.get("rawQueryText")
            yield Query(
                dashboard["title"],
                panel["title"],
                target["refId"],
                ds["type"],
                str(text),
            )


def vin_regex(vins: Sequence[str]) -> str:
    """What Grafana puts in ``=~"$vin"``: the escaped value, ``(a|b)`` for several."""
    if not vins:
        raise ValueError("no vehicle selected")
    escaped = [re.escape(v) for v in vins]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def expand_prom(
    expr: str, vins: Sequence[str], *, rate_interval: str, range_: str, interval: str
) -> str:
    """Grafana's expansion of a Prometheus query for the selected vehicles."""
    values = {
        "vin": vin_regex(vins),
        "__rate_interval": rate_interval,
        "__range": range_,
        "__interval": interval,
    }
    out = _PROM_VARS.sub(lambda m: values[m.group(1)], expr)
    leftover = _ANY_VAR.search(out)
    if leftover:
        raise ValueError(f"unknown Grafana variable {leftover.group(0)!r} in {expr!r}")
    return out


def expand_sql(query: str, vins: Sequence[str], *, from_s: float, to_s: float) -> str:
    """Grafana's expansion for the SQLite panels: ``$__from``/``$__to`` are epoch milliseconds."""

    def value(m: re.Match[str]) -> str:
        token = m.group(0)
        if token == "$__from":
            return str(int(from_s * 1000))
        if token == "$__to":
            return str(int(to_s * 1000))
        if token == "$vin":
            return vins[0]
        return ",".join("'" + v.replace("'", "''") + "'" for v in vins)

    out = _SQL_VARS.sub(value, query)
    leftover = _ANY_VAR.search(out)
    if leftover:
        raise ValueError(f"unknown Grafana variable {leftover.group(0)!r} in {query!r}")
    return out
