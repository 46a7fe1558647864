"""Model audits, pure compute: counterfactual bias, perturbation robustness, per-group metrics.

Everything scores texts through one `Scorer` (a classifier Session, a causal LM's log-prob of a
continuation, or any callable ``list[str] -> [N] or [N, C]`` array) and returns dataclasses of numpy
arrays. `run_audit` does the lot in one batched pass with a progress callback; AuditView draws it.

Definitions (what the numbers mean):
- counterfactual shift of a pair = score(version with group B term) - score(reference group A term);
  the CTF gap of a group is the mean |shift| over its pairs (Garg et al. 2019).
- invariance test passes when the perturbed text has the same predicted class and its score moved by
  at most `tolerance`; a directional test (negation) passes when the predicted class changes.
- per group: accuracy, selection rate P(pred = positive), TPR, FPR. Demographic parity difference =
  max - min selection rate over groups; equalized-odds difference = max(TPR range, FPR range), as in
  fairlearn. 95% CIs: percentile bootstrap, resampling within each group (group sizes kept).
"""
from __future__ import annotations

import csv
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..checks import csv_cell, integer, names, number

from ..audit import perturb
from ..audit.templates import ATTRIBUTES, TemplateSet, fill, validate
from ..errors import EmptyInputError, LLMWidgetsError, NonFiniteError

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


