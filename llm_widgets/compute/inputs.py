"""Model inputs for computations that take a batch: one text, several texts, or token ids."""
from __future__ import annotations

import numpy as np
import torch

from ..errors import LLMWidgetsError


def batch_inputs(session, inputs, what: str = "inputs") -> dict:
    """{input_ids [B, T], ...} on the session's device from a text, a list of texts with the same
    number of tokens (no padding: position i of one lines up with position i of the others), or
    token ids ([T] or [B, T]: a tensor, array or nested list of ints). A text may be a chat
    (`Session.chat(messages)`, llm_widgets.chat): its template's ids, as Session.encode gives them."""
    if isinstance(inputs, str):
        return session.encode(inputs)[0]
    if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(x, str) for x in inputs):
        encs = [session.encode(x)[0] for x in inputs]
        lengths = [e["input_ids"].shape[1] for e in encs]
        if len(set(lengths)) > 1:
            raise LLMWidgetsError(f"the texts of {what} must have the same number of tokens (they are not "
                                  f"padded), got {sorted(set(lengths))}; pass input_ids [batch, tokens] instead.")
        keys = set().union(*encs)
        return {k: torch.cat([e[k] if k in e else torch.zeros_like(e["input_ids"]) for e in encs]) for k in keys}
    if isinstance(inputs, (list, tuple)) and any(isinstance(x, str) for x in inputs):
        raise LLMWidgetsError(f"{what} must be a text, a list of texts or token ids, got a list mixing both")
    try:
        ids = torch.as_tensor(np.asarray(inputs) if not isinstance(inputs, torch.Tensor) else inputs)
    except (TypeError, ValueError, RuntimeError):
        raise LLMWidgetsError(f"{what} must be a text, a list of texts or token ids [batch, tokens], "
                              f"got {type(inputs).__name__}") from None
    if ids.dtype == torch.bool or ids.dtype.is_floating_point or ids.dtype.is_complex:
        raise LLMWidgetsError(f"token ids in {what} must be integers, got {ids.dtype}")
    if ids.dim() == 1:
        ids = ids[None]
    if ids.dim() != 2 or ids.numel() == 0:
        raise LLMWidgetsError(f"token ids in {what} must be [tokens] or [batch, tokens] and not empty, "
                              f"got shape {tuple(ids.shape)}")
    emb = session.model.get_input_embeddings()
    vocab = getattr(emb, "num_embeddings", None) or emb.weight.shape[0]
    if int(ids.min()) < 0 or int(ids.max()) >= vocab:
        raise LLMWidgetsError(f"token ids in {what} must be in 0..{vocab - 1}, got {int(ids.min())}..{int(ids.max())}")
    return {"input_ids": ids.long().to(session.device)}
