"""Summary statistics and interleaving helpers shared by every workload.

Medians and tail percentiles, never means: on a shared, noisy machine a few descheduled
samples would drag a mean anywhere, while a median stays put and p95/p99 show the tail.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeVar

_T = TypeVar("_T")


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; NaN for no samples."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(seconds: Sequence[float]) -> dict[str, Any]:
    """Median, p95, p99 and max in milliseconds, plus the sample count."""
    return {
        "n": len(seconds),
        "median_ms": percentile(seconds, 50) * 1000,
        "p95_ms": percentile(seconds, 95) * 1000,
        "p99_ms": percentile(seconds, 99) * 1000,
        "max_ms": max(seconds) * 1000 if seconds else math.nan,
    }


def rotated(systems: Sequence[_T], repetition: int) -> list[_T]:
    """The systems in a different order each repetition (A B C, B C A, ...).

    Interleaving makes noise hit every system alike; rotating also cancels any advantage of
    always running first (warm caches) or last.
    """
    if not systems:
        return []
    shift = repetition % len(systems)
    return list(systems[shift:]) + list(systems[:shift])


def ratio(value: float, baseline: float) -> float:
    """value / baseline, NaN when either side is missing or the baseline is zero."""
    if not baseline or math.isnan(baseline) or math.isnan(value):
        return math.nan
    return value / baseline


def raw_ms(seconds: Sequence[float]) -> list[float]:
    """Samples in milliseconds rounded to 0.1 microsecond, for the JSON report."""
    return [round(s * 1000, 4) for s in seconds]
