"""NeuronView: MLP neuron activations of one block, and what ablating a neuron does."""
from __future__ import annotations

import traitlets as t

from .. import fallback
from ..checks import integer
from ..compute.ablation import MODES, ablation_effect
from ..execution.hooks import check_layer
from ..compute.activations import check_texts
from ..compute.neuron_corpus import neuron_corpus
from ..compute.neurons import neuron_activations
from ..errors import LLMWidgetsError
from .base import View, encode_array
from .traits import Array, Index, Layer, Record

EXPORT_ALL_LAYERS = 1 << 22  # NeuronView exports every layer's activations up to this many values
# one top-activating context over a corpus (compute.corpus_top.contexts; FeatureView's too)
CONTEXT_ROW = Record({"text": t.Int(), "position": t.Int(), "activation": t.Float(), "tokens": t.List(t.Unicode()),
                      "at": t.Int()})


class NeuronView(View):
    """MLP neuron activations of one layer for one text.

    >>> NeuronView(session, "The cat sat on the mat.", selected_layer=3)

    Click a token to list its most active neurons; click a neuron (or type its number) to colour
    every token by that neuron's activation. Read or set `selected_layer` (the block shown),
    `selected_token`, `selected_neuron` (None: none). `.result` is a NeuronResult (all layers);
    `.ablate(...)` shows what zeroing neurons does to the output; the view's ablation menu
    (`ablation_mode`, with `ablation_donor` the donor text of resample ablation) ablates the
    selected neuron.

    With `corpus=[texts]` the view also lists the selected neuron's max-activating examples over
    the corpus (its `k` strongest tokens in context): every neuron is scanned once in the background
    with a progress bar (`.cancel()` stops it, `.wait()` waits for it) and cached on disk
    (lw.neuron_corpus); `.corpus` is the NeuronCorpus once done.
    """

    _bundle_name = "neuron"
    _export_record = Record({"all": Array("float16", ndim=3)}, optional=("all",))  # [L, T, N] when small enough
    tokens = t.List(t.Unicode()).tag(sync=True)
    n_layers = t.Int(0).tag(sync=True)
    n_neurons = t.Int(0).tag(sync=True)
    acts = Array("float16", ndim=2, of={"layer": int}).tag(sync=True)  # [T, N] of block `layer`, sent with it
    k = t.Int(10).tag(sync=True)
    selected_layer = Layer(default=0, optional=False).tag(sync=True)
    selected_token = Index("tokens").tag(sync=True)
    selected_neuron = Index("n_neurons").tag(sync=True)
    ablation_mode = t.Enum(("",) + MODES, default_value="").tag(sync=True)  # set: ablate selected
    ablation_donor = t.Unicode("").tag(sync=True)  # resample ablation's donor (as many tokens as the text)
    # the last ablation's output probabilities (see .ablate); {} while none
    ablation = Record({"layer": t.Int(), "neurons": t.List(t.Int()), "mode": t.Unicode(),
                       "outputs": t.List(t.Unicode()), "before": t.List(t.Float()), "after": t.List(t.Float())},
                      empty=True).tag(sync=True)
    ablation_note = t.Unicode("").tag(sync=True)  # why ablation cannot apply here ("" when it can)
    # n_texts, n_tokens once the corpus is scanned ({}: no corpus)
    corpus_summary = Record({"n_texts": t.Int(), "n_tokens": t.Int()}, empty=True).tag(sync=True)
    # the selected neuron's top contexts over the corpus (compute.corpus_top.contexts)
    corpus_examples = t.List(CONTEXT_ROW).tag(sync=True)

    def __init__(self, session, text: str, *, k: int = 10, truncate: bool = False, corpus=None,
                 background: bool | None = None, **kwargs):
        self.session, self.text = session, text
        self.corpus = None  # the NeuronCorpus, once a corpus= scan is done
        check_layer(session.model, kwargs.get("selected_layer", 0))
        integer(k, "k", low=1)
        self.result = neuron_activations(session, text, truncate=truncate)
        n_layers, _, n = self.result.activations.shape
        if self.result.missing:  # dense and expert blocks mixed: start on a block with neurons
            kwargs.setdefault("selected_layer", next(l for l in range(n_layers) if l not in self.result.missing))
        kwargs.setdefault("ablation_note", "" if session.adapter.output else
                          f"{session.name} has no output head, so there are no output probabilities to compare "
                          "(ablation needs a causal LM or a classifier).")
        super().__init__(title=kwargs.pop("title", f"MLP neurons \u00b7 {session.name}"),
                         notice=session.trace(text, truncate=truncate).notice, tokens=self.result.tokens,
                         n_layers=n_layers, n_neurons=n, k=k, **kwargs)
        self._send_acts()
        self.observe(self._send_acts, names=["selected_layer"])
        self.observe(self._ablate_selected, names=["ablation_mode", "ablation_donor", "selected_neuron",
                                                  "selected_layer"])
        self.observe(self._show_examples, names=["selected_neuron", "selected_layer"])
        if corpus is not None:
            texts = check_texts(corpus)  # a bad corpus is refused here, not in the background
            self._run(lambda report: neuron_corpus(session, texts, k=k, report=report), self._corpus_done, background)

    def _corpus_done(self, nc) -> None:
        self.corpus = nc
        self.corpus_summary = {"n_texts": len(nc.tokens), "n_tokens": nc.n_tokens}
        self._show_examples()

    def _show_examples(self, change=None) -> None:
        """The selected neuron's max-activating contexts over the corpus (none before the scan is done)."""
        nc, n = self.corpus, self.selected_neuron
        if nc is None or n is None or n >= nc.widths[self.selected_layer]:  # a narrower block: no such neuron
            self.corpus_examples = []
            return
        self.corpus_examples = nc.examples(self.selected_layer, n)

    @t.validate("selected_layer")
    def _valid_layer(self, proposal):
        why = self.result.missing.get(proposal["value"])
        if why:
            raise t.TraitError(f"block {proposal['value']} has no neurons: {why}")
        return proposal["value"]

    def _send_acts(self, change=None):
        a = self.result.activations[self.selected_layer]
        w = self.result.widths[self.selected_layer] if self.result.widths else a.shape[-1]
        self.acts = (a[:, :w], {"layer": self.selected_layer})

    def ablate(self, neurons=None, mode: str = "zero", k: int = 10, donor: str | None = None):
        """Output probabilities (next token / class) before and after ablating `neurons` of this
        layer (default: the selected neuron). mode 'zero', 'mean' or 'resample' (the neurons'
        activations on `donor`, a text with as many tokens as this view's text)."""
        if neurons is None:
            if self.selected_neuron is None:
                raise LLMWidgetsError("Select a neuron first, or pass neurons=[...].")
            neurons = [self.selected_neuron]
        eff = ablation_effect(self.session, self.text, neurons=[(self.selected_layer, int(n)) for n in neurons],
                              mode=mode, k=k, donor=donor)
        self.ablation = {"layer": self.selected_layer, "neurons": [int(n) for n in neurons], "mode": mode,
                         "outputs": eff.outputs, "before": eff.before.tolist(), "after": eff.after.tolist()}
        return eff

    def _ablate_selected(self, change=None):
        """With ablation_mode set (the view's menu), show the selected neuron's ablation; resample
        waits for a donor text (the view says so)."""
        self.ablation, self.error = {}, ""
        resample = self.ablation_mode == "resample"
        if self.ablation_mode and self.selected_neuron is not None and (self.ablation_donor.strip() or not resample):
            try:
                self.ablate(mode=self.ablation_mode, donor=self.ablation_donor if resample else None)
            except LLMWidgetsError as e:
                self.error = str(e)

    def _export_extra(self) -> dict:
        a = self.result.activations
        return {"all": encode_array(a, "float16")} if a.size <= EXPORT_ALL_LAYERS and not self.result.missing else {}

    def _static_figure(self) -> str:
        a = self.result.activations[self.selected_layer]  # [T, N]
        n = self.selected_neuron if self.selected_neuron is not None else int(abs(a).max(0).argmax())
        return fallback.token_strip(list(self.tokens), a[:, n], f"Activation of neuron {n} of layer "
                                    f"{self.selected_layer} on each token")

