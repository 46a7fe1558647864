"""Attribution graphs (llm_widgets.circuits.attribution) against known answers, on tiny random
GPT-2-shaped (biases everywhere: attention, MLP, LayerNorm), Llama-shaped (RMSNorm, rotary, no
biases) and Gemma-2-shaped (post-norms, soft-capped logits) models with random transcoders:
- for every logit node the incoming edges (with the bias node's) add up to its value (1e-4), and for
  every feature node to its pre-activation computed from a hand hook on the MLP input,
- zeroing a last-layer feature in the frozen replacement model moves the logit by exactly its edge;
  zeroing a first-layer feature moves it by the graph's total effect ((I - M)^-1, features in their
  linear regime), measured with forwards of the frozen model only (no gradients),
- on a one-layer GPT-2 the edges equal a frozen model written out by hand in torch,
- the replacement model's forward gives the model's own logits (1e-5),
- a cross-layer transcoder whose decoders only write their own layer gives the per-layer graph; one
  writing later layers, a skip connection, TopK features and a feature cap (folded into the error
  nodes) still add up,
- refusals: a missing layer, the nnsight executor, multi-token targets, bad arguments, an unfrozen norm,
- pruning keeps every logit, scores lie in [0, 1], thresholds of 1.0 cut nothing, and it keeps exactly
  the nodes and edges circuit-tracer's prune_graph (transcribed here) keeps; the partial influence
  that ranks features under a cap equals the full influence when every row is computed,
- progress is reported in order and raising from `report` stops the work."""
from dataclasses import replace

import numpy as np
import pytest
import torch

import llm_widgets as lw
from llm_widgets.circuits import replacement
from llm_widgets.circuits.ctjson import cumulative_influence, graph_json, read_graph_json
from llm_widgets.circuits.prune import prune
from llm_widgets.circuits.replacement import frozen_forward, observe, transcoders_of
from llm_widgets.compute.capabilities import graph_why_not
from llm_widgets.dictionaries import Dictionary
from llm_widgets.dictionaries.coding import Weights
from llm_widgets.dictionaries.crosslayer import CrossLayerTranscoder
from llm_widgets.dictionaries.sites import Site
from llm_widgets.errors import DoesNotApplyError, LLMWidgetsError
from llm_widgets.execution.hooks import capture
from llm_widgets.testing import build
from llm_widgets.testing.families import FAMILIES

TEXT = "the cat sat on the mat"
ALL = dict(node_threshold=1.0, edge_threshold=1.0, batch_size=16, max_logits=4)
F = 16
_S: dict = {}
_G: dict = {}


def session(tok, fam):
    if fam not in _S:
        _S[fam] = lw.load((build(fam), tok), device="cpu")
    return _S[fam]


def weights(d, F=F, seed=0, **kw) -> Weights:
    g = torch.Generator().manual_seed(seed)
    return Weights(W_enc=torch.randn(d, F, generator=g) * 0.3, b_enc=torch.randn(F, generator=g) * 0.3 - 0.3,
                   W_dec=torch.randn(F, d, generator=g) * 0.3, b_dec=torch.randn(d, generator=g) * 0.1, **kw)


def transcoders(s, site="mlp_in", **kw) -> list:
    d = s.adapter.d_model
    return [Dictionary(weights(d, seed=10 + l, **kw), site=Site(site, l), out_site=Site("mlp", l), name="random TC")
            for l in range(s.adapter.n_layers)]


def graph(tok, fam, **kw):
    key = (fam, tuple(sorted(kw.items())))
    if key not in _G:
        s = session(tok, fam)
        _G[key] = lw.attribution_graph(s, TEXT, transcoders(s), **{**ALL, **kw})
    return _G[key]


def demeaned(v: torch.Tensor) -> torch.Tensor:
    return v - v.mean(-1, keepdim=True)