# -- scoring -------------------------------------------------------------------------------------
class Scorer:
    """Scores texts in batches: `scores(texts) -> [N, C]` (C = 1 for a scalar score).

    task: a callable ``list[str] -> [N] or [N, C]``, or None to use `session` (a sequence classifier:
    class probabilities; a causal LM: log p(continuation | text), which needs `continuation`).
    target: class index or name whose score the audit follows (default: the last class of a
    2-class model; required with more classes). threshold: decision threshold for scalar scores.
    """

    def __init__(self, task=None, session=None, *, target=None, continuation: str | None = None,
                 batch_size: int = 32, threshold: float = 0.5):
        if batch_size < 1:
            raise LLMWidgetsError(f"batch_size must be >= 1, got {batch_size}")
        self.session, self.batch_size, self.threshold = session, int(batch_size), float(threshold)
        self.continuation = continuation
        self.label_names: list[str] | None = None
        self.truncated = 0  # texts longer than the model's maximum, scored on their first tokens
        if task is not None and not callable(task):
            if hasattr(task, "model") and hasattr(task, "tokenizer"):
                session, task, self.session = task, None, task
            else:
                raise TypeError("task must be a callable list[str] -> scores, or a Session; got "
                                f"{type(task).__name__}")
        if task is not None:
            self._fn, self.kind = task, "callable"
        elif session is None:
            raise LLMWidgetsError("Nothing to audit: pass a Session, or task=<callable list[str] -> scores>.")
        elif session.class_labels is not None:
            self._fn, self.kind, self.label_names = self._classify, "classifier", session.class_labels
        elif session.kind == "decoder":
            if not continuation:
                raise LLMWidgetsError(
                    "A causal LM is audited by the log-probability of a continuation: pass "
                    "continuation=' is a good person.' (or task=<callable>).")
            self._fn, self.kind = self._lm_logprob, "lm"
        else:
            raise LLMWidgetsError(
                f"{session.name} has no classification head and is not a causal LM, so it has no "
                "score to audit. Pass task=<callable list[str] -> scores> (e.g. a probe), or a "
                "classifier Session.")
        self._target = target

    def target_index(self, n_cols: int) -> int:
        t = self._target
        if isinstance(t, str):
            if not self.label_names or t not in self.label_names:
                raise LLMWidgetsError(f"Unknown target class {t!r}; classes are {self.label_names}.")
            return self.label_names.index(t)
        if t is None:
            if n_cols <= 2:
                return n_cols - 1
            raise LLMWidgetsError(
                f"The model has {n_cols} classes: say which one to audit with target=<index or name>"
                + (f" (one of {self.label_names})." if self.label_names else "."))
        if not -n_cols <= int(t) < n_cols:
            raise LLMWidgetsError(f"target={t} is out of range for {n_cols} classes.")
        return int(t) % n_cols

    def scores(self, texts: Sequence[str], report: Report = _noop, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, 1), np.float32)
        out = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start: start + self.batch_size]
            s = np.asarray(self._fn(batch), dtype=np.float64)
            if s.ndim == 1:
                s = s[:, None]
            if s.ndim != 2 or s.shape[0] != len(batch):
                raise LLMWidgetsError(
                    f"The task returned shape {s.shape} for {len(batch)} texts; it must return [N] or "
                    "[N, C] (one row per text).")
            if not np.isfinite(s).all():
                raise NonFiniteError("The task returned NaN/inf scores for: "
                                     f"{batch[int(np.where(~np.isfinite(s).all(1))[0][0])]!r}")
            out.append(s)
            done = min(start + self.batch_size, len(texts))
            report(lo + (hi - lo) * done / len(texts), f"scored {done}/{len(texts)} texts")
        widths = {o.shape[1] for o in out}
        if len(widths) > 1:
            raise LLMWidgetsError(f"The task returned a different number of columns per batch: {widths}.")
        return np.concatenate(out).astype(np.float32)

    def predict(self, scores: np.ndarray) -> np.ndarray:
        """Predicted class per row: argmax over classes, or score >= threshold for scalar scores."""
        if scores.shape[1] == 1:
            return (scores[:, 0] >= self.threshold).astype(np.int64)
        return scores.argmax(1)

    def target_scores(self, scores: np.ndarray) -> np.ndarray:
        return scores[:, self.target_index(scores.shape[1])] if scores.shape[1] > 1 else scores[:, 0]

    def positive(self, scores: np.ndarray) -> int:
        """The class counted as 'selected' in selection rates."""
        return self.target_index(scores.shape[1]) if scores.shape[1] > 1 else 1

    # built-in tasks
    def _classify(self, batch: list[str]) -> np.ndarray:
        import torch

        from ..session import model_inputs

        s = self.session
        if s.max_length:
            lengths = [len(ids) for ids in s.tokenizer(batch)["input_ids"]]
            self.truncated += sum(n > s.max_length for n in lengths)
        enc = s.tokenizer(batch, return_tensors="pt", padding=True, truncation=True,
                          max_length=s.max_length)
        with torch.no_grad():
            logits = s.model(**{k: v.to(s.device) for k, v in model_inputs(enc).items()}).logits
        return torch.softmax(logits.float(), -1).cpu().numpy()

    def _lm_logprob(self, batch: list[str]) -> np.ndarray:
        import torch

        s = self.session
        out = []
        for text in batch:
            ctx = s.tokenizer(text, return_tensors="pt")["input_ids"]
            full = s.tokenizer(text + self.continuation, return_tensors="pt")["input_ids"]
            n_ctx = _common_prefix(ctx[0].tolist(), full[0].tolist())
            end = full.shape[1]  # score the continuation only, not a trailing [SEP]/EOS the tokenizer adds
            special = set(s.tokenizer.all_special_ids)
            while end > n_ctx and int(full[0, end - 1]) in special:
                end -= 1
            if end <= n_ctx or n_ctx == 0:
                raise LLMWidgetsError(f"The continuation {self.continuation!r} adds no tokens after {text!r}.")
            with torch.no_grad():
                logp = torch.log_softmax(s.model(input_ids=full.to(s.device)).logits[0].float(), -1)
            ids = full[0, n_ctx:end].to(s.device)
            out.append(float(logp[n_ctx - 1: end - 1].gather(1, ids[:, None]).sum()))
        return np.array(out)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n  # where a tokenizer appends [SEP]/EOS to the context, the continuation starts there


# -- counterfactual bias -------------------------------------------------------------------------
@dataclass
class CounterfactualResult:
    attribute: str
    groups: list[str]  # groups[0] is the reference
    text_a: list[str]  # reference-group version of each pair
    text_b: list[str]
    group_b: list[str]  # the compared group of each pair
    term_a: list[str]
    term_b: list[str]
    template: np.ndarray  # [P] template index
    score_a: np.ndarray  # [P]
    score_b: np.ndarray  # [P]
    summary: list[dict] = field(default_factory=list)  # one row per compared group

    @property
    def shift(self) -> np.ndarray:
        return (self.score_b - self.score_a).astype(np.float32)

    def worst(self, k: int = 20) -> np.ndarray:
        """Indices of the k pairs with the largest |shift|, largest first."""
        return np.argsort(-np.abs(self.shift), kind="stable")[:k]

    @property
    def ctf_gap(self) -> float:
        """Largest mean |shift| over the compared groups."""
        return max(r["mean_abs_shift"] for r in self.summary)


