"""Mechanistic views: NeuronView (MLP neurons), PatchingView (activation patching), LogitLensView."""
from __future__ import annotations

import traitlets as t

from ..compute.hooks import SITES, ablation_effect, check_layer
from ..compute.logit_lens import logit_lens
from ..compute.neurons import neuron_activations
from ..compute.patching import patching
from ..checks import integer
from ..errors import LLMWidgetsError
from .base import View, encode_array
from .traits import Array, Index

EXPORT_ALL_LAYERS = 1 << 22  # NeuronView exports every layer's activations up to this many values


class NeuronView(View):
    """MLP neuron activations of one layer for one text.

    >>> NeuronView(session, "The cat sat on the mat.", selected_layer=3)

    Click a token to list its most active neurons; click a neuron (or type its number) to colour
    every token by that neuron's activation. Read or set `selected_layer` (the block shown),
    `selected_token`, `selected_neuron` (None: none). `.result` is a NeuronResult (all layers);
    `.ablate(...)` shows what zeroing neurons does to the output.
    """

    _bundle_name = "neuron"
    tokens = t.List(t.Unicode()).tag(sync=True)
    n_layers = t.Int(0).tag(sync=True)
    n_neurons = t.Int(0).tag(sync=True)
    acts = t.Dict().tag(sync=True)  # {float16 [T, N] of `selected_layer`, layer}
    k = t.Int(10).tag(sync=True)
    selected_layer = Index("n_layers", default=0, optional=False).tag(sync=True)
    selected_token = Index("tokens").tag(sync=True)
    selected_neuron = Index("n_neurons").tag(sync=True)
    ablation_mode = t.Enum(["", "zero", "mean"], default_value="").tag(sync=True)  # set: ablate selected
    ablation = t.Dict().tag(sync=True)  # the last ablation's output probabilities (see .ablate)

    def __init__(self, session, text: str, *, k: int = 10, truncate: bool = False, **kwargs):
        self.session, self.text = session, text
        check_layer(session.model, kwargs.get("selected_layer", 0))
        integer(k, "k", low=1)
        self.result = neuron_activations(session, text, truncate=truncate)
        n_layers, _, n = self.result.activations.shape
        super().__init__(title=kwargs.pop("title", f"MLP neurons \u00b7 {session.name}"),
                         notice=session.trace(text, truncate=truncate).notice, tokens=self.result.tokens,
                         n_layers=n_layers, n_neurons=n, k=k, **kwargs)
        self._send_acts()
        self.observe(self._send_acts, names=["selected_layer"])
        self.observe(self._ablate_selected, names=["ablation_mode", "selected_neuron", "selected_layer"])

    def _send_acts(self, change=None):
        packed = encode_array(self.result.activations[self.selected_layer], "float16")
        packed["layer"] = self.selected_layer
        self.acts = packed

    def ablate(self, neurons=None, mode: str = "zero", k: int = 10):
        """Output probabilities (next token / class) before and after ablating `neurons` of this
        layer (default: the selected neuron)."""
        if neurons is None:
            if self.selected_neuron is None:
                raise LLMWidgetsError("Select a neuron first, or pass neurons=[...].")
            neurons = [self.selected_neuron]
        eff = ablation_effect(self.session, self.text, neurons=[(self.selected_layer, int(n)) for n in neurons],
                              mode=mode, k=k)
        self.ablation = {"layer": self.selected_layer, "neurons": [int(n) for n in neurons], "mode": mode,
                         "outputs": eff.outputs, "before": eff.before.tolist(), "after": eff.after.tolist()}
        return eff

    def _ablate_selected(self, change=None):
        """With ablation_mode set (the view's buttons), show the selected neuron's ablation."""
        self.ablation, self.error = {}, ""
        if self.ablation_mode and self.selected_neuron is not None:
            try:
                self.ablate(mode=self.ablation_mode)
            except LLMWidgetsError as e:
                self.error = str(e)

    def _export_extra(self) -> dict:
        a = self.result.activations
        return {"all": encode_array(a, "float16")} if a.size <= EXPORT_ALL_LAYERS else {}


