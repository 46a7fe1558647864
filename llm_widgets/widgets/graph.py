"""GraphView: an attribution graph as a layered node-link diagram, with a pruning slider, a feature
panel, supernodes and interventions."""
from __future__ import annotations

import inspect

import numpy as np
import torch
import traitlets as t

from .. import fallback
from ..circuits.ctjson import cumulative_influence, write_graph_json
from ..circuits.graph import NODE_KINDS, Graph
from ..circuits.intervene import graph_intervention
from ..circuits.supernodes import add_supernodes, suggest_supernodes, supernode_rows
from ..compute.budget import memory_budget
from ..compute.corpus_top import contexts
from ..dictionaries.analysis import column, logit_effect
from ..dictionaries.activations import site_activations
from ..dictionaries.corpus import corpus_stats
from ..errors import LLMWidgetsError
from .base import View, unexpected_keyword
from .features import LOGITS
from .neuron import CONTEXT_ROW
from .traits import Array, Fixed, Index, Record

CONTEXT = 6  # tokens shown either side of a top-activating context's token
_PANEL_EXTRA = ("over_text", "logits", "contexts", "why")
# the selected node; a feature node read over the text (its logits: a model with an output head; its
# contexts: with a corpus), or why not
FEATURE_PANEL = Record({"row": t.Int(), "id": t.Unicode(), "kind": t.Unicode(), "layer": t.Int(), "position": t.Int(),
                        "feature": t.Int(), "activation": t.Float(allow_none=True), "label": t.Unicode(),
                        "over_text": t.List(t.Float()), "logits": LOGITS, "contexts": t.List(CONTEXT_ROW),
                        "why": t.Unicode()}, optional=_PANEL_EXTRA, empty=True)
_PAIRS = t.List(Fixed(t.Unicode(), t.Float()))  # (token, probability), most probable first
# the last intervention (circuits.intervene.InterventionResult): the nodes set, old and new values; per
# target logit its value before, after (the model) and as the graph predicts; top next tokens
INTERVENTION = Record({"ids": t.List(t.Unicode()), "old": t.List(t.Float()), "new": t.List(t.Float()),
                       "targets": t.List(t.Unicode()), "before": t.List(t.Float()), "after": t.List(t.Float()),
                       "predicted": t.List(t.Float()), "top_before": _PAIRS, "top_after": _PAIRS, "note": t.Unicode()},
                      empty=True)


def _graph_kwargs() -> set:
    from ..circuits.attribution import attribution_graph

    return set(inspect.signature(attribution_graph).parameters) - {"session", "text", "transcoders", "report"}


def _finite(v) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


