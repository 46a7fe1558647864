"""MLP neuron activations: the input of each MLP's output projection (after the nonlinearity)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import DoesNotApplyError
from ..execution import Program, Read, run
from ..execution.hooks import check_layer


@dataclass
class NeuronResult:
    tokens: list[str]  # as read
    activations: np.ndarray  # [L, T, N] every block, one forward pass; NaN where a block has no neuron there
    missing: dict = field(default_factory=dict)  # block -> why it has no neuron layer (mixture of experts)
    widths: list[int] = field(default_factory=list)  # neurons of each block (0: none)

    def _check(self, layer: int) -> None:
        if layer in self.missing:
            raise DoesNotApplyError(f"block {layer} has no neurons: {self.missing[layer]}")

    def top_neurons(self, layer: int, token: int, k: int = 10) -> list[tuple[int, float]]:
        """The k neurons of `layer` most active on `token`, highest first."""
        self._check(layer)
        a = self.activations[layer, token, :self.widths[layer] if self.widths else None]
        order = np.argsort(-a, kind="stable")[:k]
        return [(int(i), float(a[i])) for i in order]

    def top_tokens(self, layer: int, neuron: int, k: int | None = None) -> list[tuple[int, float]]:
        """Which tokens fire `neuron`: (position, activation), highest first."""
        self._check(layer)
        a = self.activations[layer, :, neuron]
        order = np.argsort(-a, kind="stable")[:k]
        return [(int(i), float(a[i])) for i in order]


def neuron_activations(session, text: str, *, truncate: bool = False) -> NeuronResult:
    """Every block's MLP neuron activations over `text`, one forward (stopped after the last block's
    neurons); NaN columns where a block has fewer neurons, `missing` where it has none."""
    ad = session.adapter
    ad.require("neurons")
    enc, _, _ = session.encode(text, truncate=truncate)
    n = ad.n_layers
    have = [l for l in range(n) if ad.n_neurons[l]]  # a stack may mix dense and expert blocks (DeepSeek)
    res = run(session, Program(enc, reads=[Read("neurons", l) for l in have], stop=True, label="neurons"))
    got = {l: res.reads[("neurons", l)][0].float().cpu().numpy() for l in have}
    width = max(a.shape[-1] for a in got.values())
    T = enc["input_ids"].shape[1]
    stacked = np.full((n, T, width), np.nan, np.float32)
    for l, a in got.items():
        stacked[l, :, :a.shape[-1]] = a
    tokens = session.readable_tokens(session.tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist()))
    return NeuronResult(tokens=tokens, activations=stacked,
                        missing={l: ad.no_neurons(l) for l in range(n) if l not in got},
                        widths=[got[l].shape[-1] if l in got else 0 for l in range(n)])


__all__ = ["NeuronResult", "neuron_activations", "check_layer"]
