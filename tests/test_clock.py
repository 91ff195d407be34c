"""The accelerated clock can be rebuilt in another process from its anchor (bench/memory_soak.py)."""

from __future__ import annotations

import time

from exporter.clock import ScaledClock


def test_a_shared_clock_reads_the_same_time_as_the_original() -> None:
    original = ScaledClock(start=1_700_000_000.0, speed=3000.0)
    time.sleep(0.01)  # some real time passes before the other process builds its copy
    copy = ScaledClock.shared(*original.anchor, speed=3000.0)
    a, b = original.now(), copy.now()
    assert a > 1_700_000_000.0 + 3000.0 * 0.01  # the original really ran fast
    assert abs(b - a) < 3000.0 * 0.005  # the copy agrees to a few ms of real time


def test_a_clock_built_later_without_the_anchor_would_disagree() -> None:
    original = ScaledClock(start=1_700_000_000.0, speed=3000.0)
    time.sleep(0.01)
    naive = ScaledClock(start=1_700_000_000.0, speed=3000.0)
    assert original.now() - naive.now() > 3000.0 * 0.009
