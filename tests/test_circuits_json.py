"""circuit-tracer's graph JSON and suggested supernodes, no model needed.

The reference file is written here by hand the way circuit-tracer writes it (its Node classmethods in
frontend/graph_models.py and prune_graph's cumulative scores in graph.py, transcribed below), not by
our writer: reading it and writing it back gives the same dict (floats to 1e-6), node ids parse to
what they name, a broken file names its missing field, and supernodes group planted duplicate
decoder directions (or, with no transcoders, duplicate edge profiles)."""
import copy
import json
import math

import numpy as np
import pytest
import torch

import llm_widgets as lw
from llm_widgets.circuits.ctjson import (cumulative_from_shares, cumulative_influence, graph_json, parse_node_id, read_graph_json,
                                         shares_from_cumulative, write_graph_json)
from llm_widgets.circuits.graph import Graph
from llm_widgets.errors import LLMWidgetsError

N_LAYERS = 2
TOKENS = ["<bos>", "The", " cat\n"]
TOKEN_IDS = [2, 651, 4937]


# -- circuit-tracer's writer, transcribed (frontend/graph_models.py, utils/create_graph_files.py) ------
def ct_feature(layer, pos, feat_idx, num_features=None, influence=None, activation=None):
    offset = 10 ** math.ceil(math.log10(num_features)) if num_features is not None else 0
    return dict(node_id=f"{layer}_{feat_idx}_{pos}", feature=feat_idx + offset * int(layer), layer=str(layer),
                ctx_idx=pos, feature_type="cross layer transcoder", token_prob=0.0, is_target_logit=False, run_idx=0,
                reverse_ctx_idx=0, jsNodeId=f"{layer}_{feat_idx}-0", clerp="", influence=influence,
                activation=activation)


def ct_error(layer, pos, influence=None):
    return dict(node_id=f"0_{layer}_{pos}", feature=-1, layer=str(layer), ctx_idx=pos,
                feature_type="mlp reconstruction error", token_prob=0.0, is_target_logit=False, run_idx=0,
                reverse_ctx_idx=0, jsNodeId=f"{layer}_{pos}-0", clerp="", influence=influence, activation=None)


def ct_token(pos, vocab_idx, influence=None):
    return dict(node_id=f"E_{vocab_idx}_{pos}", feature=pos, layer="E", ctx_idx=pos, feature_type="embedding",
                token_prob=0.0, is_target_logit=False, run_idx=0, reverse_ctx_idx=0, jsNodeId=f"E_{vocab_idx}-{pos}",
                clerp="", influence=influence, activation=None)


def ct_logit(pos, vocab_idx, token, num_layers, target_logit=False, token_prob=0.0):
    layer = str(num_layers + 1)
    return dict(node_id=f"{layer}_{vocab_idx}_{pos}", feature=vocab_idx, layer=layer, ctx_idx=pos,
                feature_type="logit", token_prob=token_prob, is_target_logit=target_logit, run_idx=0,
                reverse_ctx_idx=0, jsNodeId=f"L_{vocab_idx}-{pos}", clerp=f'Output "{token}" (p={token_prob:.3f})',
                influence=None, activation=None)


def ct_cumulative(node_influence):
    """prune_graph's final_scores."""
    x = torch.tensor(node_influence, dtype=torch.float32)
    sorted_scores, sorted_indices = torch.sort(x, descending=True)
    cumulative = torch.cumsum(sorted_scores, dim=0) / torch.sum(sorted_scores)
    out = torch.zeros_like(x)
    out[sorted_indices] = cumulative
    return out.tolist()