# -- exactness -------------------------------------------------------------------------------------
@pytest.mark.parametrize("fam", ["gpt2", "llama", "gemma2"])
def test_edges_into_every_target_add_up(minilm_tokenizer, fam):
    s = session(minilm_tokenizer, fam)
    g = graph(minilm_tokenizer, fam)
    assert len(g.logit_nodes()) == 4 and g.info["features"]["left_out"] == 0
    for r in g.logit_nodes():
        _, w = g.into(r)
        assert abs(w.astype(np.float64).sum() - g.activation[r]) < 1e-4
    enc, _, _ = s.encode(TEXT)
    if fam != "gemma2":  # the logit node is the model's own demeaned logit
        lg = s.forward(**enc).logits[0, -1].float()
        np.testing.assert_allclose(g.activation[g.logit_nodes()], demeaned(lg)[g.target_ids].numpy(), atol=1e-4)
    else:
        assert "soft-caps" in g.info["softcap"]
    # every feature node: its inputs add up to its pre-activation, computed from a hand hook's input
    tcs = transcoders(s)
    xs = capture(s.model, [("mlp_in", l) for l in range(s.adapter.n_layers)], lambda: s.forward(**enc))
    for r in g.rows("feature"):
        w_ = tcs[int(g.layer[r])].weights
        x = xs[("mlp_in", int(g.layer[r]))][0, int(g.position[r])].float()
        pre = float(x @ w_.W_enc[:, int(g.feature[r])] + w_.b_enc[int(g.feature[r])])
        assert abs(pre - g.activation[r]) < 1e-4  # relu: the activation is the pre-activation
        _, w = g.into(r)
        assert abs(w.astype(np.float64).sum() - pre) < 1e-4


@pytest.mark.parametrize("fam", ["gpt2", "llama"])
def test_replacement_forward_is_the_model(minilm_tokenizer, fam):
    s = session(minilm_tokenizer, fam)
    tc = transcoders_of(s, transcoders(s))
    enc, _, _ = s.encode(TEXT)
    obs = observe(s, enc, tc)
    fz = frozen_forward(s, obs, tc, batch=3, grad=False)
    lg = s.forward(**enc).logits[0, -1].float()
    for row in fz.head:
        np.testing.assert_allclose(row.numpy(), lg.numpy(), atol=1e-5, rtol=0)
    assert len(obs.norms) == 2 * s.adapter.n_layers + 1  # two per block and the final norm, found by behaviour


def _frozen_logits(s, obs, tc, mlp) -> torch.Tensor:
    """The frozen replacement model's demeaned logits with the MLP outputs (sources) `mlp`."""
    return demeaned(frozen_forward(s, replace(obs, mlp=mlp), tc, grad=False).head[0].double())


def _dense(g):
    A = g.adjacency()
    feats = g.rows("feature")
    M = A.copy()
    M[:, feats] /= g.activation[feats].astype(np.float64)  # effect per unit of activation
    return A, M


@pytest.mark.parametrize("fam", ["gpt2", "llama"])
def test_zeroing_a_feature_moves_the_logit_as_the_graph_says(minilm_tokenizer, fam):
    s = session(minilm_tokenizer, fam)
    g = graph(minilm_tokenizer, fam)
    L = s.adapter.n_layers
    tc = transcoders_of(s, transcoders(s))
    enc, _, _ = s.encode(TEXT)
    obs = observe(s, enc, tc)
    base = _frozen_logits(s, obs, tc, obs.mlp)
    logit, tok = g.logit_nodes()[0], int(g.target_ids[0])
    A, M = _dense(g)
    total = np.linalg.inv(np.eye(g.n_nodes) - M)
    W = [t.weights for t in transcoders(s)]
    for layer in (L - 1, 0):
        rows = g.rows("feature")[g.layer[g.rows("feature")] == layer]
        r = rows[np.argmax(np.abs(A[logit, rows]) if layer == L - 1 else g.activation[rows])]
        pos, f, a = int(g.position[r]), int(g.feature[r]), float(g.activation[r])
        mlp = [m.clone() for m in obs.mlp]
        mlp[layer][pos] -= a * W[layer].W_dec[f]
        if layer < L - 1:  # the later features respond in their linear regime (the graph's model)
            x1 = sum(t[0] for t in frozen_forward(s, replace(obs, mlp=mlp), tc, grad=False).x[layer + 1]).float()
            for q in g.rows("feature")[g.layer[g.rows("feature")] == layer + 1]:
                p, h = int(g.position[q]), int(g.feature[q])
                mlp[layer + 1][p] += float((x1[p] - obs.x[layer + 1][p]) @ W[layer + 1].W_enc[:, h]) * W[layer + 1].W_dec[h]
        change = float(_frozen_logits(s, obs, tc, mlp)[tok] - base[tok])
        want = -A[logit, r] if layer == L - 1 else -a * total[logit, r]
        assert abs(change) > 1e-3
        assert abs(change - want) < 1e-4 * max(1.0, abs(want)), (layer, change, want)


