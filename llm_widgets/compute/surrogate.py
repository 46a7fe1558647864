"""Surrogates: simpler models fitted to imitate a classifier (the teacher), how faithfully they do
on held-out texts, and what they say about its rules.

`fit_surrogates(session, texts, labels=None)` splits the texts (seeded) into a fitting part and a
held-out part, reads the teacher's predictions, and fits
- a sparse (L1) logistic regression over word / n-gram presence: its top weights,
- depth-limited decision trees over the same features: their rules (one per leaf),
- distilled student transformers with 1, 2, 4 layers (llm_widgets.compute.distill): their token
  attributions next to the teacher's.
Each is measured on the held-out texts: fidelity = agreement with the teacher's predicted class
(Wilson 95% interval), accuracy against gold labels when given, size (non-zero weights, leaves,
parameters without the word-embedding table) and speed (ms per text, one batched pass, best of a
few). The surrogates imitate the teacher's *predictions*: gold labels are only used to score.
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..checks import integer, names as name_list, number
from ..errors import EmptyInputError, LLMWidgetsError
from .audit.robustness import wilson
from .distill import StudentSettings, distill, n_parameters, small_model_threads, teacher_logits
from .progress import Report, no_progress
from .surrogate_models import TOKEN_PATTERN, l1_logistic, top_weights, tree_rules, vectorizer

KINDS = ("logistic", "tree", "student")
SIZE_UNITS = {"logistic": "non-zero weights", "tree": "leaves", "student": "parameters",
              "teacher": "parameters"}


@dataclass
class Surrogate:
    name: str
    kind: str  # one of KINDS
    size: int  # in SIZE_UNITS[kind]
    fidelity: float  # share of held-out texts where it predicts the teacher's class
    fidelity_ci: tuple[float, float]  # Wilson 95%
    accuracy: float  # against gold labels; NaN without labels
    accuracy_ci: tuple[float, float]
    ms_per_text: float
    fit_seconds: float
    pred: np.ndarray  # [N_test] predicted class index
    model: Any  # sklearn Pipeline (vectorizer + model) or a student Session
    detail: dict = field(default_factory=dict)  # C / depth / layers, temperature...

    @property
    def size_unit(self) -> str:
        return SIZE_UNITS[self.kind]


@dataclass
class SurrogateResult:
    class_names: list[str]
    train_texts: list[str]
    test_texts: list[str]
    teacher_train: np.ndarray  # [N_train, C] teacher logits
    teacher_test: np.ndarray  # [N_test, C]
    test_labels: np.ndarray | None  # [N_test] gold class index, or None
    teacher: dict  # name, size, ms_per_text, accuracy (+ ci)
    surrogates: list[Surrogate]
    session: Any = None  # the teacher
    notice: str = ""  # what was cut: texts longer than the teacher accepts, read up to its maximum (truncate=True)

    @property
    def teacher_pred(self) -> np.ndarray:
        return self.teacher_test.argmax(1)

    def table(self) -> list[dict]:
        """One row per surrogate: what the trade-off chart and the table show."""
        rows = []
        for i, s in enumerate(self.surrogates):
            rows.append({"id": i, "name": s.name, "kind": s.kind, "size": s.size, "size_unit": s.size_unit,
                         "fidelity": s.fidelity, "fidelity_lo": s.fidelity_ci[0], "fidelity_hi": s.fidelity_ci[1],
                         "accuracy": s.accuracy, "accuracy_lo": s.accuracy_ci[0], "accuracy_hi": s.accuracy_ci[1],
                         "ms_per_text": s.ms_per_text, "fit_seconds": s.fit_seconds,
                         "disagreements": int((s.pred != self.teacher_pred).sum())})
        return rows

    def get(self, i: int) -> Surrogate:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < len(self.surrogates):
            raise LLMWidgetsError(f"surrogate index must be in 0..{len(self.surrogates) - 1}, got {i!r}")
        return self.surrogates[int(i)]

    def disagreements(self, i: int) -> np.ndarray:
        """Held-out text indices where surrogate i and the teacher predict different classes."""
        return np.flatnonzero(self.get(i).pred != self.teacher_pred)

    def top_weights(self, i: int, k: int = 15) -> list[dict]:
        """A logistic surrogate's k largest weights: {feature, weight, toward (class index)}."""
        s = self._kind(i, "logistic")
        vec, clf = s.model.named_steps["words"], s.model.named_steps["model"]
        return top_weights(clf.coef_, clf.classes_, list(vec.get_feature_names_out()), k)

    def rules(self, i: int):
        """A tree surrogate's rules, one per leaf (surrogate_models.Rule)."""
        s = self._kind(i, "tree")
        vec, tree = s.model.named_steps["words"], s.model.named_steps["model"]
        return tree_rules(tree, list(vec.get_feature_names_out()))

    def rule_of(self, i: int, text: str) -> int:
        """Index (in `rules(i)`) of the rule that decides `text`."""
        s = self._kind(i, "tree")
        leaf = int(s.model.named_steps["model"].apply(s.model.named_steps["words"].transform([text]))[0])
        return next(k for k, r in enumerate(self.rules(i)) if r.leaf == leaf)

    def word_weights(self, i: int, text: str) -> list[tuple[str, float]]:
        """A logistic surrogate on `text`: each word (as the vectorizer splits it) and the weight of
        its unigram toward the class the surrogate predicts for the text (0 where it has none)."""
        s = self._kind(i, "logistic")
        vec, clf = s.model.named_steps["words"], s.model.named_steps["model"]
        vocab = vec.vocabulary_
        pred = int(clf.predict(vec.transform([text]))[0])
        row = list(clf.classes_).index(pred)
        coef = clf.coef_[0] * (1 if pred == clf.classes_[1] else -1) if clf.coef_.shape[0] == 1 else clf.coef_[row]
        words = re.findall(TOKEN_PATTERN, text.lower())
        return [(w, float(coef[vocab[w]]) + 0.0 if w in vocab else 0.0) for w in words]

    def _kind(self, i: int, kind: str) -> Surrogate:
        s = self.get(i)
        if s.kind != kind:
            raise LLMWidgetsError(f"surrogate {i} ({s.name}) is a {s.kind}, not a {kind}")
        return s


