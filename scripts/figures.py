"""Figures the benchmarks and the load test report."""

from __future__ import annotations

import numpy as np


def percentile(values, pct: float) -> float | None:
    """The pct-th percentile of the values (NumPy's linear interpolation); None when there are none."""
    return float(np.percentile(np.asarray(values), pct)) if len(values) else None