def test_edges_equal_a_frozen_one_layer_gpt2_by_hand(minilm_tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(3)
    cfg = GPT2Config(vocab_size=minilm_tokenizer.vocab_size, n_positions=32, n_embd=32, n_layer=1, n_head=2,
                     attn_implementation="eager")
    model = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():  # biases and LayerNorm parameters away from 0 and 1
            p.add_(torch.randn_like(p) * 0.05) if p.dim() == 1 else p.normal_(0, 0.2)
    s = lw.load((model, minilm_tokenizer), device="cpu")
    tc = [Dictionary(weights(32, F=24, seed=5), site=Site("mlp_in", 0), out_site=Site("mlp", 0))]
    g = lw.attribution_graph(s, TEXT, tc, **ALL)
    # the frozen model by hand: LayerNorm scales and the attention pattern from the real input, detached
    ids = s.encode(TEXT)[0]["input_ids"][0]
    T, D, H = len(ids), 32, 2
    m, blk, W = model.transformer, model.transformer.h[0], tc[0].weights

    def ln(x, mod, real):
        sigma = torch.sqrt(real.var(-1, unbiased=False, keepdim=True) + mod.eps).detach()
        return (x - x.mean(-1, keepdim=True)) / sigma * mod.weight + mod.bias

    def heads(x):
        return x.view(T, H, D // H).transpose(0, 1)

    with torch.no_grad():
        e_real = m.wte.weight[ids] + m.wpe.weight[:T]
        q, k, _ = (blk.ln_1(e_real) @ blk.attn.c_attn.weight + blk.attn.c_attn.bias).split(D, -1)
        scores = heads(q) @ heads(k).transpose(-1, -2) / (D // H) ** 0.5
        P = torch.softmax(scores.masked_fill(torch.ones(T, T).triu(1).bool(), float("-inf")), -1)

    def block(e, m_out, x_real=None):
        v = (ln(e, blk.ln_1, e_real) @ blk.attn.c_attn.weight + blk.attn.c_attn.bias)[:, 2 * D:]
        attn = (P @ heads(v)).transpose(0, 1).reshape(T, D) @ blk.attn.c_proj.weight + blk.attn.c_proj.bias
        mid = e + attn
        return mid, mid + m_out

    with torch.no_grad():
        mid_real, _ = block(e_real, 0)
        x_real = blk.ln_2(mid_real)
        mlp_real = blk.mlp(x_real)
        resid_real = mid_real + mlp_real
    e = e_real.clone().requires_grad_(True)
    mo = mlp_real.clone().requires_grad_(True)
    mid, resid = block(e, mo)
    logits = ln(resid, m.ln_f, resid_real) @ m.wte.weight.T
    acts = torch.relu(x_real @ W.W_enc + W.b_enc)
    err = mlp_real - (acts @ W.W_dec + W.b_dec)
    A = g.adjacency()
    emb, errs = g.rows("embedding"), g.rows("error")
    for r, tok in zip(g.logit_nodes(), g.target_ids):
        ge, gm = torch.autograd.grad(demeaned(logits[-1])[tok], [e, mo], retain_graph=True)
        np.testing.assert_allclose(A[r, emb], (ge * e_real).sum(-1).detach().numpy(), atol=1e-5)
        np.testing.assert_allclose(A[r, errs], (gm * err).sum(-1).detach().numpy(), atol=1e-5)
        for c in g.rows("feature"):
            p, f = int(g.position[c]), int(g.feature[c])
            assert abs(A[r, c] - float(acts[p, f] * (gm[p] @ W.W_dec[f]))) < 1e-5
    x = ln(mid, blk.ln_2, mid_real)
    for c in g.rows("feature")[:20]:  # a feature's inputs: the embeddings through attention and ln_2
        p, f = int(g.position[c]), int(g.feature[c])
        ge, = torch.autograd.grad(x[p] @ W.W_enc[:, f], e, retain_graph=True)
        np.testing.assert_allclose(A[c, emb], (ge * e_real).sum(-1).detach().numpy(), atol=1e-5)


# -- transcoder kinds --------------------------------------------------------------------------------
def _clt(s, cross: bool, site: str) -> CrossLayerTranscoder:
    L, d = s.adapter.n_layers, s.adapter.d_model
    layers = transcoders(s, site=site)
    decs = []
    for i, t in enumerate(layers):
        extra = torch.randn(F, L - i - 1, d, generator=torch.Generator().manual_seed(i)) * (0.3 if cross else 0.0)
        decs.append(torch.cat([t.weights.W_dec[:, None], extra], 1))
    return CrossLayerTranscoder(layers=layers, decoders=decs, b_dec=torch.stack([t.weights.b_dec for t in layers]))


def _adds_up(g):
    """The edges into every logit node add up to its value (attribution_graph itself refuses a graph
    whose feature targets do not add up)."""
    assert len(g.logit_nodes())
    for r in g.logit_nodes():
        _, w = g.into(r)
        assert abs(w.astype(np.float64).sum() - g.activation[r]) < 1e-4


def test_cross_layer_transcoders(minilm_tokenizer):
    s = session(minilm_tokenizer, "gpt2")
    same = lw.attribution_graph(s, TEXT, _clt(s, cross=False, site="mlp_in"), **ALL)
    per = graph(minilm_tokenizer, "gpt2")
    assert same.n_nodes == per.n_nodes and same.n_edges == per.n_edges
    np.testing.assert_allclose(same.adjacency(), per.adjacency(), atol=1e-5)
    g = lw.attribution_graph(s, TEXT, _clt(s, cross=True, site="resid_mid"), **ALL)
    assert g.info["cross_layer"]
    _adds_up(g)


def test_skip_connection_and_feature_cap(minilm_tokenizer):
    s = session(minilm_tokenizer, "llama")
    d = s.adapter.d_model
    g = torch.Generator().manual_seed(1)
    skip = [replace(t, weights=replace(t.weights, W_skip=torch.randn(d, d, generator=g) * 0.05)) for t in transcoders(s)]
    _adds_up(lw.attribution_graph(s, TEXT, skip, **ALL))
    topk = [replace(t, weights=replace(t.weights, activation="topk", k=3)) for t in transcoders(s)]
    g = lw.attribution_graph(s, TEXT, topk, **ALL)
    assert len(g.rows("feature")) <= 3 * len(g.tokens) * s.adapter.n_layers
    _adds_up(g)
    capped = lw.attribution_graph(s, TEXT, transcoders(s), max_feature_nodes=5, **ALL)
    full = graph(minilm_tokenizer, "llama")
    assert len(capped.rows("feature")) == 5 and capped.info["features"]["left_out"] == len(full.rows("feature")) - 5
    assert "max_feature_nodes" in capped.info["features"]["why"]
    _adds_up(capped)  # the features left out are folded into the error nodes
    np.testing.assert_allclose(capped.activation[capped.logit_nodes()], full.activation[full.logit_nodes()])


# -- refusals ----------------------------------------------------------------------------------------
def test_refusals(minilm_tokenizer):
    s = session(minilm_tokenizer, "llama")
    tcs = transcoders(s)
    with pytest.raises(LLMWidgetsError, match=r"no transcoder for the MLP of block\(s\) \[1\]"):
        lw.attribution_graph(s, TEXT, tcs[:1])
    with pytest.raises(LLMWidgetsError, match="2 tokens"):
        lw.attribution_graph(s, TEXT, tcs, target="the cat")
    with pytest.raises(LLMWidgetsError, match="token id"):
        lw.attribution_graph(s, TEXT, tcs, target=10 ** 7)
    with pytest.raises(LLMWidgetsError, match="max_logits"):
        lw.attribution_graph(s, TEXT, tcs, max_logits=0)
    with pytest.raises(LLMWidgetsError, match="node_threshold"):
        lw.attribution_graph(s, TEXT, tcs, node_threshold=1.5)
    with pytest.raises(TypeError):
        lw.attribution_graph(s, TEXT, tcs, thresholds=0.5)
    gated = [replace(t, weights=replace(t.weights, activation="gated", b_gate=torch.zeros(F), r_mag=torch.zeros(F)))
             for t in tcs]
    with pytest.raises(LLMWidgetsError, match="gated activation"):
        lw.attribution_graph(s, TEXT, gated)


def test_a_nonlinearity_left_unfrozen_is_refused(minilm_tokenizer, monkeypatch):
    s = session(minilm_tokenizer, "llama")
    monkeypatch.setattr(replacement, "_norms", lambda seen, names, tol: [])  # norms left as they are
    with pytest.raises(DoesNotApplyError, match="not linear"):
        lw.attribution_graph(s, TEXT, transcoders(s), batch_size=16, max_feature_nodes=0)


def test_nnsight_session_refused(minilm_tokenizer):
    pytest.importorskip("nnsight")
    import copy

    s = session(minilm_tokenizer, "llama")
    nn = lw.load((copy.deepcopy(s.model), minilm_tokenizer), device="cpu", backend="nnsight")
    with pytest.raises(DoesNotApplyError, match="nnsight executor"):
        lw.attribution_graph(nn, TEXT, transcoders(s))


def test_given_targets(minilm_tokenizer):
    s = session(minilm_tokenizer, "llama")
    seen = []
    g = lw.attribution_graph(s, TEXT, transcoders(s), target=["mat", 2003], report=lambda f, label: seen.append(f),
                             **ALL)
    mat = minilm_tokenizer.convert_tokens_to_ids("mat")
    assert g.target_ids.tolist() == [mat, 2003]
    _adds_up(g)
    assert seen[-1] == 1.0 and seen == sorted(seen)  # progress, in order

    def cancel(fraction, label):
        if fraction > 0.1:
            raise KeyboardInterrupt("cancelled")
    with pytest.raises(KeyboardInterrupt):  # raising from report stops the work between backward passes
        lw.attribution_graph(s, TEXT, transcoders(s), report=cancel, **ALL)


def test_contrast_target_is_the_difference_of_two_logits(minilm_tokenizer):
    s = session(minilm_tokenizer, "llama")
    tcs = transcoders(s)
    g = lw.attribution_graph(s, TEXT, tcs, target="mat", contrast=2003, **ALL)
    one = lw.attribution_graph(s, TEXT, tcs, target="mat", **ALL)
    two = lw.attribution_graph(s, TEXT, tcs, target=2003, **ALL)
    mat = minilm_tokenizer.convert_tokens_to_ids("mat")
    (r,) = g.logit_nodes()
    assert g.target_ids.tolist() == [mat] and g.info["contrast"]["contrast_id"] == 2003
    assert g.target_tokens[0].startswith("mat") and g.node_ids()[r] == f"{s.adapter.n_layers + 1}_{mat}_{len(g.tokens) - 1}"
    # its inputs add up to the difference of the two demeaned logits (the model's own, by a forward)
    enc, _, _ = s.encode(TEXT)
    lg = demeaned(s.forward(**enc).logits[0, -1].double())
    want = float(lg[mat] - lg[2003])
    assert abs(g.activation[r] - want) < 1e-4
    assert abs(g.into(r)[1].astype(np.float64).sum() - want) < 1e-4
    # and its edges are the target's edges minus the contrast's (same nodes: nothing pruned)
    assert g.node_ids()[:r] == one.node_ids()[:r] == two.node_ids()[:r] and r == g.n_nodes - 1
    diff = one.adjacency()[one.logit_nodes()[0]] - two.adjacency()[two.logit_nodes()[0]]
    np.testing.assert_allclose(g.adjacency()[r], diff, atol=1e-4)
    # a real intervention reads the same difference, also from the graph written and read back
    f = int(g.rows("feature")[-1])
    iv = lw.graph_intervention(s, g, tcs, {f: 0.0})
    assert abs(iv.logit_before[0] - want) < 1e-4
    back = read_graph_json(graph_json(g))
    assert back.info["contrast"] == g.info["contrast"] and back.target_tokens == g.target_tokens
    iv2 = lw.graph_intervention(s, back, tcs, {f: 0.0})
    assert iv2.logit_after[0] == pytest.approx(iv.logit_after[0], abs=1e-6)
    for bad, match in ((dict(contrast="mat"), "one target token"), (dict(target="mat", contrast="mat"), "itself"),
                       (dict(target=["mat", 2003], contrast="the"), "one target token"),
                       (dict(target="mat", contrast=["the", "cat"]), "contrast is one token")):
        with pytest.raises(LLMWidgetsError, match=match):
            lw.attribution_graph(s, TEXT, tcs, **{**ALL, **bad})


# -- pruning -----------------------------------------------------------------------------------------
def test_pruning(minilm_tokenizer):
    full = graph(minilm_tokenizer, "gpt2")
    assert full.info["pruning"]["nodes_after"] == full.info["pruning"]["nodes_before"] == full.n_nodes
    assert full.info["pruning"]["edges_cut"] == 0
    g = prune(full, 0.8, 0.98)  # what attribution_graph's defaults return
    assert len(g.logit_nodes()) == len(full.logit_nodes()) and len(g.rows("embedding")) == len(full.rows("embedding"))
    assert g.n_nodes < full.n_nodes and g.n_edges < full.n_edges
    p = g.info["pruning"]
    assert p["nodes_before"] - p["nodes_after"] == p["cut_by_node_influence"] + p["cut_without_edges"]
    for v in (g.replacement_score, g.completeness_score, p["pruned_replacement_score"], p["pruned_completeness_score"]):
        assert 0.0 <= v <= 1.0
    assert g.replacement_score == pytest.approx(full.replacement_score)
    # influence: every kept feature reaches a logit; the logits themselves have none
    assert (g.influence[g.rows("feature")] > 0).all()


def _circuit_tracer_prune(A, n_features, n_tokens, n_logits, probs, node_threshold, edge_threshold):
    """circuit-tracer's prune_graph (circuit_tracer/graph.py), transcribed to numpy as the reference:
    nodes ordered [features, errors, tokens, logits], A[target, source]."""
    def norm(m):
        m = np.abs(m)
        return m / np.maximum(m.sum(1, keepdims=True), 1e-10)

    def infl(a, w):
        cur = w @ a
        tot = cur.copy()
        while cur.any():
            cur = cur @ a
            tot += cur
        return tot

    def thresh(scores, t):
        srt = np.sort(scores)[::-1]
        cum = np.cumsum(srt) / srt.sum()
        return srt[min(int(np.searchsorted(cum, t)), len(cum) - 1)]

    w = np.zeros(len(A))
    w[-n_logits:] = probs
    inf = infl(norm(A), w)
    node = inf >= thresh(inf, node_threshold)
    node[-n_logits - n_tokens:] = True
    P = A.copy()
    P[~node] = 0
    P[:, ~node] = 0
    Pn = norm(P)
    score = Pn * (infl(Pn, w) + w)[:, None]
    edge = score >= thresh(score.flatten(), edge_threshold)
    old = None
    while old is None or (node != old).any():
        old = node.copy()
        edge[~node] = False
        edge[:, ~node] = False
        node[:-n_logits - n_tokens] &= edge[:, :-n_logits - n_tokens].any(0)
        node[:n_features] &= edge[:n_features].any(1)
    order = np.argsort(-inf, kind="stable")  # final_scores: cumulative influence over the whole graph
    cum = np.zeros(len(inf))
    cum[order] = np.cumsum(inf[order]) / inf.sum()
    return node, edge & (A != 0), cum


def test_pruning_equals_circuit_tracers(minilm_tokenizer):
    full = graph(minilm_tokenizer, "llama")
    keep = full.kind != "bias"  # circuit-tracer has no bias node: the same graph without it
    A = full.adjacency()[np.ix_(keep, keep)]
    n_f, T = len(full.rows("feature")), len(full.tokens)
    for nt, et in ((0.8, 0.98), (0.5, 0.9)):
        node, edge, cum = _circuit_tracer_prune(A, n_f, T, len(full.target_ids),
                                                full.target_probs.astype(np.float64), nt, et)
        g = prune(full, nt, et)
        ids = _keys(full)[keep]
        assert set(_keys(g)[g.kind != "bias"]) == set(ids[node])
        kept = {(t, s) for t, s in zip(_keys(g)[g.target], _keys(g)[g.source]) if not s.startswith("bias")}
        t, s = np.nonzero(edge)
        assert kept == set(zip(ids[t], ids[s])) and len(kept) == int(edge.sum())
        assert 0 < g.n_nodes < full.n_nodes
        # cumulative influence (GraphView's slider, the JSON's `influence`) is circuit-tracer's, over the
        # whole graph: it counts the nodes cut above a kept node
        assert g.info["influence_total"] == pytest.approx(full.influence.sum(dtype=np.float64), rel=1e-6)
        mine = cumulative_influence(g)
        want = dict(zip(ids, cum))
        scored = np.flatnonzero(np.isin(g.kind, ("feature", "error", "embedding")))
        np.testing.assert_allclose(mine[scored], [want[k] for k in _keys(g)[scored]], atol=1e-6)
        assert mine[scored].max() > 0.5 and sum(not n for n in node) > 0  # not a trivial comparison
        written = {n["node_id"]: n["influence"] for n in graph_json(g)["nodes"]}
        np.testing.assert_allclose([written[i] for i in np.array(g.node_ids())[scored]], mine[scored], atol=0)


def _keys(g) -> np.ndarray:
    """A node's identity that does not depend on the rest of the graph (node ids may)."""
    return np.array([f"{k}:{l}:{p}:{f}" for k, l, p, f in zip(g.kind, g.layer, g.position, g.feature)])


def test_partial_influence_with_every_row_is_the_influence(minilm_tokenizer):
    from llm_widgets.circuits.prune import influence, logit_weights, normalized, partial_influence, scoring_matrix

    full = graph(minilm_tokenizer, "llama")
    A, w = scoring_matrix(full), logit_weights(full)
    targets = np.flatnonzero(np.abs(A).sum(1) > 0)
    got = partial_influence(A[targets].astype(np.float32), targets, w, chunk=1000)  # several column chunks
    np.testing.assert_allclose(got, influence(normalized(A), w), rtol=1e-5, atol=1e-9)


# -- the family matrix -----------------------------------------------------------------------------
CAUSAL = [f for f, (task, _) in FAMILIES.items() if task == "causal"]


@pytest.mark.parametrize("fam", CAUSAL)
def test_every_causal_family_adds_up_or_is_refused_with_its_reason(minilm_tokenizer, fam):
    """On every causal family of the matrix: a graph whose logit edges add up to each logit (1e-4), or
    a DoesNotApplyError saying why (what lw.capabilities says, where it can tell without a forward).
    Which families are which is observed, not listed."""
    s = session(minilm_tokenizer, fam)
    why = graph_why_not(s)
    try:
        g = lw.attribution_graph(s, TEXT, transcoders(s), **{**ALL, "max_logits": 2})
    except DoesNotApplyError as e:
        assert str(e).strip(), fam
        if why:
            assert why in str(e), (fam, why, str(e))
        return
    assert not why, (fam, why)
    assert len(g.logit_nodes()) == 2
    for r in g.logit_nodes():
        _, w = g.into(r)
        assert abs(w.astype(np.float64).sum() - g.activation[r]) < 1e-4, fam
