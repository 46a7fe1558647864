"""AttentionView and compute.attention against known answers."""
import ipywidgets
import numpy as np
import pytest
import torch
from ipywidgets.widgets.widget import _remove_buffers
from transformers import AutoModel, GPT2Config, GPT2LMHeadModel

import llm_widgets as lw
from llm_widgets.compute import attention as A
from llm_widgets.loading import default_model_path

TEXT = "The cat sat on the mat because it was tired."


def raw_attentions(model, tokenizer, text):
    # one segment: no token_type_ids (GPT-2 would add wte(0) for them; BERT reads absent as zeros)
    enc = {k: v for k, v in tokenizer(text, return_tensors="pt").items() if k != "token_type_ids"}
    with torch.no_grad():
        out = model(**enc, output_attentions=True)
    return torch.stack([a[0] for a in out.attentions]).numpy()


def test_minilm_attention_equals_hf_model(minilm):
    raw = AutoModel.from_pretrained(default_model_path(), attn_implementation="eager").eval()
    expected = raw_attentions(raw, minilm.tokenizer, TEXT)
    view = lw.AttentionView(minilm, TEXT)
    assert view.result.attentions.shape == (6, 12, 13, 13) == expected.shape
    np.testing.assert_allclose(view.result.attentions, expected, atol=1e-6)
    np.testing.assert_allclose(view.result.attentions.sum(-1), 1.0, atol=1e-5)
    # what the view draws: the selected head travels as float16, equal to float16 precision
    for layer, head in [(0, 0), (2, 5), (5, 11)]:
        view.selected_layer, view.selected_head = layer, head
        drawn = view.matrix
        assert (view.matrix.of["layer"], view.matrix.of["head"]) == (layer, head)
        np.testing.assert_allclose(drawn, expected[layer, head], atol=1e-3, rtol=1e-3)
    # thumbnails (T <= 48: full resolution) as uint8: within half a quantisation step
    np.testing.assert_allclose(view.grid, expected, atol=0.5 / 255 + 1e-7)
    assert view.tokens == ["[CLS]", "the", "cat", "sat", "on", "the", "mat", "because", "it",
                           "was", "tired", ".", "[SEP]"]


def test_causal_model_attention_is_lower_triangular(tiny_gpt2):
    view = lw.AttentionView(tiny_gpt2, TEXT)
    expected = raw_attentions(tiny_gpt2.model, tiny_gpt2.tokenizer, TEXT)
    a = view.result.attentions
    np.testing.assert_allclose(a, expected, atol=1e-6)
    t = a.shape[-1]
    assert np.all(a[..., np.triu_indices(t, 1)[0], np.triu_indices(t, 1)[1]] == 0)
    np.testing.assert_allclose(a.sum(-1), 1.0, atol=1e-5)
    assert view.causal is True


def test_statistics_on_constructed_matrices():
    t = 6
    ident = np.eye(t)
    prev = np.eye(t, k=-1)
    prev[0, 0] = 1.0
    sink = np.zeros((t, t))
    sink[:, 0] = 1.0
    causal_uniform = np.tril(np.ones((t, t)))
    causal_uniform /= causal_uniform.sum(-1, keepdims=True)
    stats = A.head_statistics(np.stack([ident, prev, sink, causal_uniform])[None])  # [4 stats, 1, 4]
    ent, snk, prv, diag = stats[:, 0]
    np.testing.assert_allclose(ent, [0, 0, 0, np.mean(np.log(np.arange(1, t + 1)))], atol=1e-6)
    np.testing.assert_allclose(snk, [1 / t, 2 / t, 1, np.mean(1 / np.arange(1, t + 1))], atol=1e-6)
    np.testing.assert_allclose(prv, [0, 1, 1 / (t - 1), np.mean(1 / np.arange(2, t + 1))], atol=1e-6)
    np.testing.assert_allclose(diag, [1, 1 / t, 1 / t, np.mean(1 / np.arange(1, t + 1))], atol=1e-6)
    # induction-style offset: attend to the token period-1 back
    period = 3
    ind = np.eye(t, k=-(period - 1))
    assert A.offset_score(ind, period - 1) == pytest.approx(1.0)


def test_rollout_and_mean():
    rng = np.random.default_rng(0)
    a = rng.random((3, 2, 5, 5)).astype(np.float32)
    a /= a.sum(-1, keepdims=True)
    mean = A.mean_over_heads(a)
    np.testing.assert_allclose(mean, a.mean(1), atol=1e-7)
    r = A.rollout(a)
    # by hand: product of (0.5 I + 0.5 mean) layer by layer
    acc = np.eye(5)
    for layer in range(3):
        step = 0.5 * np.eye(5) + 0.5 * mean[layer]
        acc = step @ acc
        np.testing.assert_allclose(r[layer], acc, atol=1e-5)
    np.testing.assert_allclose(r.sum(-1), 1.0, atol=1e-5)


def test_thumbnails_block_mean():
    a = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_allclose(A.thumbnails(a, 2), [[2.5, 4.5], [10.5, 12.5]])
    assert A.thumbnails(a, 8) is not None and A.thumbnails(a, 8).shape == (4, 4)


