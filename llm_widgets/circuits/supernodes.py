"""Suggested supernodes: groups of a graph's feature nodes that do the same thing, for a reader to
name, merge and prune (circuit-tracer leaves grouping to the user; its issue #20).

    groups = lw.suggest_supernodes(g, transcoders)       # [Supernode(name, rows, ids, similarity)]
    g = add_supernodes(g, groups)                         # named, in g.info['supernodes']

Similarity is the cosine of the features' decoder directions where the transcoders are given (the
same feature at several positions, or features of several layers that write one direction), else of
their outgoing-edge profiles (the direct effect of each node on every other node of the graph).
Groups are the connected components of "cosine at least `min_similarity`" (single linkage), largest
first. Stored as circuit-tracer stores them, [name, node_id, ...] in `info['supernodes']`, which
`write_graph_json` writes to qParams.supernodes.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..checks import integer, number
from ..dictionaries.crosslayer import CrossLayerTranscoder
from ..errors import LLMWidgetsError
from .graph import Graph


@dataclass(frozen=True)
class Supernode:
    """A named group of node `rows` (their circuit-tracer `ids`), with the mean pairwise cosine
    `similarity` of its members."""

    name: str
    rows: tuple
    ids: tuple
    similarity: float


def decoder_rows(transcoders, layers, features) -> np.ndarray:
    """[n, d] the decoder direction of each (layer, feature): its row of W_dec in the transcoder that
    writes block `layer`'s MLP output (`transcoders`: a list of per-layer transcoders, found by their
    output site), or for a cross-layer transcoder its decoders into every later layer, concatenated
    after zeros for the layers before it (so features compare where they write the same layers)."""
    clt = isinstance(transcoders, CrossLayerTranscoder)
    if not clt and not isinstance(transcoders, (list, tuple)):
        raise LLMWidgetsError(f"transcoders must be a list of per-layer transcoders or a cross-layer transcoder, "
                              f"got {type(transcoders).__name__}")
    by = {} if clt else {d.out_site.layer: d for d in transcoders if getattr(d, "out_site", None) is not None}
    rows = []
    for lay, f in zip(np.asarray(layers).tolist(), np.asarray(features).tolist()):
        if clt:
            dec = transcoders.decoders[lay][f]  # [n_layers - lay, d]
            rows.append(torch.cat([torch.zeros(lay * dec.shape[-1]), dec.float().reshape(-1).cpu()]))
            continue
        if lay not in by:
            raise LLMWidgetsError(f"no transcoder writes block {lay}'s MLP output; those given write {sorted(by)}")
        if not 0 <= f < by[lay].n_features:
            raise LLMWidgetsError(f"feature {f} of layer {lay} is out of range: that transcoder has "
                                  f"{by[lay].n_features} features")
        rows.append(by[lay].weights.W_dec[f].float().cpu())
    width = max(len(r) for r in rows)
    return np.stack([np.pad(r.detach().numpy(), (0, width - len(r))) for r in rows]).astype(np.float32)


def _cosine(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=1, keepdims=True)
    u = np.divide(v, n, out=np.zeros_like(v), where=n > 0)
    return u @ u.T


def _components(adj: np.ndarray) -> list:
    """Connected components of a symmetric boolean matrix (union-find)."""
    parent = list(range(len(adj)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(adj, 1))):
        a, b = find(int(i)), find(int(j))
        if a != b:
            parent[b] = a
    groups: dict = {}
    for i in range(len(adj)):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


def _name(graph: Graph, rows) -> str:
    labels = [graph.labels[r] for r in rows if graph.labels.get(r)]
    if labels:
        return Counter(labels).most_common(1)[0][0]
    feats = Counter((int(graph.layer[r]), int(graph.feature[r])) for r in rows)
    return " + ".join(f"L{lay}/{f}" + (f" \u00d7{n}" if n > 1 else "") for (lay, f), n in feats.most_common(3)) + \
        (" + \u2026" if len(feats) > 3 else "")


def suggest_supernodes(graph: Graph, transcoders=None, *, k: int = 8, min_similarity: float = 0.9) -> list:
    """Up to `k` groups of two or more feature nodes whose decoder directions (`transcoders` given:
    see llm_widgets.circuits.transcoder_set) or outgoing-edge profiles (else) have cosine at least
    `min_similarity`, largest first (then most similar). Each is named by its members' most common
    label, else by its features ('L1/42 x3').

    The default 0.9 is measured (bench/supernodes.py): on the 32 unpruned two-hop graphs
    (lw.teaching.two_hop(), 507 feature nodes) it merges 70 pairs of distinct features, every one of
    them two features that promote the same city or country through the unembedding; 0.85 merges 116
    of which 16 promote different ones, 0.8 300 of which 114 (single linkage chains them). Over the
    77 distinct features of those graphs, the 8 pairs at cosine 0.9 or more all agree, those in
    0.8-0.9 half of the time (13 of 25). Random transcoders (d=64, 2 x 64 features, 20 seeds) merge
    nothing from 0.6 up, so false merges come from trained features that share structure, not from
    chance. Lower it (08_circuits uses 0.8 to group 0_35_1 with the Paris feature, cosine 0.82) knowing that
    about half of such pairs do different things."""
    if not isinstance(graph, Graph):
        raise LLMWidgetsError(f"suggest_supernodes takes a Graph, got {type(graph).__name__}")
    k = integer(k, "k", low=1)
    min_similarity = number(min_similarity, "min_similarity")
    if not -1.0 <= min_similarity <= 1.0:
        raise LLMWidgetsError(f"min_similarity is a cosine, in -1..1; got {min_similarity}")
    rows = graph.rows("feature")
    if len(rows) < 2:
        return []
    if transcoders is not None:
        vec = decoder_rows(transcoders, graph.layer[rows], graph.feature[rows])
    else:
        at = {int(r): i for i, r in enumerate(rows)}
        vec = np.zeros((len(rows), graph.n_nodes), np.float32)
        for s, t, w in zip(graph.source.tolist(), graph.target.tolist(), graph.weight.tolist()):
            if s in at:
                vec[at[s], t] += w
    cos = _cosine(vec.astype(np.float64))
    found = []
    for comp in _components(cos >= min_similarity):
        if len(comp) < 2:
            continue
        sub = cos[np.ix_(comp, comp)]
        sim = float((sub.sum() - np.trace(sub)) / (len(comp) * (len(comp) - 1)))
        found.append((comp, sim))
    found.sort(key=lambda c: (-len(c[0]), -c[1]))
    ids = graph.node_ids()
    out = []
    for comp, sim in found[:k]:
        r = tuple(int(rows[i]) for i in comp)
        out.append(Supernode(name=_name(graph, r), rows=r, ids=tuple(ids[i] for i in r), similarity=sim))
    return out


def supernode_rows(graph: Graph, group) -> np.ndarray:
    """The node rows of a supernode: a Supernode, a [name, node_id, ...] list, or the name of one
    stored in the graph's info['supernodes']."""
    if isinstance(group, Supernode):
        ids = list(group.ids)
    elif isinstance(group, str):
        named = [s for s in graph.info.get("supernodes", []) if s and s[0] == group]
        if not named:
            have = [s[0] for s in graph.info.get("supernodes", []) if s]
            raise LLMWidgetsError(f"no supernode named {group!r}; the graph has {have}")
        ids = list(named[0][1:])
    elif isinstance(group, (list, tuple)) and group and isinstance(group[0], str):
        ids = list(group[1:])
    else:
        raise LLMWidgetsError(f"a supernode is a Supernode, a [name, node_id, ...] list or a stored name; "
                              f"got {group!r}")
    where = {nid: i for i, nid in enumerate(graph.node_ids())}
    missing = [i for i in ids if i not in where]
    if missing:
        raise LLMWidgetsError(f"supernode nodes {missing} are not in this graph")
    return np.array([where[i] for i in ids], np.int64)


def add_supernodes(graph: Graph, groups) -> Graph:
    """The graph with `groups` (Supernodes, or [name, node_id, ...] lists) added to
    info['supernodes'] (a group of the same name is replaced)."""
    new = [[g.name, *g.ids] if isinstance(g, Supernode) else list(g) for g in groups]
    for g in new:
        supernode_rows(graph, g)  # checked: a name and nodes of this graph
    names = {g[0] for g in new}
    kept = [list(s) for s in graph.info.get("supernodes", []) if s and s[0] not in names]
    return replace(graph, info={**graph.info, "supernodes": kept + new})