def reference_file(scan="gemma-2-2b"):
    """A small graph as create_graph_files writes it: features (layer, pos, idx), errors, tokens, logits;
    influence is the cumulative score of every node (one pruned feature's share included)."""
    feats = [(0, 1, 7, 1.5), (0, 2, 3, 0.8), (1, 2, 11, 2.25), (1, 2, 5, 0.1)]  # the last one is pruned
    raw = [0.30, 0.12, 0.25, 0.01] + [0.05, 0.02, 0.03, 0.04, 0.0, 0.06] + [0.02, 0.07, 0.11]
    cum = ct_cumulative(raw)
    d_transcoder = {"gemma-2-2b": 2 ** 15}.get(scan)
    nodes = [ct_feature(L, p, f, num_features=d_transcoder, influence=cum[i], activation=a)
             for i, (L, p, f, a) in enumerate(feats[:3])]
    nodes[0]["clerp"] = "cat-ish <b>&"
    errs = [(lay, p) for lay in range(N_LAYERS) for p in range(3)]
    nodes += [ct_error(lay, p, influence=cum[4 + k]) for k, (lay, p) in enumerate(errs) if (lay, p) != (1, 1)]
    nodes += [ct_token(p, TOKEN_IDS[p], influence=cum[10 + p]) for p in range(3)]
    nodes += [ct_logit(2, 9, " sat", N_LAYERS, target_logit=True, token_prob=0.61),
              ct_logit(2, 17, "\u23ce", N_LAYERS, token_prob=0.2)]
    ids = [n["node_id"] for n in nodes]
    links = [{"source": "E_651_1", "target": "0_7_1", "weight": 0.9},
             {"source": "0_7_1", "target": "1_11_2", "weight": 0.4},
             {"source": "0_3_2", "target": "1_11_2", "weight": -0.35},
             {"source": "0_0_2", "target": "1_11_2", "weight": 0.05},
             {"source": "1_11_2", "target": "3_9_2", "weight": 1.25},
             {"source": "0_1_2", "target": "3_9_2", "weight": -0.2},
             {"source": "E_4937_2", "target": "3_17_2", "weight": 0.3}]
    assert all(ln["source"] in ids and ln["target"] in ids for ln in links)
    meta = dict(slug="cat-sat", scan=scan, transcoder_list=[], prompt_tokens=[t.replace("\n", "\u23ce") for t in TOKENS],
                prompt="".join(TOKENS), node_threshold=0.8)
    qp = dict(pinnedIds=["1_11_2"], supernodes=[["cat", "0_7_1", "0_3_2"]], linkType="both", clickedId="", sg_pos="")
    return json.loads(json.dumps({"metadata": meta, "qParams": qp, "nodes": nodes, "links": links}))


def assert_same(a, b, path="$"):
    """Equal as JSON values, floats to 1e-6."""
    if isinstance(a, float) or isinstance(b, float):
        assert a is not None and b is not None and math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7), f"{path}: {a} != {b}"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), f"{path}: keys {list(a)} != {list(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{path}: lengths {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b and type(a) is type(b), f"{path}: {a!r} != {b!r}"


