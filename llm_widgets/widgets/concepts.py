"""ConceptView: what does the model represent alike? PCA + k-means of token (or sentence)
activations per layer; brush points to see them in context; a layer slider re-projects."""
from __future__ import annotations

import numpy as np
import traitlets as t

from ..compute.concepts import METHODS, concepts
from ..compute.activations import check_labels, check_texts, extract
from ..errors import LLMWidgetsError
from ..figures import PALETTE
from ..layers import hidden_row
from .base import View
from .traits import Array, Layer
from .probing import as_texts_labels


class ConceptView(View):
    """2-D PCA (or UMAP) of activations at each layer, coloured by k-means cluster or by label.

    >>> v = lw.ConceptView(session, texts, selected_layer=3)               # one point per token
    >>> lw.ConceptView(session, texts, labels, level="sentence")  # one point per text

    Drag a rectangle over the scatter to select points: `selected_indices` (row numbers of
    `.result.to_frame(selected_layer)`) and their contexts appear below. `selected_layer` (a block
    index, lw.EMBEDDINGS for the embedding output) re-projects; `color_by`
    is 'cluster' or 'label'. `.result` is a ConceptResult; `.figure()` a bqplot scatter of it.
    """

    _bundle_name = "concepts"
    level = t.Unicode("token").tag(sync=True)
    n_layers = t.Int(0).tag(sync=True)
    selected_layer = Layer(default=0, embeddings=True, optional=False).tag(sync=True)
    k = t.Int(5).tag(sync=True)
    method = t.Unicode("pca").tag(sync=True)
    coords = Array("float32", ndim=3).tag(sync=True)  # [L+1, N, 2]: row = selected_layer + 1
    clusters = Array("uint16", ndim=2).tag(sync=True)  # [L+1, N] cluster ids
    explained = Array("float32", ndim=2).tag(sync=True)  # [L+1, 2]
    label_names = t.List(t.Unicode()).tag(sync=True)
    label_index = Array("uint16", ndim=1).tag(sync=True)  # [N] index into label_names
    texts_tokens = t.List(t.List(t.Unicode())).tag(sync=True)
    rows = Array("int32", ndim=2).tag(sync=True)  # [2, N]: text index, token index (-1: sentence)
    color_by = t.Enum(["cluster", "label"], default_value="cluster").tag(sync=True)
    selected_indices = t.List(t.Int()).tag(sync=True)
    done = t.Bool(False).tag(sync=True)

    def __init__(self, session, texts, labels=None, *, level: str = "token",
                 k: int = 5, method: str = "pca", pooling: str = "mean", batch_size: int = 32,
                 truncate: bool = False, seed: int = 0, background: bool | None = None,
                 text_column: str = "text", label_column: str = "label", **kwargs):
        texts, labels, level = as_texts_labels(texts, labels, level, text_column, label_column)
        texts = check_texts(texts)
        labels = check_labels(texts, labels, level)
        if method not in METHODS:
            raise LLMWidgetsError(f"method must be one of {METHODS}, got {method!r}")
        if not 1 <= k <= 65535:
            raise LLMWidgetsError(f"k must be in 1..65535, got {k}")
        kwargs.setdefault("selected_layer", session.n_layers // 2)
        self.result = None
        self.activations = None
        super().__init__(title=kwargs.pop("title", f"Concepts \u00b7 {session.name}"), level=level,
                         n_layers=session.n_layers, k=k, method=method,
                         color_by="label" if labels is not None else "cluster", **kwargs)

        def work(report):
            acts = extract(session, texts, labels, level=level, pooling=pooling, batch_size=batch_size,
                           truncate=truncate, report=lambda f, s: report(0.5 * f, s))
            if len(acts) > 65535:
                raise LLMWidgetsError(f"{len(acts)} points are too many to draw; pass fewer texts.")
            res = concepts(acts, k=min(k, len(acts)), method=method, seed=seed,
                           report=lambda f, s: report(0.5 + 0.5 * f, s))
            return res

        self._run(work, self._show, background)

    def _show(self, res) -> None:
        acts = res.acts
        self.result, self.activations = res, acts
        names = sorted({str(v) for v in acts.labels}) if acts.labels is not None else []
        idx = np.array([names.index(str(v)) for v in acts.labels]) if names else np.full(len(acts), 255)
        with self.hold_sync():
            self.label_names = names
            self.label_index = idx
            self.texts_tokens = acts.tokens
            self.rows = np.stack([acts.text_index, acts.token_index])
            self.coords, self.clusters, self.explained = res.coords, res.clusters, res.explained
            self.done = True

    @t.validate("selected_indices")
    def _valid_selection(self, proposal):
        v = list(proposal["value"])
        n = len(self.activations) if self.activations is not None else None
        if n is not None and any(not 0 <= i < n for i in v):
            raise t.TraitError(f"selected_indices must be row numbers in 0..{n - 1}")
        return v

    def selection(self):
        """The selected rows (DataFrame at the current layer): their text, token, label, cluster."""
        if self.result is None:
            raise LLMWidgetsError("Still computing: call .wait() first.")
        return self.result.to_frame(self.selected_layer).iloc[list(self.selected_indices)]

    def figure(self):
        """A bqplot scatter of the current layer, coloured like the view (`color_by`: k-means
        cluster or label), with a brush linked to `selected_indices` (both ways); it follows `selected_layer`
        and `color_by`."""
        import bqplot as bq

        if self.result is None:
            raise LLMWidgetsError("Still computing: call .wait() first.")
        res = self.result
        n_colours = max(len(self.label_names), res.k, 1)
        cs = bq.OrdinalColorScale(colors=[PALETTE[i % len(PALETTE)] for i in range(n_colours)],
                                  domain=list(range(n_colours)))  # the view's colours
        xs, ys = bq.LinearScale(), bq.LinearScale()
        labels = self.activations.labels
        label_idx = (np.array([self.label_names.index(str(v)) for v in labels]) if labels is not None
                     else None)

        def colours():
            by_label = self.color_by == "label" and label_idx is not None
            return label_idx if by_label else res.clusters[hidden_row(self.selected_layer, res.n_layers)]

        row = hidden_row(self.selected_layer, res.n_layers)
        sc = bq.Scatter(x=res.coords[row, :, 0], y=res.coords[row, :, 1],
                        color=colours(), scales={"x": xs, "y": ys, "color": cs},
                        default_size=24, unselected_style={"opacity": 0.3})
        brush = bq.interacts.BrushSelector(x_scale=xs, y_scale=ys, marks=[sc], color="red")

        def relayer(change=None):
            with sc.hold_sync():
                row = hidden_row(self.selected_layer, res.n_layers)
                sc.x, sc.y = res.coords[row, :, 0], res.coords[row, :, 1]
                sc.color = colours()

        def to_view(change):
            sel = change["new"]
            self.selected_indices = [] if sel is None else [int(i) for i in sel]

        def to_mark(change):
            if list(sc.selected if sc.selected is not None else []) != list(change["new"]):
                sc.selected = list(change["new"])

        self.observe(relayer, names=["selected_layer", "color_by"])
        sc.observe(to_view, names="selected")
        self.observe(to_mark, names="selected_indices")
        axes = [bq.Axis(scale=xs, label="PC1"), bq.Axis(scale=ys, orientation="vertical", label="PC2")]
        return bq.Figure(marks=[sc], axes=axes, interaction=brush, title=self.title,
                         layout={"width": "480px", "height": "420px"})