def compare_attributions(result: SurrogateResult, i: int, text_index: int, *, method: str = "occlusion",
                         k: int = 3) -> dict:
    """Token attributions of student i and of the teacher on held-out text `text_index`, with the same
    method (compute.attribution.attribute) and the same target: the teacher's predicted class.
    Returns {tokens, teacher [T], student [T], target, method, k, top_teacher, top_student, agreement}:
    agreement = |top-k teacher tokens & top-k student tokens| / k over the non-special tokens (both
    models share the teacher's tokenizer, so the tokens are the same)."""
    from .attribution import attribute

    s = result._kind(i, "student")
    n = len(result.test_texts)
    if isinstance(text_index, bool) or not isinstance(text_index, (int, np.integer)) or not 0 <= text_index < n:
        raise LLMWidgetsError(f"text_index must be in 0..{n - 1}, got {text_index!r}")
    k = integer(k, "k", low=1)
    text, target = result.test_texts[int(text_index)], int(result.teacher_pred[int(text_index)])
    with small_model_threads(result.session.model):
        rt = attribute(result.session, text, target=target, method=method, compute_faithfulness=False, truncate=True)
        rs = attribute(s.model, text, target=target, method=method, compute_faithfulness=False, truncate=True)
    if rt.tokens != rs.tokens:  # pragma: no cover - the student uses the teacher's tokenizer
        raise LLMWidgetsError("teacher and student tokenised the text differently: cannot compare attributions")
    keep = np.flatnonzero(~np.asarray(rt.special_mask, bool))
    kk = min(k, len(keep))
    top = lambda sc: [int(j) for j in keep[np.argsort(-sc[keep], kind="stable")[:kk]]]  # noqa: E731
    tt, ts = top(rt.scores[0]), top(rs.scores[0])
    return {"tokens": list(rt.tokens), "teacher": rt.scores[0].astype(np.float32),
            "student": rs.scores[0].astype(np.float32), "target": result.class_names[target], "method": rt.method,
            "k": kk, "top_teacher": tt, "top_student": ts, "agreement": len(set(tt) & set(ts)) / kk}


def split(n: int, test_size, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit indices, held-out indices) of n items: a seeded shuffle; test_size a fraction in (0, 1)
    or a count."""
    if isinstance(test_size, bool):
        raise LLMWidgetsError(f"test_size must be a fraction in (0, 1) or a count, got {test_size!r}")
    if isinstance(test_size, (int, np.integer)):
        k = int(test_size)
    else:
        f = number(test_size, "test_size")
        if not 0 < f < 1:
            raise LLMWidgetsError(f"test_size must be a fraction in (0, 1) or a count, got {test_size!r}")
        k = int(round(f * n))
    if not 10 <= k <= n - 10:
        raise LLMWidgetsError(f"{n} texts with test_size={test_size!r} leave {k} held out and {n - k} to fit; "
                              "both need at least 10 (pass more texts).")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[k:]), np.sort(order[:k])


def split_texts(texts: list[str], test_size, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`split` over the distinct texts (case and spacing ignored): copies of a text stay on one side,
    so a held-out text is never one the surrogates were fitted on."""
    keys = [" ".join(t.lower().split()) for t in texts]
    distinct = list(dict.fromkeys(keys))
    fit_k, test_k = split(len(distinct), test_size, seed)
    held = {distinct[k] for k in test_k}
    test = np.array([i for i, k in enumerate(keys) if k in held], np.int64)
    fit = np.array([i for i, k in enumerate(keys) if k not in held], np.int64)
    return fit, test


