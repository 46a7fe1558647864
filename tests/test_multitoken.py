"""Answers of several tokens (issue 29, item 3): target=" new york" is one output, the sum of its
tokens' teacher-forced log-probs; contrast= and patching answers= take such answers too (their
difference of sums). Checked against plain forwards and hand hooks on tiny random causal LMs, with
IG's completeness on the summed target, and the same numbers from the hook-based objective, the
generic Programs (what every other executor runs) and nnsight."""
from __future__ import annotations

import copy
import re

import numpy as np
import pytest
import torch

import llm_widgets as lw
from llm_widgets import execution
from llm_widgets.compute.attribution import attribute
from llm_widgets.compute.direct_logit import direct_logit_attribution
from llm_widgets.compute.patching import patching
from llm_widgets.errors import LLMWidgetsError
from llm_widgets.testing import ProgramsOnly, build

PROMPT = "the capital of the state is"
CLEAN, CORRUPT = "the capital of the state is", "the capital of the country is"
A, B, C = " new york", " los angeles", " salt lake city"  # 2, 2 and 3 WordPiece tokens

_SESSIONS: dict = {}


def session(fam: str, tokenizer, nnsight: bool = False):
    if (fam, nnsight) not in _SESSIONS:
        if nnsight:
            pytest.importorskip("nnsight")
            _SESSIONS[fam, nnsight] = lw.load((copy.deepcopy(session(fam, tokenizer).model), tokenizer),
                                              device="cpu", backend="nnsight")
        else:
            _SESSIONS[fam, nnsight] = lw.load((build(fam), tokenizer), device="cpu")
    return _SESSIONS[fam, nnsight]


def log_probs(s, text: str, answer: str, hook=None) -> float:
    """The answer's teacher-forced log-prob by hand: one plain forward of text + answer, the log-prob of
    answer token j read at the position before it, summed; `hook`: a forward hook (module, fn) on."""
    ids = s.tokenizer(text, return_tensors="pt")["input_ids"]
    ans = s.tokenizer.encode(answer, add_special_tokens=False)
    full = torch.cat([ids, torch.tensor([ans])], 1)
    handle = hook[0].register_forward_hook(hook[1]) if hook else None
    try:
        with torch.no_grad():
            lp = torch.log_softmax(s.model(full).logits.float(), -1)[0]
    finally:
        if handle:
            handle.remove()
    T = ids.shape[1]
    return sum(float(lp[T - 1 + j, t]) for j, t in enumerate(ans))


@pytest.mark.parametrize("fam", ["gpt2", "llama"])
def test_summed_target_is_the_teacher_forced_sum(fam, minilm_tokenizer):
    s = session(fam, minilm_tokenizer)
    kw = dict(method="grad_x_input", compute_faithfulness=False)
    one = attribute(s, PROMPT, target=A, **kw)
    assert one.scores.shape[0] == 1 and one.target_ids == [-1] and one.targets == ["new york"]
    assert one.output_values[0] == pytest.approx(log_probs(s, PROMPT, A), abs=1e-5)
    # a contrast of two answers of different lengths: each teacher-forced in its own sequence
    diff = attribute(s, PROMPT, target=A, contrast=C, **kw)
    assert diff.output_values[0] == pytest.approx(log_probs(s, PROMPT, A) - log_probs(s, PROMPT, C), abs=1e-5)
    # a list of tokens stays one row per token (read along the continuation they form); gradients are
    # linear, so the summed target's scores are the rows' sum, and the contrast's the difference
    rows = attribute(s, PROMPT, target=[" new", " york"], **kw)
    assert rows.scores.shape[0] == 2
    np.testing.assert_allclose(rows.output_values.sum(), one.output_values[0], atol=1e-5)
    np.testing.assert_allclose(rows.scores.sum(0), one.scores[0], atol=1e-5)
    other = attribute(s, PROMPT, target=C, **kw)
    np.testing.assert_allclose(one.scores[0] - other.scores[0], diff.scores[0], atol=1e-5)


@pytest.mark.parametrize("fam", ["gpt2", "llama"])
def test_ig_completeness_on_a_two_token_target(fam, minilm_tokenizer):
    s = session(fam, minilm_tokenizer)
    for kw in (dict(target=A), dict(target=A, contrast=B)):
        r = attribute(s, PROMPT, method="ig", steps=64, max_steps=64, compute_faithfulness=False, **kw)
        gap = float(r.output_values[0] - r.base_values[0])
        assert abs(gap) > 0.1
        assert abs(r.scores.sum() - gap) < 0.01 * abs(gap), (kw, r.scores.sum(), gap)


def test_executors_agree(minilm_tokenizer, monkeypatch):
    s, nn = session("llama", minilm_tokenizer), session("llama", minilm_tokenizer, nnsight=True)
    cases = [dict(target=A, method="ig", steps=16, max_steps=16), dict(target=A, contrast=C, method="grad_x_input"),
             dict(target=A, contrast=" boston", method="occlusion")]
    ref = [attribute(s, PROMPT, compute_faithfulness=False, **kw) for kw in cases]
    pref = patching(s, CLEAN, CORRUPT, answers=(A, C))
    got_nn = [attribute(nn, PROMPT, compute_faithfulness=False, **kw) for kw in cases]
    pnn = patching(nn, CLEAN, CORRUPT, answers=(A, C))
    monkeypatch.setattr(execution, "NATIVE", ProgramsOnly())
    built = []
    from llm_widgets.compute.attribution import program_objective
    real = program_objective.build_program_objective
    monkeypatch.setattr("llm_widgets.compute.attribution.build_program_objective",
                        lambda *a, **k: built.append(1) or real(*a, **k))
    got_pr = [attribute(s, PROMPT, compute_faithfulness=False, **kw) for kw in cases]
    ppr = patching(s, CLEAN, CORRUPT, answers=(A, C))
    assert len(built) == len(cases)  # the generic Programs did run
    for a, b, c in zip(ref, got_pr, got_nn):
        for r in (b, c):
            np.testing.assert_allclose(r.scores, a.scores, atol=1e-6)
            np.testing.assert_allclose(r.output_values, a.output_values, atol=1e-6)
    for p in (ppr, pnn):
        assert p.metric == pref.metric and p.clean_metric == pytest.approx(pref.clean_metric, abs=1e-6)
        np.testing.assert_allclose(p.raw, pref.raw, atol=1e-6)
        np.testing.assert_allclose(p.head_scores, pref.head_scores, atol=1e-6)


