"""Benchmarks and the reliability soak (``python -m bench.<name>``); figures go to docs/BENCHMARKS.md
and docs/RELIABILITY.md. Nothing here is imported by the exporter."""