class GraphView(View):
    """An attribution graph (llm_widgets.circuits.graph.Graph) drawn as layers of nodes: token
    positions across, layers up (embeddings at the bottom, logits on top), edges coloured and sized
    by their weight on one stated scale. Three ways to open one:

    >>> lw.GraphView(g)                                    # a Graph (e.g. lw.read_graph_json(path))
    >>> lw.GraphView(s, "Mary city country", transcoders)  # computed here (lw.attribution_graph),
    ...                                                    # in the background with progress
    >>> lw.GraphView(s, g, transcoders, corpus=texts)      # a Graph, with the model behind it

    With the session and transcoders, clicking a feature node (`selected_node`) fills its panel: its
    activation over the text, the tokens it promotes and suppresses (its decoder row through the
    unembedding) and, with `corpus=`, its top-activating contexts; and the intervene control sets a
    feature's activation (or a supernode's, as a factor) and shows the model's real new output next
    to the graph's prediction (lw.graph_intervention; `.intervention_result` holds the record). The
    slider (`threshold`, 0.8 by default; 1.0 for a pruned graph that does not record the whole
    graph's influence in info['influence_total'], whose shares are then of what pruning kept) keeps
    the nodes that carry that share of the influence (circuit-tracer's cumulative influence, over
    the whole graph for a graph pruned by lw.attribution_graph or prune); nodes picked with
    shift-click (`selected_nodes`) become a named supernode (`supernodes`, [[name, node_id, ...]]),
    next to `suggested` groups (lw.suggest_supernodes). `.graph` is the graph with the supernodes;
    `.to_json(path)` writes circuit-tracer's JSON.
    Extra keyword arguments go to lw.attribution_graph (node_threshold=, max_logits=, ...).
    """

    _bundle_name = "graph"
    # GraphView(graph) has no text, and a graph's prompt is a plain text: no `messages=` wrapper
    _messages = False
    tokens = t.List(t.Unicode()).tag(sync=True)
    n_layers = t.Int(0).tag(sync=True)
    n_nodes = t.Int(0).tag(sync=True)
    node_ids = t.List(t.Unicode()).tag(sync=True)
    node_kind = Array("uint16", ndim=1).tag(sync=True)  # index into kinds
    kinds = t.List(t.Unicode(), default_value=list(NODE_KINDS)).tag(sync=True)
    node_layer = Array("int32", ndim=1).tag(sync=True)
    node_position = Array("int32", ndim=1).tag(sync=True)
    node_feature = Array("int32", ndim=1).tag(sync=True)
    node_activation = Array("float32", ndim=1).tag(sync=True)
    node_influence = Array("float32", ndim=1).tag(sync=True)  # cumulative share (0: logits, bias: always shown)
    node_labels = t.List(t.Unicode()).tag(sync=True)
    edge_source = Array("int32", ndim=1).tag(sync=True)
    edge_target = Array("int32", ndim=1).tag(sync=True)
    edge_weight = Array("float32", ndim=1).tag(sync=True)
    target_tokens = t.List(t.Unicode()).tag(sync=True)
    target_probs = t.List(t.Float()).tag(sync=True)
    # replacement, completeness (None: not known; {} until computed)
    scores = Record({"replacement": t.Float(allow_none=True), "completeness": t.Float(allow_none=True)},
                    empty=True).tag(sync=True)
    threshold = t.Float(0.8).tag(sync=True)
    selected_node = Index("n_nodes").tag(sync=True)
    selected_nodes = t.List(t.Int()).tag(sync=True)
    supernodes = t.List(t.List(t.Unicode())).tag(sync=True)
    suggested = t.List(t.List(t.Unicode())).tag(sync=True)
    feature_panel = FEATURE_PANEL.tag(sync=True)
    can_intervene = t.Bool(False).tag(sync=True)
    # the front end asks: {"target": row or supernode name, "value": v, "n": counter}
    intervene_request = Record({"target": t.Union([t.Int(), t.Unicode()]), "value": t.Float(), "n": t.Int()},
                               empty=True).tag(sync=True)
    intervention = INTERVENTION.tag(sync=True)
    done = t.Bool(False).tag(sync=True)

    def __init__(self, session, text=None, transcoders=None, *, corpus=None, background: bool | None = None,
                 **kwargs):
        graph_kw = {k: kwargs.pop(k) for k in list(kwargs) if k in _graph_kwargs()}
        unknown = [k for k in kwargs if not self.has_trait(k)]
        if unknown:
            raise unexpected_keyword(type(self), unknown[0], sorted(self.trait_names()) + sorted(_graph_kwargs()))
        if isinstance(session, Graph):
            if text is not None or transcoders is not None or corpus is not None or graph_kw:
                raise LLMWidgetsError("GraphView(graph) draws the graph alone; for the feature panel and interventions "
                                      "pass GraphView(session, graph, transcoders)")
            graph, session = session, None
        elif isinstance(text, Graph):
            if graph_kw:
                raise LLMWidgetsError(f"{sorted(graph_kw)} are for computing a graph; this one is given")
            graph = text
        elif isinstance(text, str):
            if transcoders is None:
                raise LLMWidgetsError("computing a graph needs the transcoders: GraphView(session, text, transcoders)")
            graph = None
        else:
            raise LLMWidgetsError(f"GraphView takes a Graph, or (session, text or Graph, transcoders); got "
                                  f"{type(session).__name__} and {type(text).__name__}")
        self._session, self._transcoders, self._corpus = session, transcoders, (
            None if corpus is None else list(corpus))
        self._stats: dict = {}
        self._checked = None  # the transcoders, checked against the model (on the first click)
        self._threshold_given = "threshold" in kwargs
        self.graph_computed = graph
        self.intervention_result = None
        title = kwargs.pop("title", "Attribution graph" + (f" \u00b7 {session.name}" if session is not None else ""))
        super().__init__(title=title, can_intervene=session is not None and transcoders is not None, **kwargs)
        self.observe(self._show_panel, names=["selected_node"])
        self.observe(self._intervene, names=["intervene_request"])
        if graph is not None:
            self._show(graph)
        else:
            from ..circuits.attribution import attribution_graph

            self._run(lambda report: attribution_graph(session, text, transcoders, report=report, **graph_kw),
                      self._show, background)

    # -- validation ------------------------------------------------------------------------------
    @t.validate("threshold")
    def _valid_threshold(self, proposal):
        v = float(proposal["value"])
        if not 0.0 <= v <= 1.0:
            raise t.TraitError(f"threshold is a share of the influence, in 0..1; got {v}")
        return v

    @t.validate("selected_nodes")
    def _valid_nodes(self, proposal):
        bad = [r for r in proposal["value"] if not 0 <= r < self.n_nodes]
        if bad:
            raise t.TraitError(f"selected_nodes must be node rows in 0..{self.n_nodes - 1}; got {bad}")
        return list(proposal["value"])

    @t.validate("supernodes")
    def _valid_supernodes(self, proposal):
        ids = set(self.node_ids)
        for s in proposal["value"]:
            if len(s) < 2 or not s[0] or any(i not in ids for i in s[1:]):
                raise t.TraitError(f"a supernode is [name, node_id, ...] with this graph's node ids; got {s!r}")
        return [list(s) for s in proposal["value"]]

    # -- the graph -------------------------------------------------------------------------------
    @property
    def graph(self) -> Graph | None:
        """The graph shown, with the view's supernodes in info['supernodes'] (None while computing)."""
        g = self.graph_computed
        return None if g is None else add_supernodes(g, self.supernodes)

    @property
    def result(self) -> Graph | None:
        """The numbers drawn: the graph (as `.graph`)."""
        return self.graph

    def to_json(self, path, *, slug: str | None = None):
        """Write the graph (with the view's supernodes) as circuit-tracer's graph JSON."""
        if self.graph is None:
            raise LLMWidgetsError("the graph is not computed yet: view.wait() first")
        return write_graph_json(self.graph, path, slug=slug)

    def _show(self, g: Graph) -> None:
        self.graph_computed = g
        try:
            sugg = suggest_supernodes(g, self._transcoders)
        except LLMWidgetsError:  # transcoders that do not cover the graph's layers: the edge profiles decide
            sugg = suggest_supernodes(g)
        cum = np.nan_to_num(cumulative_influence(g), nan=0.0)
        code = {k: i for i, k in enumerate(NODE_KINDS)}
        notes = [_pruning_note(g.info)] if g.info.get("pruned") else []
        notes = [n for n in notes if n]
        feats = g.info.get("features")
        if isinstance(feats, dict) and feats.get("left_out"):
            notes.append(f"{feats['left_out']} of {feats.get('active', '?')} active features left out"
                         + (f" ({feats['why']})" if feats.get("why") else ""))
        if g.info.get("softcap"):
            notes.append(str(g.info["softcap"]))
        with self.hold_sync():
            self.tokens = [str(x) for x in g.tokens]
            self.n_layers = int(g.n_layers)
            self.n_nodes = int(g.n_nodes)
            self.node_ids = g.node_ids()
            self.node_kind = np.array([code[k] for k in g.kind], np.uint16)
            self.node_layer = g.layer.astype(np.int32)
            self.node_position = g.position.astype(np.int32)
            self.node_feature = g.feature.astype(np.int32)
            self.node_activation = np.nan_to_num(g.activation.astype(np.float32), nan=0.0)
            self.node_influence = cum.astype(np.float32)
            self.node_labels = [str(g.labels.get(i, "")) for i in range(g.n_nodes)]
            self.edge_source = g.source.astype(np.int32)
            self.edge_target = g.target.astype(np.int32)
            self.edge_weight = g.weight.astype(np.float32)
            self.target_tokens = [str(x) for x in g.target_tokens]
            self.target_probs = [float(x) for x in g.target_probs]
            self.scores = {"replacement": _finite(g.replacement_score), "completeness": _finite(g.completeness_score)}
            self.supernodes = [list(s) for s in g.info.get("supernodes", [])]
            self.suggested = [[s.name, *s.ids] for s in sugg]
            if notes:
                self.notice = "; ".join(notes)
            if g.info.get("pruned") and "influence_total" not in g.info and not self._threshold_given:
                self.threshold = 1.0  # shares of what pruning kept: the slider starts with all of it
            self.done = True

    # -- the feature panel -----------------------------------------------------------------------
    def _tc(self, layer: int):
        from ..circuits.replacement import transcoders_of

        if self._checked is None:
            self._checked = transcoders_of(self._session, self._transcoders)
        tc = self._checked
        if tc.cross_layer:
            raise LLMWidgetsError("the feature panel reads per-layer transcoders; a cross-layer transcoder's "
                                  "features are not shown yet")
        return tc.encoders[layer]

    def _show_panel(self, change=None) -> None:
        r, g = self.selected_node, self.graph_computed
        if r is None or g is None:
            self.feature_panel = {}
            return
        k = str(g.kind[r])
        out = {"row": r, "id": self.node_ids[r], "kind": k, "layer": int(g.layer[r]), "position": int(g.position[r]),
               "feature": int(g.feature[r]), "activation": _finite(g.activation[r]),
               "label": self.node_labels[r]}
        if k == "feature" and self._session is not None and self._transcoders is not None:
            try:
                if (np.asarray(g.token_ids) < 0).any():
                    raise LLMWidgetsError("the graph does not hold every token id of its prompt (a file without "
                                          "every embedding node): the feature cannot be read over the text")
                d = self._tc(int(g.layer[r]))
                f = int(g.feature[r])
                enc = {"input_ids": torch.as_tensor(g.token_ids, dtype=torch.long)[None],
                       "attention_mask": torch.ones(1, len(g.token_ids), dtype=torch.long)}
                x = site_activations(self._session, d, enc)[0]
                out["over_text"] = column(d, x, f, memory_budget(self._session)).tolist()
                if self._session.adapter.head:
                    out["logits"] = logit_effect(self._session, d, f, k=8)
                if self._corpus is not None:
                    out["contexts"] = self._contexts(int(g.layer[r]), d, f)
            except LLMWidgetsError as e:
                out["why"] = str(e)
        elif k == "feature":
            out["why"] = ("the feature's activation over the text and its logits need "
                          "GraphView(session, graph, transcoders)")
        self.feature_panel = out

    def _contexts(self, layer: int, dictionary, f: int) -> list:
        """Feature f's top-activating contexts over the corpus (corpus_stats, cached on disk per
        transcoder)."""
        if layer not in self._stats:
            self._stats[layer] = corpus_stats(self._session, dictionary, self._corpus)
        st = self._stats[layer]
        return contexts(st.tokens, st.top_text[f], st.top_pos[f], st.top_value[f], width=CONTEXT)

    # -- interventions ---------------------------------------------------------------------------
    def intervene(self, edits: dict, *, background: bool | None = None) -> None:
        """Set feature nodes ({row: activation}) or supernodes ({name: factor}) in the model and show
        the real new output next to the graph's prediction (lw.graph_intervention); the record is
        `.intervention_result` when done (`.wait()`)."""
        if not self.can_intervene:
            raise LLMWidgetsError("interventions need the model: GraphView(session, graph or text, transcoders)")
        g = self.graph
        if g is None:
            raise LLMWidgetsError("the graph is not computed yet: view.wait() first")
        for key in edits:
            if isinstance(key, str):
                supernode_rows(g, key)  # a clear error now, not in the background
        self._run(lambda report: graph_intervention(self._session, g, self._transcoders, edits), self._shown,
                  background)

    def _intervene(self, change) -> None:
        req = change["new"] or {}
        if "target" not in req:
            return
        target = req["target"]
        try:
            self.intervene({target if isinstance(target, str) else int(target): float(req.get("value", 0.0))})
        except LLMWidgetsError as e:
            self.error = f"{type(e).__name__}: {e}"

    def _shown(self, r) -> None:
        self.intervention_result = r
        self.intervention = {
            "ids": r.ids, "old": r.old.tolist(), "new": r.new.tolist(), "targets": r.targets,
            "before": r.logit_before.tolist(), "after": r.logit_after.tolist(), "predicted": r.logit_predicted.tolist(),
            "top_before": [[tok, p] for tok, p in r.top_before], "top_after": [[tok, p] for tok, p in r.top_after],
            "note": r.note}

    def _static_figure(self) -> str:
        g = self.graph_computed
        if g is None:
            return ""
        ids = self.node_ids
        top = np.argsort(-g.influence)[:40]
        rows = [{"node": ids[i], "kind": str(g.kind[i]), "layer": int(g.layer[i]), "position": int(g.position[i]),
                 "activation": float(g.activation[i]), "influence": float(g.influence[i])} for i in top]
        return fallback.table(rows, ["node", "kind", "layer", "position", "activation", "influence"],
                              f"The {len(rows)} most influential of {g.n_nodes} nodes ({g.n_edges} edges)")




def _pruning_note(info: dict) -> str:
    """What pruning cut, said with its numbers ('' where it cut nothing)."""
    p = info.get("pruning")
    if not isinstance(p, dict):
        return f"pruned: {info['pruned']}"
    if p.get("nodes_after") == p.get("nodes_before") and p.get("edges_after") == p.get("edges_before"):
        return ""
    return (f"pruned ({info['pruned']}): {p['nodes_after']} of {p['nodes_before']} nodes and {p['edges_after']} of "
            f"{p['edges_before']} edges kept")
