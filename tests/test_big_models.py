"""Big models (issue 13): models placed by accelerate (device_map, cpu and disk offload) give the
same numbers as the plainly loaded model in every view; memory budgets pick batch sizes; running
out of memory says what to change.

Tiny random models (seeded), saved with MiniLM's tokenizer to a temporary directory, then loaded
(a) plainly, (b) with a device_map that puts some blocks on 'disk' (accelerate disk offload: their
weights live on the meta device and are read from the offload folder on every forward), and
(c) through accelerate.cpu_offload (every weight on the meta device, copied in from CPU memory on
every forward), passed as an already dispatched (model, tokenizer) pair. On this CPU-only machine
the execution device is the CPU; the views never ask a parameter where it lives."""
import re

import numpy as np
import pytest
import torch

import llm_widgets as lw
from llm_widgets.compute import budget
from llm_widgets.compute.ablation import ablate
from llm_widgets.compute.attention import attention_result
from llm_widgets.compute.attribution import attribute
from llm_widgets.compute.logit_lens import lens_logits
from llm_widgets.compute.neurons import neuron_activations
from llm_widgets.compute.patching import patching
from llm_widgets.errors import LLMWidgetsError, OutOfMemoryError

TEXT = "the cat sat on the mat because it was tired"
CLEAN = "when mary and john went to the park john gave a ball to"
CORRUPT = "when mary and john went to the park mary gave a ball to"
TOL = 1e-5

DEVICE_MAPS = {
    "llama": {"model.embed_tokens": "disk", "model.rotary_emb": "cpu", "model.layers.0": "cpu",
              "model.layers.1": "disk", "model.layers.2": "disk", "model.layers.3": "cpu", "model.norm": "cpu",
              "lm_head": "disk"},
    "gpt2": {"transformer.wte": "cpu", "transformer.wpe": "cpu", "transformer.drop": "cpu", "transformer.h.0": "cpu",
             "transformer.h.1": "disk", "transformer.h.2": "disk", "transformer.ln_f": "cpu", "lm_head": "cpu"},
}


def _build(family: str, tok):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    special = dict(bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id, pad_token_id=tok.pad_token_id)
    if family == "llama":  # Llama-shaped: RMSNorm, rotary, gated MLP, grouped-query attention
        cfg = LlamaConfig(vocab_size=tok.vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, **special)
        model = LlamaForCausalLM(cfg)
    else:
        cfg = GPT2Config(vocab_size=tok.vocab_size, n_positions=128, n_embd=64, n_layer=3, n_head=4, **special)
        model = GPT2LMHeadModel(cfg)
    with torch.no_grad():  # random but not tiny weights, so that outputs differ visibly between tokens
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.08)
    return model


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def sessions(request, tmp_path_factory, minilm_tokenizer):
    """(plain, disk-offloaded by device_map, cpu-offloaded pair) sessions of one tiny model."""
    import accelerate
    from transformers import AutoModelForCausalLM

    family = request.param
    root = tmp_path_factory.mktemp(f"big-{family}")
    path = root / "model"
    _build(family, minilm_tokenizer).save_pretrained(path)
    minilm_tokenizer.save_pretrained(path)
    plain = lw.load(str(path), device="cpu")
    disk = lw.load(str(path), device_map=DEVICE_MAPS[family], offload_folder=str(root / "offload"))
    m = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager")
    accelerate.cpu_offload(m, execution_device=torch.device("cpu"))
    cpu = lw.load((m, plain.tokenizer))
    return family, plain, disk, cpu, path, root


def _offloaded(s) -> bool:
    return any(p.device.type == "meta" for p in s.model.parameters())


def _close(a, b, tol=TOL):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    scale = max(1.0, float(np.abs(b).max()))
    assert float(np.abs(a - b).max()) <= tol * scale, float(np.abs(a - b).max())