class PatchingView(View):
    """Activation patching: which activations carry the difference between two inputs.

    >>> PatchingView(session, clean="When Mary and John went to the store, John gave a drink to",
    ...              corrupted="When Mary and John went to the store, Mary gave a drink to",
    ...              metric="logit_diff", answers=(" Mary", " John"))

    Three heatmaps (residual stream, attention output, MLP output; layer x position) and one per
    head show the normalized metric after restoring that clean activation into the corrupted run
    (0 = corrupted, 1 = clean). Click a cell: `selected_site`, `selected_layer`, `selected_token`
    (the position; or `selected_head`) update, and the patched run's top outputs are shown.
    In a notebook it computes in a thread (progress bar; `.wait()` blocks until done).
    """

    _bundle_name = "patching"
    tokens = t.List(t.Unicode()).tag(sync=True)
    clean_tokens = t.List(t.Unicode()).tag(sync=True)
    sites = t.List(t.Unicode()).tag(sync=True)
    n_layers = t.Int(0).tag(sync=True)
    n_heads = t.Int(0).tag(sync=True)
    scores = Array("float32", ndim=3).tag(sync=True)  # [sites, L, T]
    head_scores = Array("float32", ndim=2).tag(sync=True)  # [L, H]
    top_index = Array("int32", ndim=4).tag(sync=True)  # [sites, L, T, k] into top_tokens
    top_probs = Array("float32", ndim=4).tag(sync=True)
    head_top_index = Array("int32", ndim=3).tag(sync=True)  # [L, H, k]
    head_top_probs = Array("float32", ndim=3).tag(sync=True)
    top_tokens = t.List(t.Unicode()).tag(sync=True)
    summary = t.Dict().tag(sync=True)  # metric name, clean/corrupted values and top outputs
    selected_site = t.Enum(SITES + ("heads",), default_value=None, allow_none=True).tag(sync=True)
    selected_layer = Index("n_layers").tag(sync=True)
    selected_token = Index("tokens").tag(sync=True)
    selected_head = Index("n_heads").tag(sync=True)

    def __init__(self, session, clean: str, corrupted: str, *, metric="logit_diff", answers=None,
                 position: int = -1, sites=None, per_head: bool = True, batch_size: int = 64,
                 background: bool | None = None, **kwargs):
        self.result = None
        super().__init__(title=kwargs.pop("title", f"Activation patching \u00b7 {session.name}"),
                         n_layers=session.n_layers, n_heads=session.n_heads, **kwargs)

        def work(report):
            return patching(session, clean, corrupted, metric=metric, answers=answers, position=position,
                            sites=sites, per_head=per_head, batch_size=batch_size, report=report)

        self._run(work, self._show, background)

    def _show(self, r):
        self.result = r
        state = dict(tokens=r.tokens, clean_tokens=r.clean_tokens, sites=list(r.sites), top_tokens=r.top_tokens,
                     scores=r.scores, top_index=r.top_index, top_probs=r.top_probs,
                     summary={"metric": r.metric, "clean": r.clean_metric, "corrupted": r.corrupted_metric,
                              "position": r.position, "changed": r.changed,
                              "clean_top": [[a, p] for a, p in r.clean_top],
                              "corrupted_top": [[a, p] for a, p in r.corrupted_top]})
        if r.head_scores is not None:
            state.update(head_scores=r.head_scores, head_top_index=r.head_top_index,
                         head_top_probs=r.head_top_probs)
        with self.hold_sync():
            for key, value in state.items():
                setattr(self, key, value)


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
    selected_layer = Index("n_layers", embeddings=True).tag(sync=True)  # row = selected_layer + 1
    selected_token = Index("tokens").tag(sync=True)

    def __init__(self, session, text: str, *, k: int = 5, truncate: bool = False, **kwargs):
        self.result = r = logit_lens(session, text, k=k, truncate=truncate)
        super().__init__(title=kwargs.pop("title", f"Logit lens \u00b7 {session.name}"),
                         notice=session.trace(text, truncate=truncate).notice, tokens=r.tokens,
                         n_layers=len(r.layer_names) - 1, layer_names=r.layer_names, top_tokens=r.top_tokens,
                         top_index=r.top_index, top_probs=r.top_probs, next_prob=r.next_prob, **kwargs)


__all__ = ["NeuronView", "PatchingView", "LogitLensView"]
