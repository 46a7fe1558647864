"""Every compute function written once against the execution layer gives the same numbers on every
executor: native torch hooks (the reference, with its specialised paths: the hook-based attribution
objective, the key/value-prefix patching sweep), native hooks running the generic Programs only
(what every other executor runs), and nnsight (here, and in its local simulation of a remote run).
Tolerance 1e-5 relative (batched rows may round differently from single ones)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import llm_widgets as lw
from llm_widgets import execution
from llm_widgets.compute.ablation import ablate, ablation_effect
from llm_widgets.compute.activations import extract, token_states
from llm_widgets.compute.attribution import attribute
from llm_widgets.compute.direct_logit import direct_logit_attribution
from llm_widgets.compute.logit_lens import lens_logits, logit_lens
from llm_widgets.compute.neurons import neuron_activations
from llm_widgets.compute.patching import patching

from llm_widgets.testing import ProgramsOnly, build

TEXT = "the cat sat on the mat because it was very tired"
DONOR = "the dog ran to the park because it was very happy"
CLEAN = "when mary and john went to the store john gave a drink to"
CORRUPT = "when mary and john went to the store mary gave a drink to"
EXECUTORS = ("native", "programs", "nnsight", "nnsight-remote-sim")



_SESSIONS: dict = {}


def session_for(fam: str, how: str, tokenizer):
    key = (fam, how)
    if key not in _SESSIONS:
        m = build(fam)
        if how in ("native", "programs"):
            _SESSIONS[key] = lw.load((m, tokenizer), device="cpu")
        else:
            pytest.importorskip("nnsight")
            remote = "local" if how == "nnsight-remote-sim" else False
            _SESSIONS[key] = lw.load((copy.deepcopy(m), tokenizer), device="cpu", backend="nnsight", remote=remote)
    return _SESSIONS[key]


# the remote simulation runs the same requests as nnsight here: one family is enough for it
CASES = [(fam, how) for fam in ("gpt2", "llama") for how in EXECUTORS[1:] if fam == "gpt2" or how != EXECUTORS[-1]]


@pytest.fixture(params=CASES, ids=[f"{f}-{h}" for f, h in CASES])
def case(request, monkeypatch):
    fam, how = request.param
    if how == "programs":
        monkeypatch.setattr(execution, "NATIVE", ProgramsOnly())
    return fam, how


def close(a, b, tol=1e-5):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    scale = max(1.0, float(np.nanmax(np.abs(a))))
    np.testing.assert_allclose(b, a, atol=tol * scale, rtol=0, equal_nan=True)


def test_reads_and_readouts(case, minilm_tokenizer):
    fam, how = case
    ref, s = session_for(fam, "native", minilm_tokenizer), session_for(fam, how, minilm_tokenizer)
    close(neuron_activations(ref, TEXT).activations, neuron_activations(s, TEXT).activations)
    close(lens_logits(ref, TEXT), lens_logits(s, TEXT))
    a, b = logit_lens(ref, TEXT, k=3), logit_lens(s, TEXT, k=3)
    assert a.top_tokens == b.top_tokens
    close(a.top_probs, b.top_probs)
    texts = ["the cat sat", "a dog ran to the park today", "it was hot"]
    for x, y in zip(token_states(ref, texts), token_states(s, texts)):
        close(x[0], y[0])
    close(extract(ref, texts).states, extract(s, texts).states)


def test_ablation(case, minilm_tokenizer):
    fam, how = case
    ref, s = session_for(fam, "native", minilm_tokenizer), session_for(fam, how, minilm_tokenizer)
    for kw in (dict(heads=[(0, 1)], neurons=[(1, 3)]), dict(heads=[(1, 0)], mode="mean"),
               dict(heads=[(0, 1)], neurons=[(1, 7)], mode="resample", donor=DONOR)):
        a, b = ablation_effect(ref, TEXT, **kw), ablation_effect(s, TEXT, **kw)
        pa, pb = dict(zip(a.ids, zip(a.before, a.after))), dict(zip(b.ids, zip(b.before, b.after)))
        shared = sorted(set(pa) & set(pb))  # ties in |after - before| may order the last ones differently
        assert len(shared) >= len(pa) - 1
        close([pa[i] for i in shared], [pb[i] for i in shared])
        with ablate(ref, **kw):
            want = lens_logits(ref, TEXT)
        with ablate(s, **kw):
            got = lens_logits(s, TEXT)
        close(want, got)


def test_direct_logit_attribution(case, minilm_tokenizer):
    fam, how = case
    ref, s = session_for(fam, "native", minilm_tokenizer), session_for(fam, how, minilm_tokenizer)
    a = direct_logit_attribution(ref, TEXT, target=" mat", positions=[-1, 3])
    b = direct_logit_attribution(s, TEXT, target=" mat", positions=[-1, 3])
    assert a.components == b.components
    close(a.values, b.values)
    close(a.logit, b.logit)


@pytest.mark.parametrize("answers", [None, ("mary", "john")])
def test_patching(case, answers, minilm_tokenizer):
    fam, how = case
    ref, s = session_for(fam, "native", minilm_tokenizer), session_for(fam, how, minilm_tokenizer)
    a = patching(ref, CLEAN, CORRUPT, answers=answers, batch_size=16)
    b = patching(s, CLEAN, CORRUPT, answers=answers, batch_size=16)
    assert (a.metric, a.sites, a.changed) == (b.metric, b.sites, b.changed)
    close(a.raw, b.raw)
    close(a.head_scores, b.head_scores)
    # restoring the last residual at the read position restores the clean metric: exactly 1.0
    assert b.score("resid", s.n_layers - 1, b.position) == 1.0


@pytest.mark.parametrize("method", ["ig", "grad_x_input", "occlusion"])
def test_attribution(case, method, minilm_tokenizer):
    fam, how = case
    ref, s = session_for(fam, "native", minilm_tokenizer), session_for(fam, how, minilm_tokenizer)
    kw = dict(method=method, steps=16, max_steps=16, compute_faithfulness=False)
    for target in (" mat", None):
        a, b = attribute(ref, TEXT, target, **kw), attribute(s, TEXT, target, **kw)
        assert a.targets == b.targets
        close(a.scores, b.scores, 1e-4)
    a, b = attribute(ref, TEXT, generate=2, **kw), attribute(s, TEXT, generate=2, **kw)
    assert a.targets == b.targets
    close(a.scores, b.scores, 1e-4)


def test_what_an_executor_lacks_is_refused_with_the_capability(minilm_tokenizer, monkeypatch):
    monkeypatch.setattr(execution, "NATIVE", ProgramsOnly())
    s = session_for("gpt2", "programs", minilm_tokenizer)
    with pytest.raises(lw.BackendUnsupportedError, match="method='lrp'.*torch hooks and patched forwards"):
        attribute(s, TEXT, " mat", method="lrp")
    assert execution.executor_of(s).has("standing_writes") and not execution.executor_of(s).has("module_hooks")
    torch.testing.assert_close(lens_logits(s, TEXT), lens_logits(session_for("gpt2", "native", minilm_tokenizer),
                                                                 TEXT))
