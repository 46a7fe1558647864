"""The whole audit's result: pass/fail summary against thresholds, CSV and a script-free HTML report."""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...checks import csv_cell
from .counterfactual import CounterfactualResult
from .groups import METRICS, GroupMetrics
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
                w.writerow({k: "" if _nan(row.get(k)) else csv_cell(row.get(k, "")) for k in cols})
        return path

    def to_html(self, path, title: str = "Model audit") -> Path:
        """Write the audit as a plain, printable HTML report (no script, every string escaped): the
        pass/fail summary against the thresholds, then per-group metrics and the worst
        counterfactual pairs when present. (AuditView.to_html writes the interactive page.)"""
        path = Path(path)
        path.write_text(report_html(self, title), encoding="utf-8")
        return path

    @property
    def passed(self) -> bool:
        return all(r["passed"] for r in self.summary)


def _cell(v, digits: int = 3) -> str:
    import html

    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        return "" if math.isnan(v) else f"{float(v):.{digits}f}"
    return html.escape(str(v))


def _table(header: list[str], rows: list[list], testid: str, row_attrs: list[str] | None = None) -> str:
    import html

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(f"<tr{(' ' + row_attrs[i]) if row_attrs else ''}>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>"
                   for i, r in enumerate(rows))
    return f'<table data-testid="{testid}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def report_html(result: "AuditResult", title: str = "Model audit") -> str:
    """The HTML text of AuditResult.to_html."""
    import html

    n_fail = sum(not r["passed"] for r in result.summary)
    rows, attrs = [], []
    for r in result.summary:
        ok = bool(r["passed"])
        ci = "" if _nan(r.get("ci_low")) else f"[{_cell(r['ci_low'])}, {_cell(r['ci_high'])}]"
        rows.append([f'<b class="{"pass" if ok else "fail"}">{"PASS" if ok else "FAIL"}</b>', _cell(r["section"]),
                     _cell(r["check"]), _cell(r["value"]), ci, _cell(f"{r['rule']} {r['threshold']:g}"),
                     _cell(r["detail"])])
        attrs.append(f'data-passed="{int(ok)}"')
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>{len(result.summary)} checks, {n_fail} failed. Score: {html.escape(result.score_name)}. "
             f"Thresholds: {html.escape(', '.join(f'{k} {v:g}' for k, v in result.thresholds.items()))}.</p>",
             "<h2>Summary</h2>",
             _table(["", "section", "check", "value", "95% CI", "threshold", "detail"], rows, "summary", attrs)]
    gm = result.groups
    if gm is not None:
        grows = [[_cell(r["group"]), str(r["n"])] + [f"{_cell(r[m])} [{_cell(r[m + '_lo'])}, {_cell(r[m + '_hi'])}]"
                                                   for m in METRICS] for r in gm.table()]
        parts += ["<h2>Per-group metrics (95% bootstrap CI)</h2>",
                  _table(["group", "n"] + list(METRICS), grows, "groups")]
    cf = result.counterfactual
    if cf is not None:
        w = cf.worst(10)
        crow = [[_cell(float(cf.shift[i])), _cell(cf.term_a[i]), _cell(cf.term_b[i]), _cell(cf.text_a[i]),
                 _cell(cf.text_b[i])] for i in w]
        parts += [f"<h2>Worst counterfactual pairs ({html.escape(cf.attribute)})</h2>",
                  _table(["shift", "reference term", "compared term", "reference text", "compared text"], crow,
                         "pairs")]
    style = ("body{font-family:system-ui,sans-serif;margin:16px}table{border-collapse:collapse;margin:6px 0}"
             "td,th{border:1px solid #ddd;padding:3px 6px;text-align:left}.pass{color:#1a7f37}.fail{color:#b42318}")
    return ("<!doctype html>\n<html><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            f"<title>{html.escape(title)}</title><style>{style}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


def _nan(v) -> bool:
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
