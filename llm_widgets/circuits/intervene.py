"""Intervene on a graph's features: the model's real output with chosen features (or supernodes) set,
next to what the graph predicts.

    r = lw.graph_intervention(s, g, transcoders, {12: 0.0})          # node row 12 set to 0
    r = lw.graph_intervention(s, g, transcoders, {"Texas": -1.0})    # a supernode: each member x -1
    r.delta_real, r.delta_predicted    # [K] change of each target logit: the model's, the graph's

The real output is one forward of the model (two rows: as it is, and edited) with each edited
feature's transcoder spliced in (llm_widgets.dictionaries.edit: the MLP output becomes the
transcoder's output plus its error term, so the only change is the edit, which reaches every later
layer through the model's own attention, norms and MLPs). The prediction is linear in the graph: a
feature's edge weights are its direct effects at its activation, so per unit of activation they are
weight / activation; the change of every node is the fixed point of delta = e + U delta on the graph
(U: those per-unit edges; e: the edits; an edited node's own inputs are cut), i.e. (I - U)^-1 e, read
at the logit nodes. The two agree for a feature whose effects the graph holds whole (a last-layer
feature at the last position: its only path is through the final norm) up to the norm's scale, which
the graph freezes and the model does not; elsewhere the graph also misses attention patterns that
move, features that switch on or off, and whatever pruning removed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..checks import integer, number
from ..compute.outputs import output_names
from ..dictionaries.edit import splice_writes
from ..errors import LLMWidgetsError
from ..execution import Program, run
from .graph import Graph
from .replacement import transcoders_of
from .supernodes import Supernode, supernode_rows


@dataclass
class GraphIntervention:
    """The edit (`rows` of the graph's feature nodes, their `old` and `new` activations) and its
    effect at the graph's output position: for each target logit (`targets`, `target_ids`), its value
    (minus the mean logit over the vocabulary, as the graph's logit nodes hold it) before, after (the
    model's real forward) and as the graph predicts it; `top_before` /
    `top_after`: the model's `k` most probable next tokens, [(token, probability)]; `note`: what the
    prediction leaves out."""

    rows: list
    ids: list
    old: np.ndarray
    new: np.ndarray
    position: int
    targets: list
    target_ids: np.ndarray
    logit_before: np.ndarray
    logit_after: np.ndarray
    logit_predicted: np.ndarray
    top_before: list = field(default_factory=list)
    top_after: list = field(default_factory=list)
    note: str = ""

    @property
    def delta_real(self) -> np.ndarray:
        return self.logit_after - self.logit_before

    @property
    def delta_predicted(self) -> np.ndarray:
        return self.logit_predicted - self.logit_before

    def summary(self) -> str:
        """One line per target logit: before, after, predicted (3 significant digits)."""
        lines = [f"{t!r}: {b:.3g} -> {a:.3g} (graph predicted {p:.3g})" for t, b, a, p in
                 zip(self.targets, self.logit_before, self.logit_after, self.logit_predicted)]
        return "\n".join(lines)


def edits_of(graph: Graph, edits: dict) -> tuple[np.ndarray, np.ndarray]:
    """(feature node rows, new activations) of `edits`: {row: new activation} for one node,
    {supernode: factor} for a supernode (a Supernode, a [name, node_id, ...] list as a tuple, or
    the name of one in info['supernodes']): each member's activation times the factor."""
    if not isinstance(edits, dict) or not edits:
        raise LLMWidgetsError("edits must be a non-empty dict {node row or supernode: value}")
    rows, vals = [], []
    for key, v in edits.items():
        v = number(v, f"edits[{key!r}]")
        if isinstance(key, (str, Supernode, tuple)):
            members = supernode_rows(graph, list(key) if isinstance(key, tuple) else key)
            rows += members.tolist()
            vals += (graph.activation[members].astype(np.float64) * v).tolist()
        else:
            r = integer(key, "node row", low=0)
            if r >= graph.n_nodes:
                raise LLMWidgetsError(f"node row {r} is out of range: the graph has {graph.n_nodes} nodes")
            rows.append(r)
            vals.append(v)
    rows_a = np.asarray(rows, np.int64)
    bad = [int(r) for r in rows_a if graph.kind[r] != "feature"]
    if bad:
        raise LLMWidgetsError(f"node(s) {bad} are {sorted(set(graph.kind[bad].tolist()))} nodes: only feature nodes "
                              f"have an activation to set")
    if len(set(rows_a.tolist())) != len(rows_a):
        raise LLMWidgetsError("a node is edited twice (directly and in a supernode, or in two supernodes)")
    return rows_a, np.asarray(vals, np.float64)


def predicted_change(graph: Graph, rows: np.ndarray, new: np.ndarray) -> np.ndarray:
    """[N] the change of every node the graph predicts when the feature nodes `rows` are set to `new`
    (see the module docstring): exact fixed point on the graph's (acyclic) edges."""
    a = graph.activation.astype(np.float64)
    src, dst, w = graph.source, graph.target, graph.weight.astype(np.float64)
    feat_src = graph.kind[src] == "feature"
    use = feat_src & ~np.isin(dst, rows)  # per-unit edges out of features, edited nodes' inputs cut
    if (a[src[use]] == 0).any():
        raise LLMWidgetsError("a feature node of activation 0 has edges out of it: its effect per unit of activation "
                              "is unknown")
    u = w[use] / a[src[use]]
    s, t = src[use], dst[use]
    e = np.zeros(graph.n_nodes)
    e[rows] = new - a[rows]
    delta = e.copy()
    for _ in range(graph.n_nodes + 1):
        nxt = e.copy()
        np.add.at(nxt, t, u * delta[s])
        if np.array_equal(nxt, delta):
            return delta
        delta = nxt
    raise LLMWidgetsError("the graph's edges form a cycle: no prediction")


def _top(session, probs: torch.Tensor, k: int) -> list:
    v, i = probs.topk(min(k, probs.shape[-1]))
    return list(zip(output_names(session, i.tolist()), v.tolist()))


def graph_intervention(session, graph: Graph, transcoders, edits: dict, *, k: int = 10) -> GraphIntervention:
    """Set feature nodes (or supernodes) of `graph` as `edits` says (see edits_of) in the model, with
    each one's transcoder (from `transcoders`, the graph's: per-layer transcoders) spliced in, and
    return the model's real new output next to the graph's linear prediction (GraphIntervention)."""
    if not isinstance(graph, Graph):
        raise LLMWidgetsError(f"graph_intervention takes a Graph, got {type(graph).__name__}")
    k = integer(k, "k", low=1)
    rows, new = edits_of(graph, edits)
    tc = transcoders_of(session, transcoders)
    if tc.cross_layer:
        raise LLMWidgetsError("setting a cross-layer transcoder's features in the model is not supported yet (its "
                              "features write every later layer); use per-layer transcoders")
    ids = np.asarray(graph.token_ids, np.int64)
    if (ids < 0).any() or (ids >= session.model.get_input_embeddings().num_embeddings).any():
        raise LLMWidgetsError("the graph's token ids are unknown or outside this model's vocabulary: it was computed "
                              "on another model or read from a file without every token's embedding node")
    logits = graph.logit_nodes()
    if not len(logits):
        raise LLMWidgetsError("the graph has no logit nodes: nothing to compare")
    position = int(graph.position[logits[0]])
    enc = {"input_ids": torch.as_tensor(ids)[None].expand(2, -1),
           "attention_mask": torch.ones(2, len(ids), dtype=torch.long)}
    writes = []
    groups: dict = {}
    for r, v in zip(rows.tolist(), new.tolist()):
        groups.setdefault((int(graph.layer[r]), int(graph.position[r])), {})[int(graph.feature[r])] = v
    for (layer, pos), clamp in groups.items():
        writes += splice_writes(session, tc.encoders[layer], rows=(1,), clamp=clamp, positions=[pos])
    with torch.no_grad():
        lg = run(session, Program(enc, writes=writes, logits=[position], label="graph intervention")).logits
    lg = lg[:, 0].double() if lg.dim() == 3 else lg.double()
    tid = np.asarray(graph.feature[logits], np.int64)
    centred = lg - lg.mean(-1, keepdim=True)  # the graph's logit nodes are logits minus their mean
    before, after = centred[0, tid].cpu().numpy(), centred[1, tid].cpu().numpy()
    if graph.info.get("contrast"):  # a contrast graph's logit node is the target's logit minus the contrast's
        neg = centred[:, int(graph.info["contrast"]["contrast_id"])].cpu().numpy()
        before, after = before - neg[0], after - neg[1]
    pred = predicted_change(graph, rows, new)[logits]
    node_ids = graph.node_ids()
    pruned = f"; the graph was pruned ({graph.info['pruned']})" if graph.info.get("pruned") else ""
    if graph.info.get("softcap"):
        pruned += f"; {graph.info['softcap']}"
    return GraphIntervention(
        rows=rows.tolist(), ids=[node_ids[r] for r in rows], old=graph.activation[rows].astype(np.float64), new=new,
        position=position, targets=list(graph.target_tokens) or [str(t) for t in tid], target_ids=tid,
        logit_before=before, logit_after=after, logit_predicted=before + pred,
        top_before=_top(session, torch.softmax(lg[0].float(), -1), k),
        top_after=_top(session, torch.softmax(lg[1].float(), -1), k),
        note="the graph's prediction is linear, with attention patterns and norm scales frozen at this input: it "
             "misses patterns and scales that move, features that switch on or off, and paths pruned away" + pruned)
