"""Planning and running an audit: validate inputs, build every text, score once, compute every result."""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ...audit.templates import TemplateSet
from ...checks import integer, names, number
from ...errors import EmptyInputError, LLMWidgetsError
from ..distill import small_model_threads
from ..progress import Report, no_progress
from .attack import check_attack, run_attack
from .common import DEFAULT_THRESHOLDS
from .counterfactual import counterfactual_result, counterfactual_texts
from .groups import check_groups, group_metrics
from .memorization import check_memorization, check_texts, run_memorization
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
    attack: dict | None = None  # attack settings (compute.audit.attack.check_attack), or None
    memorization: dict | None = None  # memorization settings (check_memorization), or None
    session: object = None  # the causal LM the memorization tests run on
    truncate: bool = False  # texts longer than the model's positions: cut (True) or an error
    notice: str = ""  # the audit's own texts cut to the model's positions (truncate=True)

    @property
    def attack_texts(self) -> list[str]:
        """What the attack attacks: the texts, else the templated sentences."""
        return list(self.texts) if self.texts is not None else list(self.base)

    @property
    def inputs(self) -> list[str]:
        """The audit's own texts (given or templated), without the versions derived from them."""
        wanted = (self.pairs["text_a"] + self.pairs["text_b"]) if self.pairs else []
        return list(dict.fromkeys(wanted + (self.texts or [])))

    @property
    def unique_texts(self) -> list[str]:
        return list(dict.fromkeys(self.inputs + self.base + (self.cases["perturbed"] if self.cases else [])))


def plan_audit(scorer: Scorer | None, *, templates: TemplateSet | None = None, attribute: str | None = None,
               terms: dict | None = None, texts: Sequence[str] | None = None, labels=None, groups=None,
               robustness: bool | dict = True, tolerance: float = 0.2, thresholds: dict | None = None,
               max_robustness: int = 300, n_boot: int = 1000, seed: int = 0, attack: bool | dict = False,
               memorization: dict | None = None, session=None, truncate: bool = False) -> AuditPlan:
    """Validate the inputs and build every text to score (see run_audit for the arguments).
    scorer may be None for an audit of memorization alone (then `session` is the causal LM)."""
    if not isinstance(truncate, bool):
        raise LLMWidgetsError(f"truncate must be True or False, got {truncate!r}")
    th = dict(DEFAULT_THRESHOLDS)
    unknown = set(thresholds or {}) - set(th)
    if unknown:
        raise LLMWidgetsError(f"Unknown thresholds {sorted(unknown)}; known: {sorted(th)}.")
    th.update(thresholds or {})
    attack = None if attack is False or attack is None else check_attack(attack)
    memorization = check_memorization(memorization) if memorization is not None else None
    session = session if session is not None else getattr(scorer, "session", None)
    if attack is not None and templates is None and texts is None:
        raise LLMWidgetsError("attack= needs texts=[...] (or templates=...) to attack.")
    if templates is None and texts is None and memorization is None:
        raise EmptyInputError("Nothing to audit: pass templates=lw.audit.templates.occupations (with "
                              "attribute=...), and/or texts=[...] (with labels= and groups=), and/or "
                              "memorization=dict(strings=[...]) for a causal LM.")
    if scorer is None and (templates is not None or texts is not None):
        raise LLMWidgetsError("Scoring templates or texts needs a Scorer (a classifier Session, a causal LM with "
                              "continuation=..., or task=<callable>).")
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
    if attack is not None:
        from .attack import _Target

        _Target(scorer)  # a causal LM scored by a continuation has no class to flip: fail here
    if memorization is not None and (session is None or session.kind != "decoder"):
        from ...errors import DoesNotApplyError

        raise DoesNotApplyError("memorization= tests a causal LM (greedy decoding, next-token likelihoods); "
                                f"{getattr(session, 'name', 'this task')} is not one.")
    if memorization is not None:
        check_texts(session, memorization, truncate)
    notice = _check_lengths(scorer, texts, pairs, truncate)
    return AuditPlan(texts=texts, labels=labels, groups=groups, pairs=pairs, base=base, cases=cases,
                     thresholds=th, attribute=attribute or "terms", tolerance=float(tolerance),
                     n_boot=int(n_boot), seed=int(seed), attack=attack, memorization=memorization,
                     session=session, truncate=truncate, notice=notice)


