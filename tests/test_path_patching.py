"""Path patching (compute.path_patching) equals a hand implementation with plain torch hooks on
GPT-2's modules (c_proj's input: the heads; mlp's output), natively and through nnsight, with the
receivers in one layer, in two layers, and the output; its checks refuse bad arguments."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import llm_widgets as lw
from llm_widgets.compute.path_patching import path_patching

CLEAN = "when mary and john went to the store john gave a drink to"
CORRUPT = "when mary and john went to the store paul gave a drink to"
ANSWERS = ("mary", "john")


def _forward(model, enc, heads=None, mlps=None, read=None):
    """One forward of GPT-2 with hooks: heads {layer: fn(z) -> z} on each c_proj's input, mlps
    {layer: fn(out) -> out} on each MLP's output; returns (last-position logits, {layer: z read})."""
    got, handles = {}, []
    blocks = model.transformer.h
    for l, fn in (heads or {}).items():
        handles.append(blocks[l].attn.c_proj.register_forward_pre_hook(lambda m, a, fn=fn: (fn(a[0]),)))
    for l, fn in (mlps or {}).items():
        handles.append(blocks[l].mlp.register_forward_hook(lambda m, a, o, fn=fn: fn(o)))
    for l in read or ():
        handles.append(blocks[l].attn.c_proj.register_forward_pre_hook(
            lambda m, a, l=l: got.__setitem__(l, a[0].detach().clone())))
    try:
        with torch.no_grad():
            out = model(**enc).logits[:, -1]
    finally:
        for hd in handles:
            hd.remove()
    return out, got


def by_hand(session, receivers, through_mlps=False):
    """ARENA's recipe, written out: cache clean and corrupted; run clean with one sender corrupted,
    every other head (and MLP) frozen clean, receivers free, read the receivers; run clean with the
    receivers set; score (patched - clean) / (corrupted - clean)."""
    model, tok = session.model, session.tokenizer
    ec, ex = ({"input_ids": tok(t, return_tensors="pt")["input_ids"]} for t in (CLEAN, CORRUPT))
    L, H = model.config.n_layer, model.config.n_head
    dh = model.config.n_embd // H
    ms = {}
    cache = {l: (lambda o, l=l: ms.__setitem__(l, o.detach().clone()) or o) for l in range(L)}
    lc, zc = _forward(model, ec, mlps=cache, read=range(L))
    mc = dict(ms)
    lx, zx = _forward(model, ex, mlps=cache, read=range(L))
    a, b = (tok.convert_tokens_to_ids(t) for t in ANSWERS)
    m = lambda lg: float(lg[0, a] - lg[0, b])  # noqa: E731
    m_clean, m_corr = m(lc), m(lx)
    first = min((l for l, _ in receivers), default=L)
    scores = np.full((L, H), np.nan)
    for sl in range(first):
        for sh in range(H):
            def head_fn(l, free=()):
                def fn(z):
                    new = zc[l].clone()
                    for h in free:
                        new[..., h * dh:(h + 1) * dh] = z[..., h * dh:(h + 1) * dh]
                    if l == sl:
                        new[..., sh * dh:(sh + 1) * dh] = zx[l][..., sh * dh:(sh + 1) * dh]
                    return new
                return fn
            mlps = {} if through_mlps else {l: (lambda o, l=l: mc[l]) for l in range(L)}
            if not receivers:
                lg, _ = _forward(model, ec, heads={l: head_fn(l) for l in range(L)}, mlps=mlps)
            else:
                setting = {}
                for R in sorted({l for l, _ in receivers}):
                    mine = [h for l, h in receivers if l == R]
                    heads = {l: head_fn(l) for l in range(R)}
                    heads[R] = head_fn(R, free=mine)
                    _, got = _forward(model, ec, heads=heads, mlps={l: f for l, f in mlps.items() if l < R}, read=[R])
                    setting[R] = (mine, got[R])

                def setter(R):
                    def fn(z):
                        new = z.clone()
                        for h in setting[R][0]:
                            new[..., h * dh:(h + 1) * dh] = setting[R][1][..., h * dh:(h + 1) * dh]
                        return new
                    return fn
                lg, _ = _forward(model, ec, heads={R: setter(R) for R in setting})
            scores[sl, sh] = (m(lg) - m_clean) / (m_corr - m_clean)
    return scores, m_clean, m_corr


@pytest.fixture(scope="module")
def sessions(tiny_gpt2):
    """The native tiny GPT-2 and an nnsight session over a copy of it."""
    pytest.importorskip("nnsight")
    twin = copy.deepcopy(tiny_gpt2.model)
    return tiny_gpt2, lw.load((twin, tiny_gpt2.tokenizer), device="cpu", backend="nnsight")