# -- reading ---------------------------------------------------------------------------------------
def test_reads_circuit_tracers_file():
    data = reference_file()
    g = read_graph_json(data)
    assert g.n_nodes == len(data["nodes"]) and g.n_edges == len(data["links"])
    assert g.n_layers == N_LAYERS and g.tokens == ["<bos>", "The", " cat\u23ce"]
    assert g.token_ids.tolist() == TOKEN_IDS
    rows = {i: r for r, i in enumerate(n["node_id"] for n in data["nodes"])}
    f = rows["0_7_1"]
    # the feature index comes from the id, not the scan's encoded number (7 + 10**5 * layer)
    assert (g.kind[f], g.layer[f], g.position[f], g.feature[f]) == ("feature", 0, 1, 7)
    assert data["nodes"][rows["1_11_2"]]["feature"] == 11 + 10 ** 5 and g.feature[rows["1_11_2"]] == 11
    assert g.activation[f] == pytest.approx(1.5) and g.labels[f] == "cat-ish <b>&"
    e = rows["0_1_2"]
    assert (g.kind[e], g.layer[e], g.position[e]) == ("error", 1, 2)
    lg = g.logit_nodes()
    assert g.layer[lg].tolist() == [N_LAYERS, N_LAYERS] and g.target_ids.tolist() == [9, 17]
    assert g.target_tokens == [" sat", "\u23ce"] and g.target_probs.tolist() == pytest.approx([0.61, 0.2])
    src, w = g.into(rows["3_9_2"])
    assert sorted(zip(src.tolist(), w.tolist())) == sorted([(rows["1_11_2"], 1.25), (e, pytest.approx(-0.2))])
    assert g.info["supernodes"] == [["cat", "0_7_1", "0_3_2"]]
    # influence: each node's share, ranked as the file ranks them; the file's cumulative values kept
    scored = g.kind != "logit"
    cum = np.array([n["influence"] for n, s in zip(data["nodes"], scored) if s])
    np.testing.assert_allclose(cumulative_influence(g)[scored], cum, atol=1e-7)
    assert np.isnan(cumulative_influence(g)[lg]).all()
    order = np.argsort(cum, kind="stable")
    assert (np.diff(g.influence[scored][order]) <= 0).all()
    assert g.influence[rows["0_7_1"]] > g.influence[rows["1_11_2"]] > g.influence[rows["E_4937_2"]] > 0
    # the share of the first: its own raw influence over the total (0.30 / 1.08)
    assert g.influence[f] == pytest.approx(0.30 / 1.08, rel=1e-6)


def test_round_trip_equals_the_hand_written_file(tmp_path):
    for scan in ("gemma-2-2b", "custom-123"):
        data = reference_file(scan)
        path = tmp_path / "in.json"
        path.write_text(json.dumps(data, indent=2))
        g = read_graph_json(path)
        out = write_graph_json(g, tmp_path / "out.json")
        assert_same(json.loads(out.read_text()), data)
        assert_same(graph_json(read_graph_json(graph_json(g))), data)  # and again


def test_round_trip_keeps_unknown_fields_and_missing_ones():
    data = reference_file()
    data["metadata"]["schema_version"] = 1
    data["nodes"][0]["influence_raw"] = 0.3  # a newer circuit-tracer's field
    del data["nodes"][1]["run_idx"]  # an older file without it
    data["nodes"][-1]["is_target_logit"] = True
    assert_same(graph_json(read_graph_json(data)), data)


def test_node_ids_match_circuit_tracer_and_parse_back():
    data = reference_file()
    g = read_graph_json(data)
    assert g.node_ids() == [n["node_id"] for n in data["nodes"]]
    for n in data["nodes"]:
        p = parse_node_id(n["node_id"], n["feature_type"])
        assert p["position"] == n["ctx_idx"]
        assert p["kind"] == {"cross layer transcoder": "feature", "mlp reconstruction error": "error",
                             "embedding": "embedding", "logit": "logit"}[n["feature_type"]]
    assert parse_node_id("0_5_3", "mlp reconstruction error") == {"kind": "error", "layer": 5, "feature": -1,
                                                                   "position": 3}
    assert parse_node_id("0_5_3", "cross layer transcoder")["feature"] == 5
    assert parse_node_id("3_9_2", n_layers=2) == {"kind": "logit", "layer": 2, "feature": 9, "position": 2}
    assert parse_node_id("4_error_7")["layer"] == 4
    with pytest.raises(LLMWidgetsError, match="feature_type"):
        parse_node_id("0_5_3")
    with pytest.raises(LLMWidgetsError, match="not a circuit-tracer node id"):
        parse_node_id("x_y")


def test_colliding_error_id_gets_the_error_form():
    """circuit-tracer's error id '0_{layer}_{pos}' equals layer-0 feature {layer}'s id at that position:
    ours then says '{layer}_error_{pos}', so links stay unambiguous."""
    g = synthetic(feature_rows=[(0, 1, 0)], errors=[(1, 0)])
    assert g.node_ids()[:2] == ["0_1_0", "1_error_0"]
    back = read_graph_json(graph_json(g))
    assert back.kind[:2].tolist() == ["feature", "error"] and back.layer[1] == 1


