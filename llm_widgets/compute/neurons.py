"""MLP neuron activations: the input of each MLP's output projection (after the nonlinearity)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .hooks import capture, check_layer


@dataclass
class NeuronResult:
    tokens: list[str]  # as read
    activations: np.ndarray  # [L, T, N] every layer, one forward pass

    def top_neurons(self, layer: int, token: int, k: int = 10) -> list[tuple[int, float]]:
        """The k neurons of `layer` most active on `token`, highest first."""
        a = self.activations[layer, token]
        order = np.argsort(-a, kind="stable")[:k]
        return [(int(i), float(a[i])) for i in order]

    def top_tokens(self, layer: int, neuron: int, k: int | None = None) -> list[tuple[int, float]]:
        """Which tokens fire `neuron`: (position, activation), highest first."""
        a = self.activations[layer, :, neuron]
        order = np.argsort(-a, kind="stable")[:k]
        return [(int(i), float(a[i])) for i in order]


def neuron_activations(session, text: str, *, truncate: bool = False) -> NeuronResult:
    if getattr(session, "backend", None) is not None:  # nnsight traces (llm_widgets.backends)
        from ..backends import nnsight_views

        return nnsight_views.neuron_activations(session, text, truncate=truncate)
    trace = session.trace(text, truncate=truncate)
    enc, _, _ = session.encode(text, truncate=truncate)
    session.adapter.require("neurons")
    n = session.adapter.n_layers
    acts = capture(session.model, [("neurons", l) for l in range(n)], lambda: session.forward(**enc))
    stacked = np.stack([acts[("neurons", l)][0].float().cpu().numpy() for l in range(n)])
    return NeuronResult(tokens=list(trace.tokens), activations=stacked)


__all__ = ["NeuronResult", "neuron_activations", "check_layer"]
