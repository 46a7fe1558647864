"""Logit lens (nostalgebraist, 2020): read each layer's residual stream through the model's own final
norm and unembedding, as if the network stopped there. Only for models with an LM head."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import LLMWidgetsError
from .hooks import _get, arch_of, blocks, capture, output_labels


@dataclass
class LogitLensResult:
    labels: list[str]  # input tokens (columns)
    layer_names: list[str]  # rows: "embed", then "layer 0" .. "layer L-1" (after that block)
    top_labels: list[str]  # vocabulary of the labels used by top_index
    top_index: np.ndarray  # [R, T, k] index into top_labels, most likely first
    top_probs: np.ndarray  # [R, T, k]
    next_prob: np.ndarray  # [R, T] probability given to the actual next input token (0 at the end)

    def top(self, row: int, position: int) -> list[tuple[str, float]]:
        return [(self.top_labels[i], float(p)) for i, p in
                zip(self.top_index[row, position], self.top_probs[row, position])]


def _norm_and_unembed(session):
    model = session.model
    arch = arch_of(model)
    norm = _get(model, arch.final_norm) if arch.final_norm else None
    unembed = _get(model, arch.unembed) if arch.unembed else None
    if norm is None or unembed is None:
        raise LLMWidgetsError(
            f"The logit lens needs a language-model head (final norm + unembedding), and {session.name} "
            f"({type(model).__name__}, a {session.kind}) has none. Use a causal LM, e.g. "
            f"llm_widgets.load('gpt2') or llm_widgets.teaching.induction_model()."
        )
    return norm, unembed


def lens_logits(session, text: str, *, truncate: bool = False) -> torch.Tensor:
    """[layers + 1, T, V] logits read from the embeddings and from the residual after each block."""
    norm, unembed = _norm_and_unembed(session)
    enc, _, _ = session.encode(text, truncate=truncate)
    n = len(blocks(session.model))
    holder = {}
    acts = capture(session.model, [("resid", l) for l in range(n)],
                   lambda: holder.setdefault("out", session.forward(**enc)))
    resid = [holder["out"].hidden_states[0][0]] + [acts[("resid", l)][0] for l in range(n)]
    with torch.no_grad():
        return torch.stack([unembed(norm(r)) for r in resid]).float()


def logit_lens(session, text: str, *, k: int = 5, truncate: bool = False) -> LogitLensResult:
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
    return LogitLensResult(labels=list(trace.labels), layer_names=["embed"] + [f"layer {l}" for l in range(n)],
                           top_labels=output_labels(session, vocab_ids), top_index=index,
                           top_probs=top_p.cpu().numpy(), next_prob=nxt.numpy())