def prev_token_gpt2(tokenizer, n_embd=64, n_head=2):
    """A GPT-2 whose head (0, 0) attends to the previous token by construction: position embeddings
    are one-hot, token embeddings zero, and W_q maps position i onto the key of position i-1."""
    cfg = GPT2Config(vocab_size=tokenizer.vocab_size, n_positions=32, n_embd=n_embd, n_layer=1,
                     n_head=n_head, bos_token_id=tokenizer.cls_token_id,
                     eos_token_id=tokenizer.sep_token_id, attn_implementation="eager")
    model = GPT2LMHeadModel(cfg).eval()
    hd = n_embd // n_head
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        tr = model.transformer
        tr.wte.weight.zero_()
        tr.wpe.weight.copy_(torch.eye(32, n_embd))
        for ln in (tr.h[0].ln_1, tr.h[0].ln_2, tr.ln_f):
            ln.weight.fill_(1.0)
        w = tr.h[0].attn.c_attn.weight  # Conv1D: x @ w, columns = [q | k | v]
        for i in range(1, hd):
            w[i, i - 1] = 1.0  # q_i points at position i-1 ...
            w[i - 1, n_embd + (i - 1)] = 1.0  # ... which is where k_{i-1} points
    return model


def test_statistics_flag_a_hand_built_previous_token_head(minilm_tokenizer):
    session = lw.load((prev_token_gpt2(minilm_tokenizer), minilm_tokenizer), device="cpu")
    view = lw.AttentionView(session, "one two three four five six seven eight nine ten")
    names = list(view.result.stat_names)
    prev = view.result.stats[names.index("prev_token")]
    assert prev[0, 0] > 0.9  # the constructed head
    assert prev[0, 1] < 0.5  # the zeroed head attends uniformly
    assert int(np.argmax(prev.ravel())) == 0


def test_transport_is_binary_and_compact(minilm):
    view = lw.AttentionView(minilm, TEXT)
    state, buffer_paths, buffers = _remove_buffers(view.get_state())
    paths = {tuple(p) for p in buffer_paths}
    assert {("grid", "data"), ("matrix", "data"), ("stats", "data")} <= paths
    L, H, T = 6, 12, 13
    grid_bytes = len(view.get_state("grid")["grid"]["data"])
    assert grid_bytes == L * H * T * T  # one byte per shown cell
    import json
    state.pop("_esm")
    assert len(json.dumps(state)) < 3000  # no float lists in the JSON part


def front_end_update(widget, **state):
    """Deliver an 'update' comm message exactly as the browser sends it."""
    widget._handle_msg({"content": {"data": {"method": "update", "state": state, "buffer_paths": []}},
                        "buffers": []})


def test_selection_traits_as_the_front_end_sets_them(minilm):
    view = lw.AttentionView(minilm, TEXT)
    seen = []
    view.observe(lambda c: seen.append((c["name"], c["new"])), names=["selected_layer", "selected_head"])
    # exactly what ipywidgets does with an 'update' message from the browser
    front_end_update(view, selected_layer=2, selected_head=5)
    assert (view.selected_layer, view.selected_head) == (2, 5)
    assert ("selected_layer", 2) in seen and ("selected_head", 5) in seen
    assert (view.matrix.of["layer"], view.matrix.of["head"]) == (2, 5)
    front_end_update(view, selected_token=3, mode="rollout")
    assert view.selected_token == 3 and view.matrix.of["mode"] == "rollout"
    np.testing.assert_allclose(view.matrix, A.rollout(view.result.attentions)[2], atol=1e-3)
    # link two views: selecting in one selects in the other
    other = lw.AttentionView(minilm, TEXT)
    ipywidgets.link((view, "selected_head"), (other, "selected_head"))
    view.selected_head = 7
    assert other.selected_head == 7 and other.matrix.of["head"] == 7


def test_invalid_selection_is_rejected_clearly(minilm):
    view = lw.AttentionView(minilm, TEXT)
    import traitlets
    with pytest.raises(traitlets.TraitError, match="selected_layer must be in 0..5"):
        view.selected_layer = 6
    with pytest.raises(traitlets.TraitError, match="selected_token"):
        view.selected_token = 99
    assert view.selected_layer == 0  # nothing lost


def test_export_is_self_contained_and_escaped(minilm, tmp_path):
    view = lw.AttentionView(minilm, "a </script><img src=x onerror=alert(1)> b")
    html = view.to_html(tmp_path / "a.html").read_text()
    body = html.split('id="lw-payload">', 1)[1].split("</script>", 1)[0]
    assert "<" not in body and ">" not in body  # the data cannot close its script element
    assert "http://" not in html and "https://" not in html.replace("https://github.com", "")
    assert "Content-Security-Policy" in html



def test_stat_lookup_and_top_heads_on_a_constructed_grid():
    from llm_widgets.compute.attention import STAT_NAMES, AttentionResult
    from llm_widgets.errors import LLMWidgetsError

    T = 5
    attn = np.tile(np.full((T, T), 1 / T, np.float32), (2, 3, 1, 1))
    attn[1, 2] = np.eye(T, k=-1)  # a pure previous-token head at (1, 2) ...
    attn[1, 2, 0, 0] = 1.0
    from llm_widgets.attention_source import EagerAttention

    res = AttentionResult(raw_tokens=list("abcde"), tokens=list("abcde"), source=EagerAttention(attn),
                          stats=A.head_statistics(attn))
    # the streaming pass over any source gives the same statistics and thumbnails as the vectorised one
    thumbs, stats = EagerAttention(attn).summaries(3)
    np.testing.assert_allclose(stats, A.head_statistics(attn), atol=1e-6)
    np.testing.assert_allclose(thumbs, A.thumbnails(attn, 3), atol=1e-6)
    assert res.stat("prev_token").shape == (2, 3)
    assert res.top_heads("prev_token", k=1)[0][:2] == (1, 2)
    assert res.top_heads("prev_token", k=1)[0][2] == pytest.approx(res.stat("prev_token")[1, 2])
    with pytest.raises(LLMWidgetsError, match="unknown statistic"):
        res.stat("nope")
    assert set(STAT_NAMES) >= {"prev_token", "sink"}
