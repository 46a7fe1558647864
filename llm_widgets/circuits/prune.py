"""Influence, pruning and the replacement / completeness scores of an attribution graph, as the
paper (Ameisen et al. 2025) and circuit-tracer compute them.

Influence: with A[target, source] the direct effects, Â = |A| normalised so each row sums to 1,
and w the logit probabilities on the logit nodes, a node's influence is w @ (Â + Â² + Â³ + ...)
(every path from the logits down to it; the graph is acyclic, so the sum ends). Pruning keeps the
nodes that cover `node_threshold` of the total influence and the edges (scored by Â times the
influence of their target, plus its logit weight) that cover `edge_threshold` of the total edge
score; logits, embeddings and the bias node are always kept; then features and errors left without
outgoing edges, and features left without incoming edges, are removed until none is (skipped when
both thresholds are 1.0: then nothing is cut).

Scores: replacement = influence of the token embeddings / (that + influence of the error nodes);
completeness = the influence-weighted (plus logit weight) mean over nodes of the fraction of each
node's normalised input that does not come from error nodes. The bias node (constant terms, which
circuit-tracer does not have) is left out of the normalisation, influence and scores, so the numbers
are comparable with circuit-tracer's.

    g2 = prune(g, node_threshold=0.8, edge_threshold=0.98)
    graph_scores(g2)       # (replacement, completeness) of the pruned graph
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..checks import fraction
from ..errors import LLMWidgetsError
from .graph import Graph


def normalized(A: np.ndarray) -> np.ndarray:
    """|A| with each row divided by its sum (rows summing to 0 stay 0), float64."""
    a = np.abs(np.asarray(A, np.float64))
    return a / np.maximum(a.sum(1, keepdims=True), 1e-10)


def influence(A_norm: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """weights @ (Â + Â² + ...): every node's influence on the weighted targets, summed over paths
    of every length; an error if the graph has a cycle (the sum would not end)."""
    cur = np.asarray(weights, np.float64) @ A_norm
    total = cur.copy()
    for _ in range(A_norm.shape[0] + 1):
        if not cur.any():
            return total
        cur = cur @ A_norm
        total += cur
    raise LLMWidgetsError("influence did not converge: the graph's edges form a cycle")


def partial_influence(rows: np.ndarray, row_nodes: np.ndarray, weights: np.ndarray, chunk: int = 1 << 24
                      ) -> np.ndarray:
    """Influence computed from some targets' rows only (rows[r] is node row_nodes[r]'s input over
    the first N nodes, [R, N]; `weights` covers every node, sources first, so nodes past N are
    targets only, as logits): circuit-tracer's estimate, used to choose which features to compute
    next. Works on `chunk` elements of the rows at a time (no normalised copy of them is held)."""
    R, N = rows.shape
    step = max(1, chunk // max(1, R))
    sums = np.zeros(R)
    for c in range(0, N, step):
        sums += np.abs(rows[:, c:c + step]).sum(1, dtype=np.float64)
    inv = 1.0 / np.maximum(sums, 1e-10)
    cur = np.asarray(weights, np.float64)
    total = np.zeros(len(cur))
    for _ in range(N + 1):
        v = cur[row_nodes] * inv
        cur = np.zeros(len(total))
        for c in range(0, N, step):
            cur[c:min(c + step, N)] = v @ np.abs(rows[:, c:c + step])
        if not cur.any():
            return total
        total += cur
    raise LLMWidgetsError("influence did not converge: the graph's edges form a cycle")


def logit_weights(graph: Graph) -> np.ndarray:
    """[N]: each logit node's probability, 0 elsewhere."""
    w = np.zeros(graph.n_nodes)
    rows = graph.logit_nodes()
    if len(rows) != len(graph.target_probs):
        raise LLMWidgetsError(f"the graph has {len(rows)} logit nodes and {len(graph.target_probs)} target "
                              f"probabilities")
    w[rows] = graph.target_probs
    return w


def scoring_matrix(graph: Graph) -> np.ndarray:
    """The dense adjacency without the bias node's edges (see the module docstring)."""
    A = graph.adjacency()
    A[:, graph.kind == "bias"] = 0
    return A


