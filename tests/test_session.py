"""Session/load: model kinds, caching, and every kind of bad input with a clear error."""
import inspect

import numpy as np
import pytest
import torch
from transformers import AutoModel, T5Config, T5ForConditionalGeneration

import llm_widgets as lw
from llm_widgets.loading import default_model_path


def test_default_model_is_the_offline_minilm(minilm):
    assert minilm.kind == "encoder"
    assert (minilm.n_layers, minilm.n_heads, minilm.max_length) == (6, 12, 512)
    tr = minilm.trace("Hello world")
    assert tr.tokens == ["[CLS]", "hello", "world", "[SEP]"]
    assert tr.attentions.shape == (6, 12, 4, 4)
    assert tr.hidden_states.shape == (7, 4, 384)
    assert tr.special_mask.tolist() == [True, False, False, True]
    assert tr.word_ids == [None, 0, 1, None]


def test_hidden_states_equal_the_raw_model(minilm):
    raw = AutoModel.from_pretrained(default_model_path()).eval()
    enc = minilm.tokenizer("Hidden states are shared.", return_tensors="pt")
    with torch.no_grad():
        out = raw(**enc, output_hidden_states=True)
    expected = torch.stack([h[0] for h in out.hidden_states]).numpy()
    np.testing.assert_allclose(minilm.trace("Hidden states are shared.").hidden_states, expected, atol=1e-5)


def test_trace_is_cached_so_views_share_one_forward(minilm, monkeypatch):
    calls = []
    forward = minilm.forward
    monkeypatch.setattr(minilm, "forward", lambda **kw: calls.append(1) or forward(**kw))
    text = "A sentence traced only once."
    a = minilm.trace(text)
    lw.AttentionView(minilm, text)
    lw.AttentionView(minilm, text)
    assert minilm.trace(text) is a
    assert len(calls) == 1


def test_cache_never_serves_a_trace_from_other_hooks_or_weights(tiny_gpt2):
    """A trace computed under an ablation is not served afterwards, nor the clean one under it; a
    weight edited in place (even through .data) is seen."""
    from llm_widgets.compute.ablation import ablate

    s, text = tiny_gpt2, "the cache must follow the model"
    clean = s.trace(text)
    with ablate(s, heads=[(l, h) for l in range(s.n_layers) for h in range(s.n_heads)]):
        ablated = s.trace(text)
        assert not np.allclose(ablated.logits, clean.logits, atol=1e-3)
        assert s.trace(text) is not ablated  # never cached while hooks are on
    again = s.trace(text)
    np.testing.assert_array_equal(again.logits, clean.logits)
    w = s.model.lm_head.weight
    old = w.data[0, 0].item()
    try:
        w.data[0, 0] = float("nan")
        with pytest.raises(lw.NonFiniteError):
            s.trace(text)
    finally:
        w.data[0, 0] = old
    np.testing.assert_array_equal(s.trace(text).logits, clean.logits)


def test_causal_lm_session(tiny_gpt2):
    assert tiny_gpt2.kind == "decoder" and tiny_gpt2.is_causal
    tr = tiny_gpt2.trace("one two three")
    assert tr.logits.shape == (len(tr.tokens), tiny_gpt2.tokenizer.vocab_size)


def test_encoder_decoder_session(minilm_tokenizer):
    torch.manual_seed(0)
    cfg = T5Config(vocab_size=minilm_tokenizer.vocab_size, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                   num_decoder_layers=2, num_heads=4, decoder_start_token_id=0, pad_token_id=0)
    s = lw.load((T5ForConditionalGeneration(cfg), minilm_tokenizer), device="cpu")
    assert s.kind == "encoder-decoder"
    tr = s.trace("translate this sentence")
    t = len(tr.tokens)
    assert tr.attentions.shape == (2, 4, t, t)
    assert tr.cross_attentions.shape == (2, 4, 1, t)
    view = lw.AttentionView(s, "translate this sentence")
    assert view.n_layers == 2 and view.n_heads == 4


def test_empty_text_is_a_clear_error(minilm):
    for text in ["", "   \n"]:
        with pytest.raises(lw.EmptyInputError, match="empty"):
            minilm.trace(text)
        with pytest.raises(lw.EmptyInputError):
            lw.AttentionView(minilm, text)


