"""Adversarial robustness: a budgeted greedy word-substitution attack (in the manner of TextFooler,
Jin et al. 2020) and the same search in random word order, as a baseline.

For each text the attack follows the model's own predicted class y. It ranks the words by occlusion
attribution of y (compute.attribution.attribute(method='occlusion') for a classifier Session, summed
over each word's tokens; for a callable task, the drop in y's score when the word is deleted), then
tries the word's substitutions (llm_widgets.audit.substitutions: synonyms, typos, look-alike
characters) in that order. A substitution that changes the predicted class ends the search (a
success); otherwise the one that lowers y's score most is kept and the next word is tried, until
`max_words` words are changed or `max_queries` model evaluations are spent. Every evaluation counts
as a query, the ranking's included (occlusion: one per token, plus the text and the baseline).
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np

from ...audit import substitutions as subs
from ...checks import integer
from ...errors import LLMWidgetsError
from ..progress import Report, no_progress
from .robustness import wilson

ORDERS = ("attribution", "random")
DEFAULT_ATTACK = {"max_words": 3, "max_queries": 200, "max_candidates": 8, "max_texts": 100, "random_baseline": True,
                  "kinds": subs.KINDS, "seed": 0}


@dataclass
class AttackRun:
    """One search order over every attacked text."""

    order: str  # 'attribution' (ours) or 'random' (baseline)
    success: np.ndarray  # [N] bool: the predicted class changed within the budget
    adversarial: list  # [N] the adversarial text, or None
    words_changed: np.ndarray  # [N] int (of the final text; 0 where the attack failed)
    queries: np.ndarray  # [N] model evaluations spent
    pred_o: np.ndarray  # [N] the original predicted class
    pred_a: np.ndarray  # [N] the class of the adversarial text (= pred_o where it failed)
    conf_o: np.ndarray  # [N] score of the original class on the original text
    conf_a: np.ndarray  # [N] ... on the final text tried
    changes: list  # [N] list of {word, new, kind, index} applied
    ranked: list  # [N] word indices in the order tried

    @property
    def n(self) -> int:
        return len(self.success)

    def summary(self) -> dict:
        k, n = int(self.success.sum()), self.n
        lo, hi = wilson(k, n)
        q = int(self.queries.sum())
        return {"order": self.order, "texts": n, "successes": k, "success_rate": k / n if n else math.nan,
                "success_rate_lo": lo, "success_rate_hi": hi,
                "mean_words_changed": float(self.words_changed[self.success].mean()) if k else math.nan,
                "queries": q, "mean_queries": q / n if n else math.nan,
                "queries_per_success": q / k if k else math.nan}


@dataclass
class AttackResult:
    texts: list[str]
    runs: dict  # order -> AttackRun
    budget: dict  # max_words, max_queries, max_candidates, kinds
    ranking: str  # how words were ranked ("occlusion attribution of the predicted class", ...)
    class_names: list | None = None
    summary: list[dict] = field(default_factory=list)  # one row per run

    @property
    def main(self) -> AttackRun:
        return self.runs["attribution"]

    def successes(self, order: str = "attribution") -> np.ndarray:
        """Indices of the texts the attack flipped, fewest changed words first."""
        run = self.runs[order]
        idx = np.flatnonzero(run.success)
        return idx[np.argsort(run.words_changed[idx], kind="stable")]


def check_attack(attack) -> dict:
    """True / a dict of overrides of DEFAULT_ATTACK -> the full settings; clear errors otherwise."""
    if attack is True:
        attack = {}
    if not isinstance(attack, dict):
        raise LLMWidgetsError(f"attack must be True, False or a dict of settings ({sorted(DEFAULT_ATTACK)}), "
                              f"got {attack!r}")
    unknown = set(attack) - set(DEFAULT_ATTACK)
    if unknown:
        raise LLMWidgetsError(f"Unknown attack settings {sorted(unknown)}; known: {sorted(DEFAULT_ATTACK)}.")
    st = {**DEFAULT_ATTACK, **attack}
    for k in ("max_words", "max_queries", "max_candidates", "max_texts"):
        st[k] = integer(st[k], f"attack[{k!r}]", low=1)
    st["seed"] = integer(st["seed"], "attack['seed']", low=0)
    kinds = st["kinds"]
    if isinstance(kinds, str) or not set(kinds) <= set(subs.KINDS) or not kinds:
        raise LLMWidgetsError(f"attack['kinds'] must be a non-empty list of {list(subs.KINDS)}, got {kinds!r}")
    st["kinds"] = tuple(kinds)
    if not isinstance(st["random_baseline"], bool):
        raise LLMWidgetsError(f"attack['random_baseline'] must be True or False, got {st['random_baseline']!r}")
    return st


class _Target:
    """The attacked model through the audit's Scorer: class and confidence of a batch of texts."""

    def __init__(self, scorer):
        if scorer.kind == "lm":
            raise LLMWidgetsError("The word-substitution attack changes a classifier's predicted class; a "
                                  "causal LM scored by a continuation's log-probability has none. Pass a "
                                  "classifier Session or task=<callable>.")
        self.scorer = scorer

    def __call__(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        s = self.scorer.scores(texts)
        return self.scorer.predict(s), s

    def confidence(self, s: np.ndarray, y: int) -> np.ndarray:
        """Score of class y (for a scalar score: its distance past the threshold toward y)."""
        if s.shape[1] > 1:
            return s[:, y]
        d = s[:, 0] - self.scorer.threshold
        return d if y == 1 else -d


def _ranking_cost(target: _Target, pieces: list[str]) -> int:
    """Queries the ranking takes: occlusion evaluates the text, the baseline and one version per
    token (classifier Session); word deletion, one version per word."""
    if target.scorer.kind == "classifier":
        s = target.scorer.session
        enc = s.tokenizer("".join(pieces), return_special_tokens_mask=True, truncation=True, max_length=s.max_length)
        return len(enc["input_ids"]) - sum(enc["special_tokens_mask"]) + 2
    return len(pieces) // 2


def _importance(target: _Target, pieces: list[str], y: int, conf: float) -> np.ndarray:
    """Occlusion attribution of class y per word (odd piece); conf: y's score on the text."""
    text = "".join(pieces)
    word_idx = list(range(1, len(pieces), 2))
    session = target.scorer.session
    if target.scorer.kind == "classifier":
        from ..attribution import attribute

        r = attribute(session, text, target=y, method="occlusion", compute_faithfulness=False, truncate=True)
        enc = session.tokenizer(text, return_offsets_mapping=True, truncation=True, max_length=session.max_length)
        spans, pos = [], 0
        for j in word_idx:
            pos += len(pieces[j - 1])
            spans.append((pos, pos + len(pieces[j])))
            pos += len(pieces[j])
        out = np.zeros(len(word_idx))
        for t, (a, b) in enumerate(enc["offset_mapping"]):
            if b > a and not r.special_mask[t]:
                w = next((w for w, (ws, we) in enumerate(spans) if a < we and ws < b), None)
                if w is not None:
                    out[w] += r.scores[0, t]
        return out
    # any callable: the drop in y's score when the word is deleted
    _, s = target(["".join(pieces[:j] + [""] + pieces[j + 1:]) for j in word_idx])
    return conf - target.confidence(s, y)


def _attack_one(target: _Target, text: str, st: dict, order: str, rng) -> dict:
    pieces = subs.segments(text)
    (y,), s0 = target([text])
    y = int(y)
    queries = 1
    conf = float(target.confidence(s0, y)[0])
    out = {"success": False, "adversarial": None, "words_changed": 0, "pred_o": y, "pred_a": y, "conf_o": conf,
           "conf_a": conf, "changes": [], "ranked": []}
    word_idx = list(range(1, len(pieces), 2))
    if not word_idx:
        return {**out, "queries": queries}
    if order == "attribution":
        cost = _ranking_cost(target, pieces)
        if queries + cost > st["max_queries"]:  # the ranking alone would spend the budget
            return {**out, "queries": queries}
        imp = _importance(target, pieces, y, conf)
        queries += cost
        ranked = [word_idx[k] for k in np.argsort(-imp, kind="stable")]
    else:
        ranked = [word_idx[k] for k in rng.permutation(len(word_idx))]
    out["ranked"] = [(j - 1) // 2 for j in ranked]
    current, changes = list(pieces), []
    for j in ranked:
        if len(changes) >= st["max_words"] or queries >= st["max_queries"]:
            break
        cands = subs.candidates(pieces[j], st["kinds"], st["max_candidates"])[: st["max_queries"] - queries]
        if not cands:
            continue
        variants = ["".join(current[:j] + [c] + current[j + 1:]) for c, _ in cands]
        pred, s = target(variants)
        queries += len(variants)
        c = target.confidence(s, y)
        flipped = np.flatnonzero(pred != y)
        best = int(flipped[np.argmin(c[flipped])]) if len(flipped) else int(np.argmin(c))
        if not len(flipped) and c[best] >= conf:
            continue  # no substitution of this word helps: leave it
        current[j] = cands[best][0]
        conf = float(c[best])
        changes.append({"index": (j - 1) // 2, "word": pieces[j], "new": cands[best][0], "kind": cands[best][1]})
        if len(flipped):
            return {**out, "success": True, "adversarial": "".join(current), "words_changed": len(changes),
                    "pred_a": int(pred[best]), "conf_a": conf, "changes": changes, "queries": queries}
    return {**out, "conf_a": conf, "changes": changes, "queries": queries}


def _run(target: _Target, texts: list[str], st: dict, order: str, step) -> AttackRun:
    rng = np.random.default_rng([st["seed"], len(order)])
    rows = []
    for text in texts:
        rows.append(_attack_one(target, text, st, order, rng))
        step(order)
    col = lambda k, dtype: np.array([r[k] for r in rows], dtype)  # noqa: E731
    return AttackRun(order=order, success=col("success", bool), adversarial=[r["adversarial"] for r in rows],
                     words_changed=col("words_changed", np.int64), queries=col("queries", np.int64),
                     pred_o=col("pred_o", np.int64), pred_a=col("pred_a", np.int64),
                     conf_o=col("conf_o", np.float32), conf_a=col("conf_a", np.float32),
                     changes=[r["changes"] for r in rows], ranked=[r["ranked"] for r in rows])


def run_attack(scorer, texts: list[str], settings=True, report: Report = no_progress, lo: float = 0.0,
               hi: float = 1.0) -> AttackResult:
    """Attack every text (up to settings['max_texts']) with the attribution-ordered search and, with
    random_baseline, the random-order one; see the module docstring."""
    from ..distill import small_model_threads

    st = check_attack(settings)
    target = _Target(scorer)
    texts = list(texts)[: st["max_texts"]]
    if not texts:
        raise LLMWidgetsError("The attack needs texts=[...] (or templates) to attack.")
    orders = ORDERS if st["random_baseline"] else ORDERS[:1]
    total, done = len(orders) * len(texts), [0]

    def step(order: str) -> None:
        done[0] += 1
        report(lo + (hi - lo) * done[0] / total, f"attack ({order} order): {done[0]}/{total}")

    model = scorer.session.model if scorer.session is not None else None
    with small_model_threads(model) if model is not None else nullcontext():
        runs = {order: _run(target, texts, st, order, step) for order in orders}
    ranking = ("occlusion attribution of the predicted class (compute.attribution)" if scorer.kind == "classifier"
               else "drop in the predicted class's score when the word is deleted (occlusion)")
    res = AttackResult(texts=texts, runs=runs, ranking=ranking, class_names=scorer.label_names,
                       budget={k: st[k] for k in ("max_words", "max_queries", "max_candidates", "kinds")})
    res.summary = [r.summary() for r in runs.values()]
    return res
