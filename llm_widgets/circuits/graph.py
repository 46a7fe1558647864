"""An attribution graph as a record: nodes (features, error terms, token embeddings, output logits,
and the constant terms that make each target's inputs add up), the sparse direct effects between
them, and the scores of the replacement model it was read from.

    g = lw.attribution_graph(s, text, transcoders)   # circuits/attribution.py computes it
    g.node_ids()[:3]        # ['E_12_0', '0_421_3', ...]  (circuit-tracer's node ids)
    g.into(g.logit_nodes()[0])   # (sources, weights) of the direct effects into the top logit

Vocabulary (as circuit-tracer and the paper use it): a node is one of NODE_KINDS at a `layer` and a
token `position`; a feature node is one transcoder feature active at one position (`feature` is its
index in that layer's transcoder, `activation` its value); an error node is what the transcoder
misses of the MLP's output at one (layer, position); an embedding node is a token's embedding
(`feature` holds the token id); a logit node is one target logit at the last position (`feature`
holds the token id, `activation` the logit's value); a bias node collects the constant terms
(biases of attention, transcoders, norms and head) that reach a target, so that the edges into each
logit add up to the logit exactly. An edge (source, target, weight) is the source's direct effect
on the target's input (a feature's pre-activation, a logit), with attention patterns and norm
scales frozen at this input's values. Layers: embeddings are layer -1 (EMBED_LAYER), features and
errors the block whose MLP they replace, logits n_layers.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np

from ..errors import LLMWidgetsError

NODE_KINDS = ("feature", "error", "embedding", "logit", "bias")
EMBED_LAYER = -1


@dataclass(frozen=True)
class Graph:
    """Nodes are rows of parallel arrays (N nodes); edges are parallel arrays (E edges, sparse,
    `source` and `target` are node rows). `tokens` are the prompt's token strings (unescaped: views
    escape), `token_ids` their ids. `target_tokens` / `target_ids` / `target_probs` describe the logit
    nodes in order. `replacement_score` and `completeness_score` are the paper's scores (fraction of
    the end-to-end influence carried by non-error nodes / fraction of each node's inputs that come
    from non-error nodes, weighted by influence), `info` records how it was computed (model,
    transcoders, thresholds, what pruning or a budget cut) for messages and the JSON's metadata."""

    tokens: list
    token_ids: np.ndarray       # [T] int64
    kind: np.ndarray            # [N] str, one of NODE_KINDS
    layer: np.ndarray           # [N] int64 (EMBED_LAYER for embeddings, n_layers for logits and bias nodes)
    position: np.ndarray        # [N] int64 (token position; the last position for logits)
    feature: np.ndarray         # [N] int64 (feature index / token id; -1 for error and bias nodes)
    activation: np.ndarray      # [N] float32 (feature activation; logit value for logits; 0 otherwise)
    influence: np.ndarray       # [N] float32 (influence on the targets, as pruning uses it)
    source: np.ndarray          # [E] int64 node row
    target: np.ndarray          # [E] int64 node row
    weight: np.ndarray          # [E] float32 direct effect of source on target
    n_layers: int
    target_tokens: list = field(default_factory=list)
    target_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    target_probs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    replacement_score: float = float("nan")
    completeness_score: float = float("nan")
    labels: dict = field(default_factory=dict)   # node row -> a label (feature explanations, supernode names)
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        n = len(self.kind)
        for name in ("layer", "position", "feature", "activation", "influence"):
            if len(getattr(self, name)) != n:
                raise LLMWidgetsError(f"Graph: {name} has {len(getattr(self, name))} rows, kind has {n}")
        e = len(self.source)
        if len(self.target) != e or len(self.weight) != e:
            raise LLMWidgetsError("Graph: source, target and weight must have one entry per edge")
        bad = set(np.unique(self.kind).tolist()) - set(NODE_KINDS)
        if bad:
            raise LLMWidgetsError(f"Graph: unknown node kinds {sorted(bad)}; kinds are {NODE_KINDS}")
        if e and (min(self.source.min(), self.target.min()) < 0 or max(self.source.max(), self.target.max()) >= n):
            raise LLMWidgetsError("Graph: an edge names a node row that does not exist")

    @property
    def n_nodes(self) -> int:
        return len(self.kind)

    @property
    def n_edges(self) -> int:
        return len(self.source)

    def rows(self, kind: str) -> np.ndarray:
        """Node rows of one kind, in order."""
        if kind not in NODE_KINDS:
            raise LLMWidgetsError(f"kind must be one of {NODE_KINDS}, got {kind!r}")
        return np.flatnonzero(self.kind == kind)

    def logit_nodes(self) -> np.ndarray:
        return self.rows("logit")

    def node_ids(self) -> list:
        """circuit-tracer's node ids (llm_widgets.circuits.ctjson): '{layer}_{feature}_{pos}' for
        features, 'E_{token id}_{pos}' for embeddings, '{n_layers + 1}_{token id}_{pos}' for logits
        (circuit-tracer puts logits one layer above the last block), '0_{layer}_{pos}' for errors, and
        'B_{k}' for the k-th bias node (circuit-tracer has none). Where an error's id would equal a
        layer-0 feature's ('0_3_5' is feature 3 of layer 0 at position 5 and the error of layer 3 at
        position 5), the error's id is '{layer}_error_{pos}' (the form circuit-tracer's forks use), so
        ids stay unique. Which errors take that form is decided on the unpruned graph and kept in
        info['long_error_ids'] by `subgraph`, so a node has one id in a graph and all its subgraphs."""
        feats = self.long_error_ids()
        out, bias = [], 0
        for i, k in enumerate(self.kind):
            lay, pos, f = int(self.layer[i]), int(self.position[i]), int(self.feature[i])
            if k == "feature":
                out.append(f"{lay}_{f}_{pos}")
            elif k == "embedding":
                out.append(f"E_{f}_{pos}")
            elif k == "logit":
                out.append(f"{self.n_layers + 1}_{f}_{pos}")
            elif k == "error":
                out.append(f"{lay}_error_{pos}" if (lay, pos) in feats else f"0_{lay}_{pos}")
            else:
                out.append(f"B_{bias}")
                bias += 1
        return out

    def long_error_ids(self) -> set:
        """The (layer, position) of the error nodes whose id is '{layer}_error_{pos}' (see node_ids):
        info['long_error_ids'] where recorded (by subgraph, or read from a file), else those whose
        '0_{layer}_{pos}' would be a layer-0 feature's id in this graph."""
        if "long_error_ids" in self.info:
            return {(int(a), int(b)) for a, b in self.info["long_error_ids"]}
        feats = {(int(self.feature[i]), int(self.position[i])) for i in np.flatnonzero(
            (self.kind == "feature") & (self.layer == 0))}
        err = np.flatnonzero(self.kind == "error")
        return {(int(self.layer[i]), int(self.position[i])) for i in err} & feats

    def into(self, row: int) -> tuple:
        """(source rows, weights) of the edges into node `row`."""
        m = self.target == int(row)
        return self.source[m], self.weight[m]

    def out_of(self, row: int) -> tuple:
        """(target rows, weights) of the edges out of node `row`."""
        m = self.source == int(row)
        return self.target[m], self.weight[m]

    def adjacency(self) -> np.ndarray:
        """Dense [N, N] matrix A[target, source] = weight (for small graphs and tests)."""
        a = np.zeros((self.n_nodes, self.n_nodes), np.float64)
        np.add.at(a, (self.target, self.source), self.weight.astype(np.float64))
        return a

    def subgraph(self, keep: np.ndarray, *, note: Optional[str] = None) -> "Graph":
        """The graph restricted to node rows `keep` (a boolean mask or rows), edges between kept
        nodes only; `note` is recorded in info['pruned']. So that the subgraph's numbers stay those of
        the whole graph, info records (once, from the graph before any cut) `influence_total`, the
        summed influence of every node but logits and bias nodes, and `long_error_ids` (see
        node_ids), and collects in `influence_cut` the influence of every node cut (descending):
        circuit-tracer's cumulative influence of a kept node counts the nodes cut above it
        (ctjson.cumulative_influence)."""
        keep = np.asarray(keep)
        mask = keep if keep.dtype == bool else np.isin(np.arange(self.n_nodes), keep)
        new = np.full(self.n_nodes, -1, np.int64)
        new[mask] = np.arange(int(mask.sum()))
        e = mask[self.source] & mask[self.target]
        info = dict(self.info)
        scored = (self.kind != "logit") & (self.kind != "bias")
        info.setdefault("influence_total", float(self.influence[scored].astype(np.float64).sum()))
        info.setdefault("long_error_ids", sorted([a, b] for a, b in self.long_error_ids()))
        cut = self.influence[scored & ~mask].astype(np.float64)
        if len(cut):
            info["influence_cut"] = -np.sort(-np.concatenate([info.get("influence_cut", np.zeros(0)), cut]))
        if note:
            info["pruned"] = note
        return replace(
            self, kind=self.kind[mask], layer=self.layer[mask], position=self.position[mask],
            feature=self.feature[mask], activation=self.activation[mask], influence=self.influence[mask],
            source=new[self.source[e]], target=new[self.target[e]], weight=self.weight[e],
            labels={int(new[k]): v for k, v in self.labels.items() if mask[k]}, info=info)
