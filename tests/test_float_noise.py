"""No binary float noise where people read numbers: /metrics and CSV (issue 15)."""

from __future__ import annotations

import pandas as pd

from analysis.output import write
from exporter.clock import ManualClock
from exporter.health import Health
from exporter.hub import Hub
from exporter.metrics import VehicleCollector, make_registry, render_exposition
from exporter.snapshot import Snapshot

VIN = "HESXR1C40PS000001"


def test_metrics_show_0_476_not_0_47600000000000003() -> None:
    clock = ManualClock()
    hub = Hub()
    t = clock.now() - 10
    soc = 47.6 / 100  # what a percent-to-ratio conversion leaves: 0.47600000000000003
    assert repr(soc) != "0.476"
    hub.publish(Snapshot.build(VIN, "smart", t, t, {"battery_soc": soc, "odometer": 1.7e3 + 0.3}))
    coll = VehicleCollector(hub, Health(), clock, export_location=False, max_data_age=86400)
    body = b"".join(render_exposition(make_registry(coll), coll)).decode()
    line = next(ln for ln in body.splitlines() if ln.startswith("carmetrics_battery_soc_ratio{"))
    assert line.endswith(" 0.476")
    # our own series only: prometheus_client's process collector prints its CPU seconds as the
    # float they are (e.g. 46.540000000000006), which is not ours to round
    ours = [ln for ln in body.splitlines() if ln.startswith("carmetrics_")]
    assert ours and not [ln for ln in ours if "0000000000" in ln]


def test_csv_has_no_float_noise() -> None:
    noisy = 1.7000000000000015  # a difference of two odometer readings, as the issue saw it
    df = pd.DataFrame({"distance_km": [noisy, 2.5], "ts": [1_767_225_600.123, 1.0]})
    text = write(df, "csv", None, "trips")
    assert text is not None
    assert "1.7," in text and "1.7000000000000" not in text
    assert "1767225600.123" in text  # milliseconds of a time survive


def test_the_snapshot_fast_path_rounds_exactly_as_the_full_check() -> None:
    """check_values skips the formatting for whole numbers; the result must not differ from
    check_value's on any float, whole or not, at the 1e12 edge, negative zero included."""
    import random

    from exporter.signals import _NUMBERS, check_value, check_values

    rng = random.Random(7)
    names = sorted(_NUMBERS)
    edge = [0.0, -0.0, 1.0, -1.0, 999_999_999_999.0, 1e12, -1e12, 1e12 + 1, 1.5e15, 2.0**53]
    samples = edge + [rng.uniform(-1e6, 1e6) for _ in range(2000)]
    samples += [float(rng.randint(-(10**14), 10**14)) for _ in range(2000)]
    samples += [rng.randint(-5000, 5000) / 10 for _ in range(1000)]
    for i, value in enumerate(samples):
        name = names[i % len(names)]
        fast = check_values({name: value})[name]
        full = check_value(name, value)
        assert repr(fast) == repr(full), (name, value)