def gold_indices(labels, class_names: list[str], n: int) -> np.ndarray:
    """Gold labels (class names or indices) as class indices; clear errors for what is not a class."""
    labels = name_list(labels, "labels")
    if len(labels) != n:
        raise LLMWidgetsError(f"{n} texts but {len(labels)} labels: pass one label per text.")
    out = []
    for v in labels:
        if isinstance(v, str):
            if v not in class_names:
                raise LLMWidgetsError(f"label {v!r} is not one of the model's classes {class_names}")
            out.append(class_names.index(v))
        elif isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= v < len(class_names):
            out.append(int(v))
        else:
            raise LLMWidgetsError(f"label {v!r} is not a class: use a class index in 0..{len(class_names) - 1} "
                                  f"or a class name {class_names}")
    return np.asarray(out, np.int64)


def _best_time(fn, n: int, repeat: int = 3) -> tuple[Any, float]:
    """(result, ms per text): the fastest of `repeat` calls of fn() over n texts."""
    out, best = None, math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, 1000.0 * best / n


def _scored(name, kind, size, pred, teacher_pred, gold, ms, fit_s, model, detail) -> Surrogate:
    agree = int((pred == teacher_pred).sum())
    acc, acc_ci = math.nan, (math.nan, math.nan)
    if gold is not None:
        right = int((pred == gold).sum())
        acc, acc_ci = right / len(gold), wilson(right, len(gold))
    return Surrogate(name=name, kind=kind, size=int(size), fidelity=agree / len(pred),
                     fidelity_ci=wilson(agree, len(pred)), accuracy=acc, accuracy_ci=acc_ci, ms_per_text=ms,
                     fit_seconds=fit_s, pred=np.asarray(pred, np.int64), model=model, detail=detail)


def _sklearn(kind, clf, detail, train, y, test, teacher_pred, gold, ngram) -> Surrogate:
    from sklearn.pipeline import Pipeline

    model = Pipeline([("words", vectorizer(ngram)), ("model", clf)])
    t0 = time.perf_counter()
    model.fit(train, y)
    fit_s = time.perf_counter() - t0
    pred, ms = _best_time(lambda: model.predict(test), len(test))
    inner = model.named_steps["model"]
    if kind == "logistic":
        size, name = int(np.count_nonzero(inner.coef_)), f"logistic L1 (C={detail['C']:g})"
    else:
        size, name = int(inner.get_n_leaves()), f"tree (depth \u2264 {detail['max_depth']})"
    return _scored(name, kind, size, pred, teacher_pred, gold, ms, fit_s, model, detail)


