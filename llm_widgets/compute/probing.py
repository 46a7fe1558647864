"""Layer-wise probing: hidden states for many texts (batched), linear probes per layer with control
tasks (Hewitt & Liang, 2019), confidence intervals over seeds. Pure torch/numpy/sklearn.

Features come from llm_widgets.compute.activations (Activations, extract).

Control task (selectivity = accuracy - control accuracy)
- token level: every word *type* (lowercased word) gets a random label, drawn once (seeded) from
  the task's label distribution and fixed for all its occurrences (Hewitt & Liang).
- sentence level: every sentence *type* gets a fixed random label the same way. By default the type
  of a text is the text itself, lowercased with punctuation and repeated spaces removed; pass
  `control_types` (one key per text) to group differently, e.g. by template or by main verb.
The control measures what a probe of the same capacity gets from memorising types; a probe that
reads the property from the representation beats it on held-out data.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..checks import integer, names
from ..errors import LLMWidgetsError, NonFiniteError
from ..layers import hidden_row, layer_of_row

from .activations import Activations
from .intervals import wilson
from .progress import Report, no_progress


@dataclass
class ProbeResult:
    """Held-out accuracy of a probe at each layer, over several seeds (random splits).

    The probed states are hidden states, embeddings first: per-layer arrays have L+1 rows and the
    row of block `layer` is `layer + 1` (row 0 is the embedding output, lw.EMBEDDINGS). Every `layer`
    argument or value (best_layer, to_frame, margin_direction) is a block index (negative: from the
    end) or lw.EMBEDDINGS."""

    classes: list[str]
    accuracy: np.ndarray  # [L+1, seeds]
    control: np.ndarray | None  # [L+1, seeds] accuracy on the control task
    majority: float  # accuracy of predicting the training majority class (mean over seeds)
    confusion: np.ndarray  # [L+1, C, C] counts, rows = true class, columns = predicted; all seeds
    wrong: list[list[dict]]  # per row (layer + 1): most confidently wrong rows {row, true, pred, confidence}
    level: str = "sentence"
    probe: str = "linear"
    n_rows: int = 0
    n_test: int = 0  # held-out rows per split (the smallest split's)
    control_labels: list[str] = field(default_factory=list)
    # linear probes only: per layer, per seed {classes, coef [K, D], intercept [K], mean [D], scale [D]}
    weights: list[list[dict]] | None = None

    @property
    def n_layers(self) -> int:
        """Blocks probed (the arrays have one more row: the embeddings)."""
        return self.accuracy.shape[0] - 1

    def row(self, layer) -> int:
        """Row of a block index (lw.EMBEDDINGS for the embedding output) in the per-layer arrays."""
        return hidden_row(layer, self.n_layers)

    def margin_direction(self, layer: int, seed: int, pred: str, true: str) -> tuple[np.ndarray, float]:
        """(u, b) with margin(x) = logit(pred) - logit(true) = u . (x - mean) + b for the linear probe
        of (layer, seed), in the units of the raw features x (the probe's StandardScaler folded in)."""
        if self.weights is None:
            raise LLMWidgetsError("Margins need linear probes (probe='linear').")
        w = self.weights[self.row(layer)][seed]
        classes, coef, icpt = w["classes"], w["coef"], w["intercept"]
        if coef.shape[0] == 1:  # binary: one logit, for classes[1]
            sign = 1.0 if pred == classes[1] else -1.0
            v, b = sign * coef[0], sign * float(icpt[0])
        else:
            i, j = classes.index(pred), classes.index(true)
            v, b = coef[i] - coef[j], float(icpt[i] - icpt[j])
        return v.astype(np.float64) / w["scale"].astype(np.float64), b

    def token_contributions(self, layer: int, wrong: dict, token_states: np.ndarray) -> np.ndarray:
        """Per-token share of a mean-pooled sentence row's wrong decision: for the probe that made the
        mistake (`wrong` is an item of `.wrong[layer + 1]`), c_t = u . (h_t - mean) / T over the T pooled
        tokens `token_states` [T, D], so that sum(c) + intercept difference = logit(pred) - logit(true)
        > 0. Positive tokens pushed towards the wrong class."""
        u, _ = self.margin_direction(layer, wrong["seed"], wrong["pred"], wrong["true"])
        h = np.asarray(token_states, dtype=np.float64)
        mean = self.weights[self.row(layer)][wrong["seed"]]["mean"].astype(np.float64)
        return ((h - mean) @ u / len(h)).astype(np.float32)

    @property
    def mean(self) -> np.ndarray:
        return self.accuracy.mean(axis=1)

    @property
    def ci(self) -> np.ndarray:
        """Half-width of the 95% t-interval of the mean accuracy over seeds."""
        return _ci(self.accuracy)

    def interval(self, control: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """95% Wilson score interval (lower, upper) per layer of the mean held-out accuracy (of the
        control task with control=True), counting `n_test` held-out items: honest where the spread
        over seeds is not, e.g. every split at 1.000 on 30 test rows gives [0.886, 1] rather than
        1.000 +- 0.000. The splits re-use the same rows, so they are not counted as more items."""
        if control and self.control is None:
            nan = np.full(self.n_layers + 1, np.nan)
            return nan, nan.copy()
        if self.n_test < 1:
            raise LLMWidgetsError("This ProbeResult does not say how many rows were held out (n_test); "
                                  "run probe_layers again to get intervals.")
        return wilson(self.control_mean if control else self.mean, self.n_test)

    @property
    def control_mean(self) -> np.ndarray:
        return self.control.mean(axis=1) if self.control is not None else np.full(self.n_layers + 1, np.nan)

    @property
    def control_ci(self) -> np.ndarray:
        return _ci(self.control) if self.control is not None else np.full(self.n_layers + 1, np.nan)

    @property
    def selectivity(self) -> np.ndarray:
        return self.mean - self.control_mean

    @property
    def best_layer(self):
        """The block index (or lw.EMBEDDINGS) of the highest mean accuracy."""
        return layer_of_row(int(np.argmax(self.mean)))

    @property
    def layers(self) -> list:
        """The layer of each row: lw.EMBEDDINGS, then the block indices."""
        return [layer_of_row(r) for r in range(self.n_layers + 1)]

    def to_frame(self):
        """One row per layer (lw.EMBEDDINGS, then the block indices): accuracy, ci95, control,
        control_ci95, selectivity, majority."""
        import pandas as pd

        return pd.DataFrame({"layer": self.layers, "accuracy": self.mean, "ci95": self.ci,
                             "control": self.control_mean, "control_ci95": self.control_ci,
                             "selectivity": self.selectivity, "majority": self.majority})


def _ci(a: np.ndarray) -> np.ndarray:
    from scipy import stats

    n = a.shape[1]
    if n < 2:
        return np.zeros(a.shape[0])
    return stats.t.ppf(0.975, n - 1) * a.std(axis=1, ddof=1) / np.sqrt(n)


def control_task(types: Sequence[str], labels: Sequence, seed: int = 0) -> list:
    """Hewitt & Liang control labels: one random label per type, drawn from the empirical label
    distribution, the same for every row of that type."""
    rng = np.random.default_rng(seed)
    values, counts = np.unique(np.asarray(labels, dtype=object).astype(str), return_counts=True)
    uniq = sorted(set(types))
    draw = rng.choice(len(values), size=len(uniq), p=counts / counts.sum())
    by_type = {t: values[d] for t, d in zip(uniq, draw)}
    return [by_type[t] for t in types]


def few_threads(n: int = 1):
    """Context limiting BLAS/OpenMP threads while sklearn fits the small matrices of probes and
    projections: with every core's BLAS threads competing (torch, other processes) such fits run
    10-20x slower than on one thread."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n)


def _make_probe(kind: str, seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "linear":
        clf = LogisticRegression(max_iter=300, C=1.0)
    elif kind == "mlp":
        clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=300, random_state=seed)
    else:
        raise LLMWidgetsError(f"probe must be 'linear' or 'mlp', got {kind!r}")
    return make_pipeline(StandardScaler(), clf)


def _splits(n: int, y: np.ndarray, groups: np.ndarray | None, seeds: int, test_size: float):
    from sklearn.model_selection import GroupShuffleSplit, StratifiedShuffleSplit

    try:
        if groups is not None:
            splitter = GroupShuffleSplit(n_splits=seeds, test_size=test_size, random_state=0)
            splits = list(splitter.split(np.zeros(n), y, groups))
        else:
            splitter = StratifiedShuffleSplit(n_splits=seeds, test_size=test_size, random_state=0)
            splits = list(splitter.split(np.zeros(n), y))
    except ValueError as e:
        raise LLMWidgetsError(
            f"Cannot split {n} rows of {len(set(y))} classes into train and test sets (test_size="
            f"{test_size}): {e} Give more examples per class (at least a few), or change test_size.") from None
    for train, _ in splits:
        if len(set(y[train])) < 2:
            raise LLMWidgetsError(f"A training split holds a single class ({n} rows, grouped): give more "
                                  "examples per class or more groups.")
    return splits


def probe_layers(acts: Activations | np.ndarray, labels=None, *, seeds: int = 3, test_size: float = 0.25,
                 control: bool = True, control_types: Sequence[str] | None = None, probe: str = "linear",
                 groups: Sequence | None = None, n_wrong: int = 8, report: Report = no_progress) -> ProbeResult:
    """Train a probe per layer on `seeds` random train/test splits (stratified; grouped by text at
    token level, so no sentence is in both). Returns held-out accuracy per layer and seed, the same
    for the control task, the majority baseline, confusion matrices and confidently wrong rows.

    acts: Activations from `extract` (labels taken from it unless given), or a [L+1, N, D] array.
    """
    from sklearn.exceptions import ConvergenceWarning

    if probe not in ("linear", "mlp"):
        raise LLMWidgetsError(f"probe must be 'linear' or 'mlp', got {probe!r}")
    if not 0.0 < float(test_size) < 1.0:
        raise LLMWidgetsError(f"test_size must be between 0 and 1 (a fraction of the rows), got {test_size}")
    if isinstance(acts, Activations):
        states, level = acts.states, acts.level
        labels = acts.labels if labels is None else labels
        types = list(acts.types)
        if groups is None and level == "token":
            groups = acts.text_index
    else:
        states, level, types = np.asarray(acts, dtype=np.float32), "sentence", None
        if states.ndim != 3:
            raise LLMWidgetsError(f"activations must be [layers, rows, dim], got shape {states.shape}")
    if labels is None:
        raise LLMWidgetsError("No labels: pass one label per row (or per text).")
    missing = [i for i, v in enumerate(labels) if v is None or (isinstance(v, float) and np.isnan(v))
               or (isinstance(v, str) and not v.strip())]
    if missing:
        raise LLMWidgetsError(f"{len(missing)} label(s) are missing (None/NaN/empty), at rows {missing[:10]}: "
                              "they would become a class of their own. Drop those rows or fill them in.")
    seeds = integer(seeds, "seeds", low=1)
    y = np.asarray([str(v) for v in labels], dtype=object)
    n = states.shape[1]
    if len(y) != n:
        raise LLMWidgetsError(f"Got {len(y)} labels for {n} rows of activations.")
    if not np.isfinite(states).all():
        bad = sorted(set(np.argwhere(~np.isfinite(states))[:, 0].tolist()))
        raise NonFiniteError(f"Activations contain NaN/inf (layers {bad}); a probe cannot be trained "
                             f"on them. With float16 models load with dtype='float32'.")
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise LLMWidgetsError(f"All {n} rows have the label {classes[0]!r}: a probe needs at least two "
                              f"classes. Add examples of another class.")
    if seeds < 1:
        raise LLMWidgetsError(f"seeds must be >= 1, got {seeds}")
    if counts.min() < 2:
        raise LLMWidgetsError(f"Class {classes[counts.argmin()]!r} has a single example; give at least "
                              f"two per class so it can appear in both train and test sets.")
    if control_types is not None:
        control_types = [str(c) for c in control_types]
        if len(control_types) != n:
            raise LLMWidgetsError(f"Got {len(control_types)} control_types for {n} rows.")
        types = control_types
    if types is None:
        types = [str(i) for i in range(n)]
    y_ctrl = np.asarray(control_task(types, y, seed=0), dtype=object) if control else None
    if groups is None and level == "sentence" and isinstance(acts, Activations):
        dup = len(acts.types) - len(set(acts.types))
        if dup:  # the same text in train and test would be remembered, not decoded
            warnings.warn(f"{dup} of {n} texts repeat another one (after lower-casing and removing "
                          "punctuation); the train/test split keeps identical texts together. Pass "
                          "groups=[...] to group rows yourself.", stacklevel=2)
            groups = acts.types
    if groups is not None:
        groups = np.asarray([str(g) for g in names(groups, "groups")], dtype=object)
        if len(groups) != n:
            raise LLMWidgetsError(f"Got {len(groups)} groups for {n} rows.")
    splits = _splits(n, y, groups, seeds, test_size)

    n_layers, C = states.shape[0], len(classes)
    index = {c: k for k, c in enumerate(classes)}
    yi = np.array([index[v] for v in y])
    acc = np.zeros((n_layers, seeds))
    ctrl = np.zeros((n_layers, seeds)) if control else None
    confusion = np.zeros((n_layers, C, C), dtype=np.int64)
    wrong_best: list[dict[int, tuple[float, int, int]]] = [{} for _ in range(n_layers)]
    weights = [[None] * seeds for _ in range(n_layers)] if probe == "linear" else None
    majority = []
    for tr, te in splits:
        vals, cnt = np.unique(y[tr], return_counts=True)
        majority.append(float(np.mean(y[te] == vals[cnt.argmax()])))
    total = n_layers * seeds
    with few_threads(), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the MLP's max_iter: accuracy still counts
        _fit_layers(states, y, y_ctrl, yi, index, splits, probe, acc, ctrl, confusion, wrong_best, report, total,
                    weights)
    wrong = []
    for layer in range(n_layers):
        items = sorted(wrong_best[layer].items(), key=lambda kv: -kv[1][0])[:n_wrong]
        wrong.append([{"row": r, "true": str(y[r]), "pred": str(classes[p]), "confidence": c, "seed": sd}
                      for r, (c, p, sd) in items])
    return ProbeResult(classes=[str(c) for c in classes], accuracy=acc, control=ctrl,
                       majority=float(np.mean(majority)), confusion=confusion, wrong=wrong, level=level,
                       probe=probe, n_rows=n, n_test=min(len(te) for _, te in splits),
                       control_labels=list(y_ctrl) if control else [], weights=weights)


def _fit_layers(states, y, y_ctrl, yi, index, splits, probe, acc, ctrl, confusion, wrong_best, report, total,
                weights=None):
    seeds = len(splits)
    control = y_ctrl is not None
    for layer in range(states.shape[0]):
        X = states[layer]
        for s, (tr, te) in enumerate(splits):
            if len(np.unique(y[tr])) < 2:
                raise LLMWidgetsError("A training split holds a single class; give more examples.")
            clf = _make_probe(probe, s).fit(X[tr], y[tr])
            if weights is not None:
                scaler, lr = clf[0], clf[-1]
                weights[layer][s] = {"classes": [str(c) for c in lr.classes_],
                                     "coef": lr.coef_.astype(np.float32), "intercept": lr.intercept_.astype(np.float64),
                                     "mean": scaler.mean_.astype(np.float32), "scale": scaler.scale_.astype(np.float32)}
            proba = clf.predict_proba(X[te])
            pred = clf.classes_[proba.argmax(1)]
            acc[layer, s] = float(np.mean(pred == y[te]))
            np.add.at(confusion[layer], (yi[te], np.array([index[p] for p in pred])), 1)
            conf = proba.max(1)
            for r, p, c in zip(te[pred != y[te]], pred[pred != y[te]], conf[pred != y[te]]):
                if c > wrong_best[layer].get(int(r), (-1.0, 0, 0))[0]:
                    wrong_best[layer][int(r)] = (float(c), index[p], s)
            if control:
                if len(np.unique(y_ctrl[tr])) < 2:  # every training type drew one label
                    ctrl[layer, s] = float(np.mean(y_ctrl[te] == y_ctrl[tr][0]))
                else:
                    cc = _make_probe(probe, s).fit(X[tr], y_ctrl[tr])
                    ctrl[layer, s] = float(np.mean(cc.predict(X[te]) == y_ctrl[te]))
            report((layer * seeds + s + 1) / total, f"probe layer {layer}, split {s + 1}/{seeds}")