def test_error_ids_are_stable_between_a_graph_and_its_subgraphs():
    """Pruning the layer-0 feature that collides keeps the error's id: decided on the whole graph."""
    g = synthetic(feature_rows=[(0, 1, 0), (1, 2, 1)], errors=[(1, 0), (0, 1)])
    ids = g.node_ids()
    assert ids[2:4] == ["1_error_0", "0_0_1"]
    sub = g.subgraph(np.arange(1, g.n_nodes))  # the colliding feature 0_1_0 cut
    assert sub.node_ids() == ids[1:] and sub.subgraph(np.arange(1, sub.n_nodes)).node_ids() == ids[2:]
    assert sub.info["long_error_ids"] == [[1, 0]]
    back = read_graph_json(graph_json(sub))  # a file keeps the form it was written with
    assert back.node_ids() == ids[1:] and back.info["long_error_ids"] == [[1, 0]]
    # a graph whose colliding feature was never there keeps circuit-tracer's form
    assert synthetic(feature_rows=[(1, 2, 1)], errors=[(1, 0)]).node_ids()[1] == "0_1_0"


def test_cumulative_influence_of_a_subgraph_counts_what_was_cut():
    g = synthetic()
    scored = np.flatnonzero(g.kind != "logit")
    whole = cumulative_influence(g)
    sub = g.subgraph(np.setdiff1d(np.arange(g.n_nodes), [1, 4]))  # a feature and an embedding cut
    np.testing.assert_allclose(cumulative_influence(sub)[:-1], np.delete(whole, [1, 4])[:-1], atol=1e-7)
    assert whole[scored].max() == pytest.approx(1.0) and cumulative_influence(sub)[:-1].max() == pytest.approx(1.0)
    assert sub.info["influence_total"] == pytest.approx(g.influence[scored].sum(dtype=np.float64))
    np.testing.assert_allclose(sub.info["influence_cut"], g.influence[[1, 4]].astype(np.float64), atol=0)


@pytest.mark.parametrize("drop, match", [
    (("metadata",), "the file has no 'metadata'"),
    (("metadata", "prompt_tokens"), "metadata has no 'prompt_tokens'"),
    (("nodes", 0, "ctx_idx"), r"node 0 \('0_7_1'\) has no 'ctx_idx'"),
    (("nodes", 3, "feature_type"), "has no 'feature_type'"),
    (("links", 1, "weight"), "link 1 has no 'weight'"),
])
def test_bad_json_names_the_missing_field(drop, match):
    data = reference_file()
    d = data
    for k in drop[:-1]:
        d = d[k]
    del d[drop[-1]]
    with pytest.raises(LLMWidgetsError, match=match):
        read_graph_json(data)


def test_bad_json_other_errors(tmp_path):
    data = reference_file()
    bad = copy.deepcopy(data)
    bad["links"][0]["source"] = "9_9_9"
    with pytest.raises(LLMWidgetsError, match="'9_9_9' is not a node"):
        read_graph_json(bad)
    bad = copy.deepcopy(data)
    bad["nodes"][1]["node_id"] = bad["nodes"][0]["node_id"]
    with pytest.raises(LLMWidgetsError, match="appears twice"):
        read_graph_json(bad)
    bad = copy.deepcopy(data)
    bad["nodes"][0]["feature_type"] = "lorsa"
    with pytest.raises(LLMWidgetsError, match="feature_type 'lorsa'"):
        read_graph_json(bad)
    (tmp_path / "x.json").write_text("{nope")
    with pytest.raises(LLMWidgetsError, match="not JSON"):
        read_graph_json(tmp_path / "x.json")
    with pytest.raises(LLMWidgetsError, match="no such graph file"):
        read_graph_json(tmp_path / "missing.json")


