"""Planning and running an audit: validate inputs, build every text, score once, compute every result."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ...audit.templates import TemplateSet
from ...checks import integer, names, number
from ...errors import EmptyInputError, LLMWidgetsError
from ..progress import Report, no_progress
from .common import DEFAULT_THRESHOLDS
from .counterfactual import counterfactual_result, counterfactual_texts
from .groups import check_groups, group_metrics
from .report import AuditResult, audit_summary
from .robustness import perturbation_cases, robustness_result
from .scoring import Scorer


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


def run_audit(scorer: Scorer, plan: AuditPlan | None = None, *, report: Report = no_progress,
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
