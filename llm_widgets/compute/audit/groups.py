"""Per-group metrics (accuracy, selection rate, TPR, FPR) with bootstrap CIs, and their differences."""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from ...errors import LLMWidgetsError


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
