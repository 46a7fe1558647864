"""Mixture-of-experts, hybrid and other families outside the matrix (issue 25), against known answers.

The models come from llm_widgets.testing (`MORE`: 2 layers, hidden 64, 4 heads, the family's own
block kinds). Discovery never sees the family's name. Known answers: the causality the model's own
forward shows; patching == the sweep without the key/value prefix (batch_size=1, the reference);
attention == the model's own eager weights, block by block; neurons == a hand-written hook.
"""
import numpy as np
import pytest
import torch

import llm_widgets as lw
from llm_widgets.adapter.discovery import _is_causal, causal_change, discover
from llm_widgets.adapter.probe import probe_inputs
from llm_widgets.compute import patching_prefix
from llm_widgets.compute.patching import patching

from llm_widgets.testing import HYBRID, HYBRID_MOE, MORE, build

CLEAN = "When Mary and John went to the store, John gave a drink to"
CORRUPT = "When Mary and John went to the store, Mary gave a drink to"
TEXT = "The cat sat on the mat because it was tired"
MOE = [f for f in MORE if f not in ("xglm", "falcon_h1", *HYBRID)] + list(HYBRID_MOE)
_SESSIONS: dict = {}


def _session(fam, tok):
    if fam not in _SESSIONS:
        _SESSIONS[fam] = lw.load((build(fam), tok), device="cpu")
    return _SESSIONS[fam]


# -- A. causality: decoder or encoder, stable over seeds ---------------------------------------
@pytest.mark.parametrize("fam", ["olmoe", "granitemoe", "phimoe", "gpt_oss", "minimax"])
def test_moe_decoders_load_as_decoders_over_seeds(fam, minilm_tokenizer):
    """The five families that flipped with the seed under an exact comparison (atol 1e-6): expert
    routing of a batch of other tokens moves earlier positions by float noise (up to 2.9e-6 in
    absolute terms, 5e-7 relative to the position's norm)."""
    for seed in range(5):
        s = lw.load((build(fam, seed=seed), minilm_tokenizer), device="cpu")
        assert (s.kind, s.is_causal, s.adapter.moe) == ("decoder", True, True), (fam, seed)


@pytest.mark.parametrize("fam", MOE)
def test_every_moe_family_is_causal_over_seeds(fam):
    """Every mixture-of-experts family transformers ships whose tiny model runs: seed 0 discovered
    as a decoder, seeds 0-4 judged causal by discovery's probe."""
    ad = discover(build(fam))
    assert (ad.kind, ad.moe) == ("decoder", True)
    for seed in range(5):
        model = build(fam, seed=seed)
        inputs = probe_inputs(model)
        with torch.no_grad():
            hs = model(**inputs, output_hidden_states=True).hidden_states
        assert _is_causal(model, inputs, hs), (fam, seed)
        assert causal_change(model, inputs, hs) < 1e-5  # float noise, far below the tolerance (1e-4)


@pytest.mark.parametrize("fam", ["bert", "roberta", "albert"])
def test_encoders_stay_encoders(fam):
    for seed in range(5):
        model = build(fam, seed=seed)
        assert not discover(model).causal
        inputs = probe_inputs(model)
        with torch.no_grad():
            hs = model(**inputs, output_hidden_states=True).hidden_states
        assert causal_change(model, inputs, hs) > 0.1  # a sizeable fraction of each position's norm


