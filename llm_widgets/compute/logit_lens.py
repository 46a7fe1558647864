"""Logit lens (nostalgebraist, 2020): read each layer's residual stream through the model's own final
norm and unembedding, as if the network stopped there. Only for models with an LM head."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..checks import integer
from ..layers import EMBEDDINGS, hidden_row
from ..execution import Program, Read, ops, run
from .outputs import output_names


@dataclass
class LogitLensResult:
    tokens: list[str]  # input tokens as read (columns)
    layer_names: list[str]  # row titles: "embeddings", then "layer 0" .. "layer L-1" (after that block)
    top_tokens: list[str]  # the output tokens top_index points into
    top_index: np.ndarray  # [R, T, k] index into top_tokens, most likely first
    top_probs: np.ndarray  # [R, T, k]
    next_prob: np.ndarray  # [R, T] probability given to the actual next input token (0 at the end)

    def top(self, layer, position: int) -> list[tuple[str, float]]:
        """The top outputs read after block `layer` (negative: from the end, -1 = the last block;
        lw.EMBEDDINGS: read from the embeddings) at a position. The arrays' rows are embeddings
        first: block `layer` is row `layer + 1`."""
        row = hidden_row(layer, len(self.layer_names) - 1)
        return [(self.top_tokens[i], float(p)) for i, p in
                zip(self.top_index[row, position], self.top_probs[row, position])]


def _lens(session, text: str, truncate: bool, k: int | None):
    """The residual before the first block and after each block read out through the model's own
    readout (final norm, unembedding, scaling, soft-capping: see the adapter) where the model runs:
    the logits, or (k) the top-k and the next token's probability (`ops.Readout`)."""
    ad = session.adapter
    ad.require("logit_lens")
    enc, _, _ = session.encode(text, truncate=truncate)
    ids = enc["input_ids"][0]
    readout = ops.Readout(tuple(ad.final_norm), ad.head, float(ad.logit_scale), ad.softcap, k=k,
                          ids=None if k is None else ids.cpu())
    layers = [EMBEDDINGS] + list(range(ad.n_layers))
    res = run(session, Program(enc, reads=[Read("resid", l, reduce=readout) for l in layers], stop=True,
                               label="logit lens"))
    return enc, [res.reads[("resid", l)] for l in layers]


def lens_logits(session, text: str, *, truncate: bool = False) -> torch.Tensor:
    """[layers + 1, T, V] logits read from the embeddings and from the residual after each block,
    through the model's own readout (final norm, unembedding, soft-capping: see the adapter)."""
    _, got = _lens(session, text, truncate, None)
    return torch.stack([g[0] for g in got]).float()


def logit_lens(session, text: str, *, k: int = 5, truncate: bool = False) -> LogitLensResult:
    """The top-k outputs read from every layer at every position, and the probability each layer
    gives the actual next token (the top-k are picked where the model runs: [L, T, V] logits never
    travel)."""
    k = integer(k, "k", low=1)
    enc, got = _lens(session, text, truncate, k)
    tops = {key: torch.stack([g[key][0] for g in got]) for key in ("top_p", "top_i", "next")}
    tokens = session.readable_tokens(session.tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist()))
    return lens_result(session, tokens, tops)


def lens_result(session, tokens: list[str], tops: dict) -> LogitLensResult:
    """The LogitLensResult of a lens's rows (the embeddings, then after each block): `tops` holds
    their top-k probabilities and indices [rows, T, k] and next-token probabilities [rows, T]
    (`ops.top_and_next`)."""
    top_i = tops["top_i"].cpu()
    vocab_ids = sorted(set(top_i.flatten().tolist()))
    where = {v: j for j, v in enumerate(vocab_ids)}
    index = np.vectorize(where.__getitem__, otypes=[np.int32])(top_i.numpy())
    n = top_i.shape[0] - 1
    return LogitLensResult(tokens=tokens, layer_names=["embeddings"] + [f"layer {l}" for l in range(n)],
                           top_tokens=output_names(session, vocab_ids), top_index=index,
                           top_probs=tops["top_p"].float().cpu().numpy(), next_prob=tops["next"].float().cpu().numpy())
