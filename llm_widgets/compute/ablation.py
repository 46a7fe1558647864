"""Ablation: attention heads and MLP neurons switched off (zero) or set to their mean while inside a
`with ablate(...)` block, and what that does to the output probabilities.

    with ablate(session, heads=[(1, 3)]):          # zero head 3 of layer 1
        out = session.forward(**enc)
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..checks import integer
from ..errors import LLMWidgetsError
from .hooks import check_layer, final_logits, hooks, output_names


def _check_units(session, units, what: str, size_of: Callable[[int], int]) -> list[tuple[int, int]]:
    out = []
    for item in units or []:
        try:
            layer, unit = (int(v) for v in item)
        except (TypeError, ValueError):
            raise LLMWidgetsError(f"{what} must be (layer, index) pairs, got {item!r}") from None
        check_layer(session.model, layer)
        n = size_of(layer)
        if not 0 <= unit < n:
            raise LLMWidgetsError(f"{what[:-1]} {unit} is out of range in layer {layer}: valid 0..{n - 1}.")
        out.append((layer, unit))
    return out


def num_neurons(session, layer: int) -> int:
    ad = session.adapter
    ad.site("neurons", layer)  # says why, where there are none
    return ad.n_neurons[layer]


@contextmanager
def ablate(session, heads=(), neurons=(), mode: str = "zero"):
    """Ablate attention heads and/or MLP neurons, given as (layer, index) pairs, while inside.

    mode 'zero' sets their output to 0; 'mean' replaces it with its mean over the positions (and
    batch) of the current input. Heads are cut at the attention output before the output
    projection, so the head's contribution (and only it) is removed.
    """
    if mode not in ("zero", "mean"):
        raise LLMWidgetsError(f"mode must be 'zero' or 'mean', got {mode!r}")
    session.adapter.require("interventions")
    dh = session.adapter.head_dim
    heads = _check_units(session, heads, "heads", lambda l: session.n_heads)
    neurons = _check_units(session, neurons, "neurons", lambda l: num_neurons(session, l))
    by_site: dict = {}
    for layer, hd in heads:
        by_site.setdefault(("heads", layer), []).extend(range(hd * dh, (hd + 1) * dh))
    for layer, n in neurons:
        by_site.setdefault(("neurons", layer), []).append(n)

    def editor(cols):
        idx = torch.tensor(sorted(set(cols)))

        def fn(x):
            x = x.clone()
            i = idx.to(x.device)
            if mode == "zero":
                x[..., i] = 0
            else:
                sel = x[..., i]
                x[..., i] = sel.reshape(-1, sel.shape[-1]).mean(0).expand_as(sel)
            return x
        return fn

    with hooks(session.model, [(site, layer, editor(cols)) for (site, layer), cols in by_site.items()]):
        yield


@dataclass
class AblationEffect:
    """Output probabilities at one position before and after an ablation."""
    outputs: list[str]  # the candidate outputs (tokens or classes) shown, most changed first
    ids: list[int]  # their vocabulary / class indices
    before: np.ndarray  # [k] probabilities without the ablation
    after: np.ndarray  # [k] with it
    position: int
    note: str = ""

    @property
    def change(self) -> np.ndarray:
        return self.after - self.before


def ablation_effect(session, text: str, heads=(), neurons=(), mode: str = "zero", position: int = -1,
                    k: int = 10) -> AblationEffect:
    """Probabilities of the `k` outputs whose probability changes most when ablating, at `position`
    (default: the last token, i.e. the next-token prediction; the class for classifiers)."""
    if getattr(session, "backend", None) is not None:  # nnsight traces (llm_widgets.backends)
        from ..backends import nnsight_views

        return nnsight_views.ablation_effect(session, text, heads=heads, neurons=neurons, mode=mode,
                                             position=position, k=k)
    session.adapter.require("interventions")
    k = integer(k, "k", low=1)
    enc, _, _ = session.encode(text)
    if getattr(session.forward(**enc), "logits", None) is None:
        raise LLMWidgetsError(f"{session.name} has no output head (no logits): there are no output "
                              f"probabilities to compare. Use a causal LM or a classifier.")
    before = torch.softmax(final_logits(session.forward(**enc), position)[0].float(), -1)
    with ablate(session, heads=heads, neurons=neurons, mode=mode):
        after = torch.softmax(final_logits(session.forward(**enc), position)[0].float(), -1)
    order = torch.argsort((after - before).abs(), descending=True)[:k].tolist()
    return AblationEffect(outputs=output_names(session, order), ids=order, before=before[order].cpu().numpy(),
                          after=after[order].cpu().numpy(),
                          position=position)
