"""The induction teaching model: known mechanism, checked with head statistics, ablation and patching.

Trained on first use (seeded, ~30 s per model on 2 busy cores), then loaded from the cache.
"""
import time

import numpy as np
import pytest
import torch

import llm_widgets as lw
from llm_widgets.compute.attention import STAT_NAMES, offset_score
from llm_widgets.compute.ablation import ablate
from llm_widgets.execution.hooks import num_hooks
from llm_widgets.compute.patching import patching
from llm_widgets.teaching.induction import (
    VOCAB, Settings, cache_dir, induction_dataset, induction_model, induction_scores, repeated_prompt,
    repeated_token_loss,
)

CHANCE = float(np.log(len(VOCAB)))  # loss of a uniform guess over the letters: ln 52 = 3.95
PERIOD = 12


@pytest.fixture(scope="module")
def model():
    return induction_model()


@pytest.fixture(scope="module")
def control():
    return induction_model(layers=1)


@pytest.fixture(scope="module")
def heldout():
    return induction_dataset(256, seed=12345)  # sequences never seen in training


@pytest.fixture(scope="module")
def scores(model):
    return induction_scores(model, PERIOD)


def loss(session, data):
    return repeated_token_loss(session.model, *data)


def test_repeated_tokens_are_predicted(model, heldout):
    assert loss(model, heldout) < 0.1 * CHANCE


def test_head_statistics_flag_layer1_induction_heads(model, scores):
    assert scores.shape == (2, 4)
    assert scores[1].max() > 0.5  # a layer-1 head attends to the token after the earlier copy
    assert scores[0].max() < 0.2  # layer 0 cannot: it has no "previous token" information yet
    # AttentionView shows the same stripe: offset period-1 in its attention matrices
    v = lw.AttentionView(model, repeated_prompt(PERIOD))
    stripe = offset_score(v.result.attentions[:, :, 1:, 1:], PERIOD - 1)
    assert np.argmax(stripe[1]) == np.argmax(scores[1]) and stripe[1].max() > 0.5
    # ... and layer 0 holds the other half of the circuit: a previous-token head
    prev = v.result.stats[STAT_NAMES.index("prev_token")]
    assert prev[0].max() > 0.5 > prev[1].max()


def test_ablation_confirms_the_circuit(model, scores, heldout):
    base = loss(model, heldout)
    flagged = [(1, int(h)) for h in np.flatnonzero(scores[1] > 0.5)]
    with ablate(model, heads=flagged):
        assert loss(model, heldout) > CHANCE - 0.5  # no induction heads: back to guessing
    v = lw.AttentionView(model, repeated_prompt(PERIOD))
    prev = v.result.stats[STAT_NAMES.index("prev_token")][0]
    with ablate(model, heads=[(0, int(prev.argmax()))]):  # the one previous-token head
        assert loss(model, heldout) > CHANCE - 0.5
    with ablate(model, heads=[(0, int(prev.argmin()))]):  # a bystander head: little change
        assert loss(model, heldout) < base + 0.3
    assert num_hooks(model.model) == 0


def test_one_layer_control_has_no_induction_head(control, heldout):
    assert control.n_layers == 1
    assert induction_scores(control, PERIOD).max() < 0.5
    assert loss(control, heldout) > 0.5 * CHANCE


def test_patching_points_at_the_induction_heads(model, scores):
    # clean: "a b c d e f g h a b c" -> predicts "d"; corrupted: the first copy says "a b c X", so
    # the induction circuit predicts "X" instead
    letters = repeated_prompt(8).split()[:8]
    other = next(x for x in VOCAB if x not in letters)
    clean = " ".join(letters + letters[:3])
    corrupted = " ".join(letters[:3] + [other] + letters[4:] + letters[:3])
    r = patching(model, clean, corrupted, answers=(letters[3], other))
    assert r.sites == ("resid", "attn")  # attention-only: no MLP site
    assert r.clean_metric > 2 and r.corrupted_metric < -2
    best = np.unravel_index(np.argmax(r.head_scores), r.head_scores.shape)
    assert best[0] == 1 and scores[best] > 0.5 and r.head_scores[best] > 0.3


def test_cached_model_loads_identically(model):
    t0 = time.perf_counter()
    again = induction_model()
    assert time.perf_counter() - t0 < 5
    for (k, a), b in zip(model.model.state_dict().items(), again.model.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)
    assert (cache_dir() / f"induction-{Settings().key()}.pt").exists()
    assert Settings(layers=1).key() != Settings().key() != Settings(seed=1).key()


def test_bad_settings_are_explained():
    with pytest.raises(ValueError, match="at least 1"):
        induction_model(layers=0)
    with pytest.raises(ValueError, match="too short"):
        induction_dataset(4, seq_len=10)
