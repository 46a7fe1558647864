"""Graph interventions and GraphView.

Interventions on a tiny Llama (2 blocks, RMSNorm) with random ReLU transcoders on both MLPs: the real
output equals a hand forward with a hand hook on the MLP output (1e-5); for a last-layer feature at
the last position the graph's prediction equals the change in a forward whose final norm is frozen at
the clean input's scale (1e-5), and differs from the real change (the norm rescales); the prediction
on a random DAG equals (I - U)^-1 e by dense solve. GraphView: traits from a Graph, a bad node row is
refused, a click computes the feature panel, supernodes and the intervene control round-trip,
the circuit-tracer file is drawn and written back equal, and the export holds everything."""
import json

import numpy as np
import pytest
import torch

import llm_widgets as lw
from llm_widgets.circuits.graph import Graph
from llm_widgets.circuits.intervene import graph_intervention, predicted_change
from llm_widgets.dictionaries import Dictionary
from llm_widgets.dictionaries.coding import Weights
from llm_widgets.dictionaries.sites import Site
from llm_widgets.errors import LLMWidgetsError
from llm_widgets.execution.hooks import capture, hooks
from llm_widgets.testing import build

TEXT = "the cat sat on the mat"
_S: dict = {}


def setup(tok):
    """(session, transcoders) of a tiny Llama with a random ReLU transcoder on each block's MLP."""
    if "s" not in _S:
        s = lw.load((build("llama"), tok), device="cpu")
        tcs = []
        for lay in range(s.adapter.n_layers):
            g = torch.Generator().manual_seed(10 + lay)
            w = Weights(W_enc=torch.randn(64, 32, generator=g) * 0.3, b_enc=torch.randn(32, generator=g) * 0.3 - 0.2,
                        W_dec=torch.randn(32, 64, generator=g) * 0.3, b_dec=torch.randn(64, generator=g) * 0.1)
            tcs.append(Dictionary(w, site=Site("mlp_in", lay), out_site=Site("mlp", lay), name=f"tc{lay}"))
        _S["s"] = (s, tcs)
    return _S["s"]


def hand_graph(s, tcs):
    """A graph holding exactly one path: the most active last-layer feature at the last position into
    the top logit, its edge computed by hand with the final RMSNorm frozen at this input's scale
    (weight = a * (W_dec[f] * gamma / rms) . (W_U[tok] - mean W_U)); plus the token embeddings.
    Returns (graph, facts)."""
    enc, _, _ = s.encode(TEXT)
    ids = enc["input_ids"][0]
    T, L = len(ids), s.adapter.n_layers
    with torch.no_grad():
        cap = capture(s.model, [("mlp_in", L - 1), ("resid", L - 1)], lambda: s.model(**enc))
        acts = tcs[L - 1].encode(cap[("mlp_in", L - 1)][0])
        f = int(acts[-1].argmax())
        a = float(acts[-1, f])
        x = cap[("resid", L - 1)][0, -1].double()
        norm = s.model.model.norm
        rms = torch.sqrt(x.pow(2).mean() + norm.variance_epsilon)
        W_U = s.model.lm_head.weight.double()
        logits = s.model(**enc).logits[0, -1].double()
        tok = int((logits - logits.mean()).argmax())
        per_unit = float((tcs[L - 1].weights.W_dec[f].double() * norm.weight.double() / rms) @ (W_U[tok] - W_U.mean(0)))
    kinds = ["embedding"] * T + ["feature", "logit"]
    g = Graph(tokens=[str(i) for i in ids.tolist()], token_ids=ids.numpy(), kind=np.array(kinds),
              layer=np.array([-1] * T + [L - 1, L]), position=np.array(list(range(T)) + [T - 1, T - 1]),
              feature=np.array(ids.tolist() + [f, tok]), activation=np.array([0.0] * T + [a, 0.0], np.float32),
              influence=np.ones(T + 2, np.float32), source=np.array([T]), target=np.array([T + 1]),
              weight=np.array([a * per_unit], np.float32), n_layers=L, target_tokens=["top"],
              target_ids=np.array([tok]), target_probs=np.array([0.5], np.float32))
    return g, {"enc": enc, "f": f, "a": a, "tok": tok, "rms": rms, "row": T, "per_unit": per_unit}


