"""The whole audit's result: pass/fail summary against thresholds, CSV and a script-free HTML report."""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path


from ...checks import csv_cell
from .counterfactual import CounterfactualResult
from .groups import GroupMetrics
from .robustness import RobustnessResult


# -- the whole audit -----------------------------------------------------------------------------
@dataclass
class AuditResult:
    counterfactual: CounterfactualResult | None = None
    robustness: RobustnessResult | None = None
    groups: GroupMetrics | None = None
    summary: list[dict] = field(default_factory=list)  # check, value, threshold, passed, detail
    thresholds: dict = field(default_factory=dict)
    score_name: str = "score"

    def summary_frame(self):
        import pandas as pd

        return pd.DataFrame(self.summary)

    def to_csv(self, path) -> Path:
        """Write the summary table (one row per check, pass/fail against the thresholds)."""
        path = Path(path)
        cols = ["section", "check", "value", "ci_low", "ci_high", "threshold", "rule", "passed", "detail"]
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=cols)
            w.writeheader()
            for row in self.summary:
                w.writerow({k: "" if no_value(row.get(k)) else csv_cell(row.get(k, "")) for k in cols})
        return path

    @property
    def passed(self) -> bool:
        return all(r["passed"] for r in self.summary)


def no_value(v) -> bool:
    """None or NaN: an empty cell."""
    return v is None or (isinstance(v, float) and math.isnan(v))


def _row(section, check, value, threshold, rule, lo=math.nan, hi=math.nan, detail="") -> dict:
    ok = value <= threshold if rule == "<=" else value >= threshold
    return {"section": section, "check": check, "value": float(value), "ci_low": float(lo),
            "ci_high": float(hi), "threshold": float(threshold), "rule": rule, "passed": bool(ok),
            "detail": detail}


def audit_summary(result: AuditResult, thresholds: dict) -> list[dict]:
    rows = []
    if result.counterfactual is not None:
        cf = result.counterfactual
        for r in cf.summary:
            rows.append(_row("counterfactual", f"{cf.attribute}: {r['group']} vs {r['reference']} (mean |shift|)",
                             r["mean_abs_shift"], thresholds["ctf_gap"], "<=", r["mean_abs_shift_lo"],
                             r["mean_abs_shift_hi"],
                             detail=f"{r['pairs']} pairs; mean shift {r['mean_shift']:+.3f} "
                                    f"[{r['mean_shift_lo']:+.3f}, {r['mean_shift_hi']:+.3f}]; "
                                    f"max |shift| {r['max_abs_shift']:.3f}"))
    if result.robustness is not None:
        for r in result.robustness.summary:
            rows.append(_row(r["kind"], f"{r['test']} (pass rate)", r["pass_rate"], thresholds[r["kind"]], ">=",
                             r["pass_rate_lo"], r["pass_rate_hi"], f"{r['passed']}/{r['cases']} passed"))
    if result.groups is not None:
        gm = result.groups
        for key, th in (("demographic_parity_difference", "dpd"), ("equalized_odds_difference", "eod")):
            v, lo, hi = gm.differences[key]
            rows.append(_row("groups", key.replace("_", " "), v, thresholds[th], "<=", lo, hi,
                             f"over {len(gm.groups)} groups, {int(gm.n.sum())} rows"))
    return rows