def scores_of(A: np.ndarray, kind: np.ndarray, weights: np.ndarray) -> tuple:
    """(replacement, completeness, node influence) of a dense adjacency (bias columns zeroed)."""
    a = normalized(A)
    inf = influence(a, weights)
    err, tok = kind == "error", kind == "embedding"
    tok_inf, err_inf = inf[tok].sum(), inf[err].sum()
    replacement = float(tok_inf / (tok_inf + err_inf)) if tok_inf + err_inf > 0 else 0.0
    out = inf + weights
    complete = 1.0 - a[:, err].sum(1)
    completeness = float((complete * out).sum() / out.sum()) if out.sum() > 0 else 0.0
    return replacement, completeness, inf


def graph_scores(graph: Graph) -> tuple:
    """(replacement score, completeness score) of `graph` (pruned or not)."""
    r, c, _ = scores_of(scoring_matrix(graph), graph.kind, logit_weights(graph))
    return r, c


def _threshold(scores: np.ndarray, fraction: float) -> float:
    """The score above which the largest scores cover `fraction` of their sum (circuit-tracer's)."""
    s = np.sort(np.asarray(scores, np.float64))[::-1]
    if not len(s) or s.sum() <= 0:
        return 0.0
    cum = np.cumsum(s) / s.sum()
    return float(s[min(int(np.searchsorted(cum, fraction)), len(s) - 1)])


def prune(graph: Graph, node_threshold: float = 0.8, edge_threshold: float = 0.98) -> Graph:
    """`graph` with the nodes and edges of low influence removed (see the module docstring); its
    influence, scores and info['pruning'] (what was cut, by kind, and why) filled in, and (by
    Graph.subgraph) info['influence_total'] and info['influence_cut'], the influence of the whole
    graph and of the nodes cut, so its cumulative influence is circuit-tracer's (over the whole graph)."""
    node_threshold = fraction(node_threshold, "node_threshold")
    edge_threshold = fraction(edge_threshold, "edge_threshold")
    A = scoring_matrix(graph)
    w = logit_weights(graph)
    replacement, completeness, inf = scores_of(A, graph.kind, w)
    always = np.isin(graph.kind, ("logit", "embedding", "bias"))
    node = (inf >= _threshold(inf, node_threshold)) | always if node_threshold < 1 else np.ones(len(inf), bool)
    by_threshold = int((~node).sum())
    P = A.copy()
    P[~node] = 0
    P[:, ~node] = 0
    Pn = normalized(P)
    edge_score = Pn * (influence(Pn, w) + w)[:, None]
    exists = np.zeros_like(A, dtype=bool)
    exists[graph.target, graph.source] = True
    exists &= node[:, None] & node[None, :]
    keep_edge = exists & (edge_score >= _threshold(edge_score[exists & (A != 0)], edge_threshold)) \
        if edge_threshold < 1 else exists.copy()
    bias = graph.kind == "bias"
    keep_edge[:, bias] = exists[:, bias]  # the constant terms into kept nodes stay
    dead_ends = 0
    if node_threshold < 1 or edge_threshold < 1:
        mid = np.isin(graph.kind, ("feature", "error"))
        feat = graph.kind == "feature"
        while True:
            out_any = keep_edge.any(0)
            in_any = keep_edge[:, ~bias].any(1)
            drop = node & ((mid & ~out_any) | (feat & ~in_any))
            if not drop.any():
                break
            dead_ends += int(drop.sum())
            node &= ~drop
            keep_edge[drop] = False
            keep_edge[:, drop] = False
    e = keep_edge[graph.target, graph.source]
    fresh = {k: v for k, v in graph.info.items() if k not in ("influence_total", "influence_cut")}  # recomputed
    g = replace(graph, source=graph.source[e], target=graph.target[e], weight=graph.weight[e],
                influence=inf.astype(np.float32), replacement_score=replacement, completeness_score=completeness,
                info=fresh)
    cut = {k: int(((graph.kind == k) & ~node).sum()) for k in ("feature", "error")}
    pruned = g.subgraph(node, note=f"node_threshold={node_threshold}, edge_threshold={edge_threshold}")
    pr, pc = graph_scores(pruned)
    info = dict(pruned.info)
    info["pruning"] = {
        "node_threshold": float(node_threshold), "edge_threshold": float(edge_threshold),
        "nodes_before": graph.n_nodes, "nodes_after": pruned.n_nodes, "edges_before": graph.n_edges,
        "edges_after": pruned.n_edges, "cut_by_node_influence": by_threshold,
        "cut_without_edges": dead_ends, "features_cut": cut["feature"], "errors_cut": cut["error"],
        "edges_cut": graph.n_edges - pruned.n_edges,
        "pruned_replacement_score": pr, "pruned_completeness_score": pc}
    return replace(pruned, info=info)