@pytest.mark.parametrize("receivers, through_mlps", [([(2, 1), (2, 3)], False), ([(1, 0), (2, 2)], False),
                                                     ([], False), ([(2, 0)], True)])
def test_equals_a_hand_implementation_with_hooks(tiny_gpt2, receivers, through_mlps):
    want, m_clean, m_corr = by_hand(tiny_gpt2, receivers, through_mlps)
    got = path_patching(tiny_gpt2, CLEAN, CORRUPT, answers=ANSWERS, receivers=receivers or None,
                        through_mlps=through_mlps, batch_size=3)
    assert abs(got.clean - m_clean) < 1e-4 and abs(got.corrupted - m_corr) < 1e-4
    assert np.array_equal(np.isnan(got.scores), np.isnan(want))
    np.testing.assert_allclose(got.scores[~np.isnan(want)], want[~np.isnan(want)], atol=1e-4)
    assert np.nanmax(np.abs(want)) > 0.01, "the test model's paths carry something (the check is not vacuous)"


def test_nnsight_equals_native(sessions):
    native, nn = sessions
    for receivers in ([(2, 1), (2, 3)], None):
        a = path_patching(native, CLEAN, CORRUPT, answers=ANSWERS, receivers=receivers)
        b = path_patching(nn, CLEAN, CORRUPT, answers=ANSWERS, receivers=receivers)
        np.testing.assert_allclose(b.scores, a.scores, atol=1e-4)


def test_senders_subset_equals_the_full_sweep_and_later_heads_are_not_senders(tiny_gpt2):
    kw = dict(answers=ANSWERS, receivers=[(2, h) for h in range(4)])
    full = path_patching(tiny_gpt2, CLEAN, CORRUPT, **kw)
    some = path_patching(tiny_gpt2, CLEAN, CORRUPT, senders=[(1, 2), (0, 3)], **kw)
    assert np.isnan(full.scores[2:]).all() and not np.isnan(full.scores[:2]).any()
    assert np.isnan(some.scores).sum() == some.scores.size - 2
    np.testing.assert_allclose([some.scores[1, 2], some.scores[0, 3]], [full.scores[1, 2], full.scores[0, 3]], atol=1e-6)
    (layer, head), score = full.top(1)[0]
    assert score == full.scores[layer, head] and abs(score) == np.nanmax(np.abs(full.scores))


@pytest.mark.parametrize("kw, match", [
    (dict(receivers=[(0, 1)]), "no sender"),
    (dict(receivers=[(2, 9)]), "does not exist"),
    (dict(receivers=[(2, 1)], senders=[(2, 0)]), "not before"),
    (dict(receivers=[(2, 1), (2, 1)]), "twice"),
    (dict(receivers=[]), "empty"),
    (dict(receivers=[2]), "pairs"),
    (dict(through_mlps="yes"), "True or False"),
])
def test_refuses_bad_arguments(tiny_gpt2, kw, match):
    with pytest.raises(lw.LLMWidgetsError, match=match):
        path_patching(tiny_gpt2, CLEAN, CORRUPT, answers=ANSWERS, **kw)


def test_refuses_unequal_lengths_and_unknown_keywords(tiny_gpt2):
    with pytest.raises(lw.LLMWidgetsError, match="same number of tokens"):
        path_patching(tiny_gpt2, CLEAN, CORRUPT + " him", answers=ANSWERS)
    with pytest.raises(TypeError):
        path_patching(tiny_gpt2, CLEAN, CORRUPT, answers=ANSWERS, reciever=[(1, 0)])


def test_llama_native_equals_nnsight(minilm_tokenizer):
    """On a Llama (4 query heads sharing 2 key/value heads; RMS norm, gated MLP) the native and nnsight
    runs agree."""
    pytest.importorskip("nnsight")
    from llm_widgets.testing import build

    m = build("llama")
    native = lw.load((m, minilm_tokenizer), device="cpu")
    nn = lw.load((copy.deepcopy(m), minilm_tokenizer), device="cpu", backend="nnsight")
    a = path_patching(native, CLEAN, CORRUPT, answers=ANSWERS, receivers=[(1, 0), (1, 3)])
    b = path_patching(nn, CLEAN, CORRUPT, answers=ANSWERS, receivers=[(1, 0), (1, 3)])
    np.testing.assert_allclose(b.scores, a.scores, atol=1e-4)
    assert np.isfinite(a.scores[0]).all() and np.isnan(a.scores[1:]).all()
    assert np.abs(a.scores[0]).max() > 0.01, "the paths carry something (the comparison is not vacuous)"
