"""Grad-CAM (layer, and Chefer et al.'s attention relevance), AttnLRP and SHAP against known answers:
captum's LayerGradCam, the lxt package (AttnLRP's authors' code), exact Shapley values of a game
small enough to compute by hand, and the convergence of our sampling estimator to the exact values.
(Keyword-first for every method: tests/test_attribution.py.)"""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import llm_widgets as lw
from llm_widgets.compute.attribution import attribute
from llm_widgets.compute.shap_values import shapley_from_table

from llm_widgets.testing import build

TEXT = "the film was terrible and the acting was slow"
TEN = "the film was terrible and the acting was very slow"  # ten words, one WordPiece each


@pytest.fixture(scope="module")
def keyword():
    return lw.teaching.keyword_classifier()


def test_layer_gradcam_equals_captum(keyword, minilm_tokenizer):
    from captum.attr import LayerGradCam

    def check(session, forward, target, captum_target, layer):
        r = attribute(session, TEXT, target=target, method="gradcam", layer=layer, compute_faithfulness=False)
        enc = session.encode(TEXT)[0]
        cam = LayerGradCam(forward, session.adapter.blocks[layer].module)
        got = cam.attribute(enc["input_ids"], target=captum_target, attr_dim_summation=False)
        got = (got[0] if isinstance(got, tuple) else got)[0].sum(-1).detach().numpy()
        keep = ~r.special_mask
        scale = np.abs(got[keep]).max()
        np.testing.assert_allclose(r.scores[0, keep], got[keep], rtol=1e-4, atol=1e-5 * scale)
        assert f"block {layer}" in r.notice
        return r, scale

    lm = lw.load((build("llama"), minilm_tokenizer), device="cpu")  # RMSNorm: a meaningful Grad-CAM
    nxt = attribute(lm, TEXT, method="gradcam", generate=1, compute_faithfulness=False).target_ids[0]
    # block 0 (at the last block only the last position, [SEP] here, has a gradient)
    _, scale = check(lm, lambda ids: torch.log_softmax(lm.model(input_ids=ids).logits[:, -1].float(), -1),
                     [nxt], nxt, 0)
    assert scale > 1e-3
    # LayerNorm makes every block output's gradient mean-free over features, so captum's Grad-CAM
    # (mean gradient x summed activation) is ~0 on BERT-style models: the result says so
    r, scale = check(keyword, lambda ids: keyword.model(input_ids=ids).logits, "NEGATIVE", 0, 0)
    assert "mean-free" in r.notice


def test_attention_gradcam_reads_the_right_row(keyword, tiny_gpt2):
    r = attribute(keyword, TEXT, target="NEGATIVE", method="attention_gradcam", compute_faithfulness=False)
    assert (r.scores >= 0).all() and r.top(0, 1)[0][0] == "terrible"
    g = attribute(tiny_gpt2, "one two three four", method="attention_gradcam", generate=3,
                  compute_faithfulness=False)
    assert g.scores.shape[0] == 3 and np.isfinite(g.scores).all() and (g.scores >= 0).all()


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_attn_lrp_equals_lxt(family, minilm_tokenizer, tmp_path):
    out = tmp_path / "lxt.npy"
    here = Path(__file__).resolve().parent
    run = subprocess.run([sys.executable, str(here / "lxt_reference.py"), family, str(out)], cwd=here,
                         capture_output=True, text=True, timeout=300)
    if run.returncode != 0 and "No module named 'lxt'" in run.stderr:
        pytest.fail("lxt is not installed: `make test` installs it (pip install --no-deps lxt==2.1)")
    assert run.returncode == 0, run.stderr[-3000:]
    ref = np.load(out)
    target, relevance = int(ref[0]), ref[1:]
    s = lw.load((build(family), minilm_tokenizer), device="cpu")
    text = minilm_tokenizer.decode([101, 1996, 2143, 2001, 6659, 1998, 1996, 3772, 2001, 4030, 102][1:-1])
    r = attribute(s, text, target=[target], method="lrp", compute_faithfulness=False)
    keep = ~r.special_mask
    np.testing.assert_allclose(r.scores[0, keep], relevance[keep], rtol=1e-4, atol=1e-5)
    # conservation, as reported, is lxt's: the same total relevance against the same logit
    assert f"{relevance.sum():.3g} of {r.output_values[0]:.3g}" in r.notice


