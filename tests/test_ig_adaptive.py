"""Adaptive integrated gradients (compute/attribution/ig_path.py) against known answers: a planted
narrow transition with a closed-form IG, a linear model (every rule exact), a tiny random Llama
checked against 2000 uniform steps, the saturated keyword classifiers, float32 paths for 16-bit
models, and bad input."""
import copy

import numpy as np
import pytest
import torch

from llm_widgets.compute.attribution import Runner, attribute
from llm_widgets.compute.attribution.ig_path import adaptive_ig, float32_path
from llm_widgets.compute.attribution.methods import _ig
from llm_widgets.errors import LLMWidgetsError
from llm_widgets.teaching.classifier import KEYWORD_LABELS, keyword_dataset


class _Planted:
    """f(E) = a * sigmoid(k * (E . w - c)) + E . v: the sigmoid flips in a stretch of about 1/k of
    the path; its IG is known in closed form (see `exact`)."""

    head = None

    def __init__(self, x, base, w, v, k, c):
        self.x, self.base, self.w, self.v, self.k, self.c = x, base, w, v, k, c
        self.dtype, self.num_targets = torch.float32, 1

    def s(self, E):
        return (E * self.w).sum((-1, -2))

    def __call__(self, E):
        return (3.0 * torch.sigmoid(self.k * (self.s(E) - self.c)) + (E * self.v).sum((-1, -2)))[:, None]

    def exact(self) -> np.ndarray:
        """IG_t = sum_d (x - b)_td [w_td (F_sig(1) - F_sig(0)) / (s(x) - s(b)) + v_td]."""
        s0, s1 = float(self.s(self.base)), float(self.s(self.x))
        sig = 3.0 * (torch.sigmoid(torch.tensor(self.k * (s1 - self.c))) - torch.sigmoid(torch.tensor(self.k * (s0 - self.c))))
        d = (self.x - self.base)[0]
        return ((d * (self.w[0] * float(sig) / (s1 - s0) + self.v[0])).sum(-1)).double().numpy()[None]


def _planted(k: float, seed: int = 0) -> tuple[_Planted, Runner]:
    g = torch.Generator().manual_seed(seed)
    T, D = 6, 8
    x, base = torch.randn(1, T, D, generator=g), torch.randn(1, T, D, generator=g) * 0.1
    w, v = torch.randn(1, T, D, generator=g), torch.randn(1, T, D, generator=g) * 0.1
    s0, s1 = float((base * w).sum()), float((x * w).sum())
    f = _Planted(x, base, w, v, k, s0 + 0.37 * (s1 - s0))  # the flip at 37% of the path
    return f, Runner(f, base, np.arange(T), batch=16, report=None)


def test_planted_narrow_transition_found_and_exact_per_token():
    f, run = _planted(k=400.0)
    exact = f.exact()
    uniform = _ig(run, 50).numpy()
    total = exact.sum()
    assert abs(uniform.sum() - total) > 0.1 * abs(total)  # 50 Gauss-Legendre steps miss the flip
    p = adaptive_ig(run, steps=48, max_steps=400, tolerance=0.01)
    assert p.converged and p.grad_evals <= 400 and p.forward_evals >= 65  # the sweep: 65 points
    assert abs(p.scores.sum() - total) < 0.01 * abs(total)
    np.testing.assert_allclose(p.scores, exact, rtol=0.02)  # every token, not just the sum
    assert len(p.alphas) == p.grad_evals and p.weights.sum() == pytest.approx(1.0, abs=1e-9)
    near = np.abs(p.alphas - 0.37) < 0.05  # most points sit where the output flips
    assert near.mean() > 0.3