def demeaned(lg):
    return lg - lg.mean(-1, keepdim=True)


def test_real_output_equals_a_hand_hook(minilm_tokenizer):
    s, tcs = setup(minilm_tokenizer)
    g, k = hand_graph(s, tcs)
    L, f, a, tok = s.adapter.n_layers, k["f"], k["a"], k["tok"]
    v = 3.0 * a
    r = graph_intervention(s, g, tcs, {k["row"]: v})
    delta = torch.zeros(1, len(g.tokens), 64)
    delta[0, -1] = (v - a) * tcs[L - 1].weights.W_dec[f]
    with torch.no_grad():
        base = demeaned(s.model(**k["enc"]).logits[0, -1].double())
        with hooks(s.model, [("mlp", L - 1, lambda y: y + delta.to(y.dtype))]):
            hand = demeaned(s.model(**k["enc"]).logits[0, -1].double())
    assert r.logit_before[0] == pytest.approx(float(base[tok]), abs=1e-5)
    assert r.logit_after[0] == pytest.approx(float(hand[tok]), abs=1e-5)
    assert abs(r.delta_real[0]) > 1e-2  # the edit does something
    p = torch.softmax(hand.float(), -1)
    top = p.topk(3)
    assert [pr for _, pr in r.top_after[:3]] == pytest.approx(top.values.tolist(), abs=1e-6)
    assert r.rows == [k["row"]] and r.old[0] == pytest.approx(a) and r.new[0] == pytest.approx(v)
    assert "->" in r.summary()


def test_prediction_is_the_frozen_norm_change_not_the_real_one(minilm_tokenizer, capsys):
    """The graph's linear prediction for a last-layer feature equals the change with the final norm
    frozen at the clean input's scale; the real model rescales, so they differ."""
    s, tcs = setup(minilm_tokenizer)
    g, k = hand_graph(s, tcs)
    L, f, a, tok = s.adapter.n_layers, k["f"], k["a"], k["tok"]
    v = 0.0  # switch the feature off
    r = graph_intervention(s, g, tcs, {k["row"]: v})
    norm = s.model.model.norm
    with torch.no_grad():
        clean = capture(s.model, [("resid", L - 1)], lambda: s.model(**k["enc"]))[("resid", L - 1)]
        rms = torch.sqrt(clean.double().pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)
        frozen = norm.register_forward_hook(lambda m, i, o: (m.weight.double() * i[0].double() / rms).to(o.dtype))
        delta = torch.zeros(1, len(g.tokens), 64)
        delta[0, -1] = (v - a) * tcs[L - 1].weights.W_dec[f]
        try:
            base = demeaned(s.model(**k["enc"]).logits[0, -1].double())
            with hooks(s.model, [("mlp", L - 1, lambda y: y + delta.to(y.dtype))]):
                edited = demeaned(s.model(**k["enc"]).logits[0, -1].double())
        finally:
            frozen.remove()
    frozen_change = float(edited[tok] - base[tok])
    assert r.delta_predicted[0] == pytest.approx(-a * k["per_unit"], rel=1e-6)
    assert r.delta_predicted[0] == pytest.approx(frozen_change, abs=1e-5)
    gap = abs(r.delta_real[0] - r.delta_predicted[0])
    assert gap > 1e-4, "the real model rescales its final norm: the real change differs"
    with capsys.disabled():
        print(f"\n[graph intervention, tiny llama, feature {f} (a={a:.4g}) of layer {L - 1} set to 0] logit change: "
              f"graph {r.delta_predicted[0]:.6g}, frozen-norm forward {frozen_change:.6g}, real {r.delta_real[0]:.6g} "
              f"(gap {gap:.3g})")


