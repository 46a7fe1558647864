"""The write op of the frozen replacement model, torch only (like llm_widgets.execution.ops): a site
replaced by a given value that the rest of the forward reads as a fresh source of gradients.

`Source` stands at the embedding output (the token embeddings) and at each MLP output (the
transcoder's reconstruction plus its error term: the MLP's own dependence on its input is cut, it
reaches the rest of the model only through feature and error nodes), holding a leaf tensor the
caller made, so the caller takes gradients at it (a read of the site would be a copy). A transcoder with a
skip connection adds `x @ W_skip.T` of its input, read earlier in the same forward (a `Stash` of
llm_widgets.dictionaries.coding): that path is linear and stays in the gradient.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..dictionaries.coding import stash_of
from ..execution.ops import OpError


@dataclass(frozen=True)
class Source:
    """The site's activation [B, T, F] replaced by `value` (a tensor of that shape, typically a leaf
    that requires gradients: the caller keeps it and takes gradients at it); plus `x @ W_skip.T` of
    the stashed input (`inputs`: the Stash keys whose sum is the transcoder's input) where `W_skip`
    is given."""

    value: torch.Tensor
    W_skip: Optional[torch.Tensor] = None
    inputs: tuple = ()

    def __call__(self, x: torch.Tensor, rows, ctx) -> torch.Tensor:
        if tuple(self.value.shape) != tuple(x.shape):
            raise OpError(f"the frozen replacement model's source is {list(self.value.shape)}, the site has "
                          f"{list(x.shape)}")
        out = self.value.to(x.device, x.dtype).clone()  # not the leaf itself: the model may add to it in place
        if self.W_skip is None:
            return out
        box = stash_of(ctx)
        missing = [k for k in self.inputs if k not in box]
        if missing:
            raise OpError(f"the transcoder's input was not read before its output in this forward ({missing})")
        xin = box.pop(self.inputs[0])
        for k in self.inputs[1:]:
            xin = xin + box.pop(k)
        skip = xin.to(self.W_skip.dtype) @ self.W_skip.to(xin.device).T
        return out + skip.to(out.dtype)
