"""Mechanistic views: NeuronView (MLP neurons), PatchingView (activation patching), LogitLensView."""
from __future__ import annotations

import traitlets as t

from ..compute.hooks import SITES, ablation_effect, check_layer
from ..compute.logit_lens import logit_lens
from ..compute.neurons import neuron_activations
from ..compute.patching import patching
from ..checks import integer
from ..errors import LLMWidgetsError
from .traits import Array
from .base import View, check_index, encode_array

EXPORT_ALL_LAYERS = 1 << 22  # NeuronView exports every layer's activations up to this many values


class NeuronView(View):
    """MLP neuron activations of one layer for one text.

    >>> NeuronView(session, "The cat sat on the mat.", layer=3)

    Click a token to list its most active neurons; click a neuron (or type its number) to colour
    every token by that neuron's activation. Read or set `layer`, `selected_token`,
    `selected_neuron`. `.result` is a NeuronResult (all layers); `.ablate(...)` shows what
    zeroing neurons does to the output.
    """

    _bundle_name = "neuron"
    tokens = t.List(t.Unicode()).tag(sync=True)
    layers = t.Int(0).tag(sync=True)
    neurons = t.Int(0).tag(sync=True)
    layer = t.Int(0).tag(sync=True)
    acts = t.Dict().tag(sync=True)  # {float16 [T, N] of `layer`, layer}
    k = t.Int(10).tag(sync=True)
    selected_token = t.Int(-1).tag(sync=True)
    selected_neuron = t.Int(-1).tag(sync=True)
    ablation_mode = t.Enum(["", "zero", "mean"], default_value="").tag(sync=True)  # set: ablate selected
    ablation = t.Dict().tag(sync=True)  # the last ablation's output probabilities (see .ablate)

    def __init__(self, session, text: str, *, layer: int = 0, k: int = 10, truncate: bool = False, **kwargs):
        self.session, self.text = session, text
        check_layer(session.model, layer)
        integer(k, "k", low=1)
        self.result = neuron_activations(session, text, truncate=truncate)
        n_layers, _, n = self.result.activations.shape
        super().__init__(title=kwargs.pop("title", f"MLP neurons \u00b7 {session.name}"),
                         notice=session.trace(text, truncate=truncate).notice, tokens=self.result.labels,
                         layers=n_layers, neurons=n, layer=layer, k=k, **kwargs)
        self._send_acts()
        self.observe(self._send_acts, names=["layer"])
        self.observe(self._ablate_selected, names=["ablation_mode", "selected_neuron", "layer"])

    @t.validate("layer")
    def _valid_layer(self, proposal):
        v = proposal["value"]
        return check_index(v, self.layers, "layer", allow_none=False) if self.layers else v

    @t.validate("selected_token")
    def _valid_token(self, proposal):
        return check_index(proposal["value"], len(self.tokens), "selected_token")

    @t.validate("selected_neuron")
    def _valid_neuron(self, proposal):
        return check_index(proposal["value"], self.neurons, "selected_neuron")

    def _send_acts(self, change=None):
        packed = encode_array(self.result.activations[self.layer], "float16")
        packed["layer"] = self.layer
        self.acts = packed

    def ablate(self, neurons=None, mode: str = "zero", k: int = 10):
        """Output probabilities (next token / class) before and after ablating `neurons` of this
        layer (default: the selected neuron)."""
        if neurons is None:
            if self.selected_neuron < 0:
                raise LLMWidgetsError("Select a neuron first, or pass neurons=[...].")
            neurons = [self.selected_neuron]
        eff = ablation_effect(self.session, self.text, neurons=[(self.layer, int(n)) for n in neurons],
                              mode=mode, k=k)
        self.ablation = {"layer": self.layer, "neurons": [int(n) for n in neurons], "mode": mode,
                         "labels": eff.labels, "before": eff.before.tolist(), "after": eff.after.tolist()}
        return eff

    def _ablate_selected(self, change=None):
        """With ablation_mode set (the view's buttons), show the selected neuron's ablation."""
        self.ablation, self.error = {}, ""
        if self.ablation_mode and self.selected_neuron >= 0:
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
    (0 = corrupted, 1 = clean). Click a cell: `selected_site`, `selected_layer`, `selected_position`
    (or `selected_head`) update, and the patched run's top outputs are shown.
    In a notebook it computes in a thread (progress bar; `.wait()` blocks until done).
    """

    _bundle_name = "patching"
    tokens = t.List(t.Unicode()).tag(sync=True)
    clean_tokens = t.List(t.Unicode()).tag(sync=True)
    sites = t.List(t.Unicode()).tag(sync=True)
    layers = t.Int(0).tag(sync=True)
    heads = t.Int(0).tag(sync=True)
    scores = Array("float32", ndim=3).tag(sync=True)  # [sites, L, T]
    head_scores = Array("float32", ndim=2).tag(sync=True)  # [L, H]
    top_index = Array("int32", ndim=4).tag(sync=True)  # [sites, L, T, k] into top_labels
    top_probs = Array("float32", ndim=4).tag(sync=True)
    head_top_index = Array("int32", ndim=3).tag(sync=True)  # [L, H, k]
    head_top_probs = Array("float32", ndim=3).tag(sync=True)
    top_labels = t.List(t.Unicode()).tag(sync=True)
    summary = t.Dict().tag(sync=True)  # metric name, clean/corrupted values and top outputs
    selected_site = t.Unicode("").tag(sync=True)  # "resid" | "attn" | "mlp" | "heads" | ""
    selected_layer = t.Int(-1).tag(sync=True)
    selected_position = t.Int(-1).tag(sync=True)
    selected_head = t.Int(-1).tag(sync=True)

    def __init__(self, session, clean: str, corrupted: str, *, metric="logit_diff", answers=None,
                 position: int = -1, sites=None, heads: bool = True, batch_size: int = 64,
                 background: bool | None = None, **kwargs):
        self.result = None
        super().__init__(title=kwargs.pop("title", f"Activation patching \u00b7 {session.name}"),
                         layers=session.num_layers, heads=session.num_heads, **kwargs)

        def work(report):
            return patching(session, clean, corrupted, metric=metric, answers=answers, position=position,
                            sites=sites, heads=heads, batch_size=batch_size, report=report)

        self._run(work, self._show, background)

    def _show(self, r):
        self.result = r
        state = dict(tokens=r.labels, clean_tokens=r.clean_labels, sites=list(r.sites), top_labels=r.top_labels,
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

    @t.validate("selected_site")
    def _valid_site(self, proposal):
        v = proposal["value"]
        if v not in ("",) + SITES + ("heads",):
            raise t.TraitError(f"selected_site must be one of {SITES + ('heads',)} or '', got {v!r}")
        return v

    @t.validate("selected_layer")
    def _valid_layer(self, proposal):
        return check_index(proposal["value"], self.layers, "selected_layer")

    @t.validate("selected_position")
    def _valid_position(self, proposal):
        n = len(self.tokens) if self.tokens else 1 << 30
        return check_index(proposal["value"], n, "selected_position")

    @t.validate("selected_head")
    def _valid_head(self, proposal):
        return check_index(proposal["value"], self.heads, "selected_head")


class LogitLensView(View):
    """Logit lens: the most likely next token read from every layer's residual stream.

    >>> LogitLensView(session, "The Eiffel Tower is in the city of")

    Rows are layers (embeddings first), columns positions; cells show the top token and are
    coloured by its probability (or, with colour='next', by the probability of the actual next
    token). Click a cell for the top-k list; `selected_layer` (row) and `selected_token` update.
    """

    _bundle_name = "logit_lens"
    tokens = t.List(t.Unicode()).tag(sync=True)
    layer_names = t.List(t.Unicode()).tag(sync=True)
    top_labels = t.List(t.Unicode()).tag(sync=True)
    top_index = Array("int32", ndim=3).tag(sync=True)  # [R, T, k] into top_labels
    top_probs = Array("float32", ndim=3).tag(sync=True)  # [R, T, k]
    next_prob = Array("float32", ndim=2).tag(sync=True)  # [R, T]
    colour = t.Enum(["top", "next"], default_value="top").tag(sync=True)
    selected_layer = t.Int(-1).tag(sync=True)  # row: 0 = embeddings, l + 1 = after layer l
    selected_token = t.Int(-1).tag(sync=True)

    def __init__(self, session, text: str, *, k: int = 5, truncate: bool = False, **kwargs):
        self.result = r = logit_lens(session, text, k=k, truncate=truncate)
        super().__init__(title=kwargs.pop("title", f"Logit lens \u00b7 {session.name}"),
                         notice=session.trace(text, truncate=truncate).notice, tokens=r.labels,
                         layer_names=r.layer_names, top_labels=r.top_labels,
                         top_index=r.top_index, top_probs=r.top_probs, next_prob=r.next_prob, **kwargs)

    @t.validate("selected_layer")
    def _valid_layer(self, proposal):
        return check_index(proposal["value"], len(self.layer_names), "selected_layer")

    @t.validate("selected_token")
    def _valid_token(self, proposal):
        return check_index(proposal["value"], len(self.tokens), "selected_token")


__all__ = ["NeuronView", "PatchingView", "LogitLensView"]
