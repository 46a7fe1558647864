"""SurrogateView: simpler models that imitate a classifier, how faithful each is, and what it says."""
from __future__ import annotations

import math

import numpy as np
import traitlets as t

from ..compute.attribution import ALIASES, METHODS
from ..compute.capabilities import surrogate_why_not as why_not
from ..compute.surrogate import SurrogateResult, compare_attributions, fit_surrogates
from ..checks import integer
from ..errors import LLMWidgetsError
from .base import View
from .traits import Array, Index, Map, Record

TOP_WEIGHTS = 20  # logistic weights listed
_MAYBE = dict(allow_none=True)  # a number that may be unknown (NaN in the result: no gold labels)
# the imitated model (SurrogateResult.teacher, with the unit of its size)
TEACHER = Record({"name": t.Unicode(), "size": t.Int(), "size_unit": t.Unicode(), "ms_per_text": t.Float(),
                  **{k: t.Float(**_MAYBE) for k in ("accuracy", "accuracy_lo", "accuracy_hi")}}, empty=True)
# one row per surrogate (SurrogateResult.table())
ROW = Record({"id": t.Int(), "name": t.Unicode(), "kind": t.Unicode(), "size": t.Int(), "size_unit": t.Unicode(),
              **{k: t.Float(**_MAYBE) for k in ("fidelity", "fidelity_lo", "fidelity_hi", "accuracy", "accuracy_lo",
                                                  "accuracy_hi", "ms_per_text", "fit_seconds")},
              "disagreements": t.Int()})
# what a surrogate learnt: its weights (logistic) or rules (tree), and its settings (Surrogate.detail:
# C / max_depth and ngram; a student's layers, hidden, heads, temperature, epochs, cached)
SETTINGS = {"C": t.Float(), "ngram": t.Int(), "max_depth": t.Int(), "layers": t.Int(), "hidden": t.Int(),
            "heads": t.Int(), "temperature": t.Float(), "epochs": t.Int(), "cached": t.Bool()}
EXPLANATION = Record({"kind": t.Enum(("logistic", "tree", "student")),
                      "weights": t.List(Record({"feature": t.Unicode(), "weight": t.Float(), "toward": t.Int()})),
                      "rules": t.List(Record({"text": t.Unicode(), "label": t.Int(), "n": t.Int(),
                                              "purity": t.Float()})),
                      **SETTINGS}, optional=("weights", "rules", *SETTINGS))
# one surrogate on one held-out text: both predictions, then word weights (logistic), the rule that
# decides (tree) or both models' attributions (student)
_STUDENT = ("tokens", "teacher", "student", "target", "method", "k", "top_teacher", "top_student", "agreement")
DETAIL = Record({"pred": t.Int(), "teacher_pred": t.Int(), "words": t.List(t.Unicode()), "weights": Array("float32"),
                 "rule": t.Int(), "tokens": t.List(t.Unicode()), "teacher": Array("float32"),
                 "student": Array("float32"), "target": t.Unicode(), "method": t.Unicode(), "k": t.Int(),
                 "top_teacher": t.List(t.Int()), "top_student": t.List(t.Int()), "agreement": t.Float()},
                optional=("words", "weights", "rule", *_STUDENT))


