"""Reliability of the newer features (issue 33): over-long texts in surrogates, views waited on inside an
`ablate` block, ablation on the nnsight backend, nested ablations, direct logit attribution's argument
errors, its positions after a weight edit, and values below a 16-bit dtype's resolution. Every wait is
bounded: a regression fails instead of hanging."""
import threading
import time

import numpy as np
import pytest
import torch

import llm_widgets as lw
from llm_widgets.compute.ablation import ablate
from llm_widgets.compute.direct_logit import direct_logit_attribution
from llm_widgets.compute.distill import teacher_logits
from llm_widgets.execution.hooks import num_hooks
from llm_widgets.compute.logit_lens import lens_logits
from llm_widgets.compute.surrogate import fit_surrogates
from llm_widgets.teaching.classifier import keyword_dataset
from llm_widgets.widgets import direct_logit as dl

from llm_widgets.testing import build

TEXT = "the cat sat on the mat"
DONOR = "a dog ran in the park"  # as many tokens as TEXT
WAIT = 60  # seconds: the longest any wait here may take (the work itself takes well under a second)


def _bounded(fn, seconds: float = WAIT):
    """fn() in a helper thread; fails (instead of hanging) when it does not return in time."""
    box: dict = {}

    def go():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised below
            box["error"] = e

    th = threading.Thread(target=go, daemon=True)
    th.start()
    th.join(seconds)
    assert not th.is_alive(), f"still waiting after {seconds} s: a deadlock"
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _logits(s, text=TEXT):
    return s.forward(attentions=False, **s.encode(text)[0]).logits


@pytest.fixture(scope="module")
def keyword():
    return lw.teaching.keyword_classifier()


@pytest.fixture
def gpt2(minilm_tokenizer):
    """A tiny GPT-2 of this test's own (tests here edit weights and put hooks on it)."""
    return lw.load((build("gpt2"), minilm_tokenizer), device="cpu")


# -- 2. surrogates: over-long texts are an error naming them, or truncated with a notice ---------------------
def test_surrogates_refuse_or_truncate_texts_longer_than_the_model(keyword):
    texts, labels, _ = keyword_dataset(40, seed=3)
    long = "the film was good " * 150 + "terrible"  # ~600 tokens; its keyword after token 512
    texts = texts[:3] + [long] + texts[3:]
    limit = keyword.max_length
    with pytest.raises(lw.InputTooLongError, match=rf"texts\[3\] is \d+ tokens long.*at most {limit}.*truncate=True"):
        fit_surrogates(keyword, texts, student_layers=())
    with pytest.raises(lw.InputTooLongError, match=r"texts\[0\] is \d+ tokens long"):
        teacher_logits(keyword, [long])
    with pytest.raises(lw.InputTooLongError, match=r"texts\[3\]"):
        lw.SurrogateView(keyword, texts, student_layers=(), background=False)
    v = lw.SurrogateView(keyword, texts, student_layers=(), truncate=True, background=False)
    assert v.result is not None and v.error == ""
    assert v.notice.startswith(f"1 of {len(texts)} texts truncated to their first {limit} tokens") and "texts[3]" in v.notice
    assert v.result.notice == v.notice
    assert teacher_logits(keyword, [long], truncate=True).shape == (1, 2)


def test_check_lengths_names_every_long_text_and_keeps_the_single_text_message(keyword):
    n = keyword.max_length
    with pytest.raises(lw.InputTooLongError, match=r"docs\[1\] is 900 tokens long, docs\[2\] is 700 tokens long; "):
        keyword.check_lengths([5, 900, 700], truncate=False, what="docs")
    assert keyword.check_lengths([5, 6], truncate=False) == ""
    many = keyword.check_lengths([n + 1] * 5, truncate=True)
    assert many.startswith(f"5 of 5 texts truncated to their first {n} tokens") and "and 2 more" in many
    with pytest.raises(lw.InputTooLongError, match=rf"The text is {n + 1} tokens long.*truncate=True"):
        keyword.check_lengths([n + 1], truncate=False, what=None)


