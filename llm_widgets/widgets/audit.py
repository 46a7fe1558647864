"""AuditView: counterfactual bias, robustness/consistency tests, per-group metrics, summary table."""
from __future__ import annotations

import math

import numpy as np
import traitlets as t

from ..audit.perturb import word_diff
from ..audit.substitutions import substitution_diff
from ..compute.attribution import METHODS, attribute
from ..compute.audit import AuditResult, Scorer, plan_audit, run_audit
from ..errors import LLMWidgetsError
from ..compute.audit.groups import METRICS
from .traits import Array, Map, Record
from .base import View

WORST = 20  # worst pairs listed in the view
EXPLAINED = 8  # of which explained (token attribution) up front; the others on click
FAILURES = 5  # failing examples shown per robustness test
EXAMPLES = 50  # successful adversarial examples listed


def _num() -> t.Float:
    """A number of a table row; None where it is undefined (NaN: e.g. a rate over no cases)."""
    return t.Float(allow_none=True)


def _row(ints: tuple = (), strs: tuple = (), nums: tuple = (), reals: tuple = (), **others) -> Record:
    """A table row's Record: integer, string, number (None where undefined) and always-defined real
    columns by name, and other typed fields."""
    return Record({**{k: t.Int() for k in ints}, **{k: t.Unicode() for k in strs}, **{k: _num() for k in nums},
                   **{k: t.Float() for k in reals}, **others})


def _ci(*names: str) -> tuple:
    """Each name with its 95% interval's ends (name_lo, name_hi)."""
    return tuple(x for n in names for x in (n, n + "_lo", n + "_hi"))


# what AuditView sends (js/src/views/audit.ts reads these typed, from the generated state types)
WORDS = t.List(t.Tuple(t.Unicode(), t.Bool()))  # [[word, changed], ...]
SIDE = Record({"tokens": t.List(t.Unicode()), "weights": Array("float32", ndim=1), "what": t.Unicode()})
SUMMARY_ROW = _row(strs=("section", "check", "rule", "detail"), nums=("value", "ci_low", "ci_high", "threshold"),
                   passed=t.Bool())
CF_ROW = _row(ints=("pairs",), strs=("group", "reference"),
              nums=_ci("mean_shift", "mean_abs_shift") + ("max_abs_shift",))
PAIR = _row(ints=("id",), strs=("group", "term_a", "term_b", "text_a", "text_b"), reals=("score_a", "score_b", "shift"))
ROBUSTNESS_ROW = _row(ints=("cases", "passed"), strs=("test", "kind"), nums=_ci("pass_rate") + ("mean_abs_change",))
FAILURE = _row(ints=("pred_o", "pred_p"), strs=("test", "kind"), reals=("score_o", "score_p"), original=WORDS,
               perturbed=WORDS)
GROUP_ROW = _row(ints=("n",), nums=_ci(*METRICS), group=t.Union([t.Unicode(), t.Int(), t.Float()]))
ATTACK_ROW = _row(ints=("texts", "successes", "queries"), strs=("order",),
                  nums=_ci("success_rate") + ("mean_words_changed", "mean_queries", "queries_per_success"))
CHANGE = _row(ints=("index",), strs=("word", "new", "kind"))
EXAMPLE = _row(ints=("id", "pred_o", "pred_a", "words_changed", "queries"), reals=("conf_o", "conf_a"),
               original=WORDS, adversarial=WORDS, changes=t.List(CHANGE))
ATTACK = Record({"summary": t.List(ATTACK_ROW), "ranking": t.Unicode(), "examples": t.List(EXAMPLE),
                 "budget": _row(ints=("max_words", "max_queries", "max_candidates"), kinds=t.List(t.Unicode())),
                 "class_names": t.List(t.Unicode())}, allow_none=True)
STRING_ROW = _row(ints=("matched", "rest_tokens"), strs=("string", "continuation"), nums=("loglik", "percentile"),
                  exact=t.Bool())
CANARY_ROW = _row(ints=("candidates", "merged", "rank"), strs=("canary", "secret"), nums=("exposure", "max_exposure"))
MEMORIZATION_SUMMARY = Record({**{k: t.Int() for k in ("strings", "extracted")},
                               **{k: _num() for k in _ci("exact_rate") + ("mean_percentile",)}},
                              optional=("strings", "extracted") + _ci("exact_rate") + ("mean_percentile",))
MEMORIZATION = Record({"strings": t.List(STRING_ROW), "canaries": t.List(CANARY_ROW), "prefix_tokens": t.Int(),
                       "lookalike": t.Unicode(), "n_lookalikes": t.Int(), "summary": MEMORIZATION_SUMMARY},
                      allow_none=True)


