"""circuit-tracer's graph JSON (the file its frontend and Neuronpedia read), read into a Graph and
written from one, so graphs computed elsewhere open here and ours open there.

    g = lw.read_graph_json("austin.json")          # a path, or the parsed dict
    lw.write_graph_json(g, "out/austin.json", slug="austin")

The file (circuit_tracer/frontend/graph_models.py, utils/create_graph_files.py): `metadata` (slug,
scan, transcoder_list, prompt_tokens, prompt, node_threshold), `qParams` (pinnedIds, supernodes as
[[name, node_id, ...], ...], linkType, clickedId, sg_pos), `nodes` (node_id, feature, layer,
ctx_idx, feature_type: "cross layer transcoder" / "mlp reconstruction error" / "embedding" /
"logit", token_prob, is_target_logit, run_idx, reverse_ctx_idx, jsNodeId, clerp, influence,
activation) and `links` (source, target, weight: the direct effect of source on target).

Conventions bridged here: a node's `influence` in the file is its cumulative influence (the share of
the total influence carried by it and every node more influential than it; the frontend keeps nodes
whose value is at most its pruning threshold), a Graph's `influence` each node's own share. Reading
takes differences of the sorted cumulative values (nodes tied in the file share their step evenly),
writing sums them back (over `info['influence_total']`, 1 for a graph read from a file, else the
whole graph's before pruning, counting the nodes pruned above a node: `info['influence_cut']`, so a
pruned graph's values are circuit-tracer's, computed on the whole graph). A file leaves pruned nodes
out, whose shares sit in the steps between the values it keeps: the shares read are capped so the
order stays the file's, and the file's own values are kept (`cumulative_influence`) and written
back, so a file round-trips. Logits sit at layer n_layers + 1 in the file, at n_layers in a Graph.
Fields a Graph does not model (a feature's encoded `feature` number, a fork's extra fields, metadata
such as schema_version) are kept in `info['ct_extra']` by node id and written back as they were.
Bias nodes (which circuit-tracer does not have) are not written; the metadata's `info` says how many
were left out.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from ..errors import LLMWidgetsError
from .graph import EMBED_LAYER, Graph

KIND_OF_TYPE = {"cross layer transcoder": "feature", "mlp reconstruction error": "error", "embedding": "embedding",
                "logit": "logit"}
TYPE_OF_KIND = {v: k for k, v in KIND_OF_TYPE.items()}
NODE_FIELDS = ("node_id", "feature", "layer", "ctx_idx", "feature_type", "token_prob", "is_target_logit", "run_idx",
               "reverse_ctx_idx", "jsNodeId", "clerp", "influence", "activation")
FLOATS = ("token_prob", "influence", "activation")
_OUTPUT = re.compile(r'^Output "(.*)" \(p=[^)]*\)$', re.S)
_MISSING = "__missing__"  # ct_extra value: the file had no such field


def process_token(token: str) -> str:
    """A token as circuit-tracer writes it in prompt_tokens and logit labels (newline, tab and
    carriage return as visible marks)."""
    return token.replace("\n", "\u23ce").replace("\t", "\u2192").replace("\r", "\u21b5")


def parse_node_id(node_id: str, feature_type: str | None = None, n_layers: int | None = None) -> dict:
    """What a circuit-tracer node id names: {'kind', 'layer', 'feature', 'position'} in a Graph's
    numbering (logits at n_layers). 'E_{token}_{pos}' is an embedding, '{layer}_error_{pos}' an error,
    'B_{k}' a bias node; a three-number id is a feature, an error ('0_{layer}_{pos}') or a logit
    ('{n_layers + 1}_{token}_{pos}'), which only `feature_type` tells apart (or `n_layers`, for a
    logit): without it such an id is an error."""
    if not isinstance(node_id, str):
        raise LLMWidgetsError(f"a node id is a string, got {node_id!r}")
    parts = node_id.split("_")
    try:
        if parts[0] == "B" and len(parts) == 2:
            return {"kind": "bias", "layer": n_layers if n_layers is not None else -1, "feature": -1,
                    "position": -1}
        if parts[0] == "E" and len(parts) == 3:
            return {"kind": "embedding", "layer": EMBED_LAYER, "feature": int(parts[1]), "position": int(parts[2])}
        if len(parts) == 3 and parts[1] == "error":
            return {"kind": "error", "layer": int(parts[0]), "feature": -1, "position": int(parts[2])}
        a, b, c = (int(p) for p in parts)
    except ValueError:
        raise LLMWidgetsError(f"{node_id!r} is not a circuit-tracer node id ('{{layer}}_{{feature}}_{{pos}}', "
                              f"'E_{{token}}_{{pos}}', '0_{{layer}}_{{pos}}' or '{{layer}}_error_{{pos}}')") from None
    kind = KIND_OF_TYPE.get(feature_type) if feature_type is not None else None
    if feature_type is not None and kind is None:
        raise LLMWidgetsError(f"unknown feature_type {feature_type!r}; known: {sorted(KIND_OF_TYPE)}")
    if kind is None and n_layers is not None and a == n_layers + 1:
        kind = "logit"
    if kind is None:
        raise LLMWidgetsError(f"{node_id!r} may name a feature, an error ('0_{{layer}}_{{pos}}') or a logit: pass "
                              f"feature_type= (the node's field in the file) to tell which")
    if kind == "feature":
        return {"kind": "feature", "layer": a, "feature": b, "position": c}
    if kind == "error":
        return {"kind": "error", "layer": b, "feature": -1, "position": c}
    if kind == "logit":
        return {"kind": "logit", "layer": a - 1, "feature": b, "position": c}
    raise LLMWidgetsError(f"{node_id!r}: an embedding's id is 'E_{{token}}_{{pos}}'")


# -- influence: a node's share <-> circuit-tracer's cumulative value ---------------------------------
def shares_from_cumulative(c: np.ndarray) -> np.ndarray:
    """Each node's share of the influence from cumulative values (see the module docstring): the step
    from the next smaller value, split evenly among nodes tied at one value, and never more than a
    more influential node's share (a file leaves pruned nodes out: their shares are in the steps, so
    the steps alone could rank a node above one the file ranks higher). Without such gaps,
    `cumulative_from_shares` gives c back exactly."""
    c = np.asarray(c, np.float64)
    out = np.zeros_like(c)
    prev, cap = 0.0, np.inf
    for v in np.unique(c):
        tied = c == v
        share = min((v - prev) / int(tied.sum()), cap)
        out[tied] = cap = share
        prev = v
    return out


def cumulative_influence(graph: Graph) -> np.ndarray:
    """[N] circuit-tracer's cumulative influence of each node (NaN for logits and bias nodes): from the
    shares (`cumulative_from_shares` over `info['influence_total']`, with the nodes pruned away,
    `info['influence_cut']`), except for nodes read from a file, which keep the file's value."""
    out = np.full(graph.n_nodes, np.nan)
    scored = np.flatnonzero((graph.kind != "logit") & (graph.kind != "bias"))
    out[scored] = cumulative_from_shares(graph.influence[scored], graph.info.get("influence_total"),
                                         graph.info.get("influence_cut"))
    extra = graph.info.get("ct_extra")
    if extra:
        ids = graph.node_ids()
        for i in scored:
            v = extra.get(ids[i], {}).get("influence")
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[i] = float(v)
    return out


