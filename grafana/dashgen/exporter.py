"""Exporter health."""

from __future__ import annotations

from dashgen.kit import (
    BLUE,
    GREEN,
    RED,
    UP_DOWN,
    VIN,
    YELLOW,
    Dashboard,
    Panel,
    graph,
    mapping,
    prom,
    stat,
    thresholds,
)


def exporter_health() -> Dashboard:
    job = 'job="carmetrics"'
    return Dashboard(
        "carmetrics-exporter",
        "carmetrics / Exporter health",
        "Is the exporter scraped, are the car clouds answering, how often and how fast it polls, "
        "which errors it gets, how old the data is, and whether the history is written.",
        [
            stat(
                "Exporter",
                "none",
                prom(f"up{{{job}}}", "{{instance}}", instant=True),
                mappings=UP_DOWN,
                w=4,
                h=4,
            ),
            stat(
                "Version",
                "none",
                prom(
                    f"carmetrics_build_info{{{job}}}",
                    "{{version}} (Python {{python}})",
                    instant=True,
                ),
                options={"textMode": "name", "colorMode": "none"},
                w=4,
                h=4,
            ),
            stat(
                "Cloud accounts",
                "none",
                prom("carmetrics_api_up", "{{provider}} / {{account}}", instant=True),
                description="1 when the last call to that cloud account succeeded.",
                mappings=UP_DOWN,
                w=8,
                h=4,
            ),
            stat(
                "Vehicles",
                "short",
                prom(f"count(carmetrics_vehicle_info{{{VIN}}})", "vehicles", instant=True),
                color={"mode": "fixed", "fixedColor": BLUE},
                decimals=0,
                w=4,
                h=4,
            ),
            stat(
                "History rows",
                "short",
                prom(f"carmetrics_db_rows_written_total{{{job}}}", "rows", instant=True),
                description="Rows written to the SQLite history since the exporter started.",
                color={"mode": "fixed", "fixedColor": BLUE},
                w=4,
                h=4,
            ),
            stat(
                "Re-authentication",
                "none",
                prom(f"carmetrics_reauth_required{{{VIN}}}", instant=True),
                description=(
                    "Reconnect = the cloud refused the stored consent for good; polling of that "
                    "car is paused until the owner reconnects it (link on the exporter's page)."
                ),
                mappings=mapping((0, "OK", GREEN), (1, "Reconnect", RED)),
                w=8,
                h=5,
            ),
            Panel(
                "bargauge",
                "API budget used this month",
                "percentunit",
                [
                    prom(
                        f"carmetrics_api_budget_used_calls{{{VIN}}}"
                        f" / carmetrics_api_budget_limit_calls{{{VIN}}}",
                        instant=True,
                    )
                ],
                description=(
                    "Billable calls used of the plan's monthly budget per vehicle (Smartcar). "
                    "The poller stretches its interval so the budget lasts the month."
                ),
                min=0,
                max=1,
                thresholds=thresholds(GREEN, (0.8, YELLOW), (0.95, RED)),
                w=16,
                h=5,
            ),
            graph(
                "Successful polls",
                "suffix: polls/min",
                prom(
                    f"sum by (vin) (rate(carmetrics_polls_total{{{VIN}}}[$__rate_interval])) * 60"
                ),
                min=0,
            ),
            Panel(
                "bargauge",
                "Poll errors by reason and code (selected range)",
                "short",
                [
                    prom(
                        f"sum by (reason, code) (increase(carmetrics_poll_errors_total{{{VIN}}}"
                        "[$__range]))",
                        "{{reason}} {{code}}",
                        instant=True,
                    )
                ],
                description=(
                    "reason is a small fixed set (auth, rate_limited, upstream, timeout, ...); "
                    "code is the cloud's own code (e.g. 8153) or the HTTP status."
                ),
                decimals=0,
                thresholds=thresholds(YELLOW),
                w=12,
                h=8,
            ),
            graph(
                "Poll errors",
                "suffix: errors/min",
                prom(
                    f"sum by (reason) (rate(carmetrics_poll_errors_total{{{VIN}}}"
                    "[$__rate_interval])) * 60",
                    "{{reason}}",
                ),
                min=0,
            ),
            graph(
                "Poll duration",
                "s",
                prom(f"carmetrics_poll_duration_seconds{{{VIN}}}"),
                min=0,
            ),
            graph(
                "Poll interval",
                "s",
                prom(f"carmetrics_poll_interval_seconds{{{VIN}}}"),
                prom(f"carmetrics_api_min_poll_interval_seconds{{{VIN}}}", "{{vin}} budget floor"),
                description=(
                    "Adapts to the car: fast while driving or charging, slow while parked; never "
                    "below the floor a call budget allows (Smartcar)."
                ),
                min=0,
            ),
            graph(
                "Data age",
                "s",
                prom(f"carmetrics_data_age_seconds{{{VIN}}}"),
                description="Seconds since the car's own last report, at scrape time.",
                min=0,
            ),
            stat(
                "Last successful poll",
                "dateTimeFromNow",
                prom(
                    f"carmetrics_last_successful_poll_timestamp_seconds{{{VIN}}} * 1000",
                    instant=True,
                ),
                color={"mode": "fixed", "fixedColor": BLUE},
                w=8,
                h=5,
            ),
            stat(
                "Next poll",
                "dateTimeFromNow",
                prom(f"carmetrics_next_poll_timestamp_seconds{{{VIN}}} * 1000", instant=True),
                color={"mode": "fixed", "fixedColor": BLUE},
                w=8,
                h=5,
            ),
            stat(
                "Last history write",
                "dateTimeFromNow",
                prom(
                    f"carmetrics_db_last_write_timestamp_seconds{{{job}}} * 1000",
                    "history",
                    instant=True,
                ),
                color={"mode": "fixed", "fixedColor": BLUE},
                w=4,
                h=5,
            ),
            stat(
                "History write errors",
                "short",
                prom(f"carmetrics_db_write_errors_total{{{job}}}", "errors", instant=True),
                thresholds=thresholds(GREEN, (1, RED)),
                decimals=0,
                w=4,
                h=5,
            ),
            graph(
                "History rows written",
                "suffix: rows/min",
                prom(
                    f"rate(carmetrics_db_rows_written_total{{{job}}}[$__rate_interval]) * 60",
                    "rows",
                ),
                min=0,
            ),
            graph(
                "Scrape duration",
                "s",
                prom(f"scrape_duration_seconds{{{job}}}", "{{instance}}"),
                min=0,
            ),
            graph(
                "Exporter memory",
                "bytes",
                prom(f"process_resident_memory_bytes{{{job}}}", "{{instance}} resident"),
                min=0,
            ),
            graph(
                "Exporter CPU",
                "percentunit",
                prom(f"rate(process_cpu_seconds_total{{{job}}}[$__rate_interval])", "{{instance}}"),
                description="Share of one CPU core.",
                min=0,
            ),
            Panel(
                "bargauge",
                "Commands by outcome (selected range)",
                "short",
                [
                    prom(
                        f"sum by (command, outcome) (increase(carmetrics_commands_total{{{VIN}}}"
                        "[$__range]))",
                        "{{command}}: {{outcome}}",
                        instant=True,
                    )
                ],
                description=(
                    "Commands sent through the command API (POST /api/v1/vehicles/{vin}/commands). "
                    "verified = a later car report shows the requested state; not_verified, "
                    "rejected, failed and timeout need a look at the audit log."
                ),
                decimals=0,
                thresholds=thresholds(BLUE),
                w=12,
                h=8,
            ),
            graph(
                "Billable API calls",
                "suffix: calls/h",
                prom(
                    f"sum by (vin) (rate(carmetrics_api_calls_total{{{VIN}}}[$__rate_interval]))"
                    " * 3600"
                ),
                description="Calls that count against a budget (Smartcar: each batch path).",
                min=0,
            ),
        ],
        tags=("exporter",),
    )