def test_patching_two_token_answers_equals_hand_hooks(minilm_tokenizer):
    s = session("gpt2", minilm_tokenizer)
    r = patching(s, CLEAN, CORRUPT, answers=(A, C), sites=("resid",), per_head=False)
    metric = lambda text, hook=None: log_probs(s, text, A, hook) - log_probs(s, text, C, hook)  # noqa: E731
    assert r.metric == "log p(new york) \u2212 log p(salt lake city)"
    assert r.clean_metric == pytest.approx(metric(CLEAN), abs=1e-5)
    assert r.corrupted_metric == pytest.approx(metric(CORRUPT), abs=1e-5)
    assert r.changed == [5]

    def patched(layer: int, pos: int) -> float:
        """The corrupted text with block `layer`'s output at `pos` taken from the clean text, each with
        the same answer appended (a prompt position: the answer does not change it)."""
        block = s.model.transformer.h[layer]
        total = 0.0
        for answer, sign in ((A, 1.0), (C, -1.0)):
            box = {}
            first = lambda o: o[0] if isinstance(o, tuple) else o  # noqa: E731
            log_probs(s, CLEAN, answer, (block, lambda m, i, o: box.setdefault("clean", first(o).detach().clone())))

            def put(m, i, o):
                h = first(o).clone()
                h[:, pos] = box["clean"][:, pos]
                return (h,) + tuple(o[1:]) if isinstance(o, tuple) else h

            total += sign * log_probs(s, CORRUPT, answer, (block, put))
        return total

    for layer, pos in ((0, 5), (1, 5), (1, 7), (0, 2)):
        assert r.raw[0, layer, pos] == pytest.approx(patched(layer, pos), abs=1e-4)
    assert r.raw[0, 0, 2] == pytest.approx(r.corrupted_metric, abs=1e-5)  # before the changed token: nothing
    # normalised: (patched - corrupted) / (clean - corrupted)
    want = (patched(0, 5) - r.corrupted_metric) / (r.clean_metric - r.corrupted_metric)
    assert r.scores[0, 0, 5] == pytest.approx(want, abs=1e-4)
    # 'prob': the product of the answer's teacher-forced probabilities; on this random model ~1e-10 on
    # both texts, which the sweep refuses as no difference, saying the two values it computed
    with pytest.raises(LLMWidgetsError, match="is the same on clean") as e:
        patching(s, CLEAN, CORRUPT, answers=(A,), metric="prob", sites=("resid",), per_head=False)
    clean, corrupted = (float(x) for x in re.search(r"clean \((\S+)\) and corrupted \((\S+)\)", str(e.value)).groups())
    assert clean == pytest.approx(np.exp(log_probs(s, CLEAN, A)), rel=1e-3)
    assert corrupted == pytest.approx(np.exp(log_probs(s, CORRUPT, A)), rel=1e-3)


def test_what_does_not_apply_is_refused(minilm_tokenizer):
    s = session("gpt2", minilm_tokenizer)
    with pytest.raises(LLMWidgetsError, match="reads the activations of one sequence"):
        attribute(s, PROMPT, target=A, contrast=B, method="gradcam")
    with pytest.raises(LLMWidgetsError, match="read at several"):
        attribute(s, PROMPT, target=A, method="attention_gradcam")
    with pytest.raises(LLMWidgetsError, match="same answer"):
        attribute(s, PROMPT, target=A, contrast=A)
    with pytest.raises(LLMWidgetsError, match="each token of a target list"):
        attribute(s, PROMPT, target=[A, B])
    with pytest.raises(LLMWidgetsError, match="position must be the last"):
        patching(s, CLEAN, CORRUPT, answers=(A, B), position=-2)
    with pytest.raises(LLMWidgetsError, match="2 tokens: direct logit attribution"):
        direct_logit_attribution(s, PROMPT, target=A)
    with pytest.raises(LLMWidgetsError, match="contrast ' los angeles' is 2 tokens"):
        direct_logit_attribution(s, PROMPT, target=" boston", contrast=B)


def test_direct_logit_recipe_for_several_tokens(minilm_tokenizer):
    """What the refusal says to do: the text and the answer's tokens but the last as inputs, the
    answer's ids per position; the shares, summed over the positions, add up to the sum of the
    answer's teacher-forced logits."""
    s = session("gpt2", minilm_tokenizer)
    ids = s.tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    ans = s.tokenizer.encode(A, add_special_tokens=False)
    T = ids.shape[1]
    r = direct_logit_attribution(s, torch.cat([ids, torch.tensor([ans[:-1]])], 1), target=[ans],
                                 positions=list(range(T - 1, T - 1 + len(ans))))
    with torch.no_grad():
        lg = s.model(torch.cat([ids, torch.tensor([ans])], 1)).logits.float()[0]
    want = sum(float(lg[T - 1 + j, t]) for j, t in enumerate(ans))
    assert r.values.sum(-1).sum(0)[0] == pytest.approx(want, abs=1e-3)
