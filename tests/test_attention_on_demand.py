"""Attention on demand (llm_widgets.attention_source): weights computed from the queries and keys the
model's fast attention (sdpa) was called with equal the eager path's own, for every family that has
both; long inputs never hold [L, H, T, T]; overviews, tiles and summaries are exact reductions."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

import llm_widgets as lw
from llm_widgets.widgets.traits import _unpack
from llm_widgets.adapter import adapter_of
from llm_widgets.compute import attention as A
from llm_widgets.attention_source import EagerAttention, capture_attention
from llm_widgets.errors import UnsupportedModelError

from llm_widgets.testing import FAMILIES, build

T = 256


def _attention_function_calls(model, kw) -> int | None:
    """How many times one forward, with the model switched to sdpa, calls transformers' registered
    sdpa attention function (None: the model has no sdpa path). Observed on the model, never read
    from a family list or a release: upstream moves families onto these functions (Falcon, 5.25)."""
    from transformers.modeling_utils import AttentionInterface

    mapping = AttentionInterface._global_mapping
    impl, fn, n = model.config._attn_implementation, AttentionInterface._global_mapping["sdpa"], [0]

    def counting(*args, **kwargs):
        n[0] += 1
        return fn(*args, **kwargs)

    try:
        model.set_attn_implementation("sdpa")
    except Exception:
        return None
    mapping["sdpa"] = counting
    try:
        with torch.no_grad():
            model(**kw)
    finally:
        mapping["sdpa"] = fn
        model.set_attn_implementation(impl)
    return n[0]


def _inputs(family):
    ids = torch.randint(5, 1000, (1, T), generator=torch.Generator().manual_seed(0))
    kw = {"input_ids": ids}
    if FAMILIES[family][0] == "seq2seq":
        kw["decoder_input_ids"] = torch.tensor([[0]])
    return kw


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_on_demand_equals_eager_at_256_tokens(family):
    """The capability both ways: a model whose blocks each make one call through transformers'
    attention functions is read on demand and equals its eager weights; any other model is refused
    with the reason (load it eager)."""
    model = build(family, positions=T + 2)  # RoBERTa counts positions from padding_idx + 1
    kw = _inputs(family)
    with torch.no_grad():
        out = model(**kw, output_attentions=True)
    eager = out.encoder_attentions if FAMILIES[family][0] == "seq2seq" else out.attentions
    eager = torch.stack([a[0] for a in eager]).float().numpy()
    impl = model.config._attn_implementation
    blocks = adapter_of(model).blocks
    calls = _attention_function_calls(model, kw)
    if not blocks or calls != len(blocks):
        with pytest.raises(UnsupportedModelError, match="eager"):
            with capture_attention(model, blocks) as cap:
                with torch.no_grad():
                    model(**kw)
            cap.source()
        assert model.config._attn_implementation == impl  # restored
        return
    with capture_attention(model, blocks) as cap:
        with torch.no_grad():
            model(**kw)
    src = cap.source()
    assert model.config._attn_implementation == impl  # the eager model is switched back
    got = np.stack([[src.head(layer, h) for h in range(src.n_heads)] for layer in range(src.n_layers)])
    assert got.shape == eager.shape
    np.testing.assert_allclose(got, eager, atol=1e-5)


def test_the_matrix_holds_both_kinds():
    """The test above is not vacuous on any release: most of the matrix goes through the
    attention functions, and the encoder-decoders (whose blocks are not mapped) never do."""
    through = [f for f in sorted(FAMILIES) if FAMILIES[f][0] != "seq2seq"
               and _attention_function_calls(build(f, positions=T + 2), _inputs(f)) == len(adapter_of(build(f)).blocks)]
    assert len(through) >= len(FAMILIES) // 2, through
    assert [f for f in FAMILIES if FAMILIES[f][0] == "seq2seq"]


def test_a_block_outside_the_attention_functions_is_refused_with_the_reason():
    """A model whose attention does not go through transformers' functions in one block (custom
    code: here one block's attention computed by hand) is refused, never half-drawn."""
    model = build("llama", positions=T + 2)
    attn = model.model.layers[1].self_attn
    inner = type(attn).forward

    def by_hand(self, hidden_states, *args, **kwargs):  # the same arithmetic, not through the registry
        from transformers.integrations.sdpa_attention import sdpa_attention_forward
        from transformers.modeling_utils import AttentionInterface

        mapping = AttentionInterface._global_mapping
        saved, mapping["sdpa"] = mapping["sdpa"], sdpa_attention_forward
        try:
            return inner(self, hidden_states, *args, **kwargs)
        finally:
            mapping["sdpa"] = saved

    attn.forward = by_hand.__get__(attn)
    with pytest.raises(UnsupportedModelError, match="block 1 made 0"):
        with capture_attention(model, adapter_of(model).blocks) as cap:
            with torch.no_grad():
                model(**_inputs("llama"))
        cap.source()