def cumulative_from_shares(f: np.ndarray, total: float | None = None, cut=None) -> np.ndarray:
    """circuit-tracer's cumulative influence of each node from shares `f`: the sum of the shares of
    every node at least as influential, over `total` (default: the sum of f); `cut`, the shares of
    nodes no longer in the graph (pruned), counts where they are at least as influential."""
    f = np.asarray(f, np.float64)
    gone = np.sort(np.asarray(cut if cut is not None else [], np.float64))  # ascending
    above = np.r_[np.cumsum(gone[::-1])[::-1], 0.0]  # above[i]: the sum of gone[i:]
    total = float(f.sum()) if total is None else float(total)
    if not total > 0:
        return np.zeros_like(f)
    order = np.argsort(-f, kind="stable")
    cs = np.cumsum(f[order])
    out = np.empty_like(f)
    # ties: every node of a tied block gets the block's top (the inverse of shares_from_cumulative)
    sf = f[order]
    last = np.r_[np.flatnonzero(sf[1:] != sf[:-1]), len(sf) - 1]
    block_end = np.repeat(last, np.diff(np.r_[-1, last]))
    out[order] = cs[block_end]
    out += above[np.searchsorted(gone, f, side="left")]
    return out / total


# -- reading -----------------------------------------------------------------------------------------
def _need(d: dict, key: str, where: str):
    if not isinstance(d, dict) or key not in d:
        raise LLMWidgetsError(f"circuit-tracer graph JSON: {where} has no {key!r} field (see circuit-tracer's "
                              f"frontend/graph_models.py for the schema)")
    return d[key]


