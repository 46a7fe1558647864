"""The model's outputs as views name them: logits at a position, and the names of output ids
(tokens, or class names for a classifier)."""
from __future__ import annotations

import inspect

import torch


def final_logits(out, position: int) -> torch.Tensor:
    """[B, V] logits at `position` for token-level outputs, or [B, C] for sequence classifiers."""
    logits = out.logits
    return logits[:, position] if logits.dim() == 3 else logits


def output_names(session, ids: list[int]) -> list[str]:
    classes = session.class_labels
    if classes is not None:
        return [classes[i] for i in ids]
    return session.readable_tokens(session.tokenizer.convert_ids_to_tokens(list(ids)))


def keeps_logits(model) -> bool:
    """The model's forward takes `logits_to_keep` (read from its class: a wrapper may replace the
    instance's forward)."""
    try:
        return "logits_to_keep" in inspect.signature(type(model).forward).parameters
    except (TypeError, ValueError):
        return False
