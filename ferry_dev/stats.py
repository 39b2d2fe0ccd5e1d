"""Lag statistics shared by the local pollers and the demo."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], percent: float) -> float | None:
    """Nearest-rank percentile, or None without any value."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


class LagStatsMixin:
    """For poll statistics that keep ``lags``: seconds from a change to its replication."""

    lags: list[float]

    def lag_percentile(self, percent: float) -> float | None:
        return percentile(self.lags, percent)

    @property
    def lag_p50(self) -> float | None:
        return self.lag_percentile(50)

    @property
    def lag_p99(self) -> float | None:
        return self.lag_percentile(99)
