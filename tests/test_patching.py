"""Activation patching: known answers on a small GPT-2 (random weights, so every number is exact)."""
import numpy as np
import pytest

from llm_widgets.execution.hooks import num_hooks
from llm_widgets.compute.patching import patching
from llm_widgets.errors import LLMWidgetsError

CLEAN = "When Mary and John went to the store, John gave a drink to"
CORRUPT = "When Mary and John went to the store, Mary gave a drink to"


@pytest.fixture(scope="module")
def result(tiny_gpt2):
    return patching(tiny_gpt2, CLEAN, CORRUPT, answers=("mary", "john"))


def test_last_layer_residual_restores_clean_and_early_positions_do_nothing(tiny_gpt2, result):
    L, T = tiny_gpt2.n_layers, len(result.tokens)
    assert result.scores.shape == (3, L, T) and result.head_scores.shape == (L, tiny_gpt2.n_heads)
    last = T - 1
    # the clean residual after the last block, at the read-out position, is the clean output
    assert result.score("resid", L - 1, last) == pytest.approx(1.0, abs=1e-5)
    # the last block's residual elsewhere cannot reach the last position's output (causal): 0
    assert np.abs(result.scores[0, L - 1, :last]).max() < 1e-5
    # positions before the first differing token hold identical activations in both runs: 0 everywhere
    first = result.changed[0]
    assert result.changed == [10] and result.tokens[10] == "mary" and result.clean_tokens[10] == "john"
    assert np.abs(result.scores[:, :, :first]).max() < 1e-6
    # the metric values themselves: clean and corrupted runs differ, and normalization maps them to 1 and 0
    assert result.metric == "logit_diff(mary, john)"
    raw_last = result.raw[0, L - 1, last]
    assert raw_last == pytest.approx(result.clean_metric, abs=1e-5)
    assert result.raw[0, 0, 0] == pytest.approx(result.corrupted_metric, abs=1e-5)


def test_batched_equals_one_forward_per_patch(tiny_gpt2):
    args = ("Mary met John, John thanked", "Mary met John, Mary thanked")
    kw = dict(answers=("mary", "john"), sites=("resid", "mlp"))
    result = patching(tiny_gpt2, *args, **kw)
    loop = patching(tiny_gpt2, *args, batch_size=1, **kw)
    odd = patching(tiny_gpt2, *args, batch_size=7, **kw)
    for other in (loop, odd):
        np.testing.assert_allclose(other.raw, result.raw, atol=1e-5)
        np.testing.assert_allclose(other.head_scores * (result.clean_metric - result.corrupted_metric),
                                   result.head_scores * (result.clean_metric - result.corrupted_metric), atol=1e-5)
        np.testing.assert_array_equal(other.top_index[:, -1], result.top_index[:, -1])


def test_patched_top_outputs_match_clean_at_full_restore(tiny_gpt2, result):
    L = tiny_gpt2.n_layers
    top = result.top("resid", L - 1, len(result.tokens) - 1)
    assert [t for t, _ in top] == [t for t, _ in result.clean_top]
    np.testing.assert_allclose([p for _, p in top], [p for _, p in result.clean_top], atol=1e-5)


def test_bad_inputs_are_explained(tiny_gpt2):
    with pytest.raises(LLMWidgetsError, match="same number of tokens"):
        patching(tiny_gpt2, "When Mary went home", "When Mary and John went home")
    with pytest.raises(LLMWidgetsError, match="no difference"):
        patching(tiny_gpt2, CLEAN, CLEAN, answers=("mary", "john"))
    with pytest.raises(LLMWidgetsError, match="reads one output position"):  # several tokens: not a logit
        patching(tiny_gpt2, CLEAN, CORRUPT, metric="logit", answers=("johnsonville's", "mary"))
    with pytest.raises(LLMWidgetsError, match="unknown site"):
        patching(tiny_gpt2, CLEAN, CORRUPT, sites=("resid", "nope"))
    with pytest.raises(LLMWidgetsError, match="metric must be"):
        patching(tiny_gpt2, CLEAN, CORRUPT, metric="accuracy")


