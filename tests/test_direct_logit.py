"""Direct logit attribution: the shares add up to the model's own logit on every pre-norm family, equal
a hand computation from the weights, are refused where the logit is not such a sum, and find the
induction heads of the teaching model."""
import numpy as np
import pytest
import torch

import llm_widgets as lw
from llm_widgets.compute.direct_logit import direct_logit_attribution
from llm_widgets.execution.hooks import capture
from llm_widgets.errors import DoesNotApplyError, LLMWidgetsError

from llm_widgets.testing import FAMILIES, build, observed_parallel

TEXTS = ["The cat sat on the mat", "A dog ran in the park"]
SUMS = ["gpt2", "llama", "gpt_neox", "gemma", "qwen2", "phi", "falcon"]  # sequential and parallel blocks
REFUSED = {"bert-mlm": "block 0's output", "olmo2": "block 0's attention output passes through a norm", "gemma2": "soft-caps"}
_SESSIONS: dict = {}


def _session(family, tokenizer):
    if family not in _SESSIONS:
        _SESSIONS[family] = lw.load((build(family), tokenizer), device="cpu")
    return _SESSIONS[family]


@pytest.mark.parametrize("family", SUMS)
def test_shares_add_up_to_the_models_logit(family, minilm_tokenizer):
    s = _session(family, minilm_tokenizer)
    ids0 = s.encode(TEXTS[0])[0]["input_ids"]
    assert s.adapter.parallel == observed_parallel(s.model, s.adapter.mlp[0].module, s.adapter.attn_out[0].module, ids0)
    r = direct_logit_attribution(s, TEXTS, target="the", contrast="mean", positions=[-1, 2])
    ids = torch.stack([s.encode(t)[0]["input_ids"][0] for t in TEXTS])
    with torch.no_grad():
        logits = s.model(input_ids=ids).logits[:, [ids.shape[1] - 1, 2]].float()
    the = s.tokenizer.convert_tokens_to_ids("the")
    want = (logits[..., the] - logits.mean(-1)).numpy()
    np.testing.assert_allclose(r.logit, want, rtol=1e-6, atol=1e-6)  # the model's own value
    assert np.abs(r.total - want).max() <= 1e-4 * np.abs(want).max()  # shares sum to it
    assert r.error < 1e-5 and r.values.shape == (len(r.components), 2, 2)
    assert r.positions == [ids.shape[1] - 1, 2] and r.metric == "logit(the) - mean logit"
    heads = [f"L{l}H{h}" for l in range(2) for h in range(4)]
    assert r.components[0] == "embeddings" and [c for c in r.components if c in heads] == heads
    assert ("L1 mlp" in r.components) and r.head_shares().shape == (2, 4, 2, 2)
    assert np.abs(r.head_shares()).min() > 0  # every head writes something into this random model
    # the logit difference between two tokens, per position
    other = s.tokenizer.convert_tokens_to_ids("a")
    d = direct_logit_attribution(s, TEXTS[0], target="the", contrast=other)
    with torch.no_grad():
        last = s.model(input_ids=ids[:1]).logits[0, -1].float()
    assert d.logit[0, 0] == pytest.approx(float(last[the] - last[other]), abs=1e-5)
    assert abs(d.total[0, 0] - d.logit[0, 0]) <= 1e-4 * max(1.0, abs(d.logit[0, 0]))


def test_gpt2_shares_equal_a_hand_computation(minilm_tokenizer, tiny_gpt2):
    """GPT-2 by hand from its weights: heads through c_proj (Conv1D), ln_f frozen (centre, divide by the
    real input's std, times the gain), the bias of ln_f read through the unembedding. Biases that are
    zero (a freshly initialised GPT-2) are left out."""
    assert not any("bias" in c for c in direct_logit_attribution(tiny_gpt2, TEXTS[0], target="mat").components)
    s = _session("gpt2", minilm_tokenizer)  # biases drawn at random
    m = s.model
    text, target = TEXTS[0], "mat"
    r = direct_logit_attribution(s, text, target=target)
    enc = s.encode(text)[0]
    L, H, dh = s.n_layers, s.n_heads, s.adapter.head_dim
    holder = {}
    acts = capture(m, [(site, l) for l in range(L) for site in ("heads", "mlp")],
                   lambda: holder.setdefault("out", s.forward(**enc)))
    with torch.no_grad():
        parts = {"embeddings": holder["out"].hidden_states[0][0, -1]}
        for l in range(L):
            proj = m.transformer.h[l].attn.c_proj
            z = acts[("heads", l)][0, -1]
            for h in range(H):
                parts[f"L{l}H{h}"] = z[h * dh:(h + 1) * dh] @ proj.weight[h * dh:(h + 1) * dh]
            parts[f"L{l} attn bias"] = proj.bias
            parts[f"L{l} mlp"] = acts[("mlp", l)][0, -1]
        x = sum(parts.values())
        ln = m.transformer.ln_f
        sd = torch.sqrt(x.var(unbiased=False) + ln.eps)
        w = m.lm_head.weight[s.tokenizer.convert_tokens_to_ids(target)]
        hand = {k: float(((v - v.mean()) / sd * ln.weight) @ w) for k, v in parts.items()}
        hand["readout bias"] = float(ln.bias @ w)
    assert r.components == list(hand)
    np.testing.assert_allclose(r.values[:, 0, 0], list(hand.values()), atol=2e-5)
    assert sum(hand.values()) == pytest.approx(float(holder["out"].logits[0, -1, s.tokenizer.convert_tokens_to_ids(target)]),
                                               abs=1e-4)


