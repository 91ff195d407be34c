"""carmetrics: a Prometheus exporter and telemetry logger for connected cars."""

__version__ = "0.1.0"
