"""SteeringView: a layers x strengths grid of what steering does. For a language model, greedy
continuations side by side (the tokens that differ from the unsteered continuation marked), each
cell with the concept score of its continuation and a coherence guard (its perplexity under the
unsteered model) so "it changed the topic" and "it broke the model" are told apart; for a
classifier, class probability against strength per layer. Click a cell to read it; download the
vector as safetensors or as a GGUF control vector (llama.cpp, repeng)."""
from __future__ import annotations

import numpy as np
import traitlets as t

from .. import fallback
from ..checks import integer, number
from ..compute.activations import check_texts
from ..compute.capabilities import steering_why_not
from ..compute.steering import SteeringVector, direction_at
from ..compute.steering_grid import classifier_sweep, generation_grid
from ..errors import LLMWidgetsError
from ..layers import block_index
from .base import View
from .traits import Array, Layer, Record

STRENGTHS = (0.0, 1.0, 2.0, 4.0, 8.0)
BROKEN = 4.0  # the coherence guard: perplexity over this many times the unsteered continuation's


class SteeringView(View):
    """Steer `prompts` with `vector` (a SteeringVector from lw.steering_vector, or a [d_model] array)
    at each of `layers` (default: the vector's blocks, at most 6, evenly spaced) with each of
    `strengths` (multiples of the vector).

    >>> v = lw.steering_vector(s, positive=[...], negative=[...])
    >>> view = lw.SteeringView(s, ["I think that"], v, strengths=[0, 2, 4, 8])

    Language models: every strength of one layer is one batched greedy `generate` (rows carry their
    own strength); `max_new_tokens` tokens per continuation. Classifiers: one batched forward per
    layer, the class probabilities (mean over the prompts); `suggested` is, per layer, the smallest
    strength at which the `target` class (default: the class whose probability rises most) reaches
    0.5. `.result` is a GenerationGrid or a ClassSweep; `selected_layer` / `selected_strength` the
    clicked cell. `.save(path)` / `.to_gguf(path)` write the vector.
    """

    _bundle_name = "steering"
    mode = t.Unicode("generate").tag(sync=True)  # "generate" or "classify"
    n_layers = t.Int(0).tag(sync=True)
    layers = t.List(t.Int()).tag(sync=True)
    strengths = t.List(t.Float()).tag(sync=True)
    prompts = t.List(t.Unicode()).tag(sync=True)
    # generate: per layer, per strength: per prompt its continuation's tokens, whether each differs
    # from the unsteered one, and its text
    cells = t.List(t.List(Record({"tokens": t.List(t.List(t.Unicode())), "changed": t.List(t.List(t.Bool())),
                                  "texts": t.List(t.Unicode())}))).tag(sync=True)
    base = t.List(t.Unicode()).tag(sync=True)  # the unsteered continuation of each prompt
    score = Array("float32", ndim=2).tag(sync=True)  # [L, S] concept score (mean over prompts)
    perplexity = Array("float32", ndim=2).tag(sync=True)  # [L, S] mean perplexity of the continuations
    base_perplexity = t.Float(0.0).tag(sync=True)
    broken = t.List(t.List(t.Bool())).tag(sync=True)  # [L][S] the coherence guard fired
    classes = t.List(t.Unicode()).tag(sync=True)
    probs = Array("float32", ndim=3).tag(sync=True)  # classify: [L, S, C]
    target = t.Unicode("").tag(sync=True)
    suggested = t.List(t.Float(allow_none=True)).tag(sync=True)  # classify: per layer (None: none reaches 0.5)
    vector = Array("float32", ndim=2).tag(sync=True)  # [L, D]: the vector at each layer (for the downloads)
    model_hint = t.Unicode("").tag(sync=True)
    selected_layer = Layer().tag(sync=True)
    selected_strength = t.Float(None, allow_none=True).tag(sync=True)
    done = t.Bool(False).tag(sync=True)

    def __init__(self, session, prompts, vector, *, layers=None, strengths=STRENGTHS, max_new_tokens: int = 32,
                 target: str | None = None, background: bool | None = None, **kwargs):
        prompts = check_texts(prompts)
        strengths = [number(x, "strengths[i]") for x in strengths]
        if not strengths:
            raise LLMWidgetsError("give at least one strength")
        max_new_tokens = integer(max_new_tokens, "max_new_tokens", low=1)
        if layers is None:
            if not isinstance(vector, SteeringVector):
                raise LLMWidgetsError("give layers=[...] with a vector that is not a SteeringVector")
            have = vector.layers
            layers = [have[i] for i in np.unique(np.linspace(0, len(have) - 1, min(6, len(have))).round().astype(int))]
        layers = [block_index(x, session.adapter.n_layers, what="layers[i]") for x in layers]
        vecs = np.stack([direction_at(session, vector, x).numpy() for x in layers])
        why = steering_why_not(session)  # what lw.capabilities says, word for word
        if why:
            raise LLMWidgetsError(why)
        mode = "generate" if session.kind == "decoder" else "classify"
        if target is not None and (mode != "classify" or target not in session.class_labels):
            raise LLMWidgetsError(f"target must be one of the classes {session.class_labels}" if mode == "classify"
                                  else "target= is for classifiers (the class whose probability is followed)")
        self.result = None
        self.steering = vector
        super().__init__(title=kwargs.pop("title", f"Steering \u00b7 {session.name}"), mode=mode,
                         n_layers=session.adapter.n_layers, layers=layers, strengths=strengths, prompts=prompts,
                         vector=vecs.astype(np.float32), model_hint=session.name, **kwargs)

        def work(report):
            if mode == "classify":
                return classifier_sweep(session, prompts, vector, layers, strengths, report=report)
            return generation_grid(session, prompts, vector, layers, strengths, max_new_tokens=max_new_tokens,
                                   report=report)

        self._target = target
        self._run(work, self._show, background)

    def _show(self, res) -> None:
        self.result = res
        with self.hold_sync():
            if self.mode == "classify":
                mags = np.abs(res.strengths)
                rise = res.probs[:, int(np.argmax(mags))] - res.probs[:, int(np.argmin(mags))]  # [L, C]
                target = self._target or res.classes[int(np.argmax(rise.max(0)))]
                self.classes, self.probs, self.target = res.classes, res.probs.astype(np.float32), target
                self.suggested = [res.suggested_strength(target, x) for x in res.layers]
            else:
                self.cells = [[{"tokens": res.tokens[i][j], "changed": res.changed[i][j], "texts": res.texts[i][j]}
                               for j in range(len(res.strengths))] for i in range(len(res.layers))]
                self.base = res.base_texts
                self.score = res.score.mean(2).astype(np.float32)
                self.perplexity = res.perplexity.mean(2).astype(np.float32)
                self.base_perplexity = float(res.base_perplexity.mean())
                self.broken = res.broken(BROKEN).tolist()
            if self.selected_layer is None:
                self.selected_layer = self.layers[0]
            if self.selected_strength is None:
                self.selected_strength = max(self.strengths, key=abs)
            self.done = True

    def suggested_strength(self, layer=None):
        """Classifiers: the smallest strength of the grid at which the target class reaches 0.5 at
        `layer` (default: the selected one); None where none does."""
        if self.mode != "classify" or self.result is None:
            raise LLMWidgetsError("a suggested strength is computed for classifiers, once the sweep is done (.wait())")
        layer = self.selected_layer if layer is None else layer
        if layer not in self.layers:
            raise LLMWidgetsError(f"layer {layer!r} is not in this view's layers {self.layers}")
        return self.suggested[self.layers.index(layer)]

    def save(self, path) -> None:
        """The vector as safetensors (see SteeringVector.save)."""
        self._as_vector().save(path)

    def to_gguf(self, path, model_hint: str | None = None) -> None:
        """The vector as a GGUF control vector (llama.cpp, repeng)."""
        self._as_vector().to_gguf(path, model_hint=model_hint)

    def _as_vector(self) -> SteeringVector:
        if isinstance(self.steering, SteeringVector):
            return self.steering
        return SteeringVector(vectors=np.asarray(self.vector), layers=list(self.layers), method="given",
                              position="", separation=np.full(len(self.layers), np.nan), model=self.model_hint)

    def _static_figure(self) -> str:
        r = self.result
        if r is None:
            return ""
        if self.mode == "classify":
            c = r.classes.index(self.target)
            rows = [{"layer": x, **{f"{s:g}": float(r.probs[i, j, c]) for j, s in enumerate(r.strengths)}}
                    for i, x in enumerate(r.layers)]
            return fallback.table(rows, ["layer"] + [f"{s:g}" for s in r.strengths],
                                  f"P({self.target}) per layer (rows) and strength (columns)")
        rows = [{"layer": x, "strength": s, "score": float(r.score[i, j].mean()),
                 "perplexity": float(r.perplexity[i, j].mean()), "continuation": r.texts[i][j][0]}
                for i, x in enumerate(r.layers) for j, s in enumerate(r.strengths)]
        return fallback.table(rows, ["layer", "strength", "score", "perplexity", "continuation"],
                              "Steered continuations of the first prompt")
