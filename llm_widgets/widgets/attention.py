"""AttentionView: model view (layer x head grid), head view, mean/rollout, head statistics."""
from __future__ import annotations

import traitlets as t

from ..compute.attention import STAT_HELP, attention_result, mean_over_heads, rollout, thumbnails
from .base import View, encode_array
from .traits import Array, Index

THUMB = 48  # thumbnails are at most THUMB x THUMB cells; the selected head travels at full size
EXPORT_ALL_CELLS = 1 << 22  # exports embed every head at full size up to this many cells


class AttentionView(View):
    """Attention of every head of every layer for one text.

    >>> AttentionView(session, "The cat sat on the mat.")

    Read or set `selected_layer` (block index), `selected_head`, `selected_token` (None: none)
    and `mode` ('head', 'mean', 'rollout'); `.result` holds the numbers (an AttentionResult).
    """

    _bundle_name = "attention"
    tokens = t.List(t.Unicode()).tag(sync=True)
    n_layers = t.Int(0).tag(sync=True)
    n_heads = t.Int(0).tag(sync=True)
    causal = t.Bool(False).tag(sync=True)
    grid = Array("uint8", ndim=4).tag(sync=True)  # [L, H, S, S] thumbnails
    matrix = Array("float16", ndim=2).tag(sync=True)  # [T, T] for the current (mode, layer, head)
    stats = Array("float32", ndim=3).tag(sync=True)  # [n_stats, L, H]
    stat_names = t.List(t.Unicode()).tag(sync=True)
    stat_help = t.Dict().tag(sync=True)
    mode = t.Enum(["head", "mean", "rollout"], default_value="head").tag(sync=True)
    selected_layer = Index("n_layers", default=0, optional=False).tag(sync=True)
    selected_head = Index("n_heads", default=0, optional=False).tag(sync=True)
    selected_token = Index("tokens").tag(sync=True)

    def __init__(self, session, text: str, *, mode: str = "head", truncate: bool = False, **kwargs):
        trace = session.trace(text, truncate=truncate)
        self.result = attention_result(trace, causal=session.is_causal)
        attn = self.result.attentions
        n_layers, n_heads = attn.shape[:2]
        super().__init__(
            title=kwargs.pop("title", f"Attention \u00b7 {session.name}"),
            notice=trace.notice,
            tokens=self.result.tokens,
            n_layers=n_layers,
            n_heads=n_heads,
            causal=session.is_causal,
            grid=encode_array(thumbnails(attn, THUMB), "uint8", 0.0, 1.0),
            stats=self.result.stats,
            stat_names=list(self.result.stat_names),
            stat_help=dict(STAT_HELP),
            mode=mode,
            **kwargs,
        )
        self._send_matrix()
        self.observe(self._send_matrix, names=["mode", "selected_layer", "selected_head"])

    def _send_matrix(self, change=None):
        m = self.result.matrix(self.mode, self.selected_layer, self.selected_head)
        packed = encode_array(m, "float16")
        packed.update(mode=self.mode, layer=self.selected_layer, head=self.selected_head)
        self.matrix = packed

    def _export_extra(self) -> dict:
        attn = self.result.attentions
        if attn.size > EXPORT_ALL_CELLS:
            return {"partial": True}
        return {"heads": encode_array(attn, "float16"), "mean": encode_array(mean_over_heads(attn), "float16"),
                "rollout": encode_array(rollout(attn), "float16")}