def _clean(rows: list[dict]) -> list[dict]:
    """JSON-safe table rows: NaN -> None, numpy scalars -> Python."""
    out = []
    for r in rows:
        out.append({k: (None if isinstance(v, float) and math.isnan(v) else
                        v.item() if isinstance(v, np.generic) else v) for k, v in r.items()})
    return out


class AuditView(View):
    """Audit a model: counterfactual bias over templated sentences, robustness (invariance and
    directional perturbations), per-group metrics with bootstrap CIs, and a pass/fail summary.

    >>> AuditView(s, templates=lw.audit.templates.occupations, attribute="gender")
    >>> AuditView(s, task=fn, texts=df["text"], labels=df["label"], groups=df["group"])

    session: a classifier Session (class probabilities) or causal LM (log p(continuation | text));
    may be None when task is a callable ``list[str] -> [N] or [N, C]``. thresholds: override
    compute.audit.DEFAULT_THRESHOLDS. background: score in a thread with a progress bar (default: in
    a notebook kernel); call .wait() before reading .result in scripts. Click a worst pair (or set
    `selected_pair`) to see both versions side by side, with token attribution (explain= any method
    of compute.attribution, default occlusion; False for none) when the session is a classifier.
    attack=True (or a dict of settings, compute.audit.attack.DEFAULT_ATTACK): a budgeted greedy
    word-substitution attack on the texts (synonyms, typos, look-alike characters, words tried in
    the order of their occlusion attribution), with the same search in random word order as a
    baseline: success rate (Wilson CI), words changed, queries per success, and the successful
    examples (click one, or set `selected_example`, for both versions' token attribution;
    `.explain(i)` opens the adversarial text in an AttributionView).
    memorization=dict(strings=[...], prefix_tokens=4, canaries=[...]) (causal LMs;
    compute.audit.memorization): exact continuation from a prefix, log-likelihood percentile
    against look-alikes, and canary exposure (Carlini et al. 2019); a canary whose secret does not
    survive tokenization is refused. Texts and memorization strings longer than the model accepts
    raise InputTooLongError naming them; truncate=True scores their first tokens instead and the
    view's notice says so (canaries are never cut).
    `.result` is an AuditResult; `.to_csv(path)` writes the summary table (`table="attack"` /
    `"memorization"`: those sections' rows), `.report_html(path)` a plain printable report,
    `.to_html(path)` the interactive page.
    """

    _bundle_name = "audit"
    score_name = t.Unicode("score").tag(sync=True)
    protected_attribute = t.Unicode("").tag(sync=True)  # what the counterfactual pairs vary ("gender", ...)
    done = t.Bool(False).tag(sync=True)
    summary = t.List(SUMMARY_ROW).tag(sync=True)  # one row per check, pass/fail
    cf_summary = t.List(CF_ROW).tag(sync=True)  # per group against the reference group
    shifts = Array("float32", ndim=1).tag(sync=True)  # [P] every pair's shift (histogram)
    pairs = t.List(PAIR).tag(sync=True)  # the worst pairs, largest |shift| first
    attributions = Map(Record({"a": SIDE, "b": SIDE})).tag(sync=True)  # str(pair id) -> both versions
    robustness = t.List(ROBUSTNESS_ROW).tag(sync=True)
    failures = t.List(FAILURE).tag(sync=True)
    group_table = t.List(GROUP_ROW).tag(sync=True)
    differences = Map(t.List(_num())).tag(sync=True)  # metric difference -> [value, lo, hi]
    selected_pair = t.Int(None, allow_none=True).tag(sync=True)  # a pair id (see `pairs`); None: none
    attack_result = ATTACK.tag(sync=True)  # summary per search order, budget, successful examples; None: no attack
    memorization_result = MEMORIZATION.tag(sync=True)  # strings, canaries, settings; None: not asked for
    selected_example = t.Int(None, allow_none=True).tag(sync=True)  # an attacked text (see attack_result)
    example_attributions = Map(Record({"original": SIDE, "adversarial": SIDE})).tag(sync=True)  # str(example) -> both

    def __init__(self, session=None, *, task=None, templates=None, attribute: str | None = None,
                 terms: dict | None = None, texts=None, labels=None, groups=None,
                 robustness: bool | dict = True, target=None, continuation: str | None = None,
                 thresholds: dict | None = None, tolerance: float = 0.2, batch_size: int = 32,
                 n_boot: int = 1000, seed: int = 0, explain: str | bool = "occlusion",
                 attack: bool | dict = False, memorization: dict | None = None, truncate: bool = False,
                 background: bool | None = None, **kwargs):
        scored = templates is not None or texts is not None or bool(attack) or memorization is None
        self.scorer = (Scorer(task, session, target=target, continuation=continuation, batch_size=batch_size)
                       if scored else None)
        self.session = self.scorer.session if self.scorer is not None else session
        self.result: AuditResult | None = None
        if explain and explain not in METHODS:
            raise LLMWidgetsError(f"explain={explain!r}: use False or an attribution method, one of {sorted(METHODS)}.")
        self._explain = explain if self.scorer is not None and self.scorer.kind == "classifier" else False
        name = self.session.name if self.session is not None else getattr(task, "__name__", "task")
        super().__init__(title=kwargs.pop("title", f"Audit \u00b7 {name}"),
                         protected_attribute=attribute or ("terms" if terms else ""), **kwargs)
        # bad input fails here, before any (background) scoring
        plan = plan_audit(self.scorer, templates=templates, attribute=attribute, terms=terms, texts=texts,
                          labels=labels, groups=groups, robustness=robustness, tolerance=tolerance,
                          thresholds=thresholds, n_boot=n_boot, seed=seed, attack=attack,
                          memorization=memorization, session=self.session, truncate=truncate)
        self.observe(self._on_select, names=["selected_pair"])
        self.observe(self._on_example, names=["selected_example"])
        self._run(lambda report: self._work(plan, report), self._show, background)

    def _work(self, plan, report) -> tuple[AuditResult, dict]:
        res = run_audit(self.scorer, plan, report=report)
        explained = {}
        if self._explain and res.counterfactual is not None:
            worst = res.counterfactual.worst(EXPLAINED)
            for k, i in enumerate(worst):
                report(0.95 + 0.05 * k / len(worst), "explaining the worst pairs")
                explained[str(int(i))] = self._explain_pair(res, int(i))
        return res, explained

    def _explain_pair(self, res: AuditResult, i: int) -> dict:
        """Token attribution of both versions of pair i (compute.attribution.attribute): for a
        2-class model, of the audited class's logit minus the other's (its log-odds)."""
        cf = res.counterfactual
        n = len(self.session.class_labels)
        k = self.scorer.target_index(n)
        contrast = 1 - k if n == 2 else None
        out = {}
        for side, text in (("a", cf.text_a[i]), ("b", cf.text_b[i])):
            r = attribute(self.session, text, target=k, contrast=contrast, method=self._explain,
                          compute_faithfulness=False, truncate=True)
            out[side] = {"tokens": r.tokens, "weights": r.scores[0],
                         "what": f"{METHODS[r.method]} of {r.targets[0]}"}
        return out

    def _show(self, value) -> None:
        res, explained = value
        self.result = res
        self.score_name = res.score_name
        cf, rb, gm = res.counterfactual, res.robustness, res.groups
        if cf is not None:
            self.cf_summary = _clean(cf.summary)
            self.shifts = cf.shift
            self.pairs = [self._pair_row(int(i)) for i in cf.worst(WORST)]
            self.attributions = explained
        if rb is not None:
            self.robustness = _clean(rb.summary)
            fails = []
            for row in rb.summary:
                for i in rb.failures(row["test"])[:FAILURES]:
                    a, b = word_diff(rb.original[i], rb.perturbed[i])
                    fails.append({"test": row["test"], "kind": rb.kind[i], "original": a, "perturbed": b,
                                  "score_o": float(rb.score_o[i]), "score_p": float(rb.score_p[i]),
                                  "pred_o": int(rb.pred_o[i]), "pred_p": int(rb.pred_p[i])})
            self.failures = fails
        if gm is not None:
            self.group_table = _clean(gm.table())
            self.differences = {k: [None if math.isnan(x) else x for x in v] for k, v in gm.differences.items()}
        if res.attack is not None:
            self.attack_result = self._attack_state(res.attack)
        if res.memorization is not None:
            m = res.memorization
            self.memorization_result = {"strings": _clean(m.table()), "canaries": _clean(m.canaries),
                                        "prefix_tokens": m.prefix_tokens, "lookalike": m.lookalike,
                                        "n_lookalikes": m.n_lookalikes, "summary": _clean([m.summary])[0]}
        self.summary = _clean(res.summary)
        if res.notice:
            self.notice = res.notice
        self.done = True

    @staticmethod
    def _attack_state(a) -> dict:
        run = a.main
        examples = []
        for i in a.successes()[:EXAMPLES]:
            o, b = substitution_diff(a.texts[i], run.adversarial[i])
            examples.append({"id": int(i), "original": o, "adversarial": b, "pred_o": int(run.pred_o[i]),
                             "pred_a": int(run.pred_a[i]), "conf_o": float(run.conf_o[i]),
                             "conf_a": float(run.conf_a[i]), "words_changed": int(run.words_changed[i]),
                             "queries": int(run.queries[i]), "changes": run.changes[i]})
        return {"summary": _clean(a.summary), "ranking": a.ranking, "examples": examples,
                "budget": {**a.budget, "kinds": list(a.budget["kinds"])}, "class_names": a.class_names or []}

    def _pair_row(self, i: int) -> dict:
        cf = self.result.counterfactual
        return {"id": i, "group": cf.group_b[i], "term_a": cf.term_a[i], "term_b": cf.term_b[i],
                "text_a": cf.text_a[i], "text_b": cf.text_b[i], "score_a": float(cf.score_a[i]),
                "score_b": float(cf.score_b[i]), "shift": float(cf.score_b[i] - cf.score_a[i])}

    @t.validate("selected_pair")
    def _valid_pair(self, proposal):
        v = proposal["value"]
        n = len(self.result.counterfactual.shift) if self.result and self.result.counterfactual else 0
        if v is not None and not 0 <= v < n:
            raise t.TraitError(f"selected_pair must be None (none) or a pair index in 0..{n - 1}, got {v}")
        return v

    def _on_select(self, change) -> None:
        """Add the row and the attribution of a pair the view does not have yet (on demand)."""
        i = change["new"]
        if i is None or self.result is None or self.result.counterfactual is None:
            return
        if not any(p["id"] == i for p in self.pairs):
            self.pairs = self.pairs + [self._pair_row(i)]
        if self._explain and str(i) not in self.attributions:
            self.attributions = {**self.attributions, str(i): self._explain_pair(self.result, i)}

    # -- adversarial examples ------------------------------------------------------------------
    def adversarial(self, i: int) -> str:
        """The adversarial text the attack found for attacked text i (an error where it found none)."""
        a = self.result.attack if self.result is not None else None
        if a is None:
            raise LLMWidgetsError("This audit ran no attack (pass attack=True), or it is still running (.wait()).")
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < len(a.texts):
            raise LLMWidgetsError(f"example must be an attacked text index in 0..{len(a.texts) - 1}, got {i!r}")
        if not a.main.success[i]:
            raise LLMWidgetsError(f"The attack did not flip text {i} ({a.texts[i]!r}): no adversarial text.")
        return a.main.adversarial[i]

    def explain(self, i: int, **kwargs):
        """An AttributionView of the adversarial text of attacked text i, explaining the class the
        model gave the original text (method: this audit's `explain`, default occlusion; kwargs go to
        AttributionView, e.g. method='ig')."""
        from .attribution import AttributionView

        if self.scorer is None or self.scorer.kind != "classifier":
            raise LLMWidgetsError("explain() needs a classifier Session (a callable task has no attribution).")
        text = self.adversarial(i)
        kwargs.setdefault("method", self._explain or "occlusion")
        return AttributionView(self.session, text, target=int(self.result.attack.main.pred_o[i]), **kwargs)

    @t.validate("selected_example")
    def _valid_example(self, proposal):
        v = proposal["value"]
        if v is not None:
            try:
                self.adversarial(v)  # an error for anything but a flipped text
            except LLMWidgetsError as e:
                raise t.TraitError(f"selected_example: {e}") from None
        return v

    def _on_example(self, change) -> None:
        """Token attribution of the original and the adversarial text of the selected example."""
        i = change["new"]
        if i is None or not self._explain or str(i) in self.example_attributions:
            return
        from ..compute.distill import small_model_threads

        a = self.result.attack
        k = int(a.main.pred_o[i])
        out = {}
        for side, text in (("original", a.texts[i]), ("adversarial", a.main.adversarial[i])):
            with small_model_threads(self.session.model):
                r = attribute(self.session, text, target=k, method=self._explain, compute_faithfulness=False,
                              truncate=True)
            out[side] = {"tokens": r.tokens, "weights": r.scores[0],
                         "what": f"{METHODS[r.method]} of {r.targets[0]}"}
        self.example_attributions = {**self.example_attributions, str(i): out}

    # -- export --------------------------------------------------------------------------------
    def to_csv(self, path, table: str = "summary"):
        """Write the audit summary table (one row per check, pass/fail) as CSV; table='attack' or
        'memorization' writes those sections' rows instead."""
        if self.result is None:
            raise LLMWidgetsError("The audit is still running (or failed: see .error); call .wait() first.")
        return self.result.to_csv(path, table)

    def report_html(self, path):
        """Write the audit as a plain, printable HTML report (summary pass/fail table, per-group
        metrics, worst pairs; no script). `to_html` writes the interactive page instead."""
        if self.result is None:
            raise LLMWidgetsError("The audit is still running (or failed: see .error); call .wait() first.")
        from ..reports import write_audit_report

        return write_audit_report(self.result, path, self.title)