def test_text_over_max_length(minilm):
    long_text = "word " * 600
    with pytest.raises(lw.InputTooLongError, match=r"602 tokens long.*at most 512.*truncate=True"):
        minilm.trace(long_text)
    view = lw.AttentionView(minilm, long_text, truncate=True)
    assert len(view.tokens) == 512
    assert "truncated from 602 to 512" in view.notice


def test_unknown_model_names_it():
    with pytest.raises(lw.ModelNotFoundError, match="no-such-org/no-such-model") as e:
        lw.load("no-such-org/no-such-model")
    assert "Traceback" not in str(e.value)
    assert e.value.__cause__ is None  # no chained traceback soup


def test_sdpa_model_gets_attention_on_demand_equal_to_eager(minilm):
    """A model loaded with sdpa returns no weights: they are computed from its captured queries and
    keys instead, and equal the eager model's own."""
    s = lw.load(str(default_model_path()), attn_implementation="sdpa")
    text = "the weights are computed on demand here"
    tr = s.trace(text)
    assert tr.attentions is None and tr.hidden_states.shape[0] == 7 and tr.attention is not None
    assert s.model.config._attn_implementation == "sdpa"  # switched back after the capture, if at all
    v = lw.AttentionView(s, text)
    ref = minilm.trace(text).attentions
    np.testing.assert_allclose(v.result.attentions, ref, atol=1e-5)
    np.testing.assert_allclose(v.result.stats, lw.AttentionView(minilm, text).result.stats, atol=1e-5)


def test_pair_with_sdpa_model_is_switched_to_eager(minilm_tokenizer):
    model = AutoModel.from_pretrained(default_model_path())  # transformers 5 default: sdpa
    s = lw.load((model, minilm_tokenizer))
    assert s.trace("switched to eager").attentions is not None


def test_non_finite_values_are_reported(minilm_tokenizer):
    from transformers import BertConfig, BertModel

    model = BertModel(BertConfig(vocab_size=minilm_tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=64))
    with torch.no_grad():
        model.encoder.layer[0].output.dense.weight.fill_(float("nan"))
    s = lw.load((model, minilm_tokenizer), device="cpu")
    with pytest.raises(lw.NonFiniteError, match="NaN/inf"):
        s.trace("this overflows")


def test_never_trusts_remote_code_by_default():
    assert inspect.signature(lw.load).parameters["trust_remote_code"].default is False


def test_out_of_memory_is_a_clear_error(minilm, monkeypatch):
    def boom(*a, **k):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(minilm, "model", type("M", (), {"__call__": boom, "config": minilm.model.config})())
    with pytest.raises(lw.OutOfMemoryError, match="Out of GPU memory.*truncate=True"):
        minilm.forward(**minilm.encode("memory")[0])


def test_model_lock_serialises_hooks_and_forwards_across_threads(tiny_gpt2):
    """A forward in one thread never runs through hooks another thread holds on the model."""
    import copy
    import threading

    from llm_widgets.guards import model_lock

    model = tiny_gpt2.model
    lock = model_lock(model)
    assert model_lock(model) is lock
    enc, _, _ = tiny_gpt2.encode("the cat sat")
    seen = []
    hook_on = threading.Event()
    done = threading.Event()

    def other_thread():
        hook_on.wait(10)
        with torch.no_grad():
            model(**enc)  # must wait until the hook below is gone
        done.set()

    th = threading.Thread(target=other_thread)
    th.start()
    with lock:
        h = model.transformer.h[0].register_forward_hook(lambda *a: seen.append(threading.get_ident()))
        hook_on.set()
        assert not done.wait(0.5)  # blocked while we hold the hooks
        with torch.no_grad():
            model(**enc)  # re-entrant: our own forward runs
        h.remove()
    th.join(10)
    assert done.is_set() and seen == [threading.get_ident()]
    # an exception inside forward gives the lock back; the model stays copyable
    with pytest.raises((IndexError, RuntimeError)):
        model(input_ids=torch.tensor([[10 ** 9]]))
    free = []
    t2 = threading.Thread(target=lambda: free.append(lock.acquire(timeout=2) and (lock.release() or True)))
    t2.start()
    t2.join(5)
    assert free == [True]  # another thread can take it: the failed forward released it
    copy.deepcopy(model)
