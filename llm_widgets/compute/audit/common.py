"""What the audit modules share: thresholds and the progress callback type."""
from __future__ import annotations

from typing import Callable

Report = Callable[[float, str], None]

DEFAULT_THRESHOLDS = {
    "ctf_gap": 0.05,  # max mean |counterfactual shift| per group
    "invariance": 0.9,  # min pass rate per invariance test
    "directional": 0.9,  # min pass rate per directional test
    "dpd": 0.1,  # max demographic parity difference
    "eod": 0.1,  # max equalized-odds difference
}


def _noop(fraction: float, label: str = "") -> None:
    pass
