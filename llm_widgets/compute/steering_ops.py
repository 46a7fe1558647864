"""Torch-only ops of steering and concept erasure (see llm_widgets.execution.ops): a direction added
with a strength per batch row, and an affine eraser (LEACE) applied where it stands.

Like llm_widgets.execution.ops, this module imports torch and nothing else of llm_widgets but that
module's `OpError` (its refusals, which the executors turn into the library's errors): a remote
executor ships both by value to servers that do not have the library.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..execution.ops import OpError


def _positions(x: torch.Tensor, positions) -> torch.Tensor:
    """The positions (negative: from the end) as indices into x's tokens, or every position."""
    if positions is None:
        return torch.arange(x.shape[1], device=x.device)
    p = torch.as_tensor(positions, device=x.device, dtype=torch.long).reshape(-1)
    if bool(((p < -x.shape[1]) | (p >= x.shape[1])).any()):
        raise OpError(f"position(s) {p.tolist()} are outside the {x.shape[1]} tokens of this input")
    return p % x.shape[1]


@dataclass(frozen=True)
class RowAdd:
    """`scales[b]` x `vector` ([features]) added at `positions` (None: every position) of batch row
    b: one batched run (or generate) steers every row with its own strength."""

    vector: torch.Tensor  # [F]
    scales: torch.Tensor  # [B]
    positions: Any = None

    def __call__(self, x: torch.Tensor, rows, ctx) -> torch.Tensor:
        if self.vector.shape[-1] != x.shape[-1]:
            raise OpError(f"the steering vector has {self.vector.shape[-1]} features, this site has {x.shape[-1]}")
        r = torch.arange(x.shape[0], device=x.device) if rows is None else torch.as_tensor(
            rows, device=x.device, dtype=torch.long)
        if len(r) != len(self.scales):
            raise OpError(f"{len(self.scales)} strengths for {len(r)} batch rows: give one strength per row")
        p = _positions(x, self.positions)
        add = self.scales.to(x.device, x.dtype)[:, None, None] * self.vector.to(x.device, x.dtype)[None, None, :]
        new = x.clone()
        new[r[:, None], p[None, :]] = new[r[:, None], p[None, :]] + add.expand(len(r), len(p), x.shape[-1])
        return new


@dataclass(frozen=True)
class Affine:
    """x - ((x - bias) @ right.T) @ left.T at `positions` (None: every position) of the rows: the
    LEACE eraser's form (I - left @ right applied around the mean `bias`), or any low-rank
    projection written the same way (left [F, k], right [k, F], bias [F] or None)."""

    left: torch.Tensor
    right: torch.Tensor
    bias: Any = None
    positions: Any = None

    def __call__(self, x: torch.Tensor, rows, ctx) -> torch.Tensor:
        if self.left.shape[0] != x.shape[-1]:
            raise OpError(f"the eraser was fitted on {self.left.shape[0]} features, this site has {x.shape[-1]}")
        r = torch.arange(x.shape[0], device=x.device) if rows is None else torch.as_tensor(
            rows, device=x.device, dtype=torch.long)
        p = _positions(x, self.positions)
        sel = x[r[:, None], p[None, :]].float()
        left, right = self.left.to(x.device, torch.float32), self.right.to(x.device, torch.float32)
        delta = sel - self.bias.to(x.device, torch.float32) if self.bias is not None else sel
        new = x.clone()
        new[r[:, None], p[None, :]] = (sel - (delta @ right.T) @ left.T).to(x.dtype)
        return new
