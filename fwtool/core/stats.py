"""The one percentile of fwtool: nearest rank (numpy's ``method="inverted_cdf"``), used by the monitor's live
statistics, latency reports (emulate, validate, run), fleet reports and the benchmarks, so they agree on the same
data."""
from __future__ import annotations

import math
from typing import Sequence, TypeVar

T = TypeVar("T", int, float)


def percentile(values: Sequence[T], q: float) -> T | None:
    """The smallest value with at least ``q`` % (0..100) of the values at or below it; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = math.ceil(q / 100.0 * len(ordered))  # 1-based nearest rank
    return ordered[max(1, min(len(ordered), rank)) - 1]