def _load(source) -> dict:
    if isinstance(source, dict):
        return source
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise LLMWidgetsError(f"no such graph file: {path}")
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise LLMWidgetsError(f"{path} is not JSON: {e}") from None
    raise LLMWidgetsError(f"read_graph_json takes a path or the parsed dict, got {type(source).__name__}")


def read_graph_json(source) -> Graph:
    """A Graph from circuit-tracer's graph JSON (a path, or the parsed dict). Feature labels
    (`clerp`) become `labels`; supernodes (qParams.supernodes) `info['supernodes']` as
    [[name, node_id, ...], ...]; the metadata and qParams are kept in info for writing back. A
    missing field, an unknown node type, a duplicate node id or a link to no node is an error."""
    data = _load(source)
    meta = _need(data, "metadata", "the file")
    tokens = list(_need(meta, "prompt_tokens", "metadata"))
    nodes = _need(data, "nodes", "the file")
    links = _need(data, "links", "the file")
    if not isinstance(nodes, list) or not isinstance(links, list):
        raise LLMWidgetsError("circuit-tracer graph JSON: 'nodes' and 'links' must be lists")
    n = len(nodes)
    kind = np.empty(n, dtype=object)
    layer, position, feature = (np.zeros(n, np.int64) for _ in range(3))
    activation, cum = np.zeros(n, np.float32), np.full(n, np.nan)
    ids, labels, rows = [], {}, {}
    for i, nd in enumerate(nodes):
        where = f"node {i}" + (f" ({nd.get('node_id')!r})" if isinstance(nd, dict) and "node_id" in nd else "")
        nid, ftype = _need(nd, "node_id", where), _need(nd, "feature_type", where)
        k = KIND_OF_TYPE.get(ftype)
        if k is None:
            raise LLMWidgetsError(f"circuit-tracer graph JSON: {where} has feature_type {ftype!r}; known: "
                                  f"{sorted(KIND_OF_TYPE)}")
        if nid in rows:
            raise LLMWidgetsError(f"circuit-tracer graph JSON: node id {nid!r} appears twice (nodes {rows[nid]} and "
                                  f"{i}): links cannot say which they mean")
        rows[nid] = i
        ids.append(nid)
        kind[i] = k
        position[i] = int(_need(nd, "ctx_idx", where))
        lay = str(_need(nd, "layer", where))
        if k == "embedding":
            layer[i], feature[i] = EMBED_LAYER, parse_node_id(nid, ftype)["feature"]
        else:
            try:
                layer[i] = int(lay) - (1 if k == "logit" else 0)
            except ValueError:
                raise LLMWidgetsError(f"circuit-tracer graph JSON: {where} has layer {lay!r}, not a number") from None
            feature[i] = (-1 if k == "error" else int(_need(nd, "feature", where)) if k == "logit"
                          else parse_node_id(nid, ftype)["feature"])
        act = nd.get("activation")
        activation[i] = float(act) if act is not None else (np.nan if k == "logit" else 0.0)
        if nd.get("influence") is not None:
            cum[i] = float(nd["influence"])
        if nd.get("clerp") and k != "logit":
            labels[i] = str(nd["clerp"])
    logit = np.flatnonzero(kind == "logit")
    n_layers = int(layer[logit].max()) if len(logit) else int(layer[kind != "embedding"].max(initial=-1)) + 1
    known = ~np.isnan(cum) & (kind != "logit")
    influence = np.zeros(n, np.float32)
    if known.any():
        influence[known] = shares_from_cumulative(cum[known])
    src, dst, w = [], [], []
    for j, ln in enumerate(links):
        for key in ("source", "target"):
            if _need(ln, key, f"link {j}") not in rows:
                raise LLMWidgetsError(f"circuit-tracer graph JSON: link {j}'s {key} {ln[key]!r} is not a node of the "
                                      f"file")
        src.append(rows[ln["source"]])
        dst.append(rows[ln["target"]])
        w.append(float(_need(ln, "weight", f"link {j}")))
    token_ids = np.full(len(tokens), -1, np.int64)
    for i in np.flatnonzero(kind == "embedding"):
        if 0 <= position[i] < len(tokens):
            token_ids[position[i]] = feature[i]
    target_tokens, target_probs = [], []
    for i in logit:
        m = _OUTPUT.match(str(nodes[i].get("clerp") or ""))
        target_tokens.append(m.group(1) if m else str(int(feature[i])))
        target_probs.append(float(nodes[i].get("token_prob") or 0.0))
    qp = data.get("qParams") or {}
    info = {"source": "circuit-tracer graph JSON", "n_layers_from": "the logit nodes' layer" if len(logit) else
            "the deepest feature or error layer", "influence_total": 1.0, "ct_metadata": dict(meta),
            "ct_qparams": dict(qp), "supernodes": [list(s) for s in qp.get("supernodes") or []],
            "long_error_ids": sorted([int(layer[i]), int(position[i])] for i, nid in enumerate(ids)
                                     if kind[i] == "error" and "_error_" in nid)}
    extra_meta = meta.get("info") if isinstance(meta.get("info"), dict) else {}
    if isinstance(extra_meta.get("contrast"), dict):  # written by us: the logit node is a logit difference
        info["contrast"] = dict(extra_meta["contrast"])
    g = Graph(tokens=tokens, token_ids=token_ids, kind=kind.astype(str), layer=layer, position=position,
              feature=feature, activation=activation, influence=influence, source=np.asarray(src, np.int64),
              target=np.asarray(dst, np.int64), weight=np.asarray(w, np.float32), n_layers=n_layers,
              target_tokens=target_tokens, target_ids=feature[logit].astype(np.int64),
              target_probs=np.asarray(target_probs, np.float32),
              replacement_score=_score(extra_meta.get("replacement_score")),
              completeness_score=_score(extra_meta.get("completeness_score")), labels=labels,
              info=info)
    # what the writer would not reproduce, kept by (generated) node id and written back as it was
    extra = {}
    for nd, mine in zip(nodes, _nodes(g)[0]):  # no bias nodes in a file: one written node per row
        diff = {k: v for k, v in nd.items() if k not in mine or not _same(mine[k], v)}
        diff.update({k: _MISSING for k in mine if k not in nd})
        if diff:
            extra[mine["node_id"]] = diff
    g.info["ct_extra"] = extra
    return g