def test_prediction_on_a_dag_is_the_linear_solve():
    """Random DAG of features over 3 layers into 2 logits: predicted_change == (I - U)^-1 e, edited
    nodes' inputs cut, with U the edges per unit of source activation."""
    rng = np.random.default_rng(1)
    n_f = 9
    layer = np.r_[np.repeat([0, 1, 2], 3), 3, 3]
    kind = np.array(["feature"] * n_f + ["logit"] * 2)
    src, dst = [], []
    for i in range(n_f):
        for j in range(n_f + 2):
            if layer[j] > layer[i] and rng.random() < 0.7:
                src.append(i)
                dst.append(j)
    w = rng.normal(size=len(src)).astype(np.float32)
    act = rng.uniform(0.5, 2, n_f + 2).astype(np.float32)
    g = Graph(tokens=["a"], token_ids=np.array([1]), kind=kind, layer=layer, position=np.zeros(11, np.int64),
              feature=np.arange(11), activation=act, influence=np.ones(11, np.float32), source=np.array(src),
              target=np.array(dst), weight=w, n_layers=3)
    rows, new = np.array([1, 4]), np.array([0.0, 3.0])
    got = predicted_change(g, rows, new)
    U = np.zeros((11, 11))
    for s_, t_, w_ in zip(src, dst, w):
        if t_ not in rows:
            U[t_, s_] += float(w_) / float(act[s_])
    e = np.zeros(11)
    e[rows] = new - act[rows].astype(np.float64)
    np.testing.assert_allclose(got, np.linalg.solve(np.eye(11) - U, e), rtol=1e-10, atol=1e-12)
    assert abs(got[-1]) > 1e-3


def test_intervention_refuses_bad_edits(minilm_tokenizer):
    s, tcs = setup(minilm_tokenizer)
    g, k = hand_graph(s, tcs)
    with pytest.raises(LLMWidgetsError, match="only feature nodes"):
        graph_intervention(s, g, tcs, {0: 1.0})  # an embedding
    with pytest.raises(LLMWidgetsError, match="out of range"):
        graph_intervention(s, g, tcs, {999: 1.0})
    with pytest.raises(LLMWidgetsError, match="non-empty dict"):
        graph_intervention(s, g, tcs, {})
    with pytest.raises(LLMWidgetsError, match="no supernode named"):
        graph_intervention(s, g, tcs, {"nope": 0.0})
    with pytest.raises(LLMWidgetsError, match="no transcoder for the MLP"):
        graph_intervention(s, g, tcs[:1], {k["row"]: 0.0})


# -- GraphView ---------------------------------------------------------------------------------------
def test_view_of_a_circuit_tracer_file_draws_and_writes_it_back(tmp_path):
    """A file in circuit-tracer's schema (tests/test_circuits_json.py writes it as circuit-tracer
    does): read, drawn, written, equal."""
    from test_circuits_json import assert_same, reference_file

    data = reference_file()
    path = tmp_path / "cat.json"
    path.write_text(json.dumps(data))
    g = lw.read_graph_json(path)
    v = lw.GraphView(g)
    assert v.n_nodes == len(data["nodes"]) and v.node_ids == [n["node_id"] for n in data["nodes"]]
    kinds = [v.kinds[int(k)] for k in v.node_kind]
    assert kinds == [{"cross layer transcoder": "feature", "mlp reconstruction error": "error", "embedding": "embedding",
                      "logit": "logit"}[n["feature_type"]] for n in data["nodes"]]
    infl = [n["influence"] if n["influence"] is not None else 0.0 for n in data["nodes"]]
    np.testing.assert_allclose(v.node_influence, infl, atol=1e-7)  # the file's cumulative values, as its frontend cuts
    np.testing.assert_allclose(v.edge_weight, [ln["weight"] for ln in data["links"]], atol=1e-7)
    assert [v.node_ids[s] for s in v.edge_source] == [ln["source"] for ln in data["links"]]
    assert v.supernodes == [["cat", "0_7_1", "0_3_2"]] and v.node_labels[0] == "cat-ish <b>&"
    assert not v.can_intervene
    out = v.to_json(tmp_path / "out.json")
    assert_same(json.loads(out.read_text()), data)
    v.supernodes = v.supernodes + [["pair", "1_11_2", "0_7_1"]]  # grouped in the view: written to qParams
    assert json.loads(v.to_json(tmp_path / "out2.json").read_text())["qParams"]["supernodes"][1] == [
        "pair", "1_11_2", "0_7_1"]
    page = v.to_html(tmp_path / "g.html").read_text()
    assert "cat-ish \\u003cb\\u003e\\u0026" in page and "<b>&" not in page.split("lw-payload")[1].split("</script>")[0]


