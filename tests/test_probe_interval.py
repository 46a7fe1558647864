"""ProbeView's intervals (issue 31, item 7): a 95% Wilson interval that counts the held-out rows, so a
perfect score on a small test set reads "1.000 (95% CI 0.722-1.000, n = 10)" and never "1.000 +- 0.000"."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

import llm_widgets as lw
from llm_widgets.compute.probing import probe_layers, wilson
from llm_widgets.errors import LLMWidgetsError


@pytest.mark.parametrize("n", [1, 7, 30, 500])
def test_wilson_equals_scipy_for_every_count(n):
    k = np.arange(n + 1)
    lo, hi = wilson(k / n, n)
    for i in k:
        ref = binomtest(int(i), n).proportion_ci(confidence_level=0.95, method="wilson")
        assert lo[i] == pytest.approx(ref.low, abs=1e-12) and hi[i] == pytest.approx(ref.high, abs=1e-12)


def test_wilson_bad_n_is_an_error():
    with pytest.raises(LLMWidgetsError, match="n"):
        wilson(0.5, 0)


def _separable(n=40, layers=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.array(["a", "b"] * (n // 2))
    X = rng.normal(size=(layers, n, 6)).astype(np.float32)
    X[1, :, 0] += np.where(y == "b", 5.0, -5.0)  # block 0 separates the classes perfectly
    return X, y


def test_a_perfect_probe_on_ten_held_out_rows_gets_an_honest_interval():
    X, y = _separable()
    r = probe_layers(X, y, seeds=3, test_size=0.25)
    assert r.n_test == 10
    assert r.mean[1] == 1.0 and r.ci[1] == 0.0  # the seed spread says nothing
    lo, hi = r.interval()
    ref = binomtest(10, 10).proportion_ci(method="wilson")
    assert lo[1] == pytest.approx(ref.low) and hi[1] == 1.0 and lo[1] < 0.73
    # every layer: the interval holds its mean accuracy, and matches Wilson at that proportion
    assert ((lo <= r.mean + 1e-12) & (r.mean <= hi + 1e-12)).all()
    np.testing.assert_allclose(np.stack([lo, hi]), np.stack(wilson(r.mean, 10)))
    clo, chi = r.interval(control=True)
    np.testing.assert_allclose(np.stack([clo, chi]), np.stack(wilson(r.control_mean, 10)))
    nc = probe_layers(X, y, seeds=2, control=False)
    assert np.isnan(nc.interval(control=True)[0]).all()


def test_the_view_sends_the_intervals_and_n(minilm_tokenizer):
    from transformers import BertConfig, BertModel
    import torch

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=minilm_tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=2, intermediate_size=64)
    s = lw.load((BertModel(cfg), minilm_tokenizer), device="cpu")
    ds = lw.datasets.negation(24)
    v = lw.ProbeView(s, ds.texts, ds.labels, seeds=2, background=False)
    r = v.result
    assert v.n_test == r.n_test == 6
    got = np.asarray(v.interval)
    np.testing.assert_allclose(got, np.stack([*r.interval(), *r.interval(control=True)]), rtol=1e-6)