def counterfactual_texts(templates: TemplateSet, attribute: str | None = None,
                         terms: dict[str, list[str]] | None = None) -> dict:
    """The counterfactual pairs of a template set: every expanded template x every aligned term index
    x every non-reference group. Returns dict(groups, text_a, text_b, group_b, term_a, term_b, template)."""
    validate(templates)
    if terms is None:
        if attribute not in ATTRIBUTES:
            raise LLMWidgetsError(f"Unknown attribute {attribute!r}; shipped ones are {sorted(ATTRIBUTES)}, "
                                  "or pass terms={'group A': [...], 'group B': [...]}.")
        terms = ATTRIBUTES[attribute]
    if not isinstance(terms, dict) or len(terms) < 2:
        raise LLMWidgetsError("terms must map at least two groups to lists of terms, e.g. "
                              "{'male': ['he'], 'female': ['she']}.")
    groups = list(terms)
    lengths = {g: len(v) for g, v in terms.items()}
    if len(set(lengths.values())) != 1 or 0 in lengths.values():
        raise LLMWidgetsError(f"The term lists must be non-empty and aligned (same length, the i-th terms "
                              f"counterparts of each other); got lengths {lengths}.")
    ref = groups[0]
    out = {k: [] for k in ("text_a", "text_b", "group_b", "term_a", "term_b", "template")}
    for ti, base in templates.expand():
        for i in range(lengths[ref]):
            for g in groups[1:]:
                out["text_a"].append(fill(base, terms[ref][i]))
                out["text_b"].append(fill(base, terms[g][i]))
                out["group_b"].append(g)
                out["term_a"].append(terms[ref][i])
                out["term_b"].append(terms[g][i])
                out["template"].append(ti)
    out["groups"] = groups
    return out


def counterfactual_result(pairs: dict, score_a, score_b, attribute: str = "", *, n_boot: int = 1000,
                          seed: int = 0) -> CounterfactualResult:
    res = CounterfactualResult(
        attribute=attribute, groups=pairs["groups"], text_a=pairs["text_a"], text_b=pairs["text_b"],
        group_b=pairs["group_b"], term_a=pairs["term_a"], term_b=pairs["term_b"],
        template=np.asarray(pairs["template"], np.int64), score_a=np.asarray(score_a, np.float32),
        score_b=np.asarray(score_b, np.float32))
    shift = res.shift.astype(np.float64)
    gb = np.asarray(res.group_b)
    rng = np.random.default_rng(seed)
    for g in res.groups[1:]:
        s = shift[gb == g]
        means, abs_means = np.empty(n_boot), np.empty(n_boot)
        step = max(1, 2_000_000 // len(s))  # bounded memory for large audits
        for b in range(0, n_boot, step):
            draws = s[rng.integers(0, len(s), size=(min(step, n_boot - b), len(s)))]
            means[b: b + len(draws)], abs_means[b: b + len(draws)] = draws.mean(1), np.abs(draws).mean(1)
        lo, hi = np.percentile(means, [2.5, 97.5])
        alo, ahi = np.percentile(abs_means, [2.5, 97.5])
        res.summary.append({"group": g, "reference": res.groups[0], "pairs": int(len(s)),
                            "mean_shift": float(s.mean()), "mean_shift_lo": float(lo), "mean_shift_hi": float(hi),
                            "mean_abs_shift": float(np.abs(s).mean()), "mean_abs_shift_lo": float(alo),
                            "mean_abs_shift_hi": float(ahi), "max_abs_shift": float(np.abs(s).max())})
    return res


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


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score 95% interval for a proportion k/n."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    w = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - w), min(1.0, c + w))


# -- per-group metrics ---------------------------------------------------------------------------
METRICS = ("accuracy", "selection_rate", "tpr", "fpr")


@dataclass
class GroupMetrics:
    groups: list[str]
    n: np.ndarray  # [G]
    values: np.ndarray  # [len(METRICS), G]
    lo: np.ndarray  # [len(METRICS), G]
    hi: np.ndarray
    overall: dict  # metric -> value over everyone
    differences: dict  # 'demographic_parity_difference' / 'equalized_odds_difference' -> (value, lo, hi)
    positive: object = 1

    def table(self) -> list[dict]:
        rows = []
        for j, g in enumerate(self.groups):
            row = {"group": g, "n": int(self.n[j])}
            for i, m in enumerate(METRICS):
                row[m], row[m + "_lo"], row[m + "_hi"] = (float(self.values[i, j]), float(self.lo[i, j]),
                                                          float(self.hi[i, j]))
            rows.append(row)
        return rows


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())


