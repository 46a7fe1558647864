"""The strongest tokens of many units (neurons, dictionary features) over a corpus, kept as it is
read text by text: for each unit the `n_top` (text, position, activation) with the largest positive
activation, and the context of each one for showing it.

    top = RunningTop(n_units=512, n_top=8)
    for i, text in enumerate(texts):
        top.add(acts_of(text), text=i)          # [T, n_units] (or a slice of units: f0=...)
    text, pos, value = top.result()             # [n_units, n_top]; text -1 where fewer tokens fired
"""
from __future__ import annotations

import numpy as np
import torch


class RunningTop:
    """The `n_top` strongest activations of each of `n_units` units seen so far. A token counts only
    where its activation is positive (a unit that never fires has none): the slots left over hold
    text -1, position -1, value 0."""

    def __init__(self, n_units: int, n_top: int):
        self.n_top = n_top
        self.value = torch.full((n_units, n_top), -1.0)
        self.text = torch.full((n_units, n_top), -1, dtype=torch.long)
        self.pos = torch.full((n_units, n_top), -1, dtype=torch.long)

    def add(self, acts: torch.Tensor, text: int, t0: int = 0, f0: int = 0) -> None:
        """Merge `acts` [T, F] (float; NaN counts as not firing), the activations of units f0..f0+F at
        positions t0..t0+T of text number `text`."""
        a = torch.nan_to_num(acts.float().cpu(), nan=-1.0)
        f1 = f0 + a.shape[1]
        m = min(self.n_top, a.shape[0])
        v, p = a.T.topk(m, dim=1)  # [F, m]
        allv = torch.cat([self.value[f0:f1], v], 1)
        allt = torch.cat([self.text[f0:f1], torch.full_like(p, text)], 1)
        allp = torch.cat([self.pos[f0:f1], p + t0], 1)
        keep, pick = allv.topk(self.n_top, dim=1)
        self.value[f0:f1], self.text[f0:f1], self.pos[f0:f1] = keep, allt.gather(1, pick), allp.gather(1, pick)

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(text, position, value) [n_units, n_top], strongest first; -1, -1, 0 where none fired."""
        text, pos = self.text.clone(), self.pos.clone()
        inactive = self.value <= 0
        text[inactive], pos[inactive] = -1, -1
        return text.numpy(), pos.numpy(), self.value.clamp_min(0).numpy()


def contexts(tokens: list, text: np.ndarray, pos: np.ndarray, value: np.ndarray, width: int = 8) -> list[dict]:
    """One unit's top tokens as contexts to show: for each fired slot, {text, position, activation,
    tokens (up to `width` either side), at (the token's index in them)}; `tokens` are the corpus's
    tokens per text."""
    out = []
    for ti, pi, v in zip(np.asarray(text).tolist(), np.asarray(pos).tolist(), np.asarray(value).tolist()):
        if ti < 0:
            continue
        toks = tokens[ti]
        a, b = max(0, pi - width), min(len(toks), pi + width + 1)
        out.append({"text": ti, "position": pi, "activation": float(v), "tokens": list(toks[a:b]), "at": pi - a})
    return out
