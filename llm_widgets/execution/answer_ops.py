"""The op of a patching sweep whose answers are several tokens: the teacher-forced reads of
`ops.Targets` (the log-probs of the answers' tokens, each at the position before it) summed per row,
with the top-k outputs at one position. Like ops.py it imports torch and ops.py only (it is shipped
by value to a server that does not have llm_widgets); its errors are `ops.OpError`."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .ops import Targets


@dataclass(frozen=True)
class AnswerMetric:
    """Of logits [B, P, V] (every position kept, or the last ones): {'values': [B] float64, the
    rows' output 0 of `reads` (a 'decoder' Targets), 'top_p', 'top_i': the top-k probabilities and
    indices at position `at` (an index into P), 'ends': rows 0 and 1's logits there (a sweep's clean
    and corrupted runs)}."""

    reads: Targets
    at: int
    k: int = 10

    def __call__(self, lg: torch.Tensor, ctx) -> dict:
        vals = self.reads(lg, ctx)[:, 0]
        last = lg[:, self.at].float()
        tp, ti = torch.softmax(last, -1).topk(min(self.k, last.shape[-1]), dim=-1)
        return {"values": vals.double(), "top_p": tp, "top_i": ti, "ends": last[:2]}