# -- patching: the key/value prefix falls back on any exception -----------------------------------
def test_xglm_patching_equals_the_plain_sweep(minilm_tokenizer):
    """XGLM checks its attention mask against the batch: the widened prefix forward raises
    ValueError (not RuntimeError); the sweep goes on with batch copies and gives the reference's
    numbers."""
    s = _session("xglm", minilm_tokenizer)
    ref = patching(s, CLEAN, CORRUPT, batch_size=1, reuse_prefix=False)
    for kw in (dict(batch_size=8), dict(batch_size=8, reuse_prefix=False)):
        got = patching(s, CLEAN, CORRUPT, **kw)
        np.testing.assert_allclose(got.raw, ref.raw, atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(got.head_scores, ref.head_scores, atol=1e-4, rtol=1e-4)


class _Boom(Exception):
    pass


def test_prefix_path_falls_back_on_any_exception(minilm_tokenizer, monkeypatch):
    s = _session("xglm", minilm_tokenizer)
    ref = patching(s, CLEAN, CORRUPT, batch_size=8, reuse_prefix=False)
    assert not ref.reused_prefix and ref.prefix_fallback == ""

    def boom(self, *args, **kwargs):
        raise _Boom("not the usual kind of cache")
    monkeypatch.setattr(patching_prefix._Prefix, "run", boom)
    got = patching(s, CLEAN, CORRUPT, batch_size=8)
    assert not got.reused_prefix
    assert "_Boom: not the usual kind of cache" in got.prefix_fallback
    assert "whole input" in got.prefix_fallback
    np.testing.assert_array_equal(got.raw, ref.raw)
    np.testing.assert_array_equal(got.head_scores, ref.head_scores)


# -- E / B. attention checked block by block, drawn under its own block index ---------------------
def _eager(s, text):
    enc, _, _ = s.encode(text)
    with torch.no_grad():
        return s.model(**enc, output_attentions=True).attentions


@pytest.mark.parametrize("fam, blocks", [("qwen3_next", [1]), ("minimax", [0]), ("minimax@linear-first", [1]),
                                         ("qwen3_5_text", [1]), ("olmo_hybrid", [1]), ("kimi_linear", [1]),
                                         ("bailing_hybrid", [1])])
def test_hybrid_attention_under_its_own_block(fam, blocks, minilm_tokenizer):
    """Linear-attention blocks are said so, never drawn (MiniMax returns its K^T V state where
    others return weights: [H, d, d], which with T == d = 16 tokens has the weights' shape, rows summing
    to -10..117), never renumbered: block 1 of Qwen3-Next is layer 1 of the view."""
    s = _session(fam, minilm_tokenizer)
    for text in (TEXT, "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"):
        view = lw.AttentionView(s, text)
        r = view.result
        assert view.n_layers == s.n_layers == 2 and r.attention_blocks == blocks
        assert sorted(r.missing) == [b for b in range(2) if b not in blocks]
        assert "without softmax attention" in r.note and "without softmax attention" in view.notice
        assert view.selected_layer == blocks[0]
        assert view.unavailable == {str(b): why for b, why in r.missing.items()}  # hatched in the grid, with why
        eager = [a for a in _eager(s, text) if a.shape[-1] == r.n_tokens and
                 torch.allclose(a[0].sum(-1), torch.ones(()), atol=1e-4)]
        assert len(eager) == 1
        for h in range(s.adapter.n_heads):
            np.testing.assert_array_equal(r.source.head(blocks[0], h), eager[0][0, h].numpy())
        missing = next(iter(r.missing))
        assert np.isnan(r.stats[:, missing]).all() and np.isfinite(r.stats[:, blocks[0]]).all()
        with pytest.raises(Exception, match=f"block {missing} has no softmax attention"):
            view.selected_layer = missing
        with pytest.raises(lw.errors.LLMWidgetsError, match="no softmax attention"):
            r.source.head(missing, 0)
        with pytest.raises(lw.errors.LLMWidgetsError, match="every block's attention"):
            _ = r.attentions


def test_attention_sinks_are_the_models_own_weights_with_the_sink_column(minilm_tokenizer):
    """gpt-oss: rows sum to 1 minus the learned sink's share (0.0076..1.0 on this model); the view
    draws the model's own weights, not renormalised, says so, and gives the sink's column."""
    s = _session("gpt_oss", minilm_tokenizer)
    r = lw.AttentionView(s, TEXT).result
    eager = _eager(s, TEXT)
    np.testing.assert_array_equal(r.attentions, torch.stack([a[0] for a in eager]).numpy())
    assert r.sink_column.shape == (2, s.adapter.n_heads, r.n_tokens)
    np.testing.assert_allclose(r.attentions.sum(-1) + r.sink_column, 1.0, atol=1e-5)
    assert r.sink_column.max() > 0.1 and "sink" in r.note and "not renormalised" in r.note
    assert not r.missing


# -- D. Falcon-H1: the Mamba mixer's Conv1d is no mixture of experts ------------------------------
def _hooked_input(model, module, enc):
    seen = []
    h = module.register_forward_pre_hook(lambda m, args: seen.append(args[0][0].detach().clone()))
    try:
        with torch.no_grad():
            model(**enc)
    finally:
        h.remove()
    return seen[0].numpy()


def test_falcon_h1_mlp_site_is_the_dense_feed_forward(minilm_tokenizer):
    s = _session("falcon_h1", minilm_tokenizer)
    ad = s.adapter
    assert not ad.moe and "neurons" not in ad.reasons
    enc, _, _ = s.encode(TEXT)
    acts = lw.NeuronView(s, TEXT).result.activations
    for layer, block in enumerate(s.model.model.layers):
        assert ad.site("mlp", layer).module is block.feed_forward.down_proj
        np.testing.assert_array_equal(acts[layer], _hooked_input(s.model, block.feed_forward.down_proj, enc))


# -- dense first layers, experts after (DeepSeek style) ------------------------------------------
@pytest.mark.parametrize("fam", ["dots1", "glm4_moe", "deepseek_v3"])
def test_dense_layers_of_an_expert_stack_have_neurons(fam, minilm_tokenizer):
    s = _session(fam, minilm_tokenizer)
    view = lw.NeuronView(s, TEXT)
    r = view.result
    assert view.selected_layer == 0 and sorted(r.missing) == [1]
    enc, _, _ = s.encode(TEXT)
    np.testing.assert_array_equal(r.activations[0], _hooked_input(s.model, s.model.model.layers[0].mlp.down_proj,
                                                                  enc))
    assert r.top_neurons(0, 0, k=1)
    for why in (r.missing[1], str(pytest.raises(lw.errors.DoesNotApplyError, s.adapter.site, "neurons", 1).value)):
        assert "mixture of experts" in why and "dense MLP neurons are [0]" in why
    with pytest.raises(Exception, match="block 1 has no neurons: block 1's MLP is a mixture of experts"):
        view.selected_layer = 1


# -- hybrid and state-space stacks: the residual-stream views, block by block -----------------------
# family -> the blocks with attention (block 0 mixes tokens with a Mamba / convolution / RG-LRU mixer)
ATTENTION_BLOCKS = {"mamba": [], "falcon_mamba": [], "mamba2": [], "jamba": [1], "lfm2": [1], "zamba2": [1],
                    "recurrent_gemma": [1], "bamba": [1], "granitemoehybrid": [1], "nemotron_h": [1], "zamba": [1],
                    "lfm3": [1], "lfm2_moe": [1], "qwen3_5_text": [0, 1], "qwen3_5_moe_text": [0, 1],
                    "olmo_hybrid": [0, 1], "kimi_linear": [0, 1], "bailing_hybrid": [0, 1]}


def _own(s, text):
    enc, _, _ = s.encode(text)
    with torch.no_grad():
        return enc, s.model(**enc, output_hidden_states=True)


def _hooked_residual(s, enc):
    """A hand-written hook: the input of the first block, each block's output, and the model's own
    last hidden state (after the final norm): [n_layers + 1, T, D]. Also the model's own output."""
    blocks = [r.module for r in s.adapter.blocks]
    seen = []
    hs = [blocks[0].register_forward_pre_hook(lambda m, args, kw: seen.append((args[0] if args else
                                                                               kw["hidden_states"])[0].clone()),
                                              with_kwargs=True)]
    hs += [b.register_forward_hook(lambda m, a, out: seen.append((out[0] if isinstance(out, tuple) else out)[0].clone()))
           for b in blocks[:-1]]
    try:
        with torch.no_grad():
            own = s.model(**enc, output_hidden_states=True)
    finally:
        for h in hs:
            h.remove()
    return torch.stack(seen + [own.hidden_states[-1][0]]).numpy(), own


@pytest.mark.parametrize("fam", list(HYBRID))
def test_hybrid_residual_views_equal_the_models_own_outputs(fam, minilm_tokenizer):
    from llm_widgets.compute.activations import token_states
    from llm_widgets.compute.attribution import attribute
    from llm_widgets.compute.logit_lens import lens_logits

    s = _session(fam, minilm_tokenizer)
    ad = s.adapter
    assert (s.kind, ad.n_layers, ad.attention_blocks) == ("decoder", 2, ATTENTION_BLOCKS[fam])
    assert ("attn" in ad.sites) == (ATTENTION_BLOCKS[fam] == [0, 1])
    if 0 not in ATTENTION_BLOCKS[fam]:
        assert "block 0 has no attention: its tokens are mixed by" in ad.no_attention(0)
    enc, _ = _own(s, TEXT)
    # hidden states (probing, concepts) == a hand-written hook (the model's own hidden_states where they
    # hold the embedding output; Mamba's omit it)
    hs, own = _hooked_residual(s, enc)
    if ad.embeddings_in_hidden_states:
        np.testing.assert_array_equal(torch.stack([h[0] for h in own.hidden_states]).numpy(), hs)
    else:
        assert len(own.hidden_states) == ad.n_layers + 1 and not np.array_equal(own.hidden_states[0][0].numpy(), hs[0])
    np.testing.assert_array_equal(s.trace(TEXT).hidden_states, hs)
    np.testing.assert_allclose(token_states(s, [TEXT])[0][0], hs, atol=1e-5)
    # logit lens: the first row reads the hooked embedding output, the last is the model's own logits
    lens = lens_logits(s, TEXT)
    np.testing.assert_allclose(lens[-1].numpy(), own.logits[0].numpy(), atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        np.testing.assert_allclose(lens[0].numpy(), ad.readout(torch.from_numpy(hs[0])[None])[0].numpy(), atol=1e-5,
                                   rtol=1e-5)
    # residual patching: restoring the last block's residual at the read position restores it all
    r = patching(s, CLEAN, CORRUPT)
    assert r.sites == ad.sites and r.scores[0, -1, r.position] == 1.0
    if ATTENTION_BLOCKS[fam]:  # heads where the block has attention (its own count), NaN elsewhere
        for layer in range(ad.n_layers):
            n = ad.head_layout(layer)[0] if layer in ATTENTION_BLOCKS[fam] else 0
            assert np.isfinite(r.head_scores[layer, :n]).all() and np.isnan(r.head_scores[layer, n:]).all()
    else:
        assert r.head_scores is None
    # attribution: IG's f(x) is the model's own log-probability, and completeness holds
    a = attribute(s, TEXT, target=" the", steps=128, max_steps=128, compute_faithfulness=False)
    lp = torch.log_softmax(own.logits[0, -1], -1)[a.target_ids[0]]
    assert a.output_values[0] == pytest.approx(float(lp), abs=1e-4)
    total = a.output_values[0] - a.base_values[0]
    if not ad.moe:  # expert routing jumps along the path (gradients do not see it): no completeness there
        # completeness within 1%, or the view says how far off it is (linear attention normalises q and k,
        # steep near the all-zero baseline: 9-19% at 128 steps on these tiny models; the gradients
        # themselves equal finite differences)
        rel = abs(a.scores.sum() - total) / abs(total)
        assert rel < 0.01 or f"IG completeness delta is still {rel:.0%}" in a.notice, (rel, a.notice)


@pytest.mark.parametrize("fam", ["jamba", "mamba2", "mamba"])
def test_hybrid_views_needing_attention_say_which_blocks_have_none(fam, minilm_tokenizer):
    from llm_widgets.compute.ablation import ablate

    s = _session(fam, minilm_tokenizer)
    why = s.adapter.no_attention(0)
    assert why.startswith("block 0 has no attention: its tokens are mixed by 'm")
    with pytest.raises(lw.errors.DoesNotApplyError, match="layer 0 has no attention heads: block 0 has no attention"):
        with ablate(s, heads=[(0, 0)]):
            pass
    with pytest.raises(lw.errors.DoesNotApplyError) as e:
        lw.DirectLogitView(s, TEXT, target=" the")
    assert str(e.value) == lw.capabilities(s).DirectLogitView and why in str(e.value)
    if fam != "jamba":  # no block has attention: AttentionView says so (not "load it with eager attention")
        with pytest.raises(lw.errors.LLMWidgetsError) as e:
            lw.AttentionView(s, TEXT)
        assert str(e.value) == lw.capabilities(s).AttentionView
        assert "no block of this model has attention" in str(e.value)
        assert f"'mixer' ({type(s.model.backbone.layers[0].mixer).__name__})" in str(e.value)
        with pytest.raises(lw.errors.DoesNotApplyError) as e:
            lw.NeuronView(s, TEXT)
        assert str(e.value) == lw.capabilities(s).NeuronView
    else:
        r = lw.AttentionView(s, TEXT).result
        assert r.attention_blocks == [1] and sorted(r.missing) == [0]


@pytest.mark.parametrize("fam, path", [("nemotron_h", "mixer"), ("recurrent_gemma", "temporal_block")])
def test_attention_not_named_like_attention_is_found_by_what_it_calls(fam, path, minilm_tokenizer):
    """Nemotron-H's attention block is called 'mixer' as its Mamba block is, RecurrentGemma's
    'temporal_block' as its RG-LRU block is: found as the module that calls transformers' attention
    function, with no Layout; Layout(attn_out=...) still names it and finds the same module."""
    model = build(fam)
    ad = discover(model)
    attn = getattr(model.model.layers[1], path)
    assert ad.attention_blocks == [1] and ad.site("attn", 1).module is attn.o_proj
    assert ad.head_layout(1) == (4, 16) and attn.o_proj.in_features == 64  # the config's 4 heads of 16
    mixer = type(getattr(model.model.layers[0], path)).__name__
    assert f"{path!r} ({mixer})" in ad.no_attention(0)
    named = discover(model, lw.Layout(attn_out=f"{path}.o_proj"))
    assert named.attention_blocks == [1] and named.site("attn", 1).module is attn.o_proj
    # the view draws block 1's weights: the model's own eager weights
    s = _session(fam, minilm_tokenizer)
    r = lw.AttentionView(s, TEXT).result
    eager = [a for a in _eager(s, TEXT) if a is not None and a.dim() == 4]
    assert r.attention_blocks == [1] and sorted(r.missing) == [0] and len(eager) == 1
    for h in range(4):
        np.testing.assert_array_equal(r.source.head(1, h), eager[0][0, h].numpy())


def test_sinks_are_found_by_what_attention_receives(minilm_tokenizer):
    """gpt-oss passes its sinks to the attention function (s_aux): every block has sinks. A parameter
    named like a sink that attention never receives makes none (llama with an extra 'sinks' tensor)."""
    assert discover(build("gpt_oss")).sinks == [True, True]
    model = build("llama")
    for layer in model.model.layers:
        layer.self_attn.register_parameter("sinks", torch.nn.Parameter(torch.zeros(4)))
    s = lw.load((model, minilm_tokenizer), device="cpu")
    assert s.adapter.sinks == [False, False]
    r = lw.AttentionView(s, TEXT).result
    assert r.sink_column is None and "sink" not in r.note
    np.testing.assert_allclose(r.attentions.sum(-1), 1.0, atol=1e-5)


# -- capabilities: what applies, said at load time, with the views' own messages --------------------
def test_capabilities_of_the_default_encoder(minilm):
    c = lw.capabilities(minilm)
    assert [v for v, why in c.views.items() if not why] == ["AttentionView", "ProbeView", "ConceptView",
                                                             "NeuronView", "FeatureView", "Explorer"]
    with pytest.raises(lw.errors.DoesNotApplyError) as e:
        lw.attribution_graph(minilm, TEXT, [])
    assert str(e.value) == c.GraphView
    with pytest.raises(lw.errors.DoesNotApplyError) as e:
        lw.LogitLensView(minilm, TEXT)
    assert str(e.value) == c.LogitLensView
    with pytest.raises(lw.errors.LLMWidgetsError) as e:
        lw.SurrogateView(minilm, ["good", "bad"] * 4, [0, 1] * 4)
    assert str(e.value) == c.SurrogateView
    with pytest.raises(lw.errors.LLMWidgetsError) as e:
        lw.AuditView(minilm, texts=["good", "bad"], background=False)
    assert str(e.value) == c.AuditView
    with pytest.raises(lw.errors.LLMWidgetsError) as e:
        lw.SteeringView(minilm, ["good"], np.ones(minilm.adapter.d_model, np.float32), layers=[0])
    assert str(e.value) == c.SteeringView
    with pytest.raises(lw.errors.LLMWidgetsError) as e:
        lw.PatchingView(minilm, CLEAN, CORRUPT, background=False).wait()
    assert c.PatchingView in str(e.value)
    assert lw.Explorer(minilm, TEXT).skipped["logit_lens"] == c.LogitLensView
    assert "LogitLensView" in str(c) and "<table>" in c._repr_html_() and not c.applies(lw.LogitLensView)


def test_capabilities_of_a_causal_lm_and_a_classifier(tiny_gpt2, minilm_tokenizer):
    c = lw.capabilities(tiny_gpt2)
    assert c.missing == {"SurrogateView": c.SurrogateView} and c.summary() == (
        f"llm-widgets: 1 of 14 views do not apply to {tiny_gpt2.name}: SurrogateView (see lw.capabilities(session) "
        f"for why)")
    clf = lw.load((build("bert"), minilm_tokenizer), device="cpu")
    c = lw.capabilities(clf)
    assert sorted(c.missing) == ["DirectLogitView", "GraphView", "LogitLensView"]
    assert c.DirectLogitView == c.LogitLensView == c.GraphView == clf.adapter.why_not("logit_lens")
    with pytest.raises(lw.errors.DoesNotApplyError) as e:
        lw.DirectLogitView(clf, TEXT, target="the")
    assert str(e.value) == c.DirectLogitView


@pytest.mark.parametrize("fam", ["jamba", "qwen3_next", "mamba2", "mamba", "falcon_mamba", "recurrent_gemma",
                                 "nemotron_h"])
def test_capabilities_of_hybrids_and_state_space_models(fam, minilm_tokenizer, capsys):
    s = lw.load((build(fam), minilm_tokenizer), device="cpu")
    line = capsys.readouterr().out.strip().splitlines()
    c = lw.capabilities(s)
    ssm = ["AttentionView", "NeuronView", "DirectLogitView", "SurrogateView", "GraphView"]
    missing = {"jamba": ["DirectLogitView", "SurrogateView", "GraphView"],
               "qwen3_next": ["NeuronView", "DirectLogitView", "SurrogateView"],
               "mamba2": ssm, "mamba": ssm, "falcon_mamba": ssm,
               "recurrent_gemma": ["DirectLogitView", "SurrogateView", "GraphView"],  # soft-capped logits
               "nemotron_h": ["NeuronView", "DirectLogitView", "SurrogateView", "GraphView"]}[fam]  # no MLP at 2 layers
    assert list(c.missing) == missing and line == [c.summary()] and "see lw.capabilities(session)" in line[0]
    if "NeuronView" in missing and not s.adapter.moe:  # the real reason: no block has an MLP
        assert c.NeuronView.startswith("no block of this model has an MLP") and s.adapter.mixers[0] in c.NeuronView
    if "AttentionView" in missing:
        assert c.AttentionView.startswith("no block of this model has attention")
    if fam == "recurrent_gemma":
        assert "soft-caps its logits" in c.DirectLogitView
    if "GraphView" in missing:  # a recurrent mixer cannot be frozen at one input: attribution_graph says the same
        assert "cannot be frozen" in c.GraphView
        with pytest.raises(lw.errors.DoesNotApplyError) as e:
            lw.attribution_graph(s, TEXT, [])
        assert str(e.value) == c.GraphView
    for view in ("LogitLensView", "AttributionView", "PatchingView", "ProbeView", "ConceptView", "Explorer"):
        assert c.applies(view)
    with pytest.raises(lw.errors.DoesNotApplyError) as e:
        lw.DirectLogitView(s, TEXT, target=" the")
    assert str(e.value) == c.DirectLogitView


# -- C. Qwen3-Next: a linear-attention block's heads are its value heads -----------------------------
def test_qwen3_next_linear_attention_heads_are_its_value_heads(minilm_tokenizer):
    s = _session("qwen3_next", minilm_tokenizer)
    ad = s.adapter
    assert ad.head_layout(0) == (8, 8) and ad.head_layout(1) == (4, 16) and (ad.n_heads, ad.head_dim) == (4, 16)
    r = patching(s, CLEAN, CORRUPT, batch_size=1)
    assert r.head_scores.shape == (2, 8) and np.isnan(r.head_scores[1, 4:]).all()
    # a hand-written hook: value head 0 of block 0 alone (the output projection's input columns 0..7)
    ec, _, _ = s.encode(CLEAN)
    ex, _, _ = s.encode(CORRUPT)
    proj = s.model.model.layers[0].linear_attn.out_proj
    seen = []
    h = proj.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    with torch.no_grad():
        lc = s.model(**ec).logits[0, -1]
    h.remove()

    def patch(m, args):
        x = args[0].clone()
        x[..., :8] = seen[0][..., :8]
        return (x,)
    h = proj.register_forward_pre_hook(patch)
    with torch.no_grad():
        lp = s.model(**ex).logits[0, -1]
    h.remove()
    with torch.no_grad():
        lx = s.model(**ex).logits[0, -1]
    a, b = int(lc.argmax()), int(lx.argmax())
    metric = lambda lg: float(lg[a] - lg[b])  # noqa: E731
    want = (metric(lp) - metric(lx)) / (metric(lc) - metric(lx))
    assert r.head_scores[0, 0] == pytest.approx(want, abs=1e-4)


# -- direct logit attribution per block: heads where a block has attention, its mixer's output where not --
@pytest.mark.parametrize("fam", ["mamba", "jamba", "lfm2", "nemotron_h"])
def test_direct_logit_attribution_per_block_equals_hooks(fam, minilm_tokenizer):
    """A hand computation from hooks: the final norm (RMS: no centring) frozen at the model's own last
    residual is the elementwise scale norm(x) / x; a mixer block's share is the unembedding of that
    scale times the mixer module's own output, minus the unembedding of 0; the shares add up to the
    model's own logit."""
    from llm_widgets.adapter.facts import get_module
    from llm_widgets.compute.direct_logit import direct_logit_attribution

    s = _session(fam, minilm_tokenizer)
    ad = s.adapter
    r = direct_logit_attribution(s, TEXT, target=" the")
    want = ["embeddings"]
    for layer in range(ad.n_layers):
        want += ([f"L{layer}H{h}" for h in range(ad.head_layout(layer)[0])] if layer in ad.attention_blocks
                 else [f"L{layer} mixer"])
        want += [f"L{layer} mlp"] if ad.mlp[layer] is not None else []
    assert [c for c in r.components if "bias" not in c] == want
    enc, _, _ = s.encode(TEXT)
    seen, handles = {}, []
    for layer in range(ad.n_layers):
        if layer not in ad.attention_blocks:
            mod = ad.site("mixer", layer).module
            handles.append(mod.register_forward_hook(
                lambda m, a, out, layer=layer: seen.__setitem__(layer, (out[0] if isinstance(out, tuple) else out)[0, -1])))
    handles.append(ad.blocks[-1].module.register_forward_hook(
        lambda m, a, out: seen.__setitem__("final", (out[0] if isinstance(out, tuple) else out)[0, -1])))
    try:
        with torch.no_grad():
            logits = s.model(**enc).logits[0, -1]
    finally:
        for h in handles:
            h.remove()
    tgt = int(r.targets[0, 0])
    assert r.logit[0, 0] == pytest.approx(float(logits[tgt]), abs=1e-4)
    head, norm = get_module(s.model, ad.head), get_module(s.model, ad.final_norm[0])
    with torch.no_grad():
        scale = norm(seen["final"]) / seen["final"]
        zero = head(torch.zeros_like(seen["final"]))[tgt]
        for layer in range(ad.n_layers):
            if layer not in ad.attention_blocks:
                hand = float(head(scale * seen[layer])[tgt] - zero)
                assert r.share(f"L{layer} mixer")[0, 0] == pytest.approx(hand, rel=1e-4, abs=1e-4)
    assert abs(r.values[:, 0, 0].sum() - r.logit[0, 0]) <= 1e-4 * np.abs(r.values[:, 0, 0]).sum()
    heads = r.head_shares()
    for layer in range(ad.n_layers):  # NaN exactly for the heads a block does not have
        n = ad.head_layout(layer)[0] if layer in ad.attention_blocks else 0
        assert np.isfinite(heads[layer, :n]).all() and np.isnan(heads[layer, n:]).all()


@pytest.mark.parametrize("fam, why", [
    ("recurrent_gemma", "soft-caps its logits"),  # structure: no forward needed
    ("zamba", "block 1's output is not its input plus its attention output and MLP outputs"),  # + a Mamba mixer
])
def test_direct_logit_attribution_refuses_where_a_block_is_not_its_parts(fam, why, minilm_tokenizer):
    from llm_widgets.compute.direct_logit import direct_logit_attribution

    s = _session(fam, minilm_tokenizer)
    with pytest.raises(lw.errors.DoesNotApplyError, match=why):
        direct_logit_attribution(s, TEXT, target=" the")


def test_direct_logit_view_needs_one_head_grid(minilm_tokenizer):
    """The view draws one layer x head grid: on a hybrid it is refused with the reason, the compute
    function gives the per-block parts; capabilities say the same."""
    s = _session("jamba", minilm_tokenizer)
    with pytest.raises(lw.errors.DoesNotApplyError) as e:
        lw.DirectLogitView(s, TEXT, target=" the")
    assert str(e.value) == lw.capabilities(s).DirectLogitView
    assert "one layer x head grid" in str(e.value) and s.adapter.no_attention(0) in str(e.value)