def _json(row: dict) -> dict:
    """A JSON-safe row: NaN -> None, numpy scalars -> Python."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v.item() if isinstance(v, np.generic) else v)
            for k, v in row.items()}


class SurrogateView(View):
    """Fit simpler models to a classifier's own predictions and read what they learnt.

    >>> s = lw.teaching.keyword_classifier()
    >>> texts, labels, _ = lw.teaching.keyword_dataset(400, seed=1)
    >>> v = lw.SurrogateView(s, texts, labels)      # labels optional: only for accuracy

    Surrogates (llm_widgets.compute.surrogate.fit_surrogates, every argument passed on): an L1
    logistic regression over words / n-grams (C=...), decision trees (tree_depths=...), and students
    distilled from the model's soft labels (student_layers=..., student=StudentSettings(...)). Each
    is scored on held-out texts: fidelity (agreement with the model's predicted class, Wilson 95%
    CI), accuracy against `labels` when given, size and ms per text. The chart plots size (log
    scale) against fidelity: click a point or a table row (`selected_surrogate`) for its
    explanation: top weights, the tree's rules, or a student's token attributions next to the
    model's (`explain=` method of compute.attribution, default occlusion; top-`top_k` agreement) on
    the held-out text `selected_text` (pick one in the view). `.result` is a SurrogateResult.
    Texts longer than the model accepts raise InputTooLongError naming them; truncate=True reads their
    first tokens instead and the view's notice says so.
    """

    _bundle_name = "surrogate"
    class_names = t.List(t.Unicode()).tag(sync=True)
    teacher = TEACHER.tag(sync=True)  # the imitated model: name, size, ms_per_text, accuracy ({} until fitted)
    surrogates = t.List(ROW).tag(sync=True)  # one row per surrogate (SurrogateResult.table())
    texts = t.List(t.Unicode()).tag(sync=True)  # held-out texts
    teacher_pred = t.List(t.Int()).tag(sync=True)  # [N] the model's class per held-out text
    preds = Array("int32", ndim=2).tag(sync=True)  # [S, N] each surrogate's class per held-out text
    explanations = Map(EXPLANATION).tag(sync=True)  # str(surrogate) -> weights (logistic) / rules (tree) / settings
    details = Map(DETAIL).tag(sync=True)  # "surrogate:text" -> word weights / fired rule / attributions
    explain = t.Unicode("occlusion").tag(sync=True)
    top_k = t.Int(3).tag(sync=True)
    selected_surrogate = Index("surrogates").tag(sync=True)
    selected_text = Index("texts").tag(sync=True)
    done = t.Bool(False).tag(sync=True)

    def __init__(self, session, texts, labels=None, *, test_size=0.3, ngram: int = 2, C=(1.0,),
                 tree_depths=(2, 5), student_layers=(1, 2, 4), student=None, explain: str = "occlusion",
                 top_k: int = 3, seed: int = 0, batch_size: int = 64, cache: bool = True, truncate: bool = False,
                 background: bool | None = None, **kwargs):
        why = why_not(session)
        if why:
            raise LLMWidgetsError(why)
        explain = ALIASES.get(explain, explain)
        if explain not in METHODS:
            raise LLMWidgetsError(f"explain={explain!r}: use an attribution method, one of {sorted(METHODS)}.")
        top_k = integer(top_k, "top_k", low=1)
        self.result: SurrogateResult | None = None
        # a selection asked for up front is applied once the surrogates and held-out texts exist
        self._initial = {k: kwargs.pop(k) for k in ("selected_surrogate", "selected_text") if k in kwargs}
        super().__init__(title=kwargs.pop("title", f"Surrogates \u00b7 {session.name}"), explain=explain,
                         top_k=top_k, **kwargs)
        args = dict(labels=labels, test_size=test_size, ngram=ngram, C=C, tree_depths=tree_depths,
                    student_layers=student_layers, student=student, seed=seed, batch_size=batch_size, cache=cache,
                    truncate=truncate)
        self.observe(self._on_select, names=["selected_surrogate", "selected_text"])
        self._run(lambda report: self._work(session, texts, args, report), self._show, background)

    def _work(self, session, texts, args, report):
        res = fit_surrogates(session, texts, report=lambda f, s: report(0.95 * f, s), **args)
        text = self._initial.get("selected_text", 0)
        self._check_index(text, len(res.test_texts), "selected_text")
        details = {}
        for i in range(len(res.surrogates)):  # every surrogate on the first text, for exports
            report(0.95 + 0.05 * i / len(res.surrogates), "explaining the first held-out text")
            details[f"{i}:{text}"] = self._detail(res, i, text)
        return res, details

    @staticmethod
    def _check_index(v, n: int, name: str) -> None:
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < n):
            raise LLMWidgetsError(f"{name} must be None or an index in 0..{n - 1}, got {v!r}")

    def _show(self, value) -> None:
        res, details = value
        self.result = res
        sel = self._initial.get("selected_surrogate")
        self._check_index(sel, len(res.surrogates), "selected_surrogate")
        with self.hold_sync():
            self.class_names = res.class_names
            self.teacher = _json({**res.teacher, "size_unit": "parameters"})
            self.surrogates = [_json(r) for r in res.table()]
            self.texts = list(res.test_texts)
            self.teacher_pred = [int(p) for p in res.teacher_pred]
            self.preds = np.stack([s.pred for s in res.surrogates]).astype(np.int32)
            self.explanations = {str(i): self._explanation(res, i) for i in range(len(res.surrogates))}
            self.details = details
            self.selected_text = self._initial.get("selected_text", 0)
            self.selected_surrogate = sel
            self.notice = res.notice
            self.done = True

    # -- what each surrogate says ----------------------------------------------------------------
    @staticmethod
    def _explanation(res: SurrogateResult, i: int) -> dict:
        s = res.surrogates[i]
        if s.kind == "logistic":
            return {"kind": "logistic", "weights": res.top_weights(i, TOP_WEIGHTS), **s.detail}
        if s.kind == "tree":
            rules = [{"text": r.text(res.class_names), "label": r.label, "n": r.n, "purity": r.purity}
                     for r in res.rules(i)]
            return {"kind": "tree", "rules": rules, **s.detail}
        return {"kind": "student", **s.detail}

    def _detail(self, res: SurrogateResult, i: int, text: int) -> dict:
        s = res.surrogates[i]
        words = res.test_texts[text]
        pred = {"pred": int(s.pred[text]), "teacher_pred": int(res.teacher_pred[text])}
        if s.kind == "logistic":
            ww = res.word_weights(i, words)
            return {**pred, "words": [w for w, _ in ww], "weights": np.asarray([x for _, x in ww], np.float32)}
        if s.kind == "tree":
            return {**pred, "rule": res.rule_of(i, words)}
        c = compare_attributions(res, i, text, method=self.explain, k=self.top_k)
        return {**pred, "tokens": c["tokens"], "teacher": c["teacher"], "student": c["student"],
                "target": c["target"], "method": c["method"],
                "k": c["k"], "top_teacher": c["top_teacher"], "top_student": c["top_student"],
                "agreement": c["agreement"]}

    def _on_select(self, change) -> None:
        """Compute the detail of the selected (surrogate, text) the view does not have yet."""
        i, text = self.selected_surrogate, self.selected_text
        if self.result is None or i is None or text is None or f"{i}:{text}" in self.details:
            return
        self.details = {**self.details, f"{i}:{text}": self._detail(self.result, i, text)}

    def explain_text(self, surrogate: int, text: int) -> dict:
        """The detail the view shows for surrogate `surrogate` on held-out text `text` (computed if
        needed): word weights (logistic), the deciding rule (tree), or attributions (student); its
        arrays (`weights`, `teacher`, `student`) are numpy arrays."""
        if self.result is None:
            raise LLMWidgetsError("The surrogates are still being fitted (or failed: see .error); call .wait().")
        self._check_index(surrogate, len(self.result.surrogates), "surrogate")
        self._check_index(text, len(self.result.test_texts), "text")
        key = f"{surrogate}:{text}"
        if key not in self.details:
            self.details = {**self.details, key: self._detail(self.result, surrogate, text)}
        return self.details[key]