@pytest.mark.parametrize("family", list(REFUSED))
def test_refused_where_the_logit_is_not_a_sum(family, minilm_tokenizer):
    s = _session(family, minilm_tokenizer)
    with pytest.raises(DoesNotApplyError, match=REFUSED[family]):
        direct_logit_attribution(s, TEXTS[0], target="the")


def test_refused_with_a_final_norm_that_cannot_be_frozen(minilm_tokenizer):
    s = lw.load((build("llama"), minilm_tokenizer), device="cpu")
    norm = s.model.model.norm

    class Squash(torch.nn.Module):  # a norm followed by a non-linearity: no frozen scale reproduces it
        def forward(self, x):
            return torch.tanh(norm(x))

    direct_logit_attribution(s, TEXTS[0], target="the")
    s.model.model.norm = Squash()
    with pytest.raises(DoesNotApplyError, match="LayerNorm or RMSNorm"):
        direct_logit_attribution(s, TEXTS[0], target="the")


def test_arguments_are_checked(tiny_gpt2, minilm):
    s = tiny_gpt2
    with pytest.raises(LLMWidgetsError, match="contrast equals target"):
        direct_logit_attribution(s, TEXTS[0], target="the", contrast="the")
    with pytest.raises(LLMWidgetsError, match="outside the"):
        direct_logit_attribution(s, TEXTS[0], target="the", positions=40)
    with pytest.raises(LLMWidgetsError, match=r"shape \[batch, positions\] = \[1, 2\]"):
        direct_logit_attribution(s, TEXTS[0], target=[[1, 2, 3]], positions=[0, 1])
    with pytest.raises(LLMWidgetsError, match="same number of tokens"):
        direct_logit_attribution(s, ["a b", "a b c"], target="the")
    with pytest.raises(LLMWidgetsError, match="must be integers"):
        direct_logit_attribution(s, torch.ones(1, 4), target="the")
    with pytest.raises(TypeError):
        direct_logit_attribution(s, TEXTS[0], target="the", postions=[0])  # unknown keyword
    with pytest.raises(LLMWidgetsError, match="language-model head"):
        direct_logit_attribution(minilm, TEXTS[0], target="the")
    r = direct_logit_attribution(s, TEXTS[0], target="the")
    with pytest.raises(LLMWidgetsError, match="no component"):
        r.share("L9H0")


def test_induction_heads_write_the_next_letter():
    """The trained induction model: the layer-1 heads write almost all of the correct next letter's
    logit (minus the mean logit) on the repeated tokens, the layer-0 heads about nothing directly, and
    the shares equal the hand computation of notebook 03."""
    from llm_widgets.teaching.induction import induction_dataset

    s = lw.teaching.induction_model()
    ids, mask = induction_dataset(64, seed=12345)
    T = ids.shape[1]
    r = direct_logit_attribution(s, ids, target=ids[:, 1:], contrast="mean", positions=range(T - 1))
    pred = mask[:, 1:].numpy()
    mean = dict(zip(r.components, r.values[:, pred].mean(1)))
    logit = float(r.logit[pred].mean())
    assert r.components == ["embeddings"] + [f"L{l}H{h}" for l in range(2) for h in range(4)]
    assert sum(mean.values()) == pytest.approx(logit, rel=1e-5) and logit > 5
    assert all(mean[f"L1H{h}"] > 1.0 for h in range(4)) and sum(mean[f"L1H{h}"] for h in range(4)) > 0.95 * logit
    assert all(abs(mean[f"L0H{h}"]) < 0.05 for h in range(4))
    # the notebook's hand computation: heads through o_proj's slices, the RMS norm's scale frozen
    m, dh = s.model, s.adapter.head_dim
    holder = {}
    z = capture(m, [("heads", l) for l in range(2)], lambda: holder.setdefault("out", s.forward(input_ids=ids)))
    with torch.no_grad():
        parts = {"embeddings": holder["out"].hidden_states[0]}
        for l in range(2):
            W_O = m.model.layers[l].self_attn.o_proj.weight
            for h in range(4):
                parts[f"L{l}H{h}"] = z[("heads", l)][..., h * dh:(h + 1) * dh] @ W_O[:, h * dh:(h + 1) * dh].T
        resid = sum(parts.values())
        scale = torch.rsqrt(resid.pow(2).mean(-1, keepdim=True) + m.model.norm.variance_epsilon)
        W_U = m.lm_head.weight * m.model.norm.weight
        for k, v in parts.items():
            lg = (v * scale)[:, :-1] @ W_U.T
            hand = (lg.gather(-1, ids[:, 1:, None])[..., 0] - lg.mean(-1)).numpy()
            np.testing.assert_allclose(r.share(k), hand, atol=1e-4)


@pytest.mark.parametrize("family", [f for f in FAMILIES if f not in SUMS and f not in REFUSED])
def test_every_family_adds_up_or_is_refused(family, minilm_tokenizer):
    """The rest of the family matrix (classifiers, encoder-decoders, MoE, ALiBi, ...): either the
    shares add up to the model's own value, or a clear refusal; never another error or a number
    that does not add up."""
    s = _session(family, minilm_tokenizer)
    kind = FAMILIES[family][0]
    try:
        r = direct_logit_attribution(s, TEXTS, target=0 if kind == "classifier" else "the", positions=[-1, 1])
    except (DoesNotApplyError, lw.UnsupportedModelError) as e:
        assert len(str(e)) > 40  # says why
        return
    assert np.abs(r.total - r.logit).max() <= 1e-4 * max(1.0, float(np.abs(r.values).sum(0).max()))
    assert r.error <= 1e-4 and r.values.shape == (len(r.components), 2, 2)