def _as_list(x, what: str) -> list:
    if x is None:
        raise LLMWidgetsError(f"{what} are missing.")
    try:
        import pandas as pd

        if isinstance(x, (pd.Series, pd.Index)):
            return [None if (not isinstance(v, str) and pd.isna(v)) else v for v in x.tolist()]
    except ImportError:  # pragma: no cover
        pass
    return list(np.asarray(x, dtype=object).tolist()) if isinstance(x, np.ndarray) else list(x)


def check_groups(labels, groups, n: int | None = None) -> tuple[list, list]:
    """Validate labels and groups for per-group metrics; clear errors for what cannot be measured."""
    y, g = _as_list(labels, "labels"), _as_list(groups, "groups")
    if n is not None and (len(y) != n or len(g) != n):
        raise LLMWidgetsError(f"texts, labels and groups must have one entry per text: got {n} texts, "
                              f"{len(y)} labels, {len(g)} groups.")
    if len(y) != len(g):
        raise LLMWidgetsError(f"labels and groups differ in length: {len(y)} vs {len(g)}.")
    for what, vals in (("labels", y), ("groups", g)):
        bad = [i for i, v in enumerate(vals) if _missing(v)]
        if bad:
            raise LLMWidgetsError(f"{len(bad)} of {len(vals)} {what} are missing (None/NaN/empty), at rows "
                                  f"{bad[:10]}{'...' if len(bad) > 10 else ''}. Drop those rows or fill them in.")
    from collections import Counter

    counts = Counter(str(v) for v in g)
    if len(counts) < 2:
        raise LLMWidgetsError("Per-group metrics need at least two groups; every row is in group "
                              f"{next(iter(counts))!r}.")
    small = [f"{a!r} ({c})" for a, c in counts.items() if c < 2]
    if small:
        raise LLMWidgetsError(f"Groups with a single member cannot be measured (no spread, no confidence "
                              f"interval): {', '.join(small)}. Merge them into a larger group or drop them.")
    return y, [str(v) for v in g]


def _rates(yt: np.ndarray, yp: np.ndarray) -> np.ndarray:
    """[4, ...] accuracy, selection rate, TPR, FPR over the last axis of boolean arrays (positive =
    True); NaN where a rate has no denominator."""
    pos, neg = yt.sum(-1), (~yt).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack([(yt == yp).mean(-1), yp.mean(-1),
                         np.where(pos > 0, (yp & yt).sum(-1) / np.maximum(pos, 1), np.nan),
                         np.where(neg > 0, (yp & ~yt).sum(-1) / np.maximum(neg, 1), np.nan)])


