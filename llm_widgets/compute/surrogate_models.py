"""Readable surrogates over words and n-grams (scikit-learn): a sparse L1 logistic regression and a
depth-limited decision tree, fitted to a teacher's predicted classes, with what each one says:
the top weights, and the tree as a rule list (one rule per leaf)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TOKEN_PATTERN = r"(?u)\b\w+\b"  # every word, one-letter words included ("a", "I")


def vectorizer(ngram: int = 2):
    """Word presence (binary) over 1..ngram-grams, lower-cased."""
    from sklearn.feature_extraction.text import CountVectorizer

    return CountVectorizer(ngram_range=(1, ngram), binary=True, lowercase=True, token_pattern=TOKEN_PATTERN)


def l1_logistic(C: float, n_classes: int, seed: int):
    """An L1-penalised LogisticRegression on every scikit-learn this package supports: 1.8 replaced
    penalty='l1' by l1_ratio=1 (and an old one would read l1_ratio alone as an unused argument and
    fit an L2 model, so the penalty is named the way the installed version expects)."""
    import sklearn
    from sklearn.linear_model import LogisticRegression

    solver = "liblinear" if n_classes == 2 else "saga"  # liblinear: binary only; saga: multinomial L1
    major, minor = (int(x) for x in sklearn.__version__.split(".")[:2])
    penalty = {"l1_ratio": 1.0} if (major, minor) >= (1, 8) else {"penalty": "l1"}
    return LogisticRegression(C=C, solver=solver, max_iter=5000, random_state=seed, **penalty)


@dataclass
class Rule:
    """One leaf of a decision tree as a rule: every condition on the path, then the class."""

    conditions: list[tuple[str, bool]]  # (feature, present?) from the root down
    label: int  # class index the leaf predicts
    n: int  # training texts that reach the leaf
    purity: float  # share of them with the leaf's class (the teacher's class)
    leaf: int  # node id in the sklearn tree

    def text(self, class_names: list[str]) -> str:
        cond = " AND ".join(f"{'has' if present else 'no'} \u201c{f}\u201d" for f, present in self.conditions)
        return f"IF {cond or 'always'} THEN {class_names[self.label]}"


def tree_rules(tree, features: list[str]) -> list[Rule]:
    """The rules of a fitted DecisionTreeClassifier over binary presence features, one per leaf,
    in the tree's left-to-right order (left branch: feature absent, value <= 0.5)."""
    t = tree.tree_
    out: list[Rule] = []

    def walk(node: int, path: list[tuple[str, bool]]):
        left, right = t.children_left[node], t.children_right[node]
        if left == right:  # a leaf
            v = t.value[node][0]
            counts = v / v.sum() if v.sum() else v
            label = int(np.argmax(v))
            out.append(Rule(conditions=path, label=int(tree.classes_[label]), n=int(t.n_node_samples[node]),
                            purity=float(counts[label]), leaf=int(node)))
            return
        name = features[t.feature[node]]
        walk(left, path + [(name, False)])
        walk(right, path + [(name, True)])

    walk(0, [])
    return out


def top_weights(coef: np.ndarray, classes: np.ndarray, features: list[str], k: int = 15) -> list[dict]:
    """The k largest |weights| of a fitted logistic regression: {feature, weight, toward}: the
    feature's presence adds `weight` to the log-odds of class `toward`. Two classes: sklearn keeps one
    row (toward classes[1]); each weight is given toward the class it favours, so it is > 0. More
    classes: one row per class, signed (< 0: the feature speaks against `toward`)."""
    rows = []
    if coef.shape[0] == 1:
        for j in np.argsort(-np.abs(coef[0]), kind="stable")[:k]:
            if coef[0, j] == 0:
                break
            rows.append({"feature": features[j], "weight": float(abs(coef[0, j])),
                         "toward": int(classes[1] if coef[0, j] > 0 else classes[0])})
        return rows
    flat = np.argsort(-np.abs(coef).ravel(), kind="stable")[:k]
    for f in flat:
        c, j = divmod(int(f), coef.shape[1])
        if coef[c, j] == 0:
            break
        rows.append({"feature": features[j], "weight": float(coef[c, j]), "toward": int(classes[c])})
    return rows


__all__ = ["Rule", "l1_logistic", "top_weights", "tree_rules", "vectorizer"]