def test_shares_and_cumulative_are_inverse():
    rng = np.random.default_rng(0)
    f = rng.random(50)
    f[[3, 9, 20]] = f[5]  # ties
    f[[1, 2]] = 0.0
    c = cumulative_from_shares(f)
    np.testing.assert_allclose(c, ct_cumulative(f.tolist()) if len(set(f)) == len(f) else c)
    np.testing.assert_allclose(cumulative_from_shares(shares_from_cumulative(c), 1.0), c, atol=1e-12)
    g = rng.random(20)  # distinct values: circuit-tracer's own cumulative scores
    np.testing.assert_allclose(cumulative_from_shares(g), ct_cumulative(g.tolist()), atol=1e-6)


# -- our own graphs out and back -----------------------------------------------------------------------
def synthetic(feature_rows=((0, 3, 0), (0, 4, 1), (1, 2, 1)), errors=((0, 1),), n_layers=2, bias=False) -> Graph:
    """A small Graph: embeddings at positions 0..1, features (layer, feature, pos), errors (layer, pos),
    one logit, optionally a bias node."""
    kinds = ["feature"] * len(feature_rows) + ["error"] * len(errors) + ["embedding", "embedding", "logit"]
    layer = [r[0] for r in feature_rows] + [e[0] for e in errors] + [-1, -1, n_layers]
    pos = [r[2] for r in feature_rows] + [e[1] for e in errors] + [0, 1, 1]
    feat = [r[1] for r in feature_rows] + [-1] * len(errors) + [10, 11, 42]
    if bias:
        kinds, layer, pos, feat = kinds + ["bias"], layer + [n_layers], pos + [1], feat + [-1]
    n = len(kinds)
    act = np.where(np.isin(kinds, ["feature", "logit"]), np.linspace(1, 2, n), 0.0).astype(np.float32)
    src = [n - 3 - bias, 0, n - 2 - bias]
    dst = [0, n - 1 - bias, n - 1 - bias]
    return Graph(tokens=["a", "b"], token_ids=np.array([10, 11]), kind=np.array(kinds), layer=np.array(layer),
                 position=np.array(pos), feature=np.array(feat), activation=act,
                 influence=np.linspace(0.5, 0.1, n).astype(np.float32), source=np.array(src), target=np.array(dst),
                 weight=np.array([0.5, -1.0, 0.25], np.float32), n_layers=n_layers, target_tokens=["x"],
                 target_ids=np.array([42]), target_probs=np.array([0.3], np.float32), replacement_score=0.7,
                 labels={0: "first"})


def test_our_graph_out_and_back():
    g = synthetic(bias=True)
    data = graph_json(g, slug="ours")
    assert data["metadata"]["slug"] == "ours" and data["metadata"]["info"]["bias_nodes_left_out"] == 1
    assert data["metadata"]["info"]["replacement_score"] == pytest.approx(0.7)
    assert [n["feature_type"] for n in data["nodes"]].count("logit") == 1 and len(data["nodes"]) == g.n_nodes - 1
    logit = data["nodes"][-1]
    assert logit["layer"] == "3" and logit["node_id"] == "3_42_1" and logit["clerp"] == 'Output "x" (p=0.300)'
    back = read_graph_json(data)
    keep = g.kind != "bias"
    for name in ("kind", "layer", "position", "feature"):
        assert getattr(back, name).tolist() == getattr(g, name)[keep].tolist(), name
    np.testing.assert_allclose(back.activation, g.activation[keep], atol=1e-6)
    scored = g.kind[keep] != "logit"
    np.testing.assert_allclose(back.influence[scored] / back.influence[scored].sum(),
                               g.influence[keep][scored] / g.influence[keep][scored].sum(), atol=1e-6)
    assert back.replacement_score == pytest.approx(0.7) and back.labels == {0: "first"}
    np.testing.assert_allclose(back.adjacency(), g.subgraph(keep).adjacency(), atol=1e-7)


