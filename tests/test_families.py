"""Every view that applies, on tiny random models of many families, against known answers.

The models come from llm_widgets.testing (2 layers, hidden 64, 4 heads, GQA with 2 kv heads where the
family has it, one Llama with head_dim 32 != 64 / 4). Discovery never sees the family's name: the
adapter reads the module tree. Known answers: attention == the model's own eager weights; patching
the last block's residual where the output is read restores exactly 1.0; per-head patching == a
hand-written hook on the output projection's input slice; neurons == a hand-written hook; the logit
lens' last row == the model's logits; the attribution's f(x) == the model's own output.
"""
import numpy as np
import pytest
import torch

import llm_widgets as lw
from llm_widgets.compute.attribution import attribute
from llm_widgets.compute.ablation import ablation_effect
from llm_widgets.compute.logit_lens import lens_logits
from llm_widgets.compute.neurons import neuron_activations
from llm_widgets.compute.patching import patching

from llm_widgets.testing import FAMILIES, build, observed_parallel

CLEAN = "When Mary and John went to the store, John gave a drink to"
CORRUPT = "When Mary and John went to the store, Mary gave a drink to"
TEXT = "The cat sat on the mat because it was tired"
ENC_DEC = [f for f, (task, _) in FAMILIES.items() if task == "seq2seq"]
ONE_STACK = [f for f in FAMILIES if f not in ENC_DEC]
_SESSIONS: dict = {}


@pytest.fixture
def session(request, minilm_tokenizer):
    fam = request.param
    if fam not in _SESSIONS:
        _SESSIONS[fam] = lw.load((build(fam), minilm_tokenizer), device="cpu")
    return _SESSIONS[fam]


def _pre_hook_at(ref, fn):
    """A hand-written pre-hook on the module of `ref` that runs `fn` on call `ref.call` of each forward."""
    count = [0]

    def pre(mod, args):
        n = count[0]
        count[0] = (n + 1) % ref.calls
        if n == ref.call:
            new = fn(args[0])
            return None if new is None else (new,) + tuple(args[1:])
    return ref.module.register_forward_pre_hook(pre)


@pytest.mark.parametrize("session", ONE_STACK, indirect=True)
def test_layout_facts(session):
    ad = session.adapter
    fam = next(f for f, s in _SESSIONS.items() if s is session)
    assert ad.n_layers == 2 and ad.n_heads == 4 and ad.d_model == 64
    assert ad.head_dim == (32 if fam in ("llama-head_dim", "qwen3") else 16)
    width = ad.attn_out[0].module.weight.shape
    assert ad.n_heads * ad.head_dim in width  # the output projection reads the heads concatenated
    assert ad.kind == ("decoder" if FAMILIES[fam][0] == "causal" else "encoder")
    assert ad.causal == (FAMILIES[fam][0] == "causal")
    assert ad.moe == (fam in ("mixtral", "qwen2_moe"))
    assert ad.shared == (fam == "albert")
    if ad.mlp[0] is not None:  # observed on the model, not a list of families of one release
        ids = session.encode(TEXT)[0]["input_ids"]
        assert ad.parallel == observed_parallel(session.model, ad.mlp[0].module, ad.attn_out[0].module, ids)


@pytest.mark.parametrize("session", ONE_STACK, indirect=True)
def test_attention_equals_the_models_own(session):
    enc, _, _ = session.encode(TEXT)
    with torch.no_grad():
        ref = session.model(**enc, output_attentions=True).attentions
    got = session.trace(TEXT).attentions
    assert got.shape[:2] == (2, 4)
    np.testing.assert_array_equal(got, torch.stack([a[0] for a in ref]).numpy())
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-5)
    if session.is_causal:
        assert np.abs(np.triu(got, 1)).max() == 0


def _diff(logits):  # the metric: output 0 minus output 1 (class logits, or token ids 0 and 1)
    return logits[:, 0] - logits[:, 1]


@pytest.mark.parametrize("session", ONE_STACK, indirect=True)
def test_patching_restores_exactly_and_heads_match_a_hand_written_hook(session):
    ad = session.adapter
    r = patching(session, CLEAN, CORRUPT, metric=_diff, per_head=True)
    assert r.sites == ad.sites and set(r.sites) >= {"resid", "attn"}
    one = patching(session, CLEAN, CORRUPT, metric=_diff, per_head=True, batch_size=1)  # one forward per patch
    scale = max(1.0, float(np.abs(one.scores).max()))
    np.testing.assert_allclose(r.scores, one.scores, atol=1e-4 * scale)
    np.testing.assert_allclose(r.head_scores, one.head_scores, atol=1e-4 * scale)
    L = ad.n_layers
    read_at = r.position if ad.output == "lm" else 0  # encoder classifiers read the first token
    assert abs(r.score("resid", L - 1, read_at) - 1.0) < 1e-5
    # one head by hand: its clean slice into the corrupted run, at every position
    layer, head, dh = L - 1, 1, ad.head_dim
    ref = ad.attn_out[layer]
    box = {}
    h = _pre_hook_at(ref, lambda x: box.update(clean=x.detach().clone()))
    try:
        with torch.no_grad():
            session.model(**session.encode(CLEAN)[0])
    finally:
        h.remove()

    def put(x):
        x = x.clone()
        x[..., head * dh:(head + 1) * dh] = box["clean"][..., head * dh:(head + 1) * dh]
        return x
    h = _pre_hook_at(ref, put)
    try:
        with torch.no_grad():
            out = session.model(**session.encode(CORRUPT)[0]).logits
    finally:
        h.remove()
    m = float(_diff((out[:, r.position] if out.dim() == 3 else out).float())[0])
    expect = (m - r.corrupted_metric) / (r.clean_metric - r.corrupted_metric)
    assert abs(r.head_scores[layer, head] - expect) < 1e-4 * max(1.0, abs(expect))