def test_view_traits_are_validated():
    from test_circuits_json import reference_file

    v = lw.GraphView(lw.read_graph_json(reference_file()))
    n = v.n_nodes
    with pytest.raises(Exception, match=f"selected_node must be in 0..{n - 1}"):
        v.selected_node = n
    with pytest.raises(Exception, match="selected_node must be an integer"):
        v.selected_node = "3_9_2"
    with pytest.raises(Exception, match="selected_nodes must be node rows"):
        v.selected_nodes = [0, 99]
    with pytest.raises(Exception, match="threshold is a share"):
        v.threshold = 1.5
    with pytest.raises(Exception, match="supernode is"):
        v.supernodes = [["x", "9_9_9"]]
    v.selected_node = 0  # a feature node
    assert v.feature_panel["id"] == v.node_ids[0] == "0_7_1" and "why" in v.feature_panel  # no model behind it
    with pytest.raises(TypeError, match="unexpected keyword argument 'treshold'"):
        lw.GraphView(lw.read_graph_json(reference_file()), treshold=0.5)
    with pytest.raises(LLMWidgetsError, match="GraphView takes a Graph"):
        lw.GraphView("not a graph")
    with pytest.raises(LLMWidgetsError, match="interventions need the model"):
        v.intervene({3: 0.0})


def test_view_with_the_model_panel_and_intervention(minilm_tokenizer, tmp_path):
    s, tcs = setup(minilm_tokenizer)
    g, k = hand_graph(s, tcs)
    v = lw.GraphView(s, g, tcs, corpus=[TEXT, "a dog sat on a log"])
    assert v.can_intervene
    v.selected_node = k["row"]
    p = v.feature_panel
    L = s.adapter.n_layers
    with torch.no_grad():
        x = capture(s.model, [("mlp_in", L - 1)], lambda: s.model(**k["enc"]))[("mlp_in", L - 1)][0]
        want = tcs[L - 1].encode(x)[:, k["f"]]
    np.testing.assert_allclose(p["over_text"], want.numpy(), atol=1e-5)
    assert p["over_text"][-1] == pytest.approx(k["a"], abs=1e-5)
    assert len(p["logits"]["promoted"]) == 8 and p["contexts"] and p["contexts"][0]["activation"] > 0
    v.intervene_request = {"target": k["row"], "value": 0.0, "n": 1}
    r = v.intervention_result
    want = graph_intervention(s, g, tcs, {k["row"]: 0.0})
    np.testing.assert_allclose(r.logit_after, want.logit_after, atol=1e-6)
    assert v.intervention["predicted"] == pytest.approx(want.logit_predicted.tolist())
    assert v.intervention["ids"] == [g.node_ids()[k["row"]]]
    v.intervene_request = {"target": 0, "value": 1.0, "n": 2}  # an embedding: said in .error
    assert "only feature nodes" in v.error
    assert v.to_html(tmp_path / "g.html").exists()