@pytest.fixture(scope="module")
def long_llama(minilm_tokenizer):
    """A tiny Llama-shaped model (GQA: 4 query heads share 2 key heads) on a long input."""
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=minilm_tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, intermediate_size=128,
                      max_position_embeddings=8192, attn_implementation="eager")
    tok = copy.deepcopy(minilm_tokenizer)
    tok.model_max_length = 8192  # the tokenizer's own limit is MiniLM's 512
    s = lw.load((LlamaForCausalLM(cfg), tok), device="cpu")
    words = ("the cat sat on the mat and the dog ran to the park " * 200).split()
    return s, " ".join(words[:1500])


def test_long_input_is_computed_on_demand_and_equals_eager_per_head(long_llama):
    s, text = long_llama
    tr = s.trace(text)
    n = tr.n_tokens
    assert n > lw.trace.EAGER_MAX_TOKENS and tr.attentions is None  # never [L, H, T, T]
    assert type(tr.attention).__name__ == "CapturedAttention"
    assert tr.attention.nbytes() < 4 * 2 * 4 * n * n / 20  # q and k, not the weights
    with torch.no_grad():  # the reference: the eager forward of the same model, one layer's weights
        ref = s.model(**s.encode(text)[0], output_attentions=True).attentions
    for layer, head in ((0, 0), (1, 3)):
        np.testing.assert_allclose(tr.attention.head(layer, head), ref[layer][0, head].numpy(), atol=1e-5)


def test_overview_tiles_and_view_on_a_long_input(long_llama):
    s, text = long_llama
    v = lw.AttentionView(s, text, background=False)
    n = v.n_tokens
    m = v.matrix
    step = m.of["step"]
    assert m.of["n"] == n and step == math.ceil(n / 512) and m.shape == (math.ceil(n / step),) * 2
    full = v.result.source.head(0, 0)
    padded = np.zeros((m.shape[0] * step,) * 2, np.float32)
    padded[:n, :n] = full
    pooled = padded.reshape(m.shape[0], step, m.shape[0], step).max(axis=(1, 3))
    np.testing.assert_allclose(m, pooled, atol=1e-6)
    sent = _unpack(v.get_state("matrix")["matrix"])  # float16 transport
    np.testing.assert_allclose(sent, pooled, atol=1e-3)
    v.tile_request = {"mode": "head", "layer": 1, "head": 2, "r0": 700, "c0": 600, "rows": 64, "cols": 128}
    assert v.tile.of["r0"] == 700 and v.tile.of["head"] == 2 and v.tile.shape == (64, 128)
    np.testing.assert_allclose(v.tile, v.result.source.head(1, 2)[700:764, 600:728], atol=1e-3)
    v.tile_request = {"mode": "head", "layer": 1, "head": 2, "r0": 0, "c0": 0, "rows": 4096, "cols": 8}
    assert "at most 256" in v.error
    # the grid and statistics: a streaming pass equal to the vectorised reductions of full matrices
    assert v.stats.shape == (4, 2, 4) and v.grid.shape == (2, 4, 48, 48)
    row = np.stack([v.result.source.head(1, h) for h in range(4)])[None]
    np.testing.assert_allclose(v.result.stats[:, 1:2], A.head_statistics(row), atol=1e-5)
    np.testing.assert_allclose(v.result.thumbnails[1], A.thumbnails(row, 48)[0], atol=1e-6)
    with pytest.raises(Exception, match="rollout .* up to 1024 tokens"):
        v.mode = "rollout"
    v.mode = "mean"
    mean = np.mean([v.result.source.head(0, h) for h in range(4)], axis=0)
    assert v.matrix.of["mode"] == "mean" and v.matrix.max() == pytest.approx(mean.max(), abs=1e-3)
    A.MATERIALISE_MAX_BYTES, limit = 1 << 20, A.MATERIALISE_MAX_BYTES
    try:
        with pytest.raises(lw.LLMWidgetsError, match="read heads one at a time"):
            v.result.attentions  # noqa: B018
    finally:
        A.MATERIALISE_MAX_BYTES = limit


def test_cache_is_bounded_in_bytes(long_llama, monkeypatch):
    s, text = long_llama
    monkeypatch.setattr(lw.session, "CACHE_BYTES", 1)
    s._cache.clear()
    s.trace(text)
    s.trace("a short one")
    assert len(s._cache) == 1  # the newest only: the budget is in bytes, not entries
    monkeypatch.setattr(lw.session, "CACHE_BYTES", 1 << 40)
    s.trace(text)
    assert len(s._cache) == 2


def test_eager_source_summaries_equal_vectorised():
    rng = np.random.default_rng(0)
    attn = rng.random((2, 3, 70, 70)).astype(np.float32)
    attn /= attn.sum(-1, keepdims=True)
    thumbs, stats = EagerAttention(attn).summaries(16)
    np.testing.assert_allclose(stats, A.head_statistics(attn), atol=1e-5)
    np.testing.assert_allclose(thumbs, A.thumbnails(attn, 16), atol=1e-6)
    ov, step = EagerAttention(attn).overview(1, 2, size=32)
    assert step == 3 and ov.shape == (24, 24) and ov[5, 7] == attn[1, 2, 15:18, 21:24].max()