@pytest.mark.parametrize("session", ONE_STACK, indirect=True)
def test_neurons_match_a_hand_written_hook_or_say_why_not(session):
    ad = session.adapter
    if ad.moe:
        with pytest.raises(lw.DoesNotApplyError, match="mixture"):
            neuron_activations(session, TEXT)
        assert "mlp" in ad.sites  # the MoE block's output is still a site
        return
    r = neuron_activations(session, TEXT)
    got = []
    h = _pre_hook_at(ad.mlp_out[1], lambda x: got.append(x.detach().clone()) and None)
    try:
        with torch.no_grad():
            session.model(**session.encode(TEXT)[0])
    finally:
        h.remove()
    T = len(r.tokens)  # some families (OPT) flatten tokens into the batch inside the MLP
    np.testing.assert_allclose(r.activations[1], got[0].reshape(-1, T, got[0].shape[-1])[0].numpy(), atol=1e-6)
    assert r.activations.shape[-1] == ad.n_neurons[1]


@pytest.mark.parametrize("session", ONE_STACK, indirect=True)
def test_logit_lens_last_row_is_the_models_logits(session):
    ad = session.adapter
    if ad.why_not("logit_lens"):
        with pytest.raises(lw.DoesNotApplyError, match="no language-model head"):
            lw.LogitLensView(session, TEXT)
        return
    lens = lens_logits(session, TEXT)
    own = torch.as_tensor(session.trace(TEXT).logits)
    torch.testing.assert_close(lens[-1], own, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("session", ONE_STACK, indirect=True)
def test_head_ablation_removes_exactly_that_slice(session):
    ad = session.adapter
    layer, head, dh = 0, 2, ad.head_dim
    eff = ablation_effect(session, TEXT, heads=[(layer, head)], k=3)
    h = _pre_hook_at(ad.attn_out[layer], lambda x: torch.cat(
        [x[..., :head * dh], torch.zeros_like(x[..., head * dh:(head + 1) * dh]), x[..., (head + 1) * dh:]], -1))
    try:
        with torch.no_grad():
            out = session.model(**session.encode(TEXT)[0]).logits
    finally:
        h.remove()
    row = out[0, -1] if out.dim() == 3 else out[0]
    np.testing.assert_allclose(eff.after, torch.softmax(row.float(), -1)[eff.ids].numpy(), atol=1e-6)
    assert np.abs(eff.change / eff.before).max() > 1e-2  # the head matters: its ablation is not float noise


@pytest.mark.parametrize("session", ONE_STACK, indirect=True)
def test_attribution_reads_the_models_own_output(session):
    if session.kind == "decoder":
        r = attribute(session, TEXT, method="grad_x_input", generate=1)
        enc = session.encode(TEXT)[0]
        with torch.no_grad():
            lp = torch.log_softmax(session.model(**enc).logits[0, -1].float(), -1)
        expect = float(lp[r.target_ids[0]])
    elif session.class_labels is None:  # a masked LM: no class, no next token
        with pytest.raises(lw.LLMWidgetsError, match="target=callable"):
            attribute(session, TEXT, method="grad_x_input")
        return
    else:
        r = attribute(session, TEXT, method="grad_x_input")
        expect = float(session.trace(TEXT).logits[r.target_ids[0]])
    assert abs(float(r.faithfulness.fx[0]) - expect) < 1e-4
    assert np.abs(r.scores).max() > 0


@pytest.mark.parametrize("session", ENC_DEC, indirect=True)
def test_encoder_decoder_says_the_same_everywhere(session):
    why = session.adapter.why_not("interventions")
    assert "encoder-decoder" in why
    for make in (lambda: lw.NeuronView(session, TEXT), lambda: lw.LogitLensView(session, TEXT),
                 lambda: lw.PatchingView(session, CLEAN, CORRUPT),
                 lambda: ablation_effect(session, TEXT, heads=[(0, 0)])):
        with pytest.raises(lw.DoesNotApplyError) as e:
            make()
        assert str(e.value) == why
    ex = lw.Explorer(session, TEXT)
    assert ex.view_names == ["attention"]
    assert ex.skipped["neuron"] == why and ex.skipped["logit_lens"] == why
    assert session.trace(TEXT).attentions.shape[:2] == (2, 4)


@pytest.mark.parametrize("session", ONE_STACK, indirect=True)
def test_new_attribution_methods_run_on_every_family(session):
    """AttnLRP, attention Grad-CAM and exact SHAP need nothing per family: finite scores, the
    conservation reported, SHAP efficient."""
    if session.kind != "decoder" and session.class_labels is None:
        return  # a masked LM: no class, no next token (see test_attribution_reads_the_models_own_output)
    kw = {"generate": 1} if session.kind == "decoder" else {}
    lrp = attribute(session, TEXT, method="lrp", compute_faithfulness=False, **kw)
    assert np.isfinite(lrp.scores).all() and np.abs(lrp.scores).max() > 0 and "conservation" in lrp.notice
    cam = attribute(session, TEXT, method="attention_gradcam", compute_faithfulness=False, **kw)
    assert np.isfinite(cam.scores).all() and (cam.scores >= 0).all()
    shap = attribute(session, TEXT, method="shap", compute_faithfulness=False, **kw)
    assert shap.scores.sum() == pytest.approx(shap.output_values[0] - shap.base_values[0], abs=1e-3)
