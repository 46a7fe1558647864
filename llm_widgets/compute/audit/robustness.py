"""Robustness: invariance and directional tests on perturbed texts, with Wilson intervals."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ...audit import perturb
from ...errors import LLMWidgetsError
from ..intervals import wilson as wilson_interval


# -- robustness ----------------------------------------------------------------------------------
@dataclass
class RobustnessResult:
    test: list[str]  # test name per case
    kind: list[str]  # 'invariance' | 'directional'
    original: list[str]
    perturbed: list[str]
    score_o: np.ndarray
    score_p: np.ndarray
    pred_o: np.ndarray
    pred_p: np.ndarray
    passed: np.ndarray  # [N] bool
    tolerance: float
    summary: list[dict] = field(default_factory=list)  # one row per test

    def failures(self, test: str | None = None) -> np.ndarray:
        t = np.asarray(self.test)
        mask = ~self.passed if test is None else (~self.passed & (t == test))
        idx = np.where(mask)[0]
        return idx[np.argsort(-np.abs(self.score_p[idx] - self.score_o[idx]), kind="stable")]


def perturbation_cases(texts: Sequence[str], tests: dict | None = None, *, directional: bool = True,
                       seed: int = 0) -> dict:
    """Apply each test's perturbation to each text (where it applies). `tests`: name ->
    (function, 'invariance'|'directional'); default: perturb.INVARIANCE (+ DIRECTIONAL)."""
    if tests is None:
        tests = {n: (fn, "invariance") for n, fn in perturb.INVARIANCE.items()}
        if directional:
            tests.update({n: (fn, "directional") for n, fn in perturb.DIRECTIONAL.items()})
    out = {k: [] for k in ("test", "kind", "index", "perturbed")}
    for name, spec in tests.items():
        fn, kind = spec if isinstance(spec, tuple) else (spec, "invariance")
        if kind not in ("invariance", "directional"):
            raise LLMWidgetsError(f"Test {name!r}: kind must be 'invariance' or 'directional', got {kind!r}.")
        rng = np.random.default_rng([seed, len(name)])
        for i, text in enumerate(texts):
            new = fn(text, rng)
            if new is not None and new != text:
                out["test"].append(name)
                out["kind"].append(kind)
                out["index"].append(i)
                out["perturbed"].append(new)
    return out


def robustness_result(cases: dict, texts: Sequence[str], score_o, score_p, pred_o, pred_p, *,
                      tolerance: float = 0.2) -> RobustnessResult:
    idx = np.asarray(cases["index"], np.int64)
    score_o, score_p = np.asarray(score_o, np.float32), np.asarray(score_p, np.float32)
    pred_o, pred_p = np.asarray(pred_o), np.asarray(pred_p)
    kind = np.asarray(cases["kind"])
    same = pred_o == pred_p
    passed = np.where(kind == "invariance", same & (np.abs(score_p - score_o) <= tolerance), ~same)
    res = RobustnessResult(test=list(cases["test"]), kind=list(cases["kind"]),
                           original=[texts[i] for i in idx], perturbed=list(cases["perturbed"]),
                           score_o=score_o, score_p=score_p, pred_o=pred_o, pred_p=pred_p,
                           passed=passed.astype(bool), tolerance=float(tolerance))
    tests = np.asarray(res.test)
    for name in dict.fromkeys(res.test):
        m = tests == name
        n, k = int(m.sum()), int(res.passed[m].sum())
        lo, hi = wilson(k, n)
        res.summary.append({"test": name, "kind": str(kind[m][0]), "cases": n, "passed": k,
                            "pass_rate": k / n, "pass_rate_lo": lo, "pass_rate_hi": hi,
                            "mean_abs_change": float(np.abs(score_p[m] - score_o[m]).mean())})
    return res


def wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson score 95% interval for a proportion k/n (the counts form of compute.intervals.wilson;
    (nan, nan) for n = 0)."""
    if n == 0:
        return (math.nan, math.nan)
    lo, hi = wilson_interval(k / n, n)
    return float(lo), float(hi)
