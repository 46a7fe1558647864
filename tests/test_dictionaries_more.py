"""Dictionary features beyond reading and editing: steering by one feature (equals a hand hook adding
strength * W_dec[f]), feature-level patching (one patched run equals a splice by hand; every
feature plus the error term restores the site itself), transcoders spliced in at the "mlp_in" ->
"mlp" sites (no edit: logits unchanged; an ablation equals a hand hook), and the same numbers through
nnsight as natively."""
import copy

import numpy as np
import pytest
import torch

import llm_widgets as lw
from llm_widgets.dictionaries import Dictionary, edit_features
from llm_widgets.dictionaries.coding import ALL, NONE, FeaturePatch, Weights
from llm_widgets.dictionaries.sites import Site
from llm_widgets.errors import LLMWidgetsError
from llm_widgets.execution import Program, Read, Write, ops, run
from llm_widgets.execution.hooks import capture, hooks
from llm_widgets.testing import build

CLEAN, CORRUPTED = "the cat sat on the mat", "the dog sat on the mat"
ANSWERS = ("cat", "dog")
_S: dict = {}


def session(tok, fam="llama", backend=None):
    key = (fam, backend)
    if key not in _S:
        if backend is None:
            _S[key] = lw.load((build(fam), tok), device="cpu")
        else:  # a twin of the native session's model
            _S[key] = lw.load((copy.deepcopy(session(tok, fam).model), tok), device="cpu", backend=backend)
    return _S[key]


def weights(d_in=64, F=96, d_out=64, seed=0, **kw) -> Weights:
    g = torch.Generator().manual_seed(seed)
    return Weights(W_enc=torch.randn(d_in, F, generator=g) * 0.3, b_enc=torch.randn(F, generator=g) * 0.3 - 0.3,
                   W_dec=torch.randn(F, d_out, generator=g) * 0.3, b_dec=torch.randn(d_out, generator=g) * 0.1, **kw)


def sae(site=("resid", 0), **kw) -> Dictionary:
    return Dictionary(weights(**kw), site=site, name="random SAE")


def transcoder(layer=1) -> Dictionary:
    return Dictionary(weights(seed=1), site=Site("mlp_in", layer), out_site=Site("mlp", layer), name="random TC")


def logit_diff(lg):
    return float(lg[0, -1, ANSWER_IDS[0]] - lg[0, -1, ANSWER_IDS[1]])


ANSWER_IDS: list = []


@pytest.fixture(autouse=True)
def _ids(minilm_tokenizer):
    ANSWER_IDS[:] = minilm_tokenizer.convert_tokens_to_ids(list(ANSWERS))


# -- steering by a feature ---------------------------------------------------------------------------
def test_steering_by_a_feature_equals_hand_hook(minilm_tokenizer):
    s = session(minilm_tokenizer)
    d = sae(site=("resid", 1))
    enc, _, _ = s.encode(CLEAN)
    f, strength = 5, 3.0
    with torch.no_grad():
        base = s.model(**enc).logits
        with lw.steer(s, d.feature(f), layer=1, strength=strength):
            steered = s.model(**enc).logits
        vec = strength * d.weights.W_dec[f]
        with hooks(s.model, [("resid", 1, lambda x: x + vec.to(x.dtype))]):
            hand = s.model(**enc).logits
    torch.testing.assert_close(steered, hand, atol=1e-6, rtol=0)
    assert float((steered - base).abs().max()) > 1e-2
    with lw.steer(s, d.feature(f), layer=-1, strength=strength):  # -1 is block 1 of 2: the same site
        pass
    with pytest.raises(LLMWidgetsError, match="layer=1"):
        with lw.steer(s, d.feature(f), layer=0):
            pass
    with pytest.raises(LLMWidgetsError, match="residual stream"):
        with lw.steer(s, sae(site=("mlp", 1)).feature(f), layer=1):
            pass
    with pytest.raises(LLMWidgetsError, match="per token"):
        with lw.steer(s, sae(site=("resid", 1), normalize="constant_norm_rescale").feature(f), layer=1):
            pass
    with pytest.raises(LLMWidgetsError, match="out of range"):
        d.feature(96)


# -- feature-level patching --------------------------------------------------------------------------
def _hand_patched(s, d, p, shift):
    """The corrupted run's logit difference with `shift` (a [d] tensor) added at position p of the site."""
    enc, _, _ = s.encode(CORRUPTED)

    def plus(x):
        x = x.clone()
        x[:, p] += shift.to(x.dtype)
        return x
    with torch.no_grad(), hooks(s.model, [(d.site.site, d.site.layer, plus)]):
        return logit_diff(s.model(**enc).logits)