def test_dispatched_models_stay_where_they_are(sessions):
    family, plain, disk, cpu, _, _ = sessions
    assert not plain.dispatched and plain.device == torch.device("cpu")
    for s in (disk, cpu):
        assert s.dispatched and s.device == torch.device("cpu")
        assert _offloaded(s)  # weights really are elsewhere (meta) between forwards
        assert s.adapter.n_layers == plain.adapter.n_layers
        assert s.adapter.describe() == plain.adapter.describe()
    assert set(disk.model.hf_device_map.values()) == {"cpu", "disk"}


def test_trace_and_attention_view_agree(sessions):
    _, plain, disk, cpu, _, _ = sessions
    ref = plain.trace(TEXT)
    view = lw.AttentionView(plain, TEXT)
    for s in (disk, cpu):
        t = s.trace(TEXT)
        _close(t.hidden_states, ref.hidden_states)
        _close(t.logits, ref.logits)
        _close(t.attentions, ref.attentions)
        v = lw.AttentionView(s, TEXT)
        _close(v.result.attentions, view.result.attentions)
        _close(v.result.stats, view.result.stats)
        assert s.trace(TEXT) is t  # cached: offloaded weights (meta) do not break the cache key


def test_on_demand_attention_agrees(sessions):
    """sdpa models (and inputs over 1024 tokens) compute attention from captured queries and keys,
    inside the offloaded blocks."""
    family, plain, _, _, path, root = sessions
    sd = lw.load(str(path), attn_implementation="sdpa", device_map=DEVICE_MAPS[family],
                 offload_folder=str(root / "offload-sdpa"))
    assert sd.trace(TEXT).attentions is None  # not eager: on demand
    _close(attention_result(sd.trace(TEXT)).attentions, plain.trace(TEXT).attentions)


def test_integrated_gradients_agree(sessions):
    """IG over generated targets: backward passes run through offloaded (disk and cpu) weights."""
    _, plain, disk, cpu, _, _ = sessions
    ref = attribute(plain, TEXT, method="ig", generate=3, steps=16, internal_batch_size=8,
                    compute_faithfulness=False)
    for s in (disk, cpu):
        got = attribute(s, TEXT, method="ig", generate=3, steps=16, internal_batch_size=8,
                        compute_faithfulness=False)
        assert got.target_ids == ref.target_ids
        _close(got.scores, ref.scores)
        _close(got.output_values, ref.output_values)


def test_occlusion_and_gradients_agree(sessions):
    _, plain, disk, _, _, _ = sessions
    for method in ("occlusion", "grad_x_input"):
        ref = attribute(plain, TEXT, method=method, generate=2, compute_faithfulness=False)
        got = attribute(disk, TEXT, method=method, generate=2, compute_faithfulness=False)
        _close(got.scores, ref.scores)


def test_patching_agrees(sessions):
    _, plain, disk, cpu, _, _ = sessions
    ref = patching(plain, CLEAN, CORRUPT, batch_size=16)
    for s in (disk, cpu):
        got = patching(s, CLEAN, CORRUPT, batch_size=16)
        assert got.metric == ref.metric
        _close(got.scores, ref.scores)
        _close(got.head_scores, ref.head_scores)
        _close(got.raw, ref.raw)


def test_logit_lens_and_neurons_agree(sessions):
    _, plain, disk, cpu, _, _ = sessions
    ref = lens_logits(plain, TEXT)
    ref_n = neuron_activations(plain, TEXT).activations
    for s in (disk, cpu):
        _close(lens_logits(s, TEXT), ref)
        _close(neuron_activations(s, TEXT).activations, ref_n)
        lw.LogitLensView(s, TEXT)


def test_probing_states_agree(sessions):
    """Batched hidden states (probing, concepts) run the base model, padded, through offloaded blocks."""
    from llm_widgets.compute.activations import token_states

    _, plain, disk, cpu, _, _ = sessions
    texts = [TEXT, "a dog ran to the park", CLEAN]
    ref = token_states(plain, texts, batch_size=2)
    for s in (disk, cpu):
        for (h, sp), (h0, sp0) in zip(token_states(s, texts, batch_size=2), ref):
            _close(h, h0)
            assert (sp == sp0).all()