# -- 3. no deadlock: waiting for a background view inside an ablate block ------------------------------------
def test_waiting_for_a_background_view_inside_ablate_returns(gpt2):
    s = gpt2
    clean = lw.AttributionView(s, TEXT, method="ig", steps=16, background=False).result.scores
    v = lw.AttributionView(s, TEXT, method="ig", steps=16, background=True)  # started before the block
    with ablate(s, heads=[(0, 1), (1, 2)]):
        t0 = time.perf_counter()
        v.wait(WAIT)
        waited = time.perf_counter() - t0
        assert not v.computing, f"v.wait() inside ablate did not return in {WAIT} s"
        _bounded(lambda: v.to_html("/dev/null"))
        # a view started inside the block computes in this thread, on the ablated model
        w = lw.AttributionView(s, TEXT, method="ig", steps=16, background=True)
        assert not w.computing and w.result is not None
        ablated = lw.AttributionView(s, TEXT, method="ig", steps=16, background=False).result.scores
    assert waited < WAIT and v.error == "" and num_hooks(s.model) == 0
    np.testing.assert_allclose(v.result.scores, clean, atol=1e-6)  # started outside: the unablated model
    np.testing.assert_allclose(w.result.scores, ablated, atol=1e-6)
    assert np.abs(ablated - clean).max() > 1e-4


def test_an_ablation_acts_on_its_own_threads_forwards_only(gpt2):
    s = gpt2
    ref = lens_logits(s, TEXT)
    inside, release, got = threading.Event(), threading.Event(), {}

    def other():
        try:
            with ablate(s, heads=[(0, 0), (1, 1), (1, 3)]):
                got["ablated"] = _logits(s)
                inside.set()
                release.wait(WAIT)
        finally:
            inside.set()

    th = threading.Thread(target=other, daemon=True)
    th.start()
    try:
        assert inside.wait(WAIT) and "ablated" in got
        # while the other thread's block is open: not blocked by it, and not ablated
        torch.testing.assert_close(_bounded(lambda: lens_logits(s, TEXT), WAIT / 3), ref)
    finally:
        release.set()
        th.join(WAIT)
    assert not th.is_alive() and num_hooks(s.model) == 0
    assert not torch.allclose(got["ablated"], _logits(s))
    torch.testing.assert_close(lens_logits(s, TEXT), ref)  # and the cache holds the clean model's trace