def test_attn_lrp_costs_one_backward_and_restores_the_model(keyword):
    calls = []
    h = keyword.model.register_forward_hook(lambda *a: calls.append(1))
    try:
        r = attribute(keyword, TEXT, target="NEGATIVE", method="lrp", compute_faithfulness=False)
    finally:
        h.remove()
    assert len(calls) <= 4  # target, baseline and the one relevance pass: no sampling, no IG steps
    assert all(p.requires_grad for p in keyword.model.parameters())
    ours = [fn for m in keyword.model.modules() for fn in (*m._forward_hooks.values(), *m._forward_pre_hooks.values())
            if getattr(fn, "__module__", "") == "llm_widgets.compute.lrp"]
    assert ours == []  # the rules' hooks are gone
    assert "AttnLRP conservation" in r.notice


def test_exact_shapley_of_a_hand_computable_game():
    # v(S) = 1 if both players 0 and 1 are in S, plus 0.5 * [2 in S]: phi = (0.5, 0.5, 0.5)
    v = np.array([[float(m & 3 == 3) + 0.5 * bool(m & 4)] for m in range(8)])
    np.testing.assert_allclose(shapley_from_table(v, 3), [[0.5, 0.5, 0.5]])
    # v(S) = |S|^2: symmetric, phi_i = v(N) / n = 3
    v = np.array([[bin(m).count("1") ** 2] for m in range(8)], float)
    np.testing.assert_allclose(shapley_from_table(v, 3), [[3.0, 3.0, 3.0]])


def test_exact_shap_is_efficient_and_sampling_converges_to_it(keyword):
    exact = attribute(keyword, TEN, target="NEGATIVE", method="shap")
    fx, fb = exact.output_values[0], exact.base_values[0]
    assert exact.scores.sum() == pytest.approx(fx - fb, abs=1e-4)  # efficiency, exactly
    ref = exact.scores[0]
    errors = {}
    for n in (5, 25, 100):
        s = attribute(keyword, TEN, target="NEGATIVE", method="shapley", n_samples=n, compute_faithfulness=False)
        errors[n] = float(np.abs(s.scores[0] - ref).max() / np.abs(ref).max())
    assert errors[25] <= 0.05, errors  # the default sample count
    assert errors[100] <= errors[5], errors


def test_long_inputs_use_shap_partition_and_convert_to_an_explanation(keyword):
    import shap

    long = "the film was terrible and the acting was slow but the music and the photography were fine"
    r = attribute(keyword, long, target="NEGATIVE", method="shap", n_samples=300, compute_faithfulness=False)
    assert "Partition" in r.notice and r.scores.shape == (1, len(r.tokens))
    assert r.top(0, 1)[0][0] == "terrible"
    e = r.to_shap()
    assert isinstance(e, shap.Explanation) and e.values.shape == (1, int((~r.special_mask).sum()))
    assert "terrible" in shap.plots.text(r.to_shap(0), display=False)  # shap's own plot renders it
    assert list(e.data[0]) == [lbl for lbl, sp in zip(r.tokens, r.special_mask) if not sp]
    short = attribute(keyword, TEN, target="NEGATIVE", method="shap").to_shap()
    np.testing.assert_allclose(short.values.sum(1) + short.base_values, [
        float(keyword.model(**keyword.tokenizer(TEN, return_tensors="pt")).logits[0, 0])], atol=1e-4)


def test_new_methods_in_the_view(keyword):
    v = lw.AttributionView(keyword, TEXT, target="NEGATIVE", method="lrp", background=False)
    assert v.info["method"] == "lrp" and "AttnLRP" in v.methods["lrp"]
    for m in ("gradcam", "attention_gradcam", "shap"):
        v.method = m
        assert v.result.method == m and v.error == ""
    with pytest.raises(Exception, match="layer"):
        attribute(keyword, TEXT, method="gradcam", layer=7)