def test_linear_model_every_rule_is_exact():
    f, run = _planted(k=0.0)  # sigmoid(0) is constant: f is linear in E
    exact = f.exact()
    p = adaptive_ig(run, steps=16, max_steps=400, tolerance=0.01)
    uniform = _ig(run, 16).numpy()
    np.testing.assert_allclose(p.scores, exact, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(uniform, exact, rtol=1e-5, atol=1e-6)
    assert p.grad_evals == 16 and p.converged  # no refinement needed


@pytest.fixture(scope="module")
def sharp_llama(minilm_tokenizer):
    """A tiny random Llama (2 blocks) with its weights scaled to std 0.4 (lw.testing.build draws 0.2):
    its attention is nearly hard, so log-probs change in narrow stretches of the IG path."""
    import llm_widgets as lw
    from llm_widgets.testing.families import build

    model = build("llama", vocab_size=minilm_tokenizer.vocab_size, seed=1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.mul_(2.0)
    return lw.load((model, minilm_tokenizer), device="cpu")


LLAMA_TEXT = "that scene this night is great"


def test_llama_uniform_far_off_adaptive_within_one_percent(sharp_llama):
    kw = dict(generate=1, compute_faithfulness=False)
    few = attribute(sharp_llama, LLAMA_TEXT, steps=50, max_steps=50, **kw)
    delta = float(few.output_values[0] - few.base_values[0])
    assert abs(few.scores.sum() - delta) > 0.1 * abs(delta) and "still" in few.notice
    ad = attribute(sharp_llama, LLAMA_TEXT, ig_rule="adaptive", **kw)
    assert abs(ad.scores.sum() - delta) < 0.01 * abs(delta)
    assert ad.steps <= 400 and "gradient evaluations" in ad.notice
    ref = attribute(sharp_llama, LLAMA_TEXT, steps=2000, max_steps=2000, **kw)  # uniform, fine enough
    assert abs(ref.scores.sum() - delta) < 0.01 * abs(delta)
    np.testing.assert_allclose(ad.scores, ref.scores, atol=0.02 * np.abs(ref.scores).max())


def test_bfloat16_model_path_in_float32(sharp_llama):
    import llm_widgets as lw

    half = lw.load((copy.deepcopy(sharp_llama.model).to(torch.bfloat16), sharp_llama.tokenizer), device="cpu")
    before = {k: v.clone() for k, v in half.model.state_dict().items()}
    full = attribute(sharp_llama, LLAMA_TEXT, generate=1, ig_rule="adaptive", compute_faithfulness=False)
    r = attribute(half, LLAMA_TEXT, target=full.target_ids, ig_rule="adaptive", compute_faithfulness=False)
    assert "computed in float32 (the model is bfloat16)" in r.notice
    after = half.model.state_dict()
    assert all(after[k].dtype == v.dtype and torch.equal(after[k], v) for k, v in before.items())  # cast back exactly
    corr = np.corrcoef(r.scores.ravel(), full.scores.ravel())[0, 1]
    assert corr > 0.95


def test_float32_path_leaves_float32_models_alone():
    f, run = _planted(k=1.0)
    with float32_path(run) as used:
        assert used == "float32" and run.batch == 16


@pytest.mark.parametrize("seed", [0, 1])
def test_saturated_keyword_classifier_adds_up(seed):
    """Held-out sentences whose keyword moves the output (|f(x) - f(pad)| > 0.5; where it does
    not, the relative delta has nothing to be relative to): adaptive IG within 5% on >= 90% of them
    within 400 gradient evaluations, where 400 uniform steps are off on most."""
    from llm_widgets.teaching.classifier import saturated_keyword_classifier

    s = saturated_keyword_classifier(seed)
    cases, adaptive_ok, uniform_ok = 0, 0, 0
    for text, label, _ in zip(*keyword_dataset(40, seed=123)):
        kw = dict(target=KEYWORD_LABELS[label], compute_faithfulness=False)
        ends = attribute(s, text, method="grad_x_input", **kw)  # one pass: f(x) and f(baseline)
        delta = float(ends.output_values[0] - ends.base_values[0])
        if abs(delta) < 0.5:
            continue
        cases += 1
        r = attribute(s, text, ig_rule="adaptive", **kw)
        assert r.steps <= 400
        adaptive_ok += abs(r.scores.sum() - delta) <= 0.05 * abs(delta)
        u = attribute(s, text, steps=400, max_steps=400, **kw)
        uniform_ok += abs(u.scores.sum() - delta) <= 0.05 * abs(delta)
        if cases == 6:
            break
    assert cases == 6
    assert adaptive_ok >= 0.9 * cases
    assert uniform_ok <= 0.5 * cases  # the failure is real


def test_bad_ig_rule_raises(sharp_llama):
    with pytest.raises(LLMWidgetsError, match="Unknown ig_rule"):
        attribute(sharp_llama, LLAMA_TEXT, target=" the", ig_rule="simpson")
    import llm_widgets as lw

    with pytest.raises(LLMWidgetsError, match="Unknown ig_rule"):
        lw.AttributionView(sharp_llama, LLAMA_TEXT, target=" the", ig_rule="fast")
    v = lw.AttributionView(sharp_llama, LLAMA_TEXT, target=" the", ig_rule="adaptive", background=False)
    assert "Adaptive IG" in v.result.notice


def test_adaptive_progress_only_goes_forward(tiny_gpt2):
    from llm_widgets.compute.attribution import attribute

    seen = []
    attribute(tiny_gpt2, "the cat sat on the mat", " mat", ig_rule="adaptive", steps=16, max_steps=64,
              compute_faithfulness=False, report=lambda frac, label="": seen.append(frac))
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen), seen