def _score(v) -> float:
    return float("nan") if v is None else float(v)


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None or isinstance(a, (str, bool)) or isinstance(b, (str, bool)):
            return a is b
        return math.isclose(float(a), float(b), rel_tol=1e-5, abs_tol=1e-7)
    return a == b and type(a) is type(b)


# -- writing -----------------------------------------------------------------------------------------
def _num(v):
    v = float(v)
    return None if math.isnan(v) else v


def _nodes(graph: Graph) -> tuple[list, list]:
    """(node dicts in circuit-tracer's field order, the graph rows they are) for every non-bias node."""
    ids = graph.node_ids()
    rows = np.flatnonzero(graph.kind != "bias")
    cum = cumulative_influence(graph)  # a file's own values where it was read from one (ct_extra)
    logits = list(graph.logit_nodes())
    out = []
    for i in rows:
        k, lay, pos, f = str(graph.kind[i]), int(graph.layer[i]), int(graph.position[i]), int(graph.feature[i])
        nd = {"node_id": ids[i], "feature": f, "layer": str(lay), "ctx_idx": pos, "feature_type": TYPE_OF_KIND[k],
              "token_prob": 0.0, "is_target_logit": False, "run_idx": 0, "reverse_ctx_idx": 0, "jsNodeId": "",
              "clerp": str(graph.labels.get(int(i), "")), "influence": _num(cum[i]), "activation": None}
        if k == "feature":
            nd.update(jsNodeId=f"{lay}_{f}-0", activation=_num(graph.activation[i]))
        elif k == "error":
            nd.update(feature=-1, jsNodeId=f"{lay}_{pos}-0")
        elif k == "embedding":
            nd.update(feature=pos, layer="E", jsNodeId=f"E_{f}-{pos}")
        else:
            j = logits.index(i)
            p = float(graph.target_probs[j]) if j < len(graph.target_probs) else 0.0
            tok = process_token(str(graph.target_tokens[j])) if j < len(graph.target_tokens) else str(f)
            nd.update(layer=str(graph.n_layers + 1), token_prob=p, is_target_logit=j == 0, jsNodeId=f"L_{f}-{pos}",
                      clerp=f'Output "{tok}" (p={p:.3f})', activation=_num(graph.activation[i]))
        extra = graph.info.get("ct_extra", {}).get(ids[i], {})
        for key, v in extra.items():
            if v == _MISSING:
                nd.pop(key, None)
            else:
                nd[key] = v
        out.append(nd)
    return out, rows


