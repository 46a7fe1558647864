"""LogitLensView: the next token read from every layer's residual stream."""
from __future__ import annotations

import traitlets as t

from .. import fallback
from ..compute.logit_lens import logit_lens
from .base import View
from .traits import Array, Index, Layer


class LogitLensView(View):
    """Logit lens: the most likely next token read from every layer's residual stream.

    >>> LogitLensView(session, "The Eiffel Tower is in the city of")

    Rows are the embeddings (`selected_layer` = lw.EMBEDDINGS) then the output of each block
    (`selected_layer` = block index), columns positions; cells show the top token and are coloured
    by its probability (or, with colour='next', by the probability of the actual next token).
    Click a cell for the top-k list; `selected_layer` and `selected_token` update.
    """

    _bundle_name = "logit_lens"
    tokens = t.List(t.Unicode()).tag(sync=True)
    n_layers = t.Int(0).tag(sync=True)
    layer_names = t.List(t.Unicode()).tag(sync=True)  # row titles, embeddings first
    top_tokens = t.List(t.Unicode()).tag(sync=True)
    top_index = Array("int32", ndim=3).tag(sync=True)  # [R, T, k] into top_tokens
    top_probs = Array("float32", ndim=3).tag(sync=True)  # [R, T, k]
    next_prob = Array("float32", ndim=2).tag(sync=True)  # [R, T]
    colour = t.Enum(["top", "next"], default_value="top").tag(sync=True)
    selected_layer = Layer(embeddings=True).tag(sync=True)  # row = selected_layer + 1
    selected_token = Index("tokens").tag(sync=True)

    def __init__(self, session, text: str, *, k: int = 5, truncate: bool = False, **kwargs):
        self.result = r = logit_lens(session, text, k=k, truncate=truncate)
        super().__init__(title=kwargs.pop("title", f"Logit lens \u00b7 {session.name}"),
                         notice=session.trace(text, truncate=truncate).notice, tokens=r.tokens,
                         n_layers=len(r.layer_names) - 1, layer_names=r.layer_names, top_tokens=r.top_tokens,
                         top_index=r.top_index, top_probs=r.top_probs, next_prob=r.next_prob, **kwargs)

    def _static_figure(self) -> str:
        r = self.result
        return fallback.heatmap(r.top_probs[..., 0], "Logit lens: probability of the top next token, rows = "
                                "embeddings then each block, columns = positions", vmax=1.0)