def _check_lengths(scorer: Scorer | None, texts: list[str] | None, pairs: dict | None, truncate: bool) -> str:
    """The audit's own texts against the classifier's positions (Session.check_lengths: an error
    naming them, or with truncate the notice of what is cut). A causal LM scored by a continuation
    refuses over-long texts when it scores them; a callable task has no limit."""
    if scorer is None or scorer.kind != "classifier":
        return ""
    s, notices = scorer.session, []
    templated = list(dict.fromkeys(pairs["text_a"] + pairs["text_b"])) if pairs else []
    for what, group in (("texts", texts or []), ("templated sentences", templated)):
        if group:
            lengths = [len(ids) for ids in s.tokenizer(group)["input_ids"]]
            notices.append(s.check_lengths(lengths, truncate=truncate, what=what))
    return " ".join(n for n in notices if n)


def run_audit(scorer: Scorer, plan: AuditPlan | None = None, *, report: Report = no_progress,
              **kwargs) -> AuditResult:
    """Score every text of the audit in one batched pass and compute every result.

    kwargs (or a plan from plan_audit): templates + attribute (or terms={group: [aligned terms]})
    for counterfactual bias; texts for robustness (invariance + directional tests; without texts the
    invariance tests run on the templated sentences) and, with labels + groups, per-group metrics.
    robustness: True, False, or {name: (perturbation, 'invariance'|'directional')}. tolerance: the
    largest score change an invariance test allows. thresholds: see DEFAULT_THRESHOLDS.
    attack: True or a dict of settings (compute.audit.attack.DEFAULT_ATTACK): the word-substitution
    attack on the texts (else the templated sentences), with its random-order baseline.
    memorization: dict(strings=[...], prefix_tokens=4, canaries=[...], ...) for a causal LM
    (compute.audit.memorization.DEFAULT_MEMORIZATION): exact continuation, likelihood percentile,
    canary exposure.
    truncate: True to score texts longer than the model's positions on their first tokens (else an
    InputTooLongError naming them); canaries are never cut.
    """
    plan = plan if plan is not None else plan_audit(scorer, **kwargs)
    model = plan.session.model if plan.session is not None else None
    with small_model_threads(model) if model is not None else nullcontext():
        return _run(scorer, plan, report)


def _run(scorer: Scorer | None, plan: AuditPlan, report: Report) -> AuditResult:
    unique = plan.unique_texts
    if scorer is not None:
        scorer.long_texts.clear()  # this run's, for its notice
    # shares of the progress bar: scoring, then the attack, then memorization
    share_attack = 0.5 if plan.attack else 0.0
    share_mem = 0.3 if plan.memorization else 0.0
    end_scoring = 0.95 - share_attack - share_mem
    raw = np.zeros((0, 1), np.float32)
    if unique:
        report(0.0, f"scoring {len(unique)} texts")
        raw = scorer.scores(unique, report, 0.0, end_scoring)
    row = {t: i for i, t in enumerate(unique)}
    target = scorer.target_scores(raw) if unique else raw[:, 0]
    pred = scorer.predict(raw) if unique else raw[:, 0]
    at = lambda ts: np.array([row[t] for t in ts], np.int64)  # noqa: E731

    result = AuditResult(thresholds=plan.thresholds,
                         score_name=_score_name(scorer, raw) if unique else "no score (memorization only)")
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
    if plan.attack:
        result.attack = run_attack(scorer, plan.attack_texts, plan.attack, report, end_scoring,
                                   end_scoring + share_attack)
    if plan.memorization:
        result.memorization = run_memorization(plan.session, plan.memorization, report, 0.95 - share_mem, 0.95,
                                               truncate=plan.truncate)
    result.summary = audit_summary(result, plan.thresholds)
    result.notice = _truncation_notice(scorer, plan, result)
    report(1.0, "done")
    return result


def _truncation_notice(scorer: Scorer | None, plan: AuditPlan, result: AuditResult) -> str:
    """What was cut to the model's positions: the audit's own texts (plan.notice, truncate=True), the
    versions derived from them (perturbations, an attack's queries: each distinct text once, however
    often it was scored), memorization strings."""
    parts = [plan.notice] if plan.notice else []
    derived = scorer.long_texts - set(plan.inputs) if scorer is not None else set()
    if derived:
        limit = scorer.session.max_length
        parts.append(f"{len(derived)} perturbed or attacked versions of the texts are longer than the model's {limit} "
                     f"tokens: their first {limit} tokens were scored.")
    m = result.memorization
    if m is not None and m.notice:
        parts.append(m.notice)
    return " ".join(parts)


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
