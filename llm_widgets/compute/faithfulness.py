"""Faithfulness of a token attribution: how much the output really depends on the top tokens.

- completeness delta: sum(scores) - (f(x) - f(baseline)); ~0 for integrated gradients and Shapley
  values, by construction; the relative delta is |delta| / |f(x) - f(baseline)|.
- ERASER (DeYoung et al., 2020) comprehensiveness f(x) - f(x without its top-k% tokens) (higher:
  the attribution found tokens the output needs) and sufficiency f(x) - f(only the top-k% tokens)
  (lower: those tokens alone suffice), each averaged over k in AOPC_PERCENTS (AOPC).
- deletion curve: f as the top tokens are removed one after another, next to the same curve for
  random orders (an attribution worth reading falls faster than random).

"Removing" a token means giving it the baseline embedding, as the perturbation methods do. Pure
numpy over an `evaluate(masks) -> outputs` function, so it is independent of the model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

AOPC_PERCENTS = (1, 5, 10, 20, 50)


@dataclass
class Faithfulness:
    """How far to trust an attribution. All numbers are in units of the target output (logit /
    log-prob), one entry per target row."""

    fx: np.ndarray  # [K] f(x)
    fbase: np.ndarray  # [K] f(baseline)
    delta: np.ndarray  # [K] completeness: sum(scores) - (f(x) - f(baseline))
    relative_delta: np.ndarray  # [K] |delta| / |f(x) - f(baseline)| (nan when that is ~0)
    percents: tuple[int, ...]  # k in % of the prompt's (non-special) tokens
    comprehensiveness: np.ndarray  # [K, P] f(x) - f(x without its top-k% tokens)   (higher: better)
    sufficiency: np.ndarray  # [K, P] f(x) - f(only its top-k% tokens)             (lower: better)
    deletion_x: np.ndarray  # [Q] fraction of tokens removed, 0..1
    deletion: np.ndarray  # [K, Q] f after removing the top tokens first
    deletion_random: np.ndarray  # [K, Q] the same, removing tokens in random orders (mean of a few)

    @property
    def aopc_comprehensiveness(self) -> np.ndarray:
        return self.comprehensiveness.mean(axis=-1)

    @property
    def aopc_sufficiency(self) -> np.ndarray:
        return self.sufficiency.mean(axis=-1)

    @property
    def deletion_auc(self) -> np.ndarray:
        """[K] area under the deletion curve (lower than random: the top tokens matter)."""
        return trapezoid(self.deletion, self.deletion_x)

    @property
    def deletion_random_auc(self) -> np.ndarray:
        return trapezoid(self.deletion_random, self.deletion_x)

    def summary(self, row: int = 0) -> dict:
        """Plain floats for one target row (None where undefined), as the view shows them."""
        def num(v):
            v = float(v)
            return v if math.isfinite(v) else None

        return {"fx": num(self.fx[row]), "fbase": num(self.fbase[row]), "delta": num(self.delta[row]),
                "relative_delta": num(self.relative_delta[row]),
                "comprehensiveness": num(self.aopc_comprehensiveness[row]),
                "sufficiency": num(self.aopc_sufficiency[row]),
                "deletion_auc": num(self.deletion_auc[row]),
                "deletion_random_auc": num(self.deletion_random_auc[row])}


def trapezoid(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    if len(x) < 2:
        return np.zeros(np.shape(y)[:-1], np.float32)
    return (((y[..., 1:] + y[..., :-1]) / 2) * np.diff(x)).sum(-1).astype(np.float32)


def completeness(scores: np.ndarray, fx: np.ndarray, fbase: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(delta, relative delta) per row of scores [K, n]; relative is nan where f(x) ~ f(baseline)."""
    diff = np.asarray(fx, np.float64) - np.asarray(fbase, np.float64)
    delta = np.asarray(scores, np.float64).sum(axis=1) - diff
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(np.abs(diff) > 1e-6, np.abs(delta) / np.abs(diff), np.nan)
    return delta.astype(np.float32), rel.astype(np.float32)


def faithfulness(evaluate: Callable[[np.ndarray], np.ndarray], scores: np.ndarray, fx: np.ndarray,
                 fbase: np.ndarray, percents=AOPC_PERCENTS, points: int = 20, random_orders: int = 3,
                 seed: int = 0) -> Faithfulness:
    """Faithfulness numbers for scores [K, n] over n removable tokens.

    evaluate(masks [N, n] bool, True = keep the token) -> [N, K] outputs, one column per target;
    all the perturbed inputs go to it in one call (it batches). fx / fbase: [K] outputs on the full
    input and on the baseline.
    """
    scores = np.asarray(scores, np.float32)
    k_targets, n = scores.shape
    delta, rel = completeness(scores, fx, fbase)
    counts = [max(1, math.ceil(p / 100 * n)) for p in percents]
    steps = np.unique(np.round(np.linspace(0, n, min(n, points) + 1)).astype(int))
    rng = np.random.default_rng(seed)
    masks, index = [], []  # index[i] = (target row or -1 for random orders, kind, column)

    def removed(order, m):
        keep = np.ones(n, bool)
        keep[order[:m]] = False
        return keep

    for t in range(k_targets):
        order = np.argsort(-scores[t], kind="stable")
        for j, m in enumerate(counts):
            keep = removed(order, m)
            masks += [keep, ~keep]
            index += [(t, "comp", j), (t, "suff", j)]
        for j, m in enumerate(steps):
            masks.append(removed(order, m))
            index.append((t, "del", j))
    for _ in range(random_orders):  # random orders are shared by all targets
        order = rng.permutation(n)
        for j, m in enumerate(steps):
            masks.append(removed(order, m))
            index.append((-1, "rand", j))
    vals = np.asarray(evaluate(np.stack(masks)), np.float64)
    comp = np.zeros((k_targets, len(counts)))
    suff = np.zeros_like(comp)
    dele = np.zeros((k_targets, len(steps)))
    rand = np.zeros_like(dele)
    for row, (t, kind, j) in zip(vals, index):
        if kind == "comp":
            comp[t, j] = fx[t] - row[t]
        elif kind == "suff":
            suff[t, j] = fx[t] - row[t]
        elif kind == "del":
            dele[t, j] = row[t]
        else:
            rand[:, j] += row / random_orders
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    return Faithfulness(fx=f32(fx), fbase=f32(fbase), delta=delta, relative_delta=rel,
                        percents=tuple(percents), comprehensiveness=f32(comp), sufficiency=f32(suff),
                        deletion_x=f32(steps / max(n, 1)), deletion=f32(dele), deletion_random=f32(rand))
