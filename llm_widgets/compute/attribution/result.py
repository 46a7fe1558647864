"""AttributionResult: the scores of one attribution run and what they are scores of."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..faithfulness import Faithfulness


@dataclass
class AttributionResult:
    raw_tokens: list[str]  # prompt tokens (tokenizer's own)
    tokens: list[str]  # the same as a person reads them
    scores: np.ndarray  # [K, T] float32: row k = attribution of target k to each prompt token
    targets: list[str]  # K display names ("POSITIVE", " Paris", "POSITIVE \u2212 NEGATIVE", ...)
    target_ids: list[int]  # class index or token id per row (-1 for custom targets)
    method: str  # key of METHODS
    baseline: str  # what the baseline is, for the UI
    output: str  # 'logit', 'prob', 'log_prob' or 'custom': what f measures
    steps: int  # IG steps used (0 for other methods)
    n_samples: int  # samples used by shapley / lime / permutation (0 otherwise)
    faithfulness: Faithfulness | None
    special_mask: np.ndarray  # [T] bool: special tokens (never perturbed, score 0)
    groups: list[int]  # [T] word index of each token (special tokens are their own word)
    words: list[str]  # each word as read
    generated: bool = False  # rows are greedily generated tokens of a causal LM
    contrast: str | None = None
    notice: str = ""
    input_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    output_values: np.ndarray | None = None  # [K] f(x), the explained outputs
    base_values: np.ndarray | None = None  # [K] f(baseline)

    def to_shap(self, row: int | None = None):
        """The scores as a `shap.Explanation` (special tokens left out; base values are f(baseline)),
        so shap's own plots work: shap.plots.text(result.to_shap(0)). row=None: every target, as
        rows of one Explanation; row=k: target k alone."""
        import shap

        keep = ~np.asarray(self.special_mask, bool)
        words = np.array(self.tokens, dtype=object)[keep]
        if row is not None:
            return shap.Explanation(values=self.scores[row, keep].astype(np.float64),
                                    base_values=float(self.base_values[row]), data=words,
                                    feature_names=list(words))
        return shap.Explanation(values=self.scores[:, keep].astype(np.float64),
                                base_values=np.asarray(self.base_values, np.float64),
                                data=np.array([words] * len(self.targets)), feature_names=list(words),
                                output_names=list(self.targets))

    @property
    def signed(self) -> bool:
        from .methods import REGISTRY

        return REGISTRY[self.method].signed

    @property
    def delta(self) -> np.ndarray | None:
        return None if self.faithfulness is None else self.faithfulness.delta

    def word_scores(self) -> np.ndarray:
        """[K, W]: scores summed over the sub-word tokens of each word (see `words`)."""
        out = np.zeros((self.scores.shape[0], len(self.words)), dtype=np.float32)
        np.add.at(out.T, np.asarray(self.groups), self.scores.T)
        return out

    def top(self, row: int = 0, k: int = 5) -> list[tuple[str, float]]:
        """The k highest-scoring prompt tokens for target `row`, as (label, score)."""
        s = self.scores[row]
        order = [i for i in np.argsort(-s, kind="stable") if not self.special_mask[i]]
        return [(self.tokens[i], float(s[i])) for i in order[:k]]