def test_ablation_agrees(sessions):
    _, plain, disk, _, _, _ = sessions
    outs = []
    for s in (plain, disk):
        enc, _, _ = s.encode(TEXT)
        with ablate(s, heads=[(1, 0), (2, 3)]):
            outs.append(s.forward(**enc).logits[0].float().numpy())
    _close(outs[1], outs[0])


def test_direct_logit_attribution_and_resample_agree(sessions):
    """DLA calls the output projections, the final norm and the unembedding directly (outside a
    forward): offloaded weights must be brought in for those calls as for a forward."""
    _, plain, disk, cpu, _, _ = sessions
    results = [lw.direct_logit_attribution(s, TEXT, target=" the", contrast="mean", positions=[-1, -2])
               for s in (plain, disk, cpu)]
    for r in results[1:]:
        assert r.components == results[0].components
        _close(r.values, results[0].values)
        _close(r.logit, results[0].logit)
    outs = []
    for s in (plain, disk):
        enc, _, _ = s.encode(TEXT)
        with ablate(s, heads=[(1, 0)], neurons=[(0, 3)], mode="resample", donor=enc["input_ids"].flip(-1)):
            outs.append(s.forward(**enc).logits[0].float().numpy())
    _close(outs[1], outs[0])


# -- load arguments --------------------------------------------------------------------------------
def test_load_arguments_are_checked(sessions):
    family, plain, _, cpu, path, root = sessions
    with pytest.raises(LLMWidgetsError, match="offload_folder="):
        lw.load(str(path), device_map={**DEVICE_MAPS[family]})
    with pytest.raises(LLMWidgetsError, match="device= or device_map="):
        lw.load(str(path), device="cpu", device_map="auto")
    with pytest.raises(LLMWidgetsError, match="go with device_map"):
        lw.load(str(path), offload_folder=str(root))
    with pytest.raises(LLMWidgetsError, match="dispatch it first"):
        lw.load((plain.model, plain.tokenizer), device_map="auto")
    with pytest.raises(LLMWidgetsError, match="device_map must be"):
        lw.load(str(path), device_map="everywhere")
    with pytest.raises(TypeError):
        lw.load(str(path), offload_dir=str(root))  # unknown keyword arguments stay errors
    with pytest.raises(LLMWidgetsError, match="cannot be cast"):
        lw.load((cpu.model, cpu.tokenizer), dtype="bfloat16")
    with pytest.raises(LLMWidgetsError, match="never moves a dispatched model"):
        lw.load((cpu.model, cpu.tokenizer), device="meta")


def test_device_map_auto_and_dtype(sessions):
    """device_map='auto' on a CPU-only machine puts everything on the CPU (one device: transformers
    sets no hf_device_map, and the session keeps it there); dtype is applied while loading (a
    bfloat16 model is never held in float32 first)."""
    _, plain, _, _, path, _ = sessions
    s = lw.load(str(path), device_map="auto", dtype="bfloat16")
    assert s.device == torch.device("cpu") and s.dtype == torch.bfloat16
    s = lw.load(str(path), device_map={"": "cpu"})
    assert s.device == torch.device("cpu") and s.dtype == torch.float32
    t = s.trace(TEXT)
    _close(t.logits, plain.trace(TEXT).logits, tol=0.1)  # bfloat16 of the same weights
    r = patching(s, CLEAN, CORRUPT, per_head=False)
    assert np.isfinite(r.scores).all()


# -- memory budgets ----------------------------------------------------------------------------------
def test_budget_estimate_scales(tiny_gpt2):
    one = budget.sequence_bytes(tiny_gpt2, 10)
    assert budget.sequence_bytes(tiny_gpt2, 20) > one
    assert budget.sequence_bytes(tiny_gpt2, 10, grad=True) > one
    ad = tiny_gpt2.adapter
    assert one >= 4 * ad.n_layers * 10 * ad.d_model  # layers x tokens x d_model x dtype size, at least
    assert budget.batch_size_for(tiny_gpt2, 10, budget=0) == 1
    assert budget.batch_size_for(tiny_gpt2, 10, budget=5 * one) == 5
    assert budget.batch_size_for(tiny_gpt2, 10, copies_per_item=5, budget=5 * one) == 1
    assert budget.batch_size_for(tiny_gpt2, 10, budget=1 << 50) == budget.MAX_BATCH
    assert 1 <= budget.memory_budget(tiny_gpt2) <= budget.CPU_BUDGET


