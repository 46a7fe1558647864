"""What the audit modules share: the default pass/fail thresholds."""
from __future__ import annotations


DEFAULT_THRESHOLDS = {
    "ctf_gap": 0.05,  # max mean |counterfactual shift| per group
    "invariance": 0.9,  # min pass rate per invariance test
    "directional": 0.9,  # min pass rate per directional test
    "dpd": 0.1,  # max demographic parity difference
    "eod": 0.1,  # max equalized-odds difference
}