def fit_surrogates(session, texts: Sequence[str], labels=None, *, test_size=0.3, ngram: int = 2,
                   C: Sequence[float] = (1.0,), tree_depths: Sequence[int] = (2, 5),
                   student_layers: Sequence[int] = (1, 2, 4), student: StudentSettings | None = None,
                   seed: int = 0, batch_size: int = 64, cache: bool = True, truncate: bool = False,
                   report: Report = no_progress) -> SurrogateResult:
    """Fit every surrogate to the teacher's predictions on the fitting texts; measure on the rest.

    session: a sequence classifier Session (the teacher). texts: unlabelled texts (>= 20 distinct);
    labels: optional gold labels (class names or indices), used only for accuracy. test_size:
    held-out fraction or count of the distinct texts (copies of a text stay on one side). ngram:
    longest n-gram of the word features. C: inverse L1 strength of each logistic surrogate;
    tree_depths: max depth of each tree; student_layers: layers of each distilled student (empty:
    none); student: StudentSettings (width, temperature, epochs, ...). Texts longer than the model
    accepts raise InputTooLongError naming them; with truncate=True the model and the students read their
    first tokens (the word surrogates read them whole) and `notice` says so."""
    texts = name_list(texts, "texts")
    if not texts:
        raise EmptyInputError("texts is empty: pass the texts the surrogates should imitate the model on.")
    bad = [i for i, x in enumerate(texts) if not isinstance(x, str) or not x.strip()]
    if bad:
        raise LLMWidgetsError(f"texts[{bad[0]}] is {texts[bad[0]]!r}: every text must be a non-empty string.")
    seed, ngram = integer(seed, "seed", low=0), integer(ngram, "ngram", low=1)
    batch_size = integer(batch_size, "batch_size", low=1)
    C = [number(c, "C") for c in name_list(C, "C")]
    if any(c <= 0 for c in C):
        raise LLMWidgetsError(f"every C must be > 0 (inverse regularisation strength), got {C}")
    depths = [integer(d, "tree_depths", low=1) for d in name_list(tree_depths, "tree_depths")]
    layers = [integer(k, "student_layers", low=1) for k in name_list(student_layers, "student_layers")]
    st = (student or StudentSettings(seed=seed)).check()
    class_names = session.class_labels
    if class_names is None:
        raise LLMWidgetsError(f"{session.name} is not a sequence classifier: surrogates imitate a classifier.")
    gold = gold_indices(labels, class_names, len(texts)) if labels is not None else None
    notice = session.check_lengths([len(ids) for ids in session.tokenizer(texts)["input_ids"]], truncate=truncate)
    if notice:
        notice += " The model and the students read only those tokens; the word surrogates read whole texts."
    fit_i, test_i = split_texts(texts, test_size, seed)
    train, test = [texts[i] for i in fit_i], [texts[i] for i in test_i]

    report(0.0, "teacher predictions")
    lt = teacher_logits(session, train, batch_size, truncate=truncate)
    le, teacher_ms = _best_time(lambda: teacher_logits(session, test, batch_size, truncate=truncate), len(test),
                                repeat=2)
    y, teacher_pred = lt.argmax(1), le.argmax(1)
    if len(np.unique(y)) < 2:
        raise LLMWidgetsError(f"The model predicts {class_names[int(y[0])]!r} for every fitting text: there is "
                              "no decision to imitate. Pass texts it puts in different classes.")
    g_test = gold[test_i] if gold is not None else None
    teacher = {"name": session.name, "size": n_parameters(session.model), "ms_per_text": teacher_ms,
               "accuracy": math.nan, "accuracy_lo": math.nan, "accuracy_hi": math.nan}
    if g_test is not None:
        right = int((teacher_pred == g_test).sum())
        teacher.update(accuracy=right / len(test), accuracy_lo=wilson(right, len(test))[0],
                       accuracy_hi=wilson(right, len(test))[1])

    out: list[Surrogate] = []
    n_cls = len(class_names)
    for c in C:
        report(0.1, f"logistic regression (C={c:g})")
        out.append(_sklearn("logistic", l1_logistic(c, n_cls, seed), {"C": c, "ngram": ngram}, train, y, test,
                            teacher_pred, g_test, ngram))
    from sklearn.tree import DecisionTreeClassifier

    for d in depths:
        report(0.12, f"decision tree (depth {d})")
        out.append(_sklearn("tree", DecisionTreeClassifier(max_depth=d, random_state=seed),
                            {"max_depth": d, "ngram": ngram}, train, y, test, teacher_pred, g_test, ngram))
    for k, n_layers in enumerate(layers):
        lo, hi = 0.15 + 0.8 * k / len(layers), 0.15 + 0.8 * (k + 1) / len(layers)
        t0 = time.perf_counter()
        sub = lambda f, label="": report(lo + (hi - lo) * f, label)  # noqa: E731
        model = distill(session, train, lt, layers=n_layers, settings=st, cache=cache, report=sub)
        fit_s = time.perf_counter() - t0
        ls, ms = _best_time(lambda: teacher_logits(model, test, batch_size, truncate=truncate), len(test), repeat=2)
        detail = {"layers": n_layers, "hidden": st.hidden, "heads": st.heads, "temperature": st.temperature,
                  "epochs": st.epochs, "cached": model.train_seconds is None}
        out.append(_scored(f"student {n_layers} layer{'s' if n_layers > 1 else ''}", "student",
                           n_parameters(model.model), ls.argmax(1), teacher_pred, g_test, ms, fit_s, model, detail))
    report(1.0, "done")
    return SurrogateResult(class_names=list(class_names), train_texts=train, test_texts=test, teacher_train=lt,
                           teacher_test=le, test_labels=g_test, teacher=teacher, surrogates=out, session=session,
                           notice=notice)


__all__ = ["KINDS", "SIZE_UNITS", "Surrogate", "SurrogateResult", "compare_attributions", "fit_surrogates",
           "gold_indices", "split", "split_texts"]
