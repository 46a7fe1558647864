"""Plain, printable HTML reports (no script, every string escaped) of compute results."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .compute.audit import METRICS, AuditResult
from .compute.audit.report import no_value


def write_audit_report(result: AuditResult, path, title: str = "Model audit") -> Path:
    """Write the audit as a plain, printable HTML report: the pass/fail summary against the
    thresholds, then per-group metrics and the worst counterfactual pairs when present.
    (AuditView.to_html writes the interactive page.)"""
    from .audit.report_sections import with_security_sections

    path = Path(path)
    path.write_text(with_security_sections(report_html(result, title), result), encoding="utf-8")
    return path


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
        ci = "" if no_value(r.get("ci_low")) else f"[{_cell(r['ci_low'])}, {_cell(r['ci_high'])}]"
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