def _differences(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(DPD, EOD) from rates [4, G, ...]: ranges over the group axis (1)."""
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rng = np.nanmax(v, axis=1) - np.nanmin(v, axis=1)
    return rng[1], np.fmax(rng[2], rng[3])


def group_metrics(y_true, y_pred, groups, *, positive=1, n_boot: int = 1000, seed: int = 0,
                  ci: float = 0.95) -> GroupMetrics:
    """Accuracy, selection rate, TPR, FPR per group and the demographic-parity / equalized-odds
    differences, each with a percentile-bootstrap CI (resampling within each group)."""
    y_true, groups = check_groups(y_true, groups)
    y_pred = _as_list(y_pred, "predictions")
    if len(y_pred) != len(y_true):
        raise LLMWidgetsError(f"{len(y_pred)} predictions for {len(y_true)} labels.")
    yt = np.array([v == positive for v in y_true])
    yp = np.array([v == positive for v in y_pred])
    g = np.asarray(groups)
    names = list(dict.fromkeys(groups))
    idx = [np.where(g == name)[0] for name in names]
    values = np.stack([_rates(yt[i], yp[i]) for i in idx], 1)  # [4, G]
    rng = np.random.default_rng(seed)
    boot = np.empty((4, len(names), n_boot))
    chunk = max(1, 2_000_000 // max(len(i) for i in idx))
    for j, i in enumerate(idx):
        for s in range(0, n_boot, chunk):
            b = min(chunk, n_boot - s)
            r = i[rng.integers(0, len(i), size=(b, len(i)))]
            boot[:, j, s: s + b] = _rates(yt[r], yp[r])
    q = [(1 - ci) / 2 * 100, (1 + ci) / 2 * 100]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanpercentile(boot, q, axis=-1)
        dpd, eod = _differences(values)
        bd, be = _differences(boot)
        diffs = {"demographic_parity_difference": (float(dpd), *map(float, np.nanpercentile(bd, q))),
                 "equalized_odds_difference": (float(eod), *map(float, np.nanpercentile(be, q)))}
    overall = dict(zip(METRICS, map(float, _rates(yt, yp))))
    return GroupMetrics(groups=names, n=np.array([len(i) for i in idx]), values=values, lo=lo, hi=hi,
                        overall=overall, differences=diffs, positive=positive)


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


@dataclass
class AuditPlan:
    """Every text an audit scores, built and validated before any scoring (bad input fails fast)."""

    texts: list[str] | None
    labels: list | None
    groups: list[str] | None
    pairs: dict | None
    base: list[str]  # texts the perturbations apply to
    cases: dict | None
    thresholds: dict
    attribute: str
    tolerance: float
    n_boot: int
    seed: int

    @property
    def unique_texts(self) -> list[str]:
        wanted = (self.pairs["text_a"] + self.pairs["text_b"]) if self.pairs else []
        wanted += (self.texts or []) + self.base + (self.cases["perturbed"] if self.cases else [])
        return list(dict.fromkeys(wanted))


def plan_audit(scorer: Scorer, *, templates: TemplateSet | None = None, attribute: str | None = None,
               terms: dict | None = None, texts: Sequence[str] | None = None, labels=None, groups=None,
               robustness: bool | dict = True, tolerance: float = 0.2, thresholds: dict | None = None,
               max_robustness: int = 300, n_boot: int = 1000, seed: int = 0) -> AuditPlan:
    """Validate the inputs and build every text to score (see run_audit for the arguments)."""
    th = dict(DEFAULT_THRESHOLDS)
    unknown = set(thresholds or {}) - set(th)
    if unknown:
        raise LLMWidgetsError(f"Unknown thresholds {sorted(unknown)}; known: {sorted(th)}.")
    th.update(thresholds or {})
    if templates is None and texts is None:
        raise EmptyInputError("Nothing to audit: pass templates=lw.audit.templates.occupations (with "
                              "attribute=...), and/or texts=[...] (with labels= and groups=).")
    if templates is None and (attribute is not None or terms is not None):
        raise LLMWidgetsError("attribute/terms need templates=... (e.g. lw.audit.templates.occupations).")
    seed, n_boot = integer(seed, "seed", low=0), integer(n_boot, "n_boot")
    max_robustness = integer(max_robustness, "max_robustness", low=1)
    if n_boot < 10:
        raise LLMWidgetsError(f"n_boot={n_boot}: a bootstrap CI needs at least 10 resamples (default 1000).")
    if texts is not None:
        texts = names(texts, "texts")
        bad = [i for i, x in enumerate(texts) if not isinstance(x, str) or not x.strip()]
        if bad:
            raise LLMWidgetsError(f"texts[{bad[0]}] is {texts[bad[0]]!r}: every text must be a non-empty "
                                  f"string ({len(bad)} are not). Drop or fill those rows.")
        if not texts:
            raise EmptyInputError("texts is empty.")
    tolerance = number(tolerance, "tolerance", low=0.0)
    if (labels is None) != (groups is None):
        raise LLMWidgetsError("Per-group metrics need both labels= and groups= (one per text)."
                              if texts is not None else "labels/groups need texts=[...].")
    if labels is not None:
        if texts is None:
            raise LLMWidgetsError("labels/groups need texts=[...] to score.")
        labels, groups = check_groups(labels, groups, len(texts))
        labels = _label_indices(labels, scorer)
    pairs = counterfactual_texts(templates, attribute, terms) if templates is not None else None
    base = list(texts) if texts is not None else (list(dict.fromkeys(pairs["text_a"])) if pairs else [])
    base = base[:max_robustness]
    cases = None
    if robustness:
        cases = perturbation_cases(base, robustness if isinstance(robustness, dict) else None,
                                   directional=texts is not None, seed=seed)
    return AuditPlan(texts=texts, labels=labels, groups=groups, pairs=pairs, base=base, cases=cases,
                     thresholds=th, attribute=attribute or "terms", tolerance=float(tolerance),
                     n_boot=int(n_boot), seed=int(seed))


def run_audit(scorer: Scorer, plan: AuditPlan | None = None, *, report: Report = _noop,
              **kwargs) -> AuditResult:
    """Score every text of the audit in one batched pass and compute every result.

    kwargs (or a plan from plan_audit): templates + attribute (or terms={group: [aligned terms]})
    for counterfactual bias; texts for robustness (invariance + directional tests; without texts the
    invariance tests run on the templated sentences) and, with labels + groups, per-group metrics.
    robustness: True, False, or {name: (perturbation, 'invariance'|'directional')}. tolerance: the
    largest score change an invariance test allows. thresholds: see DEFAULT_THRESHOLDS.
    """
    plan = plan if plan is not None else plan_audit(scorer, **kwargs)
    unique = plan.unique_texts
    report(0.0, f"scoring {len(unique)} texts")
    raw = scorer.scores(unique, report, 0.0, 0.95)
    row = {t: i for i, t in enumerate(unique)}
    target = scorer.target_scores(raw)
    pred = scorer.predict(raw)
    at = lambda ts: np.array([row[t] for t in ts], np.int64)  # noqa: E731

    result = AuditResult(thresholds=plan.thresholds, score_name=_score_name(scorer, raw))
    pairs, cases = plan.pairs, plan.cases
    if pairs:
        result.counterfactual = counterfactual_result(
            pairs, target[at(pairs["text_a"])], target[at(pairs["text_b"])], plan.attribute,
            n_boot=plan.n_boot, seed=plan.seed)
    if cases and cases["test"]:
        o = at([plan.base[i] for i in cases["index"]])
        p = at(cases["perturbed"])
        result.robustness = robustness_result(cases, plan.base, target[o], target[p], pred[o], pred[p],
                                              tolerance=plan.tolerance)
    if plan.labels is not None:
        result.groups = group_metrics(plan.labels, pred[at(plan.texts)].tolist(), plan.groups,
                                      positive=scorer.positive(raw), n_boot=plan.n_boot, seed=plan.seed)
    result.summary = audit_summary(result, plan.thresholds)
    report(1.0, "done")
    return result


def _label_indices(labels: list, scorer: Scorer) -> list:
    """Class names -> indices (using the model's class names); ints/bools as they are."""
    classes = scorer.label_names
    out = []
    for v in labels:
        if isinstance(v, str):
            if not classes or v not in classes:
                raise LLMWidgetsError(f"Label {v!r} is not one of the model's classes {classes}; pass class "
                                      "indices or the class names.")
            out.append(classes.index(v))
            continue
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            v = int(v)
        if not isinstance(v, (int, np.integer)):
            raise LLMWidgetsError(f"Label {v!r} is not a class: labels are class indices (0, 1, ...) or "
                                  "class names, not fractions or scores.")
        if v < 0 or (classes and v >= len(classes)):
            where = f" 0..{len(classes) - 1} ({classes})" if classes else " (indices 0, 1, ...)"
            raise LLMWidgetsError(f"Label {v} is outside the model's classes{where}.")
        out.append(int(v))
    return out


def _score_name(scorer: Scorer, raw: np.ndarray) -> str:
    if scorer.kind == "lm":
        return f"log p({scorer.continuation!r} | text)"
    if raw.shape[1] > 1:
        k = scorer.target_index(raw.shape[1])
        return f"P({scorer.label_names[k] if scorer.label_names else k})"
    return "score"