def test_exported_lazily():
    assert lw.read_graph_json is read_graph_json and lw.write_graph_json is write_graph_json


# -- suggested supernodes ------------------------------------------------------------------------------
def planted_graph():
    """Feature nodes at layers 0 and 1 over 4 positions; per-layer transcoders whose decoder rows plant
    two directions: u (layer-0 features 3 and 8 and layer-1 feature 5, up to scale) and v (layer-1
    features 1 and 9); every other feature random (near-orthogonal in 64 dimensions)."""
    from llm_widgets.dictionaries import Dictionary
    from llm_widgets.dictionaries.coding import Weights
    from llm_widgets.dictionaries.sites import Site

    g = torch.Generator().manual_seed(0)
    tcs = [torch.randn(16, 64, generator=g) for _ in range(2)]
    u, v = torch.randn(64, generator=g), torch.randn(64, generator=g)
    tcs[0][3], tcs[0][8], tcs[1][5] = u, 2.5 * u, 0.5 * u
    tcs[1][1], tcs[1][9] = v, 3 * v
    dicts = [Dictionary(Weights(W_enc=torch.randn(64, 16, generator=g), b_enc=torch.zeros(16), W_dec=W,
                                b_dec=torch.zeros(64)), site=Site("mlp_in", lay), out_site=Site("mlp", lay))
             for lay, W in enumerate(tcs)]
    feats = [(0, 3, 0), (0, 3, 2), (0, 8, 1), (1, 5, 3), (1, 1, 2), (1, 9, 3), (0, 2, 0), (1, 7, 1), (0, 11, 3)]
    g_ = synthetic(feature_rows=feats, errors=())
    return g_, dicts


def test_suggested_supernodes_group_planted_directions():
    g, dicts = planted_graph()
    groups = lw.suggest_supernodes(g, dicts)
    assert [sorted(x.rows) for x in groups] == [[0, 1, 2, 3], [4, 5]]
    assert groups[0].similarity == pytest.approx(1.0, abs=1e-5)
    assert groups[0].ids == tuple(g.node_ids()[r] for r in groups[0].rows)
    assert groups[0].name == "first"  # its member's label
    assert groups[1].name == "L1/1 + L1/9"
    assert lw.suggest_supernodes(g, dicts, k=1) == groups[:1]
    # stored as circuit-tracer stores them, and written to qParams.supernodes
    from llm_widgets.circuits.supernodes import add_supernodes, supernode_rows
    g2 = add_supernodes(g, groups)
    assert g2.info["supernodes"][1] == ["L1/1 + L1/9", *groups[1].ids]
    assert graph_json(g2)["qParams"]["supernodes"] == g2.info["supernodes"]
    assert sorted(supernode_rows(g2, "L1/1 + L1/9").tolist()) == [4, 5]
    with pytest.raises(LLMWidgetsError, match="no supernode named"):
        supernode_rows(g2, "nope")
    with pytest.raises(LLMWidgetsError, match="not in this graph"):
        add_supernodes(g, [["x", "9_9_9"]])


def test_suggested_supernodes_from_edge_profiles():
    """No transcoders: nodes with proportional outgoing edges group; the others do not."""
    g = synthetic(feature_rows=[(0, 1, 0), (0, 2, 0), (0, 3, 1), (1, 4, 1)], errors=())
    n = g.n_nodes
    logit = n - 1
    src = np.array([0, 1, 0, 1, 2, 2, 3])
    dst = np.array([3, 3, logit, logit, 3, logit, logit])
    w = np.array([1.0, 2.0, -0.5, -1.0, 1.0, 1.0, 0.7], np.float32)
    from dataclasses import replace
    g = replace(g, source=src, target=dst, weight=w)
    groups = lw.suggest_supernodes(g)
    assert [sorted(x.rows) for x in groups] == [[0, 1]]
    with pytest.raises(LLMWidgetsError, match="min_similarity"):
        lw.suggest_supernodes(g, min_similarity=2)
