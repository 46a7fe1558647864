"""The readout rule, once: from a residual-stream state to the model's logits, through its final
norm(s), its head, its logit scale and its soft-capping (tanh(logit / cap) * cap), in that order.

Both `Adapter.readout` (on the model here) and `execution.ops.Readout` (inside an executor's run,
here or on an nnsight server) call `logits`. It imports torch only, so it ships by value to a
server that has no llm_widgets (the nnsight backend registers it with the ops)."""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch


def _first(x):
    """A module's first output (a tuple's first item, or the tensor itself)."""
    return x[0] if isinstance(x, (tuple, list)) else x


def logits(h: torch.Tensor, call: Callable[[str, torch.Tensor], object], norms: Sequence[str], head: str,
           scale: float = 1.0, softcap: Optional[float] = None, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """The logits of residual-stream state `h` [..., D]: `call(path, x)` runs the model's module at
    `path` (the final norms in order, then the head); the head's output, cast to `dtype` when given,
    is multiplied by `scale` (when not 1) and soft-capped at `softcap` (when set)."""
    for path in norms:
        h = _first(call(path, h))
    out = _first(call(head, h))
    if dtype is not None:
        out = out.to(dtype)
    if scale != 1.0:
        out = out * scale
    if softcap:
        out = torch.tanh(out / softcap) * softcap
    return out
