"""The IOI teaching model: a small GPT-2 that prefers the indirect object over the subject on held-out
templates and names, and works with the views (direct logit attribution, activation patching).

Trained on first use (seeded, one thread: about 3 minutes on a busy 2-core machine), then loaded from the
cache. Measured on the 2000 held-out prompts below: IO preferred in 96.6% (ABBA 97.2%, BABA 96.0%), mean
logit difference 5.02 (9.98 on training prompts); on the corrupted (ABC) prompts the mean is 0.01.
"""
import re
import time

import pytest
import torch

import llm_widgets as lw
from llm_widgets.compute.patching import patching
from llm_widgets.teaching import ioi
from llm_widgets.teaching.ioi import (
    NAMES, TEST_NAMES, TEST_TEMPLATES, TRAIN_NAMES, TRAIN_TEMPLATES, Settings, ioi_model, ioi_prompts, logit_diff,
)

N_TEST = 2000
MARGIN = 4.0  # the mean logit difference on the held-out prompts is 5.02


@pytest.fixture(scope="module")
def model():
    return ioi_model()


@pytest.fixture(scope="module")
def test_prompts():
    return ioi_prompts(N_TEST, split="test", seed=1)


@pytest.fixture(scope="module")
def diffs(model, test_prompts):
    return logit_diff(model, test_prompts)


def _template_words(templates):
    return {w for t in templates for w in ioi.words(re.sub(r"\{\w+\}", " ", t))}


def test_splits_are_disjoint_and_the_vocabulary_is_known():
    assert len(NAMES) == len(set(NAMES)) >= 40 and len(TRAIN_TEMPLATES) >= 15
    assert not set(TRAIN_NAMES) & set(TEST_NAMES) and set(TRAIN_NAMES) | set(TEST_NAMES) == set(NAMES)
    assert not set(TRAIN_TEMPLATES) & set(TEST_TEMPLATES) and len(TEST_TEMPLATES) >= 5
    # held-out templates are new sentences, not new words
    assert _template_words(TEST_TEMPLATES) <= _template_words(TRAIN_TEMPLATES)
    tok = ioi.ioi_tokenizer()
    for split, names in (("train", TRAIN_NAMES), ("test", TEST_NAMES)):
        ps = ioi_prompts(200, split=split, seed=3)
        assert {p.order for p in ps} == {"ABBA", "BABA"}
        assert {p.io for p in ps} | {p.s for p in ps} | {p.c for p in ps} <= set(names)
        for p in ps[:50]:
            assert len({p.io, p.s, p.c}) == 3
            ids, xs = tok.encode(p.text), tok.encode(p.corrupted)
            assert len(ids) == len(xs) == len(ioi.words(p.text)) + 1 and tok.unk_token_id not in ids
            assert sum(a != b for a, b in zip(ids, xs)) == 1  # only the second subject changed
            assert p.text.split().count(p.s) == 2 and p.text.split().count(p.io) == 1
            assert tok.encode(" " + p.io, add_special_tokens=False) == [tok.convert_tokens_to_ids(p.io)]
    assert ioi_prompts(5, seed=1) == ioi_prompts(5, seed=1) != ioi_prompts(5, seed=2)
    with pytest.raises(ValueError, match="split"):
        ioi_prompts(3, split="dev")


def test_model_prefers_the_indirect_object_on_held_out_templates_and_names(model, diffs, test_prompts):
    assert model.model.config.n_layer == 4 and model.model.config.model_type == "gpt2"
    assert (diffs > 0).mean() >= 0.95
    assert diffs.mean() > MARGIN
    for order in ("ABBA", "BABA"):
        d = diffs[[p.order == order for p in test_prompts]]
        assert (d > 0).mean() >= 0.9
    # corrupted (ABC): no repeated name, nothing tells IO from S: the difference is near 0 on average
    corrupted = logit_diff(model, test_prompts, corrupted=True)
    assert abs(corrupted.mean()) < 0.2 * diffs.mean()


def test_logit_diff_matches_the_model_one_prompt_at_a_time(model, test_prompts):
    some = test_prompts[:6]
    tok = model.tokenizer
    for p, d in zip(some, logit_diff(model, some)):
        with torch.no_grad():
            last = model.model(**tok(p.text, return_tensors="pt")).logits[0, -1].double()
        want = last[tok.convert_tokens_to_ids(p.io)] - last[tok.convert_tokens_to_ids(p.s)]
        assert d == pytest.approx(float(want), abs=1e-4)


def test_direct_logit_attribution_shares_add_up(model, test_prompts):
    p = test_prompts[0]
    r = lw.direct_logit_attribution(model, p.text, target=" " + p.io, contrast=" " + p.s)
    assert r.values[:, 0, 0].sum() == pytest.approx(float(r.logit[0, 0]), rel=1e-4, abs=1e-4)
    assert float(r.logit[0, 0]) == pytest.approx(float(logit_diff(model, [p])[0]), abs=1e-3)
    assert r.n_layers == 4 and r.n_heads == 4 and "L3 mlp" in r.components


def test_patching_clean_into_corrupted(model, test_prompts):
    p = test_prompts[1]
    r = patching(model, p.text, p.corrupted, answers=(" " + p.io, " " + p.s))
    T = r.scores.shape[-1]
    assert r.score("resid", 3, T - 1) == 1.0  # the whole last residual: the clean run exactly
    assert r.clean_metric == pytest.approx(float(logit_diff(model, [p])[0]), abs=1e-3)
    assert r.corrupted_metric == pytest.approx(float(logit_diff(model, [p], corrupted=True)[0]), abs=1e-3)
    w = ["<bos>"] + ioi.words(p.text)
    assert r.head_scores.shape == (4, 4) and r.changed == [max(i for i, x in enumerate(w) if x == p.s)]


def test_cached_model_loads_identically(model):
    t0 = time.perf_counter()
    again = ioi_model()
    assert time.perf_counter() - t0 < 5
    for (k, a), b in zip(model.model.state_dict().items(), again.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert (ioi.cache_dir() / f"ioi-{Settings().key()}.pt").exists()
    assert Settings(layers=2).key() != Settings().key() != Settings(seed=1).key()


def test_training_is_deterministic(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_WIDGETS_CACHE", str(tmp_path))
    a = ioi_model(layers=1, heads=2, d_model=16, steps=3)
    b = ioi_model(layers=1, heads=2, d_model=16, steps=3, retrain=True)
    assert any(tmp_path.iterdir())
    for (k, x), y in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(x, y), k
    fresh = ioi._build(Settings(layers=1, heads=2, d_model=16, steps=3), len(a.tokenizer))
    assert not torch.equal(fresh.transformer.wte.weight, a.model.transformer.wte.weight)  # it did train


def test_bad_settings_are_explained():
    with pytest.raises(ValueError, match="multiple"):
        ioi_model(d_model=30, heads=4)
    with pytest.raises(ValueError, match="at least"):
        ioi_model(layers=0)
