"""Attention analysis: per-head statistics, aggregation over heads, rollout, thumbnails. Pure numpy."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import LLMWidgetsError
from ..attention_source import STAT_NAMES  # noqa: F401  (re-exported: the statistics the views show)
from ..layers import block_index

if TYPE_CHECKING:
    from ..attention_source import AttentionSource

STAT_HELP = {
    "entropy": "mean over query tokens of the attention row's entropy (nats); low = focused",
    "sink": "mean attention paid to the first token (BOS/[CLS]): the 'attention sink'",
    "prev_token": "mean attention from each token to the token just before it",
    "diagonal": "mean attention from each token to itself",
}


def _check(attn: np.ndarray) -> np.ndarray:
    attn = np.asarray(attn)
    if attn.ndim < 2 or attn.shape[-1] != attn.shape[-2]:
        raise LLMWidgetsError(f"attention must be [..., T, T], got shape {attn.shape}")
    return attn.astype(np.float32, copy=False)


def offset_score(attn: np.ndarray, offset: int) -> np.ndarray:
    """Mean over query positions i >= offset of attn[..., i, i - offset].

    offset=0: attention to self; 1: to the previous token; for a sequence repeated with period P,
    offset=P-1 is the induction score (attend to the token after the earlier copy of yourself).
    """
    attn = _check(attn)
    t = attn.shape[-1]
    if not 0 <= offset < t:
        return np.full(attn.shape[:-2], np.nan, dtype=np.float32)
    return np.diagonal(attn, offset=-offset, axis1=-2, axis2=-1).mean(axis=-1)


def row_entropy(attn: np.ndarray) -> np.ndarray:
    """Entropy (nats) of each attention row: [..., T]."""
    p = _check(attn)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=-1)
    return h.astype(np.float32)


def head_statistics(attn: np.ndarray) -> np.ndarray:
    """[len(STAT_NAMES), L, H] statistics of attention [L, H, T, T]."""
    attn = _check(attn)
    return np.stack([
        row_entropy(attn).mean(axis=-1),
        attn[..., :, 0].mean(axis=-1),
        offset_score(attn, 1),
        offset_score(attn, 0),
    ]).astype(np.float32)


def mean_over_heads(attn: np.ndarray) -> np.ndarray:
    """[L, T, T]: each layer's attention averaged over heads."""
    return _check(attn).mean(axis=1)


