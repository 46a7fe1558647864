"""AttentionView: model view (layer x head grid), head view, mean/rollout, head statistics."""
from __future__ import annotations

import numpy as np
import traitlets as t

from .. import fallback
from ..compute.attention import ROLLOUT_MAX_TOKENS, STAT_HELP, attention_result, mean_over_heads, rollout
from .base import View, encode_array
from .traits import Array, Index, Layer, Map, Record

THUMB = 48  # thumbnails are at most THUMB x THUMB cells; the selected head travels at full size
OVERVIEW = 512  # longer inputs send a max-pooled overview of the head, and exact tiles on request
TILE = 256  # the largest tile (rows and columns) the front end may ask for
SUMMARISE_NOW = 2048  # up to this many tokens the grid and statistics come with the first frame
EXPORT_ALL_CELLS = 1 << 22  # exports embed every head at full size up to this many cells
# what `matrix` and `tile` are of: the head (mode, layer, head) they show, the overview's pooling
# (step tokens per cell; n tokens in all) and the tile's first row and column
MATRIX_OF = {"mode": ("head", "mean", "rollout"), "layer": int, "head": int, "step": int, "n": int}
TILE_OF = {"mode": ("head", "mean"), "layer": int, "head": int, "r0": int, "c0": int}


class AttentionView(View):
    """Attention of every head of every layer for one text.

    >>> AttentionView(session, "The cat sat on the mat.")

    Read or set `selected_layer` (block index), `selected_head`, `selected_token` (None: none)
    and `mode` ('head', 'mean', 'rollout'); `.result` holds the numbers (an AttentionResult).
    Long inputs (over OVERVIEW tokens) show a max-pooled overview of the selected head, with exact
    tiles fetched as the front end zooms in; their grid thumbnails and head statistics are computed
    in the background (progress bar; `.wait()` blocks until done). Weights come from the model's
    eager attention for short inputs, else are computed on demand (llm_widgets.attention_source).
    """

    _bundle_name = "attention"
    # every head at full size (and its mean and rollout) when small enough; else partial
    _export_record = Record({"partial": t.Bool(), "heads": Array("float16"), "mean": Array("float16"),
                             "rollout": Array("float16")}, optional=("partial", "heads", "mean", "rollout"))
    tokens = t.List(t.Unicode()).tag(sync=True)
    n_tokens = t.Int(0).tag(sync=True)
    n_layers = t.Int(0).tag(sync=True)
    n_heads = t.Int(0).tag(sync=True)
    causal = t.Bool(False).tag(sync=True)
    grid = Array("uint8", ndim=4, lo=0.0, hi=1.0).tag(sync=True)  # [L, H, S, S] thumbnails
    matrix = Array("float16", ndim=2, of=MATRIX_OF).tag(sync=True)  # [R, R] overview of (mode, layer, head)
    # the front end asks: {mode, layer, head, r0, c0, rows, cols} ({}: nothing asked yet); a request
    # that does not fit (a mode other than head / mean, too large) is answered with `error`
    tile_request = Record({"mode": t.Unicode(), "layer": t.Int(), "head": t.Int(), "r0": t.Int(), "c0": t.Int(),
                           "rows": t.Int(), "cols": t.Int()}, empty=True).tag(sync=True)
    tile = Array("float16", ndim=2, of=TILE_OF).tag(sync=True)  # the answer: exact weights of the request
    stats = Array("float32", ndim=3).tag(sync=True)  # [n_stats, L, H]
    stat_names = t.List(t.Unicode()).tag(sync=True)
    stat_help = Map(t.Unicode()).tag(sync=True)  # statistic name -> what it measures
    unavailable = Map(t.Unicode()).tag(sync=True)  # block (str) -> why it has no softmax attention (drawn hatched)
    mode = t.Enum(["head", "mean", "rollout"], default_value="head").tag(sync=True)
    selected_layer = Layer(default=0, optional=False).tag(sync=True)
    selected_head = Index("n_heads", default=0, optional=False).tag(sync=True)
    selected_token = Index("tokens").tag(sync=True)

    def __init__(self, session, text: str, *, mode: str = "head", truncate: bool = False,
                 background: bool | None = None, **kwargs):
        trace = session.trace(text, truncate=truncate)
        self.result = r = attention_result(trace, causal=session.is_causal, summarise_up_to=SUMMARISE_NOW,
                                           thumb=THUMB)
        src = r.source
        if src.missing:  # a hybrid stack: start on a block with attention; the others are refused
            kwargs.setdefault("selected_layer", src.attention_blocks[0])
        notice = " ".join(x for x in (trace.notice, f"Attention: {r.note}." if r.note else "") if x)
        super().__init__(
            title=kwargs.pop("title", f"Attention \u00b7 {session.name}"),
            notice=notice,
            tokens=r.tokens,
            n_tokens=src.n_tokens,
            n_layers=src.n_layers,
            n_heads=src.n_heads,
            causal=session.is_causal,
            stat_names=list(r.stat_names),
            stat_help=dict(STAT_HELP),
            unavailable={str(b): why for b, why in sorted(src.missing.items())},
            mode=mode,
            **kwargs,
        )
        self._send_matrix()
        self.observe(self._send_matrix, names=["mode", "selected_layer", "selected_head"])
        self.observe(self._send_tile, names=["tile_request"])
        if r.stats is not None:
            self._show_summaries(r)
        else:  # long input: the head view first, the grid and statistics as they are computed
            self._run(lambda report: (r.summarise(THUMB, report), r)[1], self._show_summaries, background)

    def _show_summaries(self, r) -> None:
        stats = r.stats
        if r.missing:  # blocks without attention: empty thumbnails, statistics 0 on screen (NaN in .result)
            stats = np.nan_to_num(stats, nan=0.0)
        with self.hold_sync():
            self.grid, self.stats = r.thumbnails, stats

    @t.validate("selected_layer")
    def _valid_layer(self, proposal):
        layer = proposal["value"]
        why = self.result.missing.get(layer)
        if why:
            raise t.TraitError(f"block {layer} has no softmax attention weights: {why}. Blocks with attention: "
                               f"{self.result.attention_blocks}")
        return layer

    @t.validate("mode")
    def _valid_mode(self, proposal):
        if proposal["value"] == "rollout" and self.result.n_tokens > ROLLOUT_MAX_TOKENS:
            raise t.TraitError(f"rollout multiplies full [T, T] matrices of every layer: available up to "
                               f"{ROLLOUT_MAX_TOKENS} tokens (this input has {self.result.n_tokens})")
        return proposal["value"]

    def _send_matrix(self, change=None):
        m, step = self.result.overview(self.mode, self.selected_layer, self.selected_head, OVERVIEW)
        self.matrix = (m, {"mode": self.mode, "layer": self.selected_layer, "head": self.selected_head,
                           "step": step, "n": self.n_tokens})

    def _send_tile(self, change=None):
        q = dict(self.tile_request or {})
        try:
            mode, layer, head = q["mode"], int(q["layer"]), int(q["head"])
            r0, c0, rows, cols = (int(q[k]) for k in ("r0", "c0", "rows", "cols"))
        except (KeyError, TypeError, ValueError):
            return  # an incomplete request: nothing to answer
        if mode not in ("head", "mean") or not (1 <= rows <= TILE and 1 <= cols <= TILE):
            self.error = f"tile requests are 'head' or 'mean' windows of at most {TILE} x {TILE} tokens"
            return
        block = self.result.source.tile(layer, head if mode == "head" else None, r0, c0, rows, cols)
        self.tile = (block, {"mode": mode, "layer": layer, "head": head, "r0": r0, "c0": c0})

    def _static_figure(self) -> str:
        m = self.result.overview(self.mode, self.selected_layer, self.selected_head, OVERVIEW)[0]
        head = f", head {self.selected_head}" if self.mode == "head" else ""
        what = f"{self.mode}, layer {self.selected_layer}{head}"
        return fallback.heatmap(m, f"Attention ({what}); rows attend to columns, {self.n_tokens} tokens")

    def _export_extra(self) -> dict:
        r = self.result
        if r.missing or r.source.n_layers * r.source.n_heads * r.n_tokens ** 2 > EXPORT_ALL_CELLS:
            return {"partial": True}
        attn = r.attentions
        return {"heads": encode_array(attn, "float16"), "mean": encode_array(mean_over_heads(attn), "float16"),
                "rollout": encode_array(rollout(attn), "float16")}
