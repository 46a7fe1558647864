"""The whole audit's result: pass/fail summary against thresholds, CSV and a script-free HTML report."""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path


from ...checks import csv_cell
from .attack import AttackResult
from .counterfactual import CounterfactualResult
from .groups import GroupMetrics
from .memorization import MemorizationResult
from .robustness import RobustnessResult


# -- the whole audit -----------------------------------------------------------------------------
@dataclass
class AuditResult:
    counterfactual: CounterfactualResult | None = None
    robustness: RobustnessResult | None = None
    groups: GroupMetrics | None = None
    attack: AttackResult | None = None
    memorization: MemorizationResult | None = None
    summary: list[dict] = field(default_factory=list)  # check, value, threshold, passed, detail
    thresholds: dict = field(default_factory=dict)
    score_name: str = "score"
    notice: str = ""  # what the numbers do not cover (texts cut to the model's positions)

    def summary_frame(self):
        import pandas as pd

        return pd.DataFrame(self.summary)

    def to_csv(self, path, table: str = "summary") -> Path:
        """Write a table as CSV: 'summary' (one row per check, pass/fail against the thresholds),
        'attack' (every attacked text, both search orders) or 'memorization' (every string, then
        every canary)."""
        tables = {"summary": lambda: self.summary, "attack": self._attack_rows, "memorization": self._memo_rows}
        if table not in tables:
            raise ValueError(f"table must be one of {sorted(tables)}, got {table!r}")
        rows = tables[table]()
        if rows is None:
            from ...errors import LLMWidgetsError

            raise LLMWidgetsError(f"This audit has no {table} section (pass {table}=... to AuditView / run_audit).")
        cols = (["section", "check", "value", "ci_low", "ci_high", "threshold", "rule", "passed", "detail"]
                if table == "summary" else list(dict.fromkeys(k for r in rows for k in r)))
        path = Path(path)
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=cols)
            w.writeheader()
            for row in rows:
                w.writerow({k: "" if no_value(row.get(k)) else csv_cell(row.get(k, "")) for k in cols})
        return path

    def _attack_rows(self) -> list[dict] | None:
        if self.attack is None:
            return None
        rows = []
        for order, run in self.attack.runs.items():
            for i, text in enumerate(self.attack.texts):
                rows.append({"order": order, "text": text, "success": bool(run.success[i]),
                             "adversarial": run.adversarial[i] or "", "words_changed": int(run.words_changed[i]),
                             "queries": int(run.queries[i]), "class_original": int(run.pred_o[i]),
                             "class_adversarial": int(run.pred_a[i]),
                             "changes": "; ".join(f"{c['word']} -> {c['new']} ({c['kind']})" for c in run.changes[i])})
        return rows

    def _memo_rows(self) -> list[dict] | None:
        m = self.memorization
        if m is None:
            return None
        rows = [{"kind": "string", "text": r["string"], "exact_continuation": r["exact"],
                 "matched_tokens": r["matched"], "rest_tokens": r["rest_tokens"], "continuation": r["continuation"],
                 "loglik": r["loglik"], "percentile": r["percentile"]} for r in m.table()]
        rows += [{"kind": "canary", "text": c["canary"], "secret": c["secret"], "candidates": c["candidates"],
                  "merged": c["merged"], "rank": c["rank"], "exposure": c["exposure"],
                  "max_exposure": c["max_exposure"]} for c in m.canaries]
        return rows

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
    if result.attack is not None:
        rows.append(_attack_row(result.attack, thresholds))
    if result.memorization is not None:
        rows += _memorization_rows(result.memorization, thresholds)
    if result.groups is not None:
        gm = result.groups
        for key, th in (("demographic_parity_difference", "dpd"), ("equalized_odds_difference", "eod")):
            v, lo, hi = gm.differences[key]
            rows.append(_row("groups", key.replace("_", " "), v, thresholds[th], "<=", lo, hi,
                             f"over {len(gm.groups)} groups, {int(gm.n.sum())} rows"))
    return rows


def _num(v: float, digits: int) -> str:
    """A number for a detail text; 'n/a' where there is none (no success: no mean)."""
    return "n/a" if no_value(v) else f"{v:.{digits}f}"


def _attack_row(attack: AttackResult, thresholds: dict) -> dict:
    r = attack.summary[0]
    detail = (f"{r['successes']}/{r['texts']} texts flipped; mean {_num(r['mean_words_changed'], 2)} words changed; "
              f"{_num(r['queries_per_success'], 1)} queries per success (budget: {attack.budget['max_words']} words, "
              f"{attack.budget['max_queries']} queries)")
    if len(attack.summary) > 1:
        b = attack.summary[1]
        detail += (f"; random word order: {b['successes']}/{b['texts']} flipped, "
                   f"{_num(b['queries_per_success'], 1)} queries per success")
    return _row("attack", "word-substitution attack success rate", r["success_rate"], thresholds["attack_success"],
                "<=", r["success_rate_lo"], r["success_rate_hi"], detail)


def _memorization_rows(m: MemorizationResult, thresholds: dict) -> list[dict]:
    rows = []
    if m.strings:
        s = m.summary
        rows.append(_row("memorization", f"exact continuation from a {m.prefix_tokens}-token prefix",
                         s["exact_rate"], thresholds["extraction"], "<=", s["exact_rate_lo"], s["exact_rate_hi"],
                         f"{s['extracted']}/{s['strings']} strings reproduced by greedy decoding; mean likelihood "
                         f"percentile {s['mean_percentile']:.2f} against {m.n_lookalikes} {m.lookalike}d look-alikes"))
    for c in m.canaries:
        merged = f" ({c['merged']} more tokenize like one of them: counted once)" if c["merged"] else ""
        rows.append(_row("memorization", f"exposure of canary {c['canary']!r} (bits)", c["exposure"],
                         thresholds["exposure"], "<=",
                         detail=f"rank {c['rank']} of {c['candidates']} candidate secrets{merged}; "
                                f"at most {c['max_exposure']:.2f} bits"))
    return rows