def rollout(attn: np.ndarray, residual: float = 0.5) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema, 2020): [L, T, T], entry l = flow from layer 0 through l.

    Each layer's head-averaged attention is mixed with the identity to account for the residual
    stream (A' = residual * I + (1 - residual) * A, rows renormalised) and the layers multiplied.
    """
    mean = mean_over_heads(attn).astype(np.float64)
    t = mean.shape[-1]
    eye = np.eye(t)
    out = np.empty_like(mean)
    acc = eye
    for layer in range(mean.shape[0]):
        a = residual * eye + (1.0 - residual) * mean[layer]
        a /= a.sum(axis=-1, keepdims=True)
        acc = a @ acc
        out[layer] = acc
    return out.astype(np.float32)


def thumbnails(attn: np.ndarray, size: int) -> np.ndarray:
    """Block-mean downsample of [..., T, T] to at most [..., size, size] (identity when T <= size)."""
    attn = _check(attn)
    t = attn.shape[-1]
    if t <= size:
        return attn
    edges = np.linspace(0, t, size + 1).round().astype(int)
    # sum over row blocks, then column blocks, divide by block areas
    rows = np.add.reduceat(attn, edges[:-1], axis=-2)
    both = np.add.reduceat(rows, edges[:-1], axis=-1)
    counts = np.diff(edges)
    return (both / np.outer(counts, counts)).astype(np.float32)


ROLLOUT_MAX_TOKENS = 1024  # rollout multiplies full [T, T] matrices of every layer
MATERIALISE_MAX_BYTES = 1 << 30  # AttentionResult.attentions builds [L, H, T, T] up to this size


@dataclass
class AttentionResult:
    """Attention of every head for one input. `source` gives any head's weights (eager's, or
    computed on demand for long inputs); `stats` and `thumbnails` summarise every head (None until
    computed, for long inputs where that runs in the background)."""

    raw_tokens: list[str]  # the tokenizer's own tokens
    tokens: list[str]  # as read
    source: "AttentionSource"
    stats: np.ndarray | None = None  # [len(STAT_NAMES), L, H]
    thumbnails: np.ndarray | None = None  # [L, H, S, S] block means
    stat_names: tuple[str, ...] = STAT_NAMES
    causal: bool = False

    @property
    def n_tokens(self) -> int:
        return self.source.n_tokens

    @property
    def missing(self) -> dict:
        """Blocks without softmax attention (a hybrid stack's linear-attention or state-space
        mixers) -> why; their statistics are NaN and their weights are refused, never renumbered."""
        return self.source.missing

    @property
    def attention_blocks(self) -> list[int]:
        """The blocks (block indices) whose attention weights there are."""
        return self.source.attention_blocks

    @property
    def note(self) -> str:
        """What the numbers are, where it is not plain softmax weights of every block (learned sinks:
        rows sum to 1 - `sink_column`; blocks without attention)."""
        return self.source.note

    @property
    def sink_column(self) -> np.ndarray | None:
        """[L, H, T]: the weight each query row gives a learned attention sink (no token), or None."""
        return self.source.sink_column

    @property
    def attentions(self) -> np.ndarray:
        """[L, H, T, T] float32, every head (built from the source for on-demand attention, up to
        MATERIALISE_MAX_BYTES; read heads with `.source.head(layer, head)` beyond)."""
        weights = getattr(self.source, "weights", None)
        if weights is not None:
            return weights
        s = self.source
        if s.missing:
            raise LLMWidgetsError(f"[L, H, T, T] needs every block's attention, and blocks {sorted(s.missing)} have "
                                  f"none ({s.missing[min(s.missing)]}): read the blocks with attention "
                                  f"({s.attention_blocks}) with result.source.head(layer, head)")
        size = 4 * s.n_layers * s.n_heads * s.n_tokens ** 2
        if size > MATERIALISE_MAX_BYTES:
            raise LLMWidgetsError(f"[L, H, T, T] for {s.n_tokens} tokens is {size / 2 ** 30:.1f} GiB: read heads "
                                  "one at a time with result.source.head(layer, head) or .overview(...)")
        return np.stack([[s.head(layer, h) for h in range(s.n_heads)] for layer in range(s.n_layers)])

    def summarise(self, size: int, report=None) -> None:
        """Fill `stats` and `thumbnails` (one streaming pass per head)."""
        self.thumbnails, self.stats = self.source.summaries(size, report)

    def stat(self, name: str) -> np.ndarray:
        """[L, H] values of one head statistic (one of STAT_NAMES)."""
        if name not in self.stat_names:
            raise LLMWidgetsError(f"unknown statistic {name!r}; use one of {list(self.stat_names)}")
        if self.stats is None:
            raise LLMWidgetsError("The head statistics are still being computed: call .wait() on the view.")
        return self.stats[self.stat_names.index(name)]

    def top_heads(self, name: str, k: int = 3) -> list[tuple[int, int, float]]:
        """The k (layer, head, value) with the highest value of a statistic."""
        v = self.stat(name)
        order = np.argsort(v, axis=None)[::-1][:k]
        return [(int(i // v.shape[1]), int(i % v.shape[1]), float(v.flat[i])) for i in order]

    def matrix(self, mode: str, layer: int, head: int) -> np.ndarray:
        """The [T, T] matrix a view draws for a (mode, layer, head) selection (layer: a block index,
        negative from the end)."""
        layer = block_index(layer, self.source.n_layers)
        if mode == "head":
            return self.source.head(layer, head)
        if mode == "mean":
            return self.source.mean_rows(layer, 0, self.n_tokens)
        if mode == "rollout":
            if self.n_tokens > ROLLOUT_MAX_TOKENS:
                raise LLMWidgetsError(f"rollout multiplies full [T, T] matrices of every layer: available up to "
                                      f"{ROLLOUT_MAX_TOKENS} tokens (this input has {self.n_tokens})")
            if any(l in self.missing for l in range(layer + 1)):
                raise LLMWidgetsError(f"rollout multiplies the attention of every block up to {layer}, and blocks "
                                      f"{sorted(l for l in self.missing if l <= layer)} have no softmax attention")
            means = np.stack([self.source.mean_rows(l, 0, self.n_tokens) for l in range(layer + 1)])
            return rollout(means[:, None])[layer]
        raise LLMWidgetsError(f"unknown mode {mode!r}; use 'head', 'mean' or 'rollout'")

    def overview(self, mode: str, layer: int, head: int, size: int) -> tuple[np.ndarray, int]:
        """(matrix, step): what the view draws first; step tokens per cell (max-pooled), 1 = exact."""
        if self.n_tokens <= size or mode == "rollout":
            return self.matrix(mode, layer, head), 1
        return self.source.overview(layer, head if mode == "head" else None, size)


def attention_result(trace, causal: bool = False, summarise_up_to: int | None = None,
                     thumb: int = 48) -> AttentionResult:
    """The AttentionResult of a trace; statistics and thumbnails computed now for inputs of at most
    `summarise_up_to` tokens (None: always)."""
    source = trace.require_attention()
    res = AttentionResult(raw_tokens=list(trace.raw_tokens), tokens=list(trace.tokens), source=source, causal=causal)
    weights = getattr(source, "weights", None)
    if weights is not None:  # eager: vectorised over every head at once
        res.stats, res.thumbnails = head_statistics(weights), thumbnails(weights, thumb)
    elif summarise_up_to is None or source.n_tokens <= summarise_up_to:
        res.summarise(thumb)
    return res