def _batch_sizes(session):
    """Records the batch size of every forward through the last block."""
    seen = []
    block = session.adapter.blocks[-1].module
    return seen, block.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append((args[0] if args else kwargs["hidden_states"]).shape[0]),
        with_kwargs=True)


def test_small_budget_gives_small_batches(tiny_gpt2, monkeypatch):
    ref = patching(tiny_gpt2, CLEAN, CORRUPT, answers=("mary", "john"), per_head=False)
    per = budget.sequence_bytes(tiny_gpt2, len(ref.tokens))
    monkeypatch.setattr(budget, "CPU_BUDGET", 3 * per)
    assert budget.batch_size_for(tiny_gpt2, len(ref.tokens)) == 3
    seen, h = _batch_sizes(tiny_gpt2)
    try:
        got = patching(tiny_gpt2, CLEAN, CORRUPT, answers=("mary", "john"), per_head=False)
    finally:
        h.remove()
    assert max(seen) == 3
    np.testing.assert_allclose(got.raw, ref.raw, atol=1e-5)  # batch size changes only rounding
    seen, h = _batch_sizes(tiny_gpt2)  # attribution: IG steps per forward from the same budget
    try:
        monkeypatch.setattr(budget, "CPU_BUDGET", 2 * budget.sequence_bytes(tiny_gpt2, 12, grad=True, targets=1))
        attribute(tiny_gpt2, TEXT, target="the", method="ig", steps=8, compute_faithfulness=False)
    finally:
        h.remove()
    assert 1 <= max(seen) <= 2


def _inject_oom(session, exc):
    """A forward with more than one sequence fails as if memory ran out."""
    def pre(m, args, kwargs):
        x = args[0] if args else kwargs["hidden_states"]
        if x.shape[0] > 1:
            raise exc
    return session.adapter.blocks[-1].module.register_forward_pre_hook(pre, with_kwargs=True)


@pytest.mark.parametrize("exc", [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
                                 RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: "
                                              "can't allocate memory: you tried to allocate 80000000000 bytes")])
def test_out_of_memory_says_what_to_change(tiny_gpt2, exc):
    h = _inject_oom(tiny_gpt2, exc)
    try:
        with pytest.raises(OutOfMemoryError, match=re.escape("batch_size=4")) as e:
            patching(tiny_gpt2, CLEAN, CORRUPT, answers=("mary", "john"), batch_size=8, per_head=False)
        assert "shorter text" in str(e.value) and "dtype='bfloat16'" in str(e.value)
        with pytest.raises(OutOfMemoryError, match=re.escape("internal_batch_size=2")):
            attribute(tiny_gpt2, TEXT, method="ig", generate=2, steps=8, internal_batch_size=4,
                      compute_faithfulness=False)
        with pytest.raises(OutOfMemoryError, match=re.escape("internal_batch_size=")):
            attribute(tiny_gpt2, TEXT, method="occlusion", generate=2, internal_batch_size=3,
                      compute_faithfulness=False)
    finally:
        h.remove()
    # other errors pass through unchanged
    h = _inject_oom(tiny_gpt2, ValueError("not memory"))
    try:
        with pytest.raises(ValueError, match="not memory"):
            attribute(tiny_gpt2, TEXT, method="ig", generate=2, steps=8, internal_batch_size=4,
                      compute_faithfulness=False)
    finally:
        h.remove()


def test_is_oom():
    assert budget.is_oom(torch.OutOfMemoryError("CUDA out of memory"))
    assert budget.is_oom(MemoryError())
    assert budget.is_oom(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))
    assert not budget.is_oom(RuntimeError("shape mismatch"))
    assert not budget.is_oom(OutOfMemoryError("ours, already clear"))