def test_view_computes_the_graph_and_its_prediction_matches_the_frozen_model(minilm_tokenizer):
    """GraphView(s, text, transcoders) computes lw.attribution_graph (in the background here, then
    .wait()); for the computed graph's most active last-layer feature at the last position, the
    graph's predicted logit change equals a forward with the final norm frozen (1e-5)."""
    from llm_widgets.circuits.attribution import attribution_graph

    s, tcs = setup(minilm_tokenizer)
    v = lw.GraphView(s, TEXT, tcs, node_threshold=1.0, edge_threshold=1.0, background=True).wait()
    assert v.done and not v.error and v.progress == -1
    g = v.graph
    ref = attribution_graph(s, TEXT, tcs, node_threshold=1.0, edge_threshold=1.0)
    assert g.n_nodes == ref.n_nodes and g.n_edges == ref.n_edges
    np.testing.assert_allclose(v.edge_weight, ref.weight, atol=1e-6)
    L, T = s.adapter.n_layers, len(g.tokens)
    last = np.flatnonzero((g.kind == "feature") & (g.layer == L - 1) & (g.position == T - 1))
    row = int(last[np.argmax(g.activation[last])])
    f, a = int(g.feature[row]), float(g.activation[row])
    r = v.intervene({row: 0.0}) or v.intervention_result
    norm = s.model.model.norm
    enc = {"input_ids": torch.as_tensor(g.token_ids)[None], "attention_mask": torch.ones(1, T, dtype=torch.long)}
    with torch.no_grad():
        clean = capture(s.model, [("resid", L - 1)], lambda: s.model(**enc))[("resid", L - 1)]
        rms = torch.sqrt(clean.double().pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)
        frozen = norm.register_forward_hook(lambda m, i, o: (m.weight.double() * i[0].double() / rms).to(o.dtype))
        delta = torch.zeros(1, T, 64)
        delta[0, -1] = -a * tcs[L - 1].weights.W_dec[f]
        try:
            base = demeaned(s.model(**enc).logits[0, -1].double())
            with hooks(s.model, [("mlp", L - 1, lambda y: y + delta.to(y.dtype))]):
                edited = demeaned(s.model(**enc).logits[0, -1].double())
        finally:
            frozen.remove()
    want = (edited - base)[torch.as_tensor(r.target_ids)].numpy()
    np.testing.assert_allclose(r.delta_predicted, want, atol=1e-5)
    assert np.abs(r.delta_real - r.delta_predicted).max() > 1e-5  # the real model's norm moves


@pytest.mark.slow  # trains the two-hop teaching model when it is not cached (about a minute on 2 cores)
def test_two_hop_intermediate_feature_intervention_moves_the_answer_as_predicted(capsys):
    """The two-hop teaching model ("Mary city country" -> France via the city Paris): switching off
    the planted city feature in the graph lowers the answer's logit in the model and in the graph's
    prediction (sign), and the answer stays the graph's top target before the edit."""
    th = lw.teaching.two_hop()
    v = lw.GraphView(th.session, th.prompt("Mary"), th.transcoders, background=False)
    g = v.graph
    lay, feat = th.b_feature(th.f["Mary"])
    rows = np.flatnonzero((g.kind == "feature") & (g.layer == lay) & (g.feature == feat))
    assert len(rows) >= 1 and g.target_tokens[0] == th.answer("Mary")
    v.intervene({int(rows[0]): 0.0})
    r = v.intervention_result
    assert r.delta_real[0] < 0 and r.delta_predicted[0] < 0
    assert r.top_before[0][0] == th.answer("Mary")
    with capsys.disabled():
        print(f"\n[two-hop, {th.prompt('Mary')!r}: city feature L{lay}/{feat} (a={float(g.activation[rows[0]]):.3g}) set to "
              f"0] logit of {th.answer('Mary')!r}: real {r.delta_real[0]:+.3f}, graph {r.delta_predicted[0]:+.3f}; "
              f"P({th.answer('Mary')!r}) {r.top_before[0][1]:.4f} -> "
              f"{dict(r.top_after).get(th.answer('Mary'), float('nan')):.4f}")


def test_a_computed_graph_written_and_read_back(minilm_tokenizer, tmp_path):
    """lw.attribution_graph's graph (with its bias node) to circuit-tracer's JSON and back: the same
    nodes but the bias node (left out, and said), the same edges among them, and written again, the
    same file."""
    from test_circuits_json import assert_same

    s, tcs = setup(minilm_tokenizer)
    g = lw.attribution_graph(s, TEXT, tcs)
    from llm_widgets.circuits.ctjson import graph_json

    data = graph_json(g, slug="tiny")
    keep = g.kind != "bias"
    assert data["metadata"]["info"]["bias_nodes_left_out"] == int((~keep).sum())
    back = lw.read_graph_json(lw.write_graph_json(g, tmp_path / "tiny.json"))
    assert back.node_ids() == [i for i, k in zip(g.node_ids(), keep) if k]
    np.testing.assert_allclose(back.adjacency(), g.subgraph(keep).adjacency(), atol=1e-6)
    assert back.target_tokens == [str(t).replace("\n", "\u23ce") for t in g.target_tokens]
    assert_same(graph_json(back), data)
