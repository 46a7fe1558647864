"""The nnsight backend (llm_widgets.backends): every view's numbers through nnsight traces equal the
native torch-hook path's on tiny random models (GPT-2, Llama with grouped-query attention, a BERT
classifier); the requests that would go to NDIF are the same traces, run here and in nnsight's own
local simulation of a remote run (serialized, llm_widgets hidden); what the backend cannot do
raises a clear error, with a cost estimate where it is about cost."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

pytest.importorskip("nnsight")

import llm_widgets as lw  # noqa: E402
from llm_widgets.backends import nnsight_backend as nb  # noqa: E402
from llm_widgets.backends import nnsight_discovery as nd  # noqa: E402
from llm_widgets.backends.nnsight_backend import BackendUnsupportedError  # noqa: E402
from llm_widgets.compute.ablation import ablate, ablation_effect  # noqa: E402
from llm_widgets.compute.activations import extract, token_states  # noqa: E402
from llm_widgets.compute.attribution import attribute  # noqa: E402
from llm_widgets.compute.logit_lens import lens_logits, logit_lens  # noqa: E402
from llm_widgets.compute.neurons import neuron_activations  # noqa: E402
from llm_widgets.compute.patching import patching  # noqa: E402

from llm_widgets.testing import FAMILIES, build

FAMS = ("gpt2", "llama", "bert")  # llama: 4 query heads share 2 key heads
TEXT = "the cat sat on the mat because it was very tired"
CLEAN = "when mary and john went to the store john gave a drink to"
CORRUPT = "when mary and john went to the store mary gave a drink to"
TEXTS = ["the cat sat", "a dog ran to the park today", "it was hot", "we saw a big red car"]

_PAIRS: dict = {}


@pytest.fixture(params=FAMS)
def pair(request, minilm_tokenizer):
    """(native session, nnsight session) over two copies of one tiny model."""
    fam = request.param
    if fam not in _PAIRS:
        m = build(fam)
        twin = copy.deepcopy(m)
        native = lw.load((m, minilm_tokenizer), device="cpu")
        nn = lw.load((twin, minilm_tokenizer), device="cpu", backend="nnsight")
        _PAIRS[fam] = (native, nn)
    return _PAIRS[fam]


def close(a, b, atol, rel=False):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(1.0, float(np.abs(a).max())) if rel else 1.0
    assert a.shape == b.shape
    assert float(np.abs(a - b).max()) <= atol * scale, float(np.abs(a - b).max())


class Count:
    """Counts the backend's nnsight traces at nnsight's own entry point (lm.trace)."""

    def __init__(self, session):
        self.lm, self.calls = session.backend.lm, []
        self.original = self.lm.trace

        def trace(*args, **kwargs):
            self.calls.append(kwargs.get("remote", False))
            return self.original(*args, **kwargs)

        object.__setattr__(self.lm, "trace", trace)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        object.__delattr__(self.lm, "trace")


# -- every view equals the native path -----------------------------------------------------------
def test_trace_hidden_states_logits_and_attention(pair):
    native, nn = pair
    a = native.trace(TEXT)
    with Count(nn) as c:
        b = nn.trace(TEXT + " ")  # a text of its own (the cache would answer the same text)
        assert len(c.calls) == 1
    assert b.tokens == a.tokens and list(b.input_ids) == list(a.input_ids)
    close(b.hidden_states, a.hidden_states, 1e-6)
    close(b.logits, a.logits, 1e-6)
    assert b.attentions is None and type(b.attention).__name__ == "CapturedAttention"  # never [L, H, T, T]
    src_a, src_b = a.require_attention(), b.require_attention()
    for layer in range(src_a.n_layers):
        for h in range(src_a.n_heads):
            close(src_b.head(layer, h), src_a.head(layer, h), 1e-6)
    assert b.special_mask.tolist() == a.special_mask.tolist() and b.word_ids == a.word_ids


def test_neurons_ablation_and_logit_lens(pair):
    native, nn = pair
    close(neuron_activations(nn, TEXT).activations, neuron_activations(native, TEXT).activations, 1e-6)
    for kw in (dict(heads=[(0, 1), (1, 2)], neurons=[(0, 3), (1, 7)]), dict(heads=[(1, 0)], mode="mean")):
        a, b = ablation_effect(native, TEXT, **kw), ablation_effect(nn, TEXT, **kw)
        pa = dict(zip(a.ids, zip(a.before, a.after)))
        pb = dict(zip(b.ids, zip(b.before, b.after)))
        shared = set(pa) & set(pb)  # ties in |after - before| may order the last ones differently
        assert len(shared) >= len(pa) - 1
        close([pb[i] for i in shared], [pa[i] for i in shared], 1e-6)
    # resample ablation: the units take their inputs on a donor of the same length (two requests)
    donor = "the dog ran to the park because it was very happy"
    kw = dict(heads=[(0, 1), (1, 2)], neurons=[(1, 7)], mode="resample", donor=donor)
    with Count(nn) as count:
        a, b = ablation_effect(native, TEXT, **kw), ablation_effect(nn, TEXT, **kw)
    assert len(count.calls) == 2  # the donor's values, then the ablated run
    pa, pb = dict(zip(a.ids, zip(a.before, a.after))), dict(zip(b.ids, zip(b.before, b.after)))
    shared = set(pa) & set(pb)
    assert len(shared) >= len(pa) - 1
    close([pb[i] for i in shared], [pa[i] for i in shared], 1e-6)
    with pytest.raises(lw.LLMWidgetsError, match="donor is \\[batch, tokens\\]"):
        ablation_effect(nn, TEXT, heads=[(0, 1)], mode="resample", donor="too short")
    if nn.adapter.why_not("logit_lens"):
        with pytest.raises(lw.DoesNotApplyError):
            logit_lens(nn, TEXT)
        return
    a, b = logit_lens(native, TEXT), logit_lens(nn, TEXT)
    assert b.top_tokens == a.top_tokens and (b.top_index == a.top_index).all()
    close(b.top_probs, a.top_probs, 1e-6)
    close(b.next_prob, a.next_prob, 1e-6)
    close(lens_logits(nn, TEXT), lens_logits(native, TEXT), 1e-6, rel=True)


def test_direct_logit_attribution_through_the_execution_layer(pair):
    """Direct logit attribution is one Program: through nnsight it equals native (1e-6), and refuses
    alike where the logit is not a sum of parts (BERT's post-norm blocks)."""
    from llm_widgets.compute.direct_logit import direct_logit_attribution

    native, nn = pair
    if native.adapter.why_not("logit_lens") or native.adapter.kind != "decoder":
        return
    kw = dict(target=" mat", positions=[-1, 3])
    try:
        a = direct_logit_attribution(native, TEXT, **kw)
    except lw.DoesNotApplyError as e:
        with pytest.raises(lw.DoesNotApplyError, match=str(e)[:40].replace("(", ".").replace(")", ".")):
            direct_logit_attribution(nn, TEXT, **kw)
        return
    with Count(nn) as c:
        b = direct_logit_attribution(nn, TEXT, **kw)
    assert len(c.calls) == 1 and b.components == a.components
    close(b.values, a.values, 1e-6, rel=True)
    close(b.logit, a.logit, 1e-6, rel=True)


def _same_patching(a, b):
    assert b.metric == a.metric and b.sites == a.sites and b.changed == a.changed and b.tokens == a.tokens
    close(b.raw, a.raw, 1e-6, rel=True)
    close([b.clean_metric, b.corrupted_metric], [a.clean_metric, a.corrupted_metric], 1e-6, rel=True)
    # normalized: (m - m_corr) / (m_clean - m_corr); nnsight computes m_clean / m_corr in the sweep's
    # batch, the native path in forwards of their own: float noise of the metric, divided by the gap
    gap = abs(a.clean_metric - a.corrupted_metric)
    tol = 2e-6 * max(1.0, float(np.abs(a.raw).max())) / gap * (1.0 + float(np.abs(a.scores).max()))
    close(b.scores, a.scores, max(1e-6, tol))
    if a.head_scores is None:
        assert b.head_scores is None
    else:
        close(b.head_scores, a.head_scores, max(1e-6, tol))
    assert (b.top_index == a.top_index).all() and b.top_tokens == a.top_tokens
    close(b.top_probs, a.top_probs, 1e-6)


def native_patching(session, *args, **kw):
    """The native sweep over the whole input (the reference): without reusing the corrupted run's
    key/value cache where patching() offers that."""
    import inspect

    if "reuse_prefix" in inspect.signature(patching).parameters:
        kw["reuse_prefix"] = False
    return patching(session, *args, **kw)


def test_patching(pair):
    native, nn = pair
    answers = ("mary", "john") if nn.kind == "decoder" else ("POS", "NEG")
    with Count(nn) as c:
        b = patching(nn, CLEAN, CORRUPT, answers=answers)
        assert len(c.calls) == 1  # answers given: the whole sweep is one trace
    _same_patching(native_patching(native, CLEAN, CORRUPT, answers=answers), b)
    with Count(nn) as c:
        b = patching(nn, CLEAN, CORRUPT, sites=("resid", "attn"), per_head=False, batch_size=7)
        assert len(c.calls) == 1 + -(-2 * nn.n_layers * len(b.tokens) // 7)  # the answers first, then 7 rows each
    _same_patching(native_patching(native, CLEAN, CORRUPT, sites=("resid", "attn"), per_head=False), b)


def test_patching_checks_answers_as_the_native_sweep(pair):
    """Given answers are resolved and checked as the native sweep does (one token or class each, or a
    causal LM's text of several tokens; in range, two different ones for logit_diff), with the same
    error, before any request."""
    native, nn = pair
    for answers in [(10**6, 0), (0,), ("mary and", "mary and")]:  # (answers of several tokens: issue 29)
        with pytest.raises(lw.LLMWidgetsError) as want:
            native_patching(native, CLEAN, CORRUPT, answers=answers)
        with Count(nn) as c, pytest.raises(lw.LLMWidgetsError) as got:
            patching(nn, CLEAN, CORRUPT, answers=answers)
        assert str(got.value) == str(want.value) and not c.calls, (answers, str(got.value), str(want.value))


def test_patching_sweep_at_32_tokens_is_two_traces(minilm_tokenizer):
    native, nn = _PAIRS.get("gpt2") or (None, None)
    if nn is None:
        m = build("gpt2")
        twin = copy.deepcopy(m)
        native = lw.load((m, minilm_tokenizer), device="cpu")
        nn = lw.load((twin, minilm_tokenizer), device="cpu", backend="nnsight")
    words = ("the cat sat on mat dog ran to park and it was very tired because day long sun hot we saw a big red "
             "car in street near old house").split()
    clean = " ".join(words[:30])
    corrupt = " ".join(words[:20] + ["dog"] + words[21:30])
    assert len(minilm_tokenizer(clean)["input_ids"]) == 32
    n0 = len(nn.backend.log)
    with Count(nn) as c:
        b = patching(nn, clean, corrupt)  # every site x layer x position, and every head
    assert len(c.calls) == 2 and len(nn.backend.log) - n0 == 2
    sweep = nn.backend.log[-1]
    assert sweep.rows == 2 + 3 * nn.n_layers * 32 + nn.n_layers * nn.n_heads  # clean and corrupted rows, every patched run
    assert sweep.bytes_returned <= 68 * sweep.rows  # metric + top-5 per row: no activations, no logits
    _same_patching(native_patching(native, clean, corrupt), b)


def test_probing_activations(pair):
    native, nn = pair
    close(extract(nn, TEXTS, [0, 1, 0, 1], batch_size=3).states,
          extract(native, TEXTS, [0, 1, 0, 1], batch_size=3).states, 1e-6)
    close(extract(nn, TEXTS, pooling="first").states, extract(native, TEXTS, pooling="first").states, 1e-6)
    labels = [[w[0] for w in t.split()] for t in TEXTS]
    a, b = extract(native, TEXTS, labels, level="token"), extract(nn, TEXTS, labels, level="token")
    close(b.states, a.states, 1e-6)
    assert b.types == a.types and b.labels == a.labels
    for (ha, sa), (hb, sb) in zip(token_states(native, TEXTS), token_states(nn, TEXTS)):
        close(hb, ha, 1e-6)
        assert (sa == sb).all()


@pytest.mark.parametrize("method", ["ig", "grad_x_input", "saliency", "occlusion", "shapley"])
def test_attribution(pair, method):
    native, nn = pair
    kw = dict(method=method, steps=20, n_samples=4, compute_faithfulness=method == "ig")
    if nn.kind == "decoder":
        kw["generate"] = 2  # two targets: per-target gradients
    a, b = attribute(native, TEXT, **kw), attribute(nn, TEXT, **kw)
    assert b.targets == a.targets and b.target_ids == a.target_ids and b.steps == a.steps
    close(b.scores, a.scores, 1e-5, rel=True)
    close(b.output_values, a.output_values, 1e-5, rel=True)
    if method == "ig":
        close(b.faithfulness.delta, a.faithfulness.delta, 1e-5, rel=True)


@pytest.mark.parametrize("kw", [dict(method="ig", baseline="zero", steps=10), dict(method="lime", n_samples=20),
                                dict(method="shap"), dict(method="permutation")])
def test_more_attribution_methods(minilm_tokenizer, kw):
    native, nn = _PAIRS.get("bert") or (None, None)
    if nn is None:
        m = build("bert")
        twin = copy.deepcopy(m)
        native = lw.load((m, minilm_tokenizer), device="cpu")
        nn = lw.load((twin, minilm_tokenizer), device="cpu", backend="nnsight")
    text = "the cat sat on the mat"
    close(attribute(nn, text, **kw).scores, attribute(native, text, **kw).scores, 1e-5, rel=True)


def test_contrast_and_custom_targets(pair):
    native, nn = pair
    if nn.kind == "decoder":
        kw = dict(target="dog", contrast="cat")
    else:
        kw = dict(target="POS", contrast="NEG", output="log_prob")
    a, b = attribute(native, TEXT, method="grad_x_input", **kw), attribute(nn, TEXT, method="grad_x_input", **kw)
    close(b.scores, a.scores, 1e-5, rel=True)
    fn = lambda out: out.logits[:, -1, :3] if out.logits.dim() == 3 else out.logits  # noqa: E731
    a, b = attribute(native, TEXT, target=fn, method="saliency"), attribute(nn, TEXT, target=fn, method="saliency")
    assert b.targets == a.targets
    close(b.scores, a.scores, 1e-5, rel=True)


# -- the requests that would go remote -------------------------------------------------------------
def test_remote_simulation_runs_the_same_requests(minilm_tokenizer):
    """remote='local' is nnsight's dry run of a remote request: each trace serialized as for NDIF,
    deserialized with every non-server module (llm_widgets included) hidden, then run. The views'
    numbers equal the local nnsight run's, request for request."""
    m = build("gpt2")
    twin = copy.deepcopy(m)
    here = lw.load((m, minilm_tokenizer), device="cpu", backend="nnsight")
    sim = lw.load((twin, minilm_tokenizer), device="cpu", backend="nnsight", remote="local")
    assert "local simulation" in repr(sim)
    runs = [lambda s: s.trace(TEXT).hidden_states,
            lambda s: s.trace(TEXT).attention.head(1, 2),
            lambda s: neuron_activations(s, TEXT).activations,
            lambda s: ablation_effect(s, TEXT, heads=[(0, 1)]).after,
            lambda s: patching(s, CLEAN, CORRUPT, answers=("mary", "john")).scores,
            lambda s: logit_lens(s, TEXT).top_probs,
            lambda s: extract(s, TEXTS, [0, 1, 0, 1]).states,
            lambda s: attribute(s, TEXT, method="ig", steps=8, compute_faithfulness=False).scores]
    total = 0
    for run in runs:
        n_here = len(here.backend.log)
        with Count(sim) as c:
            got = run(sim)
        want = run(here)
        assert all(r == "local" for r in c.calls)  # every request went the remote way
        assert len(c.calls) == len(here.backend.log) - n_here  # the same requests (a cached trace: none)
        total += len(c.calls)
        close(got, want, 0)
    assert total >= 8 and len(sim.backend.log) == total


def test_model_without_weights_gets_its_adapter_from_a_replica(minilm_tokenizer, tmp_path):
    """A model NDIF serves is built here on the meta device. Its adapter comes from a small replica
    (`meta_adapter`) and equals discovery on the real model; run through nnsight's local simulation,
    which loads the weights where a server would, the views match the native path."""
    from nnsight.modeling.transformers import TransformersModel

    m = build("llama")
    m.save_pretrained(tmp_path)
    minilm_tokenizer.save_pretrained(tmp_path)
    native = lw.load((m, minilm_tokenizer), device="cpu")
    lm = TransformersModel(str(tmp_path), task="text-generation", tokenizer=copy.deepcopy(minilm_tokenizer),
                           attn_implementation="eager")
    assert nb.has_meta_weights(lm._module)
    s = lw.load(lm, remote="local")
    assert not s.backend.weights_here and s.device.type == "cpu"
    a, b = native.adapter, s.adapter
    for key in ("kind", "causal", "output", "n_layers", "n_heads", "n_kv_heads", "head_dim", "d_model",
                "n_neurons", "parallel", "final_norm", "head"):
        assert getattr(b, key) == getattr(a, key), key
    for key in ("blocks", "attn_out", "mlp", "mlp_out"):
        assert [r.path for r in getattr(b, key)] == [r.path for r in getattr(a, key)]
    close(s.trace(TEXT).hidden_states, native.trace(TEXT).hidden_states, 1e-5)
    close(s.trace(TEXT).attention.head(1, 3), native.trace(TEXT).attention.head(1, 3), 1e-6)
    _same_patching(native_patching(native, CLEAN, CORRUPT, answers=("mary", "john")),
                   patching(s, CLEAN, CORRUPT, answers=("mary", "john")))


@pytest.mark.parametrize("family", [f for f, (task, _) in FAMILIES.items() if task != "seq2seq" and f != "albert"])
def test_replica_adapter_matches_discovery(family):
    from llm_widgets.adapter import adapter_of

    m = build(family)
    with torch.device("meta"):
        meta = type(m)(copy.deepcopy(m.config))
    a, b = adapter_of(m), nd.meta_adapter(meta)
    for key in ("kind", "causal", "output", "n_layers", "n_heads", "n_kv_heads", "head_dim", "d_model",
                "n_neurons", "parallel", "moe", "final_norm", "head", "softcap", "logit_scale"):
        assert getattr(b, key) == getattr(a, key), key
    for key in ("blocks", "attn_out", "mlp", "mlp_out"):
        assert [r.path if r else None for r in getattr(b, key)] == [r.path if r else None for r in getattr(a, key)]


def test_replica_adapter_of_a_70b_config():
    """The counts come from the real config and module shapes, not from the replica."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=8192, num_hidden_layers=80, num_attention_heads=64, num_key_value_heads=8,
                      intermediate_size=28672, vocab_size=128256)
    with torch.device("meta"):
        meta = LlamaForCausalLM(cfg)
    ad = nd.meta_adapter(meta)
    assert (ad.n_layers, ad.n_heads, ad.n_kv_heads, ad.head_dim, ad.d_model) == (80, 64, 8, 128, 8192)
    assert ad.n_neurons == [28672] * 80 and ad.blocks[79].path == "model.layers.79"
    assert ad.attn_out[79].path == "model.layers.79.self_attn.o_proj" and ad.head == "lm_head"
    assert ad.final_norm == ["model.norm"] and ad.kind == "decoder"


# -- what the backend does not do says so -----------------------------------------------------------
def test_unsupported_things_raise_clear_errors(minilm_tokenizer, monkeypatch):
    _, nn = _PAIRS.get("gpt2") or (None, lw.load((build("gpt2"), minilm_tokenizer), device="cpu", backend="nnsight"))
    enc, _, _ = nn.encode(TEXT)
    with pytest.raises(BackendUnsupportedError, match="runs the model directly with torch hooks"):
        nn.forward(**enc)
    with pytest.raises(BackendUnsupportedError, match="backend='native'"):
        with ablate(nn, heads=[(0, 1)]):
            nn.model(**enc)
    with pytest.raises(BackendUnsupportedError, match=r"direct forward pass.*torch hooks.*backend='native'"):
        nn.model(**enc)  # any direct forward of the model, from any view
    for method in ("lrp", "gradcam", "attention_gradcam"):
        with pytest.raises(BackendUnsupportedError, match=f"method='{method}'.*module_hooks|method='{method}'.*torch hooks.*backend='native'"):
            attribute(nn, TEXT, method=method)
    with pytest.raises(BackendUnsupportedError, match="shared by every layer"):
        lw.load((build("albert"), minilm_tokenizer), device="cpu", backend="nnsight")
    with pytest.raises(BackendUnsupportedError, match="encoder-decoder|do not apply"):
        lw.load((build("t5"), minilm_tokenizer), device="cpu", backend="nnsight")
    bloom = lw.load((build("bloom"), minilm_tokenizer), device="cpu", backend="nnsight")
    with pytest.raises(lw.AttentionUnavailableError, match="attention functions"):
        bloom.trace(TEXT).require_attention()
    with pytest.raises(lw.LLMWidgetsError, match="backend must be"):
        lw.load((build("gpt2"), minilm_tokenizer), backend="vllm")
    # nnsight's VLLM class (vLLM itself is not installed: an instance that was never dispatched) is
    # refused at load with the reason, before anything else is asked of it
    from nnsight.modeling.vllm import VLLM
    with pytest.raises(BackendUnsupportedError, match="flat \\[tokens, d\\] slab"):
        lw.load(VLLM.__new__(VLLM))
    with pytest.raises(lw.LLMWidgetsError, match="nnsight"):
        lw.load((build("gpt2"), minilm_tokenizer), backend="native", remote=True)


def test_remote_cost_is_estimated_before_sending(minilm_tokenizer, monkeypatch):
    """A remote run refuses work estimated above REMOTE_LIMITS, saying what it would cost; a local
    one never does."""
    m = build("llama")
    twin = copy.deepcopy(m)
    sim = lw.load((m, minilm_tokenizer), device="cpu", backend="nnsight", remote="local")
    monkeypatch.setitem(nb.REMOTE_LIMITS, "backward_token_params", 1e6)
    n0 = len(sim.backend.log)
    with pytest.raises(BackendUnsupportedError, match=r"is not run remotely.*backward passes.*Estimate: .*request"):
        attribute(sim, TEXT, method="ig", generate=3)
    assert len(sim.backend.log) - n0 <= 1  # at most the trace of the text: nothing of the attribution was sent
    attribute(sim, TEXT, method="occlusion", compute_faithfulness=False)  # forward only: within the limits
    monkeypatch.setitem(nb.REMOTE_LIMITS, "bytes_returned", 10)
    with pytest.raises(BackendUnsupportedError, match="GiB to send back"):
        attribute(sim, TEXT, method="saliency")
    here = lw.load((twin, minilm_tokenizer), device="cpu", backend="nnsight")
    attribute(here, TEXT, method="ig", steps=4, compute_faithfulness=False)  # local: no limit
    from llm_widgets.compute.attribution.requirements import attribution_cost
    from llm_widgets.compute.attribution.methods import method_of

    cost = attribution_cost(here, 12, method_of("ig"), n_targets=3, steps=50)
    assert cost.backward_rows == 150 and "150 backward" in str(cost)


def test_views_through_the_backend(minilm_tokenizer):
    m = build("gpt2")
    nn = lw.load((m, minilm_tokenizer), device="cpu", backend="nnsight")
    lw.AttentionView(nn, TEXT)
    lw.NeuronView(nn, TEXT, selected_layer=1)
    lw.LogitLensView(nn, TEXT)
    lw.AttributionView(nn, TEXT)
    progress = []
    v = lw.PatchingView(nn, clean=CLEAN, corrupted=CORRUPT, background=True)
    v.observe(lambda c: progress.append(c["new"]), names=["progress"])
    v.wait(120)
    assert v.error == "" and v.result is not None
    assert any(0 < p < 1 for p in progress)  # progress per request (answers first, then the sweep)
    assert all(r.label for r in nn.backend.log) and nn.backend.summary()["requests"] == len(nn.backend.log)


def test_native_backend_is_unchanged(tiny_gpt2):
    assert tiny_gpt2.backend is None and "nnsight" not in repr(tiny_gpt2)
    from llm_widgets.execution.hooks import num_hooks

    assert num_hooks(tiny_gpt2.model) == 0