def graph_json(graph: Graph, *, slug: str | None = None, scan: str | None = None) -> dict:
    """The graph as circuit-tracer's graph JSON (a dict; `write_graph_json` writes it)."""
    if not isinstance(graph, Graph):
        raise LLMWidgetsError(f"graph_json takes a Graph, got {type(graph).__name__}")
    nodes, rows = _nodes(graph)
    ids = np.full(graph.n_nodes, None, dtype=object)
    ids[rows] = [nd["node_id"] for nd in nodes]
    if len(set(ids[rows])) != len(rows):
        raise LLMWidgetsError("the graph has two nodes with one id: circuit-tracer's links could not tell them apart")
    keep = np.zeros(graph.n_nodes, bool)
    keep[rows] = True
    e = keep[graph.source] & keep[graph.target]
    links = [{"source": ids[s], "target": ids[t], "weight": float(w)}
             for s, t, w in zip(graph.source[e].tolist(), graph.target[e].tolist(), graph.weight[e].tolist())]
    old = graph.info.get("ct_metadata")
    meta = {"slug": "graph", "scan": str(graph.info.get("scan", "llm-widgets")),
            "transcoder_list": list(graph.info.get("transcoder_list", [])),
            "prompt_tokens": [process_token(str(t)) for t in graph.tokens],
            "prompt": str(graph.info.get("prompt", "".join(str(t) for t in graph.tokens))),
            "node_threshold": graph.info.get("node_threshold")}
    if old is None:  # ours: what the file's schema has no field for
        meta["info"] = {"n_layers": int(graph.n_layers), "replacement_score": _num(graph.replacement_score),
                        "completeness_score": _num(graph.completeness_score),
                        "bias_nodes_left_out": int((graph.kind == "bias").sum()),
                        "influence": "cumulative share, as circuit-tracer writes it"}
        if graph.info.get("contrast"):  # the logit node is a difference of two logits
            meta["info"]["contrast"] = dict(graph.info["contrast"])
    else:
        meta = {**meta, **old}
    meta.update({k: v for k, v in (("slug", slug), ("scan", scan)) if v is not None})
    qp = {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": "",
          **graph.info.get("ct_qparams", {})}
    qp["supernodes"] = [list(s) for s in graph.info.get("supernodes", [])]
    return {"metadata": meta, "qParams": qp, "nodes": nodes, "links": links}


def write_graph_json(graph: Graph, path, *, slug: str | None = None, scan: str | None = None) -> Path:
    """Write the graph as circuit-tracer's graph JSON at `path` (a file; a folder: `{slug}.json` in
    it), for its frontend and Neuronpedia. Returns the file's path."""
    path = Path(path)
    if path.is_dir():
        path = path / f"{slug or graph.info.get('ct_metadata', {}).get('slug', 'graph')}.json"
    data = graph_json(graph, slug=slug if slug is not None else (path.stem if graph.info.get("ct_metadata") is None
                                                                 else None), scan=scan)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path