def test_hooks_removed_when_the_metric_raises(tiny_gpt2):
    before = num_hooks(tiny_gpt2.model)
    calls = []

    def bad_metric(logits):
        calls.append(1)
        if len(calls) > 2:  # clean and corrupted pass; the first patched batch fails inside the hooks
            raise RuntimeError("boom")
        return logits[:, 0]

    with pytest.raises(RuntimeError, match="boom"):
        patching(tiny_gpt2, CLEAN, CORRUPT, metric=bad_metric)
    assert len(calls) == 3
    assert num_hooks(tiny_gpt2.model) == before


def test_patching_view_background_progress_and_selection(tiny_gpt2):
    import llm_widgets as lw

    seen = []
    v = lw.PatchingView(tiny_gpt2, clean=CLEAN, corrupted=CORRUPT, answers=("mary", "john"), batch_size=16,
                        background=True)
    v.observe(lambda c: seen.append(c["new"]), names=["progress"])
    v.wait(60)
    assert v.error == "" and v.result is not None and v.progress == -1.0
    np.testing.assert_allclose(v.scores, v.result.scores, atol=0)
    np.testing.assert_allclose(v.head_scores, v.result.head_scores, atol=0)
    idx = v.top_index.astype(int)
    assert v.top_tokens[idx[0, 2, len(v.tokens) - 1, 0]] == v.result.clean_top[0][0]
    v.selected_site, v.selected_layer, v.selected_token = "attn", 1, 4
    with pytest.raises(Exception, match="selected_layer"):
        v.selected_layer = 3
    with pytest.raises(Exception, match="selected_site"):
        v.selected_site = "embeddings"


def test_patching_view_reports_errors(tiny_gpt2):
    import llm_widgets as lw

    with pytest.raises(LLMWidgetsError, match="same number of tokens"):
        lw.PatchingView(tiny_gpt2, clean="a b c", corrupted="a b")
    v = lw.PatchingView(tiny_gpt2, clean="a b c", corrupted="a b", background=True).wait(30)
    assert "same number of tokens" in v.error and v.result is None


def test_static_export_carries_the_numbers(tiny_gpt2, tmp_path):
    import llm_widgets as lw

    v = lw.PatchingView(tiny_gpt2, clean=CLEAN, corrupted=CORRUPT, answers=("mary", "john"), per_head=False)
    page = v.to_html(tmp_path / "p.html").read_text()
    assert "lw-payload" in page and v.head_scores is None


@pytest.mark.parametrize("family", ["gpt2", "llama", "bert"])
def test_prefix_reuse_gives_the_plain_sweeps_numbers(family, minilm_tokenizer):
    """Causal LMs: the sweep that starts each forward after the corrupted run's cached prefix (and
    takes the corrupted run's numbers for runs that patch nothing) equals the sweep over the whole
    input; Llama has grouped-query attention (2 kv heads). An encoder (a BERT classifier) has no
    such prefix: forced or not, it runs the plain sweep."""
    import llm_widgets as lw
    from llm_widgets.testing import build

    s = lw.load((build(family), minilm_tokenizer), device="cpu")
    causal = family != "bert"
    assert s.adapter.causal == causal

    def diff(logits):  # output 0 minus output 1 (token ids 0 and 1, or the classes)
        return logits[:, 0] - logits[:, 1]

    for position in ((-1, 12) if causal else (-1,)):
        kw = dict(metric=diff, position=position, per_head=True, batch_size=16)
        fast = patching(s, CLEAN, CORRUPT, reuse_prefix=True, **kw)
        plain = patching(s, CLEAN, CORRUPT, reuse_prefix=False, **kw)
        assert fast.reused_prefix == causal and not plain.reused_prefix
        assert patching(s, CLEAN, CORRUPT, **kw).reused_prefix == causal  # the default where it applies
        assert fast.clean_metric == pytest.approx(plain.clean_metric, rel=1e-6, abs=1e-6)
        assert fast.corrupted_metric == pytest.approx(plain.corrupted_metric, rel=1e-6, abs=1e-6)
        gap = plain.clean_metric - plain.corrupted_metric
        np.testing.assert_allclose(fast.raw, plain.raw, atol=1e-5, rtol=0)
        np.testing.assert_allclose(fast.scores, plain.scores, atol=1e-5 * max(1.0, 1.0 / abs(gap)), rtol=0)
        np.testing.assert_allclose(fast.head_scores * gap, plain.head_scores * gap, atol=1e-5, rtol=0)
        assert fast.top_tokens == plain.top_tokens
        np.testing.assert_array_equal(fast.top_index, plain.top_index)
        np.testing.assert_array_equal(fast.head_top_index, plain.head_top_index)
        np.testing.assert_allclose(fast.top_probs, plain.top_probs, atol=1e-5, rtol=0)
        np.testing.assert_allclose(fast.head_top_probs, plain.head_top_probs, atol=1e-5, rtol=0)
        if causal:  # runs that patch nothing (before the first changed token) are the corrupted run exactly
            first = fast.changed[0]
            assert first > 0 and (fast.raw[:, :, :first] == np.float32(fast.corrupted_metric)).all()
            L = s.n_layers
            assert abs(fast.score("resid", L - 1, fast.position) - 1.0) < 1e-5


