"""SHAP: exact Shapley values over words (the reference), and the `shap` library's Partition
explainer with its text masker for inputs too long to enumerate.

Exact: every coalition of the (at most MAX_EXACT_WORDS) words is evaluated, batched; a word left
out has each of its tokens replaced by the baseline embedding (as occlusion does), special tokens
always stay. phi_i = sum_S |S|! (n - |S| - 1)! / n! (v(S + i) - v(S)), so sum(phi) = v(all) -
v(none) exactly. A word's value is shared evenly by its sub-word tokens (word-level view: the
word's value).
"""
from __future__ import annotations

from math import factorial

import numpy as np

from ..errors import LLMWidgetsError

MAX_EXACT_WORDS = 12


def shapley_from_table(values: np.ndarray, n: int) -> np.ndarray:
    """Exact Shapley values [K, n] from v over every coalition: values [2**n, K], row m = coalition
    whose members are the set bits of m."""
    if values.shape[0] != 2 ** n:
        raise LLMWidgetsError(f"need {2 ** n} coalition values for {n} players, got {values.shape[0]}")
    masks = np.arange(2 ** n)
    size = np.array([bin(m).count("1") for m in masks])
    weight = np.array([factorial(s) * factorial(n - s - 1) / factorial(n) if s < n else 0.0 for s in range(n + 1)])
    out = np.zeros((values.shape[1], n))
    for i in range(n):
        without = masks[(masks >> i) & 1 == 0]
        out[:, i] = (weight[size[without]][:, None] * (values[without | (1 << i)] - values[without])).sum(0)
    return out


def word_features(groups: list[int], feats: np.ndarray) -> list[np.ndarray]:
    """The positions (within the perturbable tokens `feats`) of each word, in order."""
    words: dict[int, list[int]] = {}
    for j, tok in enumerate(feats):
        words.setdefault(groups[tok], []).append(j)
    return [np.array(v) for v in words.values()]


def exact_shap(run, groups: list[int]) -> np.ndarray:
    """[K, n_feats] exact Shapley values of the perturbable tokens, computed over words."""
    words = word_features(groups, run.feats)
    n = len(words)
    if n > MAX_EXACT_WORDS:
        raise LLMWidgetsError(f"exact SHAP enumerates 2^{n} coalitions of {n} words; up to {MAX_EXACT_WORDS} "
                              "words are allowed (longer inputs use the shap library's Partition explainer).")
    coal = (np.arange(2 ** n)[:, None] >> np.arange(n)[None, :]) & 1  # [2^n, n] word present
    masks = np.zeros((2 ** n, len(run.feats)), dtype=bool)
    for w, pos in enumerate(words):
        masks[:, pos] = coal[:, w:w + 1].astype(bool)
    values = run.eval_masks(masks, f"exact SHAP: {2 ** n} coalitions of {n} words").astype(np.float64)
    phi = shapley_from_table(values, n)  # [K, n]
    out = np.zeros((phi.shape[0], len(run.feats)), np.float64)
    for w, pos in enumerate(words):
        out[:, pos] = phi[:, w:w + 1] / len(pos)
    return out.astype(np.float32)


def partition_shap(session, text: str, class_ids: list[int], max_evals: int, seed: int,
                   report) -> tuple[np.ndarray, list[str]]:
    """[K, T] SHAP values from shap's Partition explainer with its Text masker (tokens masked with the
    tokenizer's mask / unknown token), for a sequence classifier's class logits."""
    try:
        import shap
    except ImportError:
        raise LLMWidgetsError("SHAP on inputs longer than 12 words uses the `shap` library: pip install shap "
                              "(or use method='shapley', our sampling estimator).") from None
    import torch

    from ..session import model_inputs

    tok = session.tokenizer
    mask = tok.mask_token or tok.unk_token or "..."

    def f(texts):
        texts = [str(t) for t in texts]
        enc = model_inputs(tok(texts, return_tensors="pt", padding=True, truncation=True,
                               max_length=session.max_length))
        with torch.no_grad():
            logits = session.model(**{k: v.to(session.device) for k, v in enc.items()}).logits.float()
        report(0.5, "shap Partition explainer")
        return logits[:, class_ids].cpu().numpy()

    masker = shap.maskers.Text(tok, mask_token=mask)
    explainer = shap.Explainer(f, masker, algorithm="partition", seed=seed)
    ev = explainer([text], max_evals=max_evals, silent=True)
    return np.asarray(ev.values[0], np.float32).T, [str(d) for d in ev.data[0]]