def test_feature_patching_equals_hand_splice(minilm_tokenizer):
    s = session(minilm_tokenizer)
    d = sae(site=("resid", 0))
    r = lw.feature_patching(s, CLEAN, CORRUPTED, d, positions=[2, -1], answers=ANSWERS, batch_size=16)
    ec, _, _ = s.encode(CLEAN)
    ex, _, _ = s.encode(CORRUPTED)
    T = ex["input_ids"].shape[1]
    assert r.positions == [2, T - 1]
    with torch.no_grad():
        xc = capture(s.model, [("resid", 0)], lambda: s.model(**ec))[("resid", 0)][0]
        xx = capture(s.model, [("resid", 0)], lambda: s.model(**ex))[("resid", 0)][0]
        m_clean, m_corr = logit_diff(s.model(**ec).logits), logit_diff(s.model(**ex).logits)
    assert r.clean_metric == pytest.approx(m_clean, abs=1e-5)
    assert r.corrupted_metric == pytest.approx(m_corr, abs=1e-5)
    W = d.weights.W_dec
    for p in r.positions:
        ac, ax = d.encode(xc[p]), d.encode(xx[p])
        active = set(torch.nonzero((ac > 0) | (ax > 0)).reshape(-1).tolist())
        assert set(r.features[r.position_of == p].tolist()) == active  # exactly the features active on either
        assert 0 < len(active) < d.n_features
        top_f, top_s = r.top(p, k=1)[0]
        hand = _hand_patched(s, d, p, (ac[top_f] - ax[top_f]) * W[top_f])
        assert r.score(top_f, p) == pytest.approx((hand - m_corr) / (m_clean - m_corr), abs=1e-4)
        assert top_s == r.score(top_f, p)
        # the error term alone: the corrupted error replaced by the clean one
        rec = lambda x, a: a @ W + d.weights.b_dec  # noqa: E731
        hand_err = _hand_patched(s, d, p, (xc[p] - rec(xc[p], ac)) - (xx[p] - rec(xx[p], ax)))
        err = r.error_scores[r.positions.index(p)]
        assert err == pytest.approx((hand_err - m_corr) / (m_clean - m_corr), abs=1e-4)
    inactive = next(f for f in range(d.n_features) if f not in set(r.features[r.position_of == 2].tolist()))
    assert r.score(inactive, 2) == 0.0  # not run: its patched run is the corrupted run
    assert r.runs >= 2 and "not run" in r.note
    with pytest.raises(TypeError):
        lw.feature_patching(s, CLEAN, CORRUPTED, d, answer=ANSWERS)


def test_every_feature_and_the_error_term_restore_the_site(minilm_tokenizer):
    """FeaturePatch with every feature and the error term equals patching the site itself; every feature
    alone gives the clean reconstruction plus the corrupted error term; its delta for one feature is
    (a_clean - a_corrupted)[f] * W_dec[f]."""
    s = session(minilm_tokenizer)
    d = sae(site=("resid", 0))
    ec, _, _ = s.encode(CLEAN)
    ex, _, _ = s.encode(CORRUPTED)
    rows = {k: torch.cat([ec[k], ex[k].expand(4, -1)]) for k in ec}
    p = 2
    op = FeaturePatch(d.weights, features=torch.tensor([ALL, ALL, NONE]), positions=torch.tensor([p, p, p]),
                      error=torch.tensor([True, False, False]))
    got = run(s, Program(rows, writes=[Write("resid", 0, op, [2, 3, 4])], reads=[Read("resid", 0)],
                         logits="all"))
    site = run(s, Program(rows, writes=[Write("resid", 0, ops.Patch(0, positions=torch.tensor([p])), [2])],
                          logits="all"))
    x = got.reads[("resid", 0)]
    torch.testing.assert_close(x[2, p], x[0, p], atol=1e-5, rtol=0)  # every feature + error: the clean activation
    torch.testing.assert_close(got.logits[2], site.logits[2], atol=1e-5, rtol=0)
    ac, ax = d.encode(x[0, p]), d.encode(x[1, p])
    rec_c = ac @ d.weights.W_dec + d.weights.b_dec
    rec_x = ax @ d.weights.W_dec + d.weights.b_dec
    torch.testing.assert_close(x[3, p], rec_c + (x[1, p] - rec_x), atol=1e-5, rtol=0)
    torch.testing.assert_close(x[4], x[1], atol=0, rtol=0)  # NONE without the error term: nothing moves
    torch.testing.assert_close(x[2:, :p], x[1:2, :p].expand(3, -1, -1), atol=0, rtol=0)  # other positions kept


