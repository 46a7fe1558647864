"""One feature of a dictionary, as an object other functions take: its decoder direction steers the
residual stream (`lw.steer` calls `steering_direction`).

    f = sae.feature(7)
    with lw.steer(s, f, layer=3, strength=4.0): ...     # adds 4 * W_dec[7] to block 3's output
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..compute.steering import steer_layer
from ..errors import LLMWidgetsError
from ..layers import EMBEDDINGS


@dataclass(frozen=True, eq=False)
class Feature:
    """Feature `index` of `dictionary` (a llm_widgets.dictionaries.Dictionary): build it with
    `dictionary.feature(index)`, which checks the index."""

    dictionary: Any
    index: int

    def __repr__(self) -> str:
        return f"Feature({self.index} of {self.dictionary!r})"

    @property
    def direction(self) -> torch.Tensor:
        """The feature's decoder row W_dec[index], of d_out values: what one unit of its activation adds
        at the site the dictionary writes, before any decode-time rescaling."""
        return self.dictionary.weights.W_dec[self.index]

    def steering_direction(self, session, layer) -> torch.Tensor:
        """The [d_model] vector `lw.steer` adds to block `layer`'s output: W_dec[index], the residual
        stream direction the feature writes. Refused where that is not what the feature adds there: a
        dictionary whose site is not the output of block `layer` (another layer, another site, a
        transcoder), or one that rescales its output per token (normalize_activations
        'constant_norm_rescale' / 'layer_norm': use lw.edit_features(add=...), which scales per token)."""
        d = self.dictionary
        d.check(session)
        site = d.site
        if d.transcoder or site.site != "resid":
            raise LLMWidgetsError(
                f"{self!r}: the dictionary writes {d.out_site if d.transcoder else site}, not the residual stream "
                f"after a block, which steer() adds to; use lw.edit_features(s, dictionary, add={{{self.index}: "
                f"strength}}) to add the feature where the dictionary writes")
        want = steer_layer(session, layer)
        have = site.layer if site.layer == EMBEDDINGS else session.adapter.check_layer(site.layer)
        if want != have:
            raise LLMWidgetsError(f"{self!r} reads and writes the residual stream after block {have!r}, not "
                                  f"{want!r}: steer at layer={have!r}")
        if d.weights.normalize in ("constant_norm_rescale", "layer_norm"):
            raise LLMWidgetsError(
                f"{self!r}: the dictionary rescales its output per token (normalize_activations="
                f"{d.weights.normalize!r}), so the feature adds no one fixed vector; use lw.edit_features(s, "
                f"dictionary, add={{{self.index}: strength}}), which scales it per token")
        return self.direction.detach().float().cpu()
