"""The one percentile the evals, the load test and the benchmarks report."""

from __future__ import annotations

import statistics


def percentile(values: list[float], q: int, digits: int = 2) -> float | None:
    """The q-th percentile (inclusive method, interpolated), rounded; None when there are no values."""
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], digits)
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], digits)
