"""Counterfactual bias: the same template with one group term swapped for another."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...audit.templates import ATTRIBUTES, TemplateSet, fill, validate
from ...errors import LLMWidgetsError


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
