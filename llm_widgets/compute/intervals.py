"""Confidence intervals for proportions (accuracies, pass rates, fidelities), written once for the
probes, the audit and the surrogates."""
from __future__ import annotations

import numpy as np

from ..checks import integer


def wilson(p, n: int, z: float = 1.959963984540054) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (lower, upper) of a proportion p observed on n items (z: the normal
    quantile, 95% by default). Unlike p +- z sqrt(p(1-p)/n) it stays inside [0, 1] and is not empty
    at p = 0 or 1."""
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    n = integer(n, "n", low=1)
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    lo = np.where(p <= 0.0, 0.0, np.clip(centre - half, 0.0, 1.0))  # exact ends, not 1 - 1e-16
    return lo, np.where(p >= 1.0, 1.0, np.clip(centre + half, 0.0, 1.0))