# -- transcoders ---------------------------------------------------------------------------------------
def test_mlp_in_site_is_the_mlp_module_input(minilm_tokenizer):
    s = session(minilm_tokenizer)
    enc, _, _ = s.encode(CLEAN)
    seen = []
    mlp = s.model.model.layers[1].mlp  # the hand reference: Llama's MLP module, after its pre-MLP norm
    h = mlp.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    try:
        got = capture(s.model, [("mlp_in", 1)], lambda: s.model(**enc))[("mlp_in", 1)]
    finally:
        h.remove()
    torch.testing.assert_close(got, seen[0], atol=0, rtol=0)
    res = run(s, Program(enc, reads=[Read("mlp_in", 1)], stop=True))
    torch.testing.assert_close(res.reads[("mlp_in", 1)], seen[0], atol=0, rtol=0)
    opt = session(minilm_tokenizer, "opt")  # fc1/fc2 directly in the block: no one MLP module
    with pytest.raises(LLMWidgetsError, match="mlp_in"):
        opt.adapter.site("mlp_in", 0)


def test_transcoder_spliced_in(minilm_tokenizer):
    s = session(minilm_tokenizer)
    tc = transcoder(layer=1)
    enc, _, _ = s.encode(CLEAN)
    with torch.no_grad():
        base = s.model(**enc).logits
        with edit_features(s, tc):
            same = s.model(**enc).logits
        torch.testing.assert_close(same, base, atol=1e-5, rtol=0)
        cap = capture(s.model, [("mlp_in", 1)], lambda: s.model(**enc))[("mlp_in", 1)][0]
        acts = tc.encode(cap)
        f = int(acts[3].argmax())
        assert float(acts[:, f].abs().max()) > 0
        with edit_features(s, tc, ablate=[f]):
            edited = s.model(**enc).logits
        drop = acts[:, f:f + 1] * tc.weights.W_dec[f]
        with hooks(s.model, [("mlp", 1, lambda y: y - drop.to(y.dtype))]):
            hand = s.model(**enc).logits
    torch.testing.assert_close(edited, hand, atol=1e-5, rtol=0)
    assert float((edited - base).abs().max()) > 1e-3
    # an effect analysis spliced with the transcoder's reconstruction (no error term) runs too
    from llm_widgets.dictionaries.analysis import loss_recovered
    lr = loss_recovered(s, CLEAN, tc)
    assert np.isfinite(lr["spliced"]) and lr["spliced"] != lr["original"]


# -- executors ---------------------------------------------------------------------------------------
def test_nnsight_equals_native(minilm_tokenizer):
    pytest.importorskip("nnsight")
    native, nn = session(minilm_tokenizer), session(minilm_tokenizer, backend="nnsight")
    tc, d = transcoder(layer=1), sae(site=("resid", 0))
    got = []
    for s in (native, nn):
        enc, _, _ = s.encode(CLEAN)
        with edit_features(s, tc, ablate=[3], add={7: 2.0}):
            a = run(s, Program(enc, logits="all")).logits
        with lw.steer(s, d.feature(4), layer=0, strength=2.0):
            b = run(s, Program(enc, logits="all")).logits
        r = lw.feature_patching(s, CLEAN, CORRUPTED, d, positions=[2], answers=ANSWERS, batch_size=8)
        t = lw.feature_patching(s, CLEAN, CORRUPTED, tc, positions=[1, 2], answers=ANSWERS, batch_size=8)
        got.append((a, b, r, t))
    (a0, b0, r0, t0), (a1, b1, r1, t1) = got
    torch.testing.assert_close(a0, a1, atol=1e-6, rtol=0)
    torch.testing.assert_close(b0, b1, atol=1e-6, rtol=0)
    for x, y in ((r0, r1), (t0, t1)):
        np.testing.assert_array_equal(x.features, y.features)
        np.testing.assert_allclose(x.raw, y.raw, atol=1e-6)
        np.testing.assert_allclose(x.scores, y.scores, atol=1e-6)
        np.testing.assert_allclose(x.error_scores, y.error_scores, atol=1e-6)
    assert len(t0.features) > 0


def test_feature_view_patch_mode_shows_the_compute_result(minilm_tokenizer, tmp_path):
    s = session(minilm_tokenizer)
    d = sae(site=("resid", 0))
    v = lw.FeatureView(s, CLEAN, d, k=4, background=False)
    assert v.patching == {} and v.patch_result is None
    v.patch(CORRUPTED, answers=ANSWERS, positions=[2, 3], k=3, background=False)
    r = lw.feature_patching(s, CLEAN, CORRUPTED, d, answers=ANSWERS, positions=[2, 3])
    shown = v.patching
    assert shown["positions"] == [2, 3] and shown["corrupted_tokens"][2] == "dog"
    for p in (2, 3):
        assert [f for f, _ in shown["top"][str(p)]] == [f for f, _ in r.top(p, 3)]
        np.testing.assert_allclose([x for _, x in shown["top"][str(p)]], [x for _, x in r.top(p, 3)], atol=1e-9)
        assert shown["error"][str(p)] == pytest.approx(r.error_scores[r.positions.index(p)], abs=1e-9)
    assert r.metric in v.to_html(tmp_path / "f.html").read_text()  # the export holds the patching state
