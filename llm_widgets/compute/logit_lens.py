"""Logit lens (nostalgebraist, 2020): read each layer's residual stream through the model's own final
norm and unembedding, as if the network stopped there. Only for models with an LM head."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..checks import integer
from ..layers import hidden_row
from .hooks import capture, output_names


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


def lens_logits(session, text: str, *, truncate: bool = False) -> torch.Tensor:
    """[layers + 1, T, V] logits read from the embeddings and from the residual after each block,
    through the model's own readout (final norm, unembedding, soft-capping: see the adapter)."""
    if getattr(session, "backend", None) is not None:  # the session's backend runs it (llm_widgets.backends)
        return session.backend.lens_logits(session, text, truncate=truncate)
    ad = session.adapter
    ad.require("logit_lens")
    enc, _, _ = session.encode(text, truncate=truncate)
    n = ad.n_layers
    holder = {}
    acts = capture(session.model, [("resid", l) for l in range(n)],
                   lambda: holder.setdefault("out", session.forward(**enc)))
    resid = [holder["out"].hidden_states[0][0]] + [acts[("resid", l)][0] for l in range(n)]
    with torch.no_grad():
        return torch.stack([ad.readout(r[None])[0] for r in resid]).float()


def logit_lens(session, text: str, *, k: int = 5, truncate: bool = False) -> LogitLensResult:
    if getattr(session, "backend", None) is not None:  # the session's backend runs it (llm_widgets.backends)
        return session.backend.logit_lens(session, text, k=k, truncate=truncate)
    k = integer(k, "k", low=1)
    logits = lens_logits(session, text, truncate=truncate)
    probs = torch.softmax(logits, -1)
    top_p, top_i = probs.topk(min(k, probs.shape[-1]), dim=-1)
    trace = session.trace(text, truncate=truncate)
    ids = torch.as_tensor(trace.input_ids, device=probs.device)
    nxt = torch.zeros(probs.shape[:2])
    nxt[:, :-1] = probs[:, torch.arange(len(ids) - 1), ids[1:]].cpu()
    vocab_ids = sorted(set(top_i.flatten().tolist()))
    where = {v: j for j, v in enumerate(vocab_ids)}
    index = np.vectorize(where.__getitem__, otypes=[np.int32])(top_i.cpu().numpy())
    n = logits.shape[0] - 1
    return LogitLensResult(tokens=list(trace.tokens), layer_names=["embeddings"] + [f"layer {l}" for l in range(n)],
                           top_tokens=output_names(session, vocab_ids), top_index=index,
                           top_probs=top_p.cpu().numpy(), next_prob=nxt.numpy())