# -- 4. ablate() through nnsight: the ablation travels with every request of the thread --------------------
@pytest.mark.parametrize("remote", [False, "local"])
def test_ablate_through_nnsight_equals_native(remote, minilm_tokenizer):
    pytest.importorskip("nnsight")
    import copy

    from llm_widgets.compute.neurons import neuron_activations

    m = build("gpt2")
    native = lw.load((m, minilm_tokenizer), device="cpu")
    nn = lw.load((copy.deepcopy(m), minilm_tokenizer), device="cpu", backend="nnsight", remote=remote)
    clean_lens = lens_logits(nn, TEXT)
    for kw in (dict(heads=[(0, 1)], neurons=[(1, 3)]), dict(heads=[(1, 2)], mode="mean"),
               dict(heads=[(0, 1)], mode="resample", donor=DONOR)):
        with ablate(native, **kw):
            want = (lens_logits(native, TEXT), neuron_activations(native, TEXT).activations,
                    native.trace(TEXT).hidden_states)
        with ablate(nn, **kw):
            got = (lens_logits(nn, TEXT), neuron_activations(nn, TEXT).activations,
                   nn.trace(TEXT).hidden_states)  # the trace too: never the cached clean one
        torch.testing.assert_close(got[0], want[0], atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(got[1], want[1], atol=1e-5, equal_nan=True)
        np.testing.assert_allclose(got[2], want[2], atol=1e-5)
        assert np.abs(got[2] - nn.trace(TEXT).hidden_states).max() > 1e-3  # after the block: clean again
        assert (got[0] - clean_lens).abs().max() > 1e-3  # the ablation did something
    torch.testing.assert_close(lens_logits(nn, TEXT), clean_lens)  # and is gone after the block
    assert num_hooks(nn.model) == 0


# -- 5. nested ablations: an inner resample's donor is computed on the clean model ---------------------------
@pytest.mark.parametrize("outer", ["zero", "mean"])
def test_nested_resample_takes_its_donor_from_the_clean_model(outer, tiny_gpt2):
    s = tiny_gpt2
    with ablate(s, heads=[(0, 1)], mode="resample", donor=DONOR):
        true = _logits(s)
    with ablate(s, heads=[(0, 1)], mode=outer):
        zeroed = _logits(s)
        with ablate(s, heads=[(0, 1)], mode="resample", donor=DONOR):
            nested = _logits(s)
    torch.testing.assert_close(nested, true)
    assert (nested - zeroed).abs().max() > 1e-3
    # another outer head stays ablated around the inner one (the two compose)
    with ablate(s, heads=[(1, 2)]):
        with ablate(s, heads=[(0, 1)], mode="resample", donor=DONOR):
            both = _logits(s)
    with ablate(s, heads=[(0, 1)], mode="resample", donor=DONOR):
        with ablate(s, heads=[(1, 2)]):
            want = _logits(s)
    torch.testing.assert_close(both, want)


# -- 7. direct logit attribution: argument errors name the argument ------------------------------------------
def test_direct_logit_token_ids_and_contrast_errors(tiny_gpt2):
    s = tiny_gpt2
    the = s.tokenizer.convert_tokens_to_ids("the")
    ref = direct_logit_attribution(s, TEXT, target="the")
    for scalar in (np.int64(the), np.int32(the), torch.tensor(the), np.array(the)):
        r = direct_logit_attribution(s, TEXT, target=scalar)
        np.testing.assert_array_equal(r.values, ref.values)
    v = lw.DirectLogitView(s, TEXT, target=np.int64(the))
    assert v.summary["logit"] == pytest.approx(float(ref.logit[0, 0]), abs=1e-6)
    for big in (10**30, -10**30, 2**63):
        with pytest.raises(lw.LLMWidgetsError, match=r"target token id must be in 0\.\.\d+"):
            direct_logit_attribution(s, TEXT, target=big)
    with pytest.raises(lw.LLMWidgetsError, match=r"contrast token id must be in"):
        direct_logit_attribution(s, TEXT, target="the", contrast=np.int64(10**12))
    for empty in ([], (), np.array([], np.int64), torch.tensor([])):
        with pytest.raises(lw.LLMWidgetsError, match="contrast is empty"):
            direct_logit_attribution(s, TEXT, target="the", contrast=empty)
    for spelling in ("MEAN", "Mean", "mEaN"):
        with pytest.raises(lw.LLMWidgetsError, match=rf"contrast='{spelling}' is ambiguous.*'mean'"):
            direct_logit_attribution(s, TEXT, target="the", contrast=spelling)
    assert direct_logit_attribution(s, TEXT, target="the", contrast="mean").metric.endswith("- mean logit")
    for bad in (True, np.float64(the), torch.tensor(float(the))):
        with pytest.raises(lw.LLMWidgetsError, match="target"):
            direct_logit_attribution(s, TEXT, target=bad)


# -- 9. DirectLogitView: every position from one state of the weights ----------------------------------------
@pytest.mark.parametrize("all_at_once", [True, False])
def test_direct_logit_view_positions_follow_a_weight_edit(all_at_once, gpt2, monkeypatch):
    s = gpt2
    if not all_at_once:
        monkeypatch.setattr(dl, "ALL_AT_ONCE", 0)
    v = lw.DirectLogitView(s, TEXT, target="the", contrast="mean", selected_token=4)
    before = v.shares(4)[1]
    with torch.no_grad():
        s.model.transformer.h[1].attn.c_proj.weight.mul_(3.0)
        s.model.transformer.h[0].mlp.c_proj.weight.mul_(-2.0)
    v.selected_token = 2  # a click after the edit
    now = direct_logit_attribution(s, TEXT, target="the", contrast="mean", positions=[2, 4])
    for i, p in enumerate((2, 4)):
        values, logit = v.shares(p)
        np.testing.assert_allclose(values, now.values[:, 0, i], rtol=1e-5, atol=1e-6)
        assert logit == pytest.approx(float(now.logit[0, i]), abs=1e-6)
    assert abs(now.logit[0, 1] - before) > 1e-3  # the edit changed the value at position 4
    assert v.summary["logit"] == pytest.approx(float(now.logit[0, 0]), abs=1e-6)
    assert "changed" in v.notice


# -- 10. a value below the dtype's resolution is flagged, not called agreement -------------------------------
def test_bfloat16_value_below_resolution_is_flagged(minilm_tokenizer):
    s = lw.load((build("gpt2"), minilm_tokenizer), device="cpu", dtype="bfloat16")
    logits = _logits(s)[0, -1]
    target = int(logits.argmax())
    gap = (logits - logits[target]).abs()
    gap[target] = float("inf")
    contrast = int(gap.argmin())  # a near tie in bfloat16
    r = direct_logit_attribution(s, TEXT, target=target, contrast=contrast)
    assert r.error <= r.tolerance  # the shares "add up" ...
    assert r.unresolved[0, 0] and abs(r.logit[0, 0]) <= r.resolution[0, 0]  # ... to a value the dtype cannot resolve
    assert "within the resolution" in r.notice() and "float32" in r.notice()
    v = lw.DirectLogitView(s, TEXT, target=target, contrast=contrast)
    assert v.summary["unresolved"] and "within the resolution" in v.notice
    resolved = direct_logit_attribution(s, TEXT, target="the", contrast="mean")
    if not resolved.unresolved[0, 0]:
        assert resolved.notice() == ""
    f32 = lw.load((build("gpt2"), minilm_tokenizer), device="cpu")
    assert not direct_logit_attribution(f32, TEXT, target="the", contrast="mean").unresolved.any()