def test_patching_view_noising_is_the_swapped_sweep(tiny_gpt2):
    """direction='noising': the clean run with one corrupted activation inserted, i.e. the sweep with
    the texts swapped and the answers reversed; 0 = the clean output, 1 = the corrupted output."""
    import llm_widgets as lw

    kw = dict(answers=("mary", "john"), background=False)
    noise = lw.PatchingView(tiny_gpt2, CLEAN, CORRUPT, direction="noising", **kw)
    hand = lw.PatchingView(tiny_gpt2, CORRUPT, CLEAN, answers=("john", "mary"), background=False)
    r, h = noise.result, hand.result
    for key in ("scores", "head_scores", "raw", "top_index", "top_probs"):
        np.testing.assert_array_equal(getattr(r, key), getattr(h, key))
    assert (r.metric, r.clean_metric, r.corrupted_metric) == (h.metric, h.clean_metric, h.corrupted_metric)
    assert r.tokens[10] == "john" and r.clean_tokens[10] == "mary"  # the run is the clean text
    assert noise.direction == "noising" and "(noising)" in noise.title and "Noising" in noise.notice
    # the front end gets the direction, and the texts, values and top outputs under the user's names
    state = noise.get_state()
    assert state["direction"] == "noising" and "direction" in noise.keys
    assert noise.clean_tokens == r.tokens and noise.clean_tokens[10] == "john" and noise.tokens[10] == "mary"
    s = noise.summary
    assert (s["clean"], s["corrupted"]) == (r.corrupted_metric, r.clean_metric)
    assert s["clean_top"] == [list(x) for x in r.corrupted_top] and s["corrupted_top"] == [list(x) for x in r.clean_top]
    with pytest.raises(Exception, match="read-only"):
        noise.direction = "denoising"  # the sweep is computed: changing its direction would mislabel it
    # known answers: the corrupted residual after the last block, where the output is read, gives the
    # corrupted output (1); before the changed token both runs hold the same activations (0)
    L = tiny_gpt2.n_layers
    assert r.score("resid", L - 1, r.position) == pytest.approx(1.0, abs=1e-5)
    assert np.abs(r.scores[:, :, :r.changed[0]]).max() < 1e-6
    # with logit_diff, reading the answers unswapped gives the same scores
    np.testing.assert_allclose(patching(tiny_gpt2, CORRUPT, CLEAN, answers=("mary", "john")).scores, r.scores,
                               atol=1e-6)
    den = lw.PatchingView(tiny_gpt2, CLEAN, CORRUPT, direction="denoising", **kw)  # the default, unchanged
    assert den.direction == "denoising" and den.notice == ""
    assert (den.tokens, den.clean_tokens) == (den.result.tokens, den.result.clean_tokens)
    assert den.summary["clean"] == den.result.clean_metric
    assert "0 = corrupted output, 1 = clean output" in den._static_figure()
    assert "0 = clean output, 1 = corrupted output" in noise._static_figure()
    np.testing.assert_array_equal(den.result.scores, patching(tiny_gpt2, CLEAN, CORRUPT, answers=("mary", "john")).scores)
    for bad in ("noise", None, 1):
        with pytest.raises(LLMWidgetsError, match="direction must be one of"):
            lw.PatchingView(tiny_gpt2, CLEAN, CORRUPT, direction=bad, **kw)
