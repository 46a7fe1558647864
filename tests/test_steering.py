"""Steering: `steer` adds strength x vector to a block's output exactly (a hand hook on the block,
several families, and through nnsight equal to native); the per-row op equals separate runs; the
keyword direction flips neutral texts of the keyword classifier; exports read back."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import llm_widgets as lw
from llm_widgets.compute.activations import token_states
from llm_widgets.compute.steering import steer, steering_vector
from llm_widgets.compute.steering_export import read_gguf
from llm_widgets.compute.steering_grid import classifier_sweep, generation_grid
from llm_widgets.compute.steering_ops import RowAdd
from llm_widgets.errors import BackendUnsupportedError, LLMWidgetsError
from llm_widgets.execution import Program, Write, run
from llm_widgets.teaching.classifier import FILLER_WORDS, keyword_classifier, keyword_dataset
from llm_widgets.testing import build

TEXT = "the cat sat on the mat because it was tired"


def _session(fam, tok):
    return lw.load((build(fam), tok), device="cpu")


@pytest.mark.parametrize("fam", ["gpt2", "llama", "bert", "gemma2"])
def test_steer_equals_a_hand_hook_on_the_block_output(fam, minilm_tokenizer):
    s = _session(fam, minilm_tokenizer)
    enc, _, _ = s.encode(TEXT)
    D, layer = s.adapter.d_model, 0
    vec = torch.randn(D, generator=torch.Generator().manual_seed(1))

    def hook(module, args, out):
        if isinstance(out, tuple):
            return (out[0] + 3.0 * vec,) + tuple(out[1:])
        return out + 3.0 * vec

    h = s.adapter.blocks[layer].module.register_forward_hook(hook)
    try:
        with torch.no_grad():
            want = s.model(**enc).logits
    finally:
        h.remove()
    with steer(s, vec.numpy(), layer=layer, strength=3.0):
        with torch.no_grad():
            got = s.model(**enc).logits
    with torch.no_grad():
        plain = s.model(**enc).logits
    assert float((got - want).abs().max()) <= 1e-6
    assert float((got - plain).abs().max()) > 1e-3  # the edit does something (and is gone after the block)


def test_row_add_equals_one_run_per_strength(tiny_gpt2):
    s = tiny_gpt2
    enc, _, _ = s.encode(TEXT)
    vec = torch.randn(s.adapter.d_model, generator=torch.Generator().manual_seed(2))
    strengths = [0.0, 1.5, -4.0]
    three = {k: v.repeat(3, 1) for k, v in enc.items()}
    got = run(s, Program(three, writes=[Write("resid", 1, RowAdd(vec, torch.tensor(strengths)))], logits="all")).logits
    for i, st in enumerate(strengths):
        with steer(s, vec, layer=1, strength=st):
            want = run(s, Program(enc, logits="all")).logits
        assert float((got[i] - want[0]).abs().max()) <= 1e-5


def test_steer_through_nnsight_equals_native(minilm_tokenizer):
    pytest.importorskip("nnsight")
    m = build("llama")
    native = lw.load((m, minilm_tokenizer), device="cpu")
    nn = lw.load((copy.deepcopy(m), minilm_tokenizer), device="cpu", backend="nnsight")
    enc, _, _ = native.encode(TEXT)
    vec = torch.randn(native.adapter.d_model, generator=torch.Generator().manual_seed(3))
    outs = []
    for s in (native, nn):
        with steer(s, vec, layer=1, strength=2.5, positions=[-1, 2]):
            outs.append(run(s, Program(enc, logits="all")).logits)
    assert float((outs[0] - outs[1]).abs().max()) <= 1e-6
    rows = {k: v.repeat(2, 1) for k, v in enc.items()}
    w = [Write("resid", 0, RowAdd(vec, torch.tensor([1.0, -2.0])))]
    a, b = (run(s, Program(rows, writes=w, logits="all")).logits for s in (native, nn))
    assert float((a - b).abs().max()) <= 1e-6
    with pytest.raises(BackendUnsupportedError, match="generate"):  # generation needs the native executor
        generation_grid(nn, ["the cat"], vec.numpy(), [0], [0.0, 1.0], max_new_tokens=2)


@pytest.fixture(scope="module")
def keyword():
    s = keyword_classifier()
    texts, labels, _ = keyword_dataset(160, seed=1)
    pos = [t for t, y in zip(texts, labels) if y == 0][:40]  # NEGATIVE: the keyword class neutral texts are not
    neg = [t for t, y in zip(texts, labels) if y == 1][:40]
    g = np.random.default_rng(5)
    neutral = [" ".join(g.choice(FILLER_WORDS, size=8)) for _ in range(40)]
    return s, pos, neg, neutral


def test_keyword_direction_flips_neutral_texts(keyword):
    s, pos, neg, neutral = keyword
    v = steering_vector(s, positive=pos, negative=neg, layers=[0, 1])
    assert v.separation.min() >= 0.9  # held-out pairs
    sweep = classifier_sweep(s, neutral, v, [0], [0.0, 0.5, 1.0, 2.0, 4.0, 8.0])
    neg_p = sweep.per_prompt[0, :, :, s.class_labels.index("NEGATIVE")]  # [strengths, prompts]
    flipped = (neg_p > 0.5).mean(1)
    assert flipped[0] <= 0.1  # unsteered: neutral texts are not NEGATIVE
    assert np.all(np.diff(sweep.probs[0, :, 0]) >= -1e-6)  # the class probability grows with strength
    st = sweep.suggested_strength("NEGATIVE", 0)
    assert st is not None and flipped[sweep.strengths.index(st)] >= 0.9


def test_methods_agree_and_mean_diff_is_the_difference_of_means(keyword):
    s, pos, neg, _ = keyword
    vs = {m: steering_vector(s, positive=pos, negative=neg, method=m, layers=[1]) for m in ("mean_diff", "pca", "probe")}
    md = vs["mean_diff"].at(1)
    for m in ("pca", "probe"):
        c = float(vs[m].at(1) @ md / np.linalg.norm(vs[m].at(1)) / np.linalg.norm(md))
        assert c > 0.3 and vs[m].separation[0] >= 0.9, (m, c, vs[m].separation)
    # mean_diff is the difference of the class means of the pooled states (hand computation)
    hs = token_states(s, pos + neg)
    pooled = np.stack([h[2, ~sp.astype(bool)].mean(0) for h, sp in hs])
    np.testing.assert_allclose(md, pooled[:len(pos)].mean(0) - pooled[len(pos):].mean(0), atol=1e-4)


def test_exports_read_back(tmp_path, keyword):
    s, pos, neg, _ = keyword
    v = steering_vector(s, positive=pos[:6], negative=neg[:6], layers=[1])
    v.to_gguf(tmp_path / "v.gguf", model_hint="bert")
    meta, tensors = read_gguf(tmp_path / "v.gguf")
    assert meta["general.architecture"] == "controlvector" and meta["controlvector.layer_count"] == 1
    assert meta["controlvector.model_hint"] == "bert" and meta["version"] == 3
    np.testing.assert_array_equal(tensors["direction.1"], v.at(1))
    v.save(tmp_path / "v.safetensors")
    from safetensors.numpy import load_file

    np.testing.assert_array_equal(load_file(str(tmp_path / "v.safetensors"))["layer.1"], v.at(1))
    with pytest.raises(LLMWidgetsError, match="block 0"):
        steering_vector(s, positive=pos[:4], negative=neg[:4], layers=[0]).to_gguf(tmp_path / "x.gguf")


def test_bad_input_is_refused(tiny_gpt2):
    s = tiny_gpt2
    with pytest.raises(LLMWidgetsError, match="method"):
        steering_vector(s, positive=["a b", "c d"], negative=["e f", "g h"], method="nope")
    with pytest.raises(LLMWidgetsError, match="at least 2"):
        steering_vector(s, positive=["a b"], negative=["e f"])
    with pytest.raises(TypeError):
        steering_vector(s, positive=["a b", "c d"], negative=["e f", "g h"], bogus=1)
    with pytest.raises(LLMWidgetsError, match="shape"):
        with steer(s, np.zeros(3), layer=0):
            pass
    with pytest.raises(LLMWidgetsError, match="out of range"):
        with steer(s, np.zeros(s.adapter.d_model), layer=99):
            pass


def test_generation_grid_marks_changes_and_keeps_strength_zero(tiny_gpt2):
    s = tiny_gpt2
    vec = torch.randn(s.adapter.d_model, generator=torch.Generator().manual_seed(4)) * 5
    g = generation_grid(s, ["the cat", "a dog went to"], vec.numpy(), [0, 1], [0.0, 8.0], max_new_tokens=6)
    assert g.score.shape == (2, 2, 2) and g.perplexity.shape == (2, 2, 2)
    assert not any(any(c) for row in g.changed for c in row[0])  # strength 0 = the unsteered continuation
    assert np.all(g.score[:, 0] == 0)
    # the batched rows equal one generate per cell
    from llm_widgets.compute.steering_grid import generate_rows

    ids = [s.tokenizer("a dog went to")["input_ids"]]
    with steer(s, vec.numpy(), layer=1, strength=8.0):
        one = generate_rows(s, ids, 6)
    assert s.tokenizer.decode(one[0].tolist(), skip_special_tokens=True) == g.texts[1][1][1]


def test_steering_view_suggests_a_strength_that_flips_the_classifier(keyword, tmp_path):
    s, pos, neg, neutral = keyword
    v = steering_vector(s, positive=pos, negative=neg, layers=[0, 1])
    view = lw.SteeringView(s, neutral, v, strengths=[0, 0.5, 1, 2, 4, 8], background=False)
    assert view.mode == "classify" and view.target == "NEGATIVE"  # the class the vector pushes towards
    st = view.suggested_strength(0)
    sweep = view.result
    flipped = (sweep.per_prompt[0, sweep.strengths.index(st), :, 0] > 0.5).mean()
    assert flipped >= 0.9 and (sweep.per_prompt[0, 0, :, 0] > 0.5).mean() <= 0.1
    np.testing.assert_allclose(view.probs, sweep.probs, atol=1e-6)
    view.save(tmp_path / "v.safetensors")
    assert "P(NEGATIVE)" in view.to_html(tmp_path / "v.html").read_text(encoding="utf-8")


def test_steering_view_generations(tiny_gpt2, tmp_path):
    s = tiny_gpt2
    vec = np.random.default_rng(0).standard_normal(s.adapter.d_model).astype(np.float32) * 20
    view = lw.SteeringView(s, ["the cat sat", "<b>x</b> y"], vec, layers=[1, 2], strengths=[0, 1, 8], max_new_tokens=5,
                           background=False)
    assert view.mode == "generate" and len(view.cells) == 2 and len(view.cells[0]) == 3
    score = view.score
    assert score.shape == (2, 3) and np.all(score[:, 0] == 0)
    assert view.selected_strength == 8
    g = view.result
    assert view.broken == g.broken(4.0).tolist()
    np.testing.assert_allclose(view.perplexity, g.perplexity.mean(2), rtol=1e-6)
    with pytest.raises(TypeError):
        lw.SteeringView(s, ["a"], vec, layers=[1], bogus=True)
    with pytest.raises(LLMWidgetsError, match="layers"):
        lw.SteeringView(s, ["a"], vec)


def test_a_probe_views_probe_gives_the_direction(keyword):
    s, pos, neg, _ = keyword
    texts = pos[:30] + neg[:30]
    labels = ["NEGATIVE"] * 30 + ["POSITIVE"] * 30
    view = lw.ProbeView(s, texts, labels, seeds=2, control=False, background=False)
    v = steering_vector(s, probe=view, target="NEGATIVE", layers=[0, 1])
    np.testing.assert_allclose(v.separation, view.result.accuracy[1:].mean(1))
    md = steering_vector(s, positive=pos[:30], negative=neg[:30], layers=[1]).at(1)
    u = v.at(1) / np.linalg.norm(v.at(1))
    assert float(u @ md) / np.linalg.norm(md) > 0.3  # points towards NEGATIVE, as the mean difference
    # its length: the view's class-mean difference along it
    X = view.activations.states[2].astype(np.float64)
    y = np.asarray(view.activations.labels)
    assert float(u @ v.at(1)) == pytest.approx(float(u @ (X[y == "NEGATIVE"].mean(0) - X[y == "POSITIVE"].mean(0))),
                                               rel=1e-4)
    with pytest.raises(LLMWidgetsError, match="method"):
        steering_vector(s, probe=view, target="NEGATIVE", method="pca")
    with pytest.raises(LLMWidgetsError, match="target"):
        steering_vector(s, probe=view, target="MAYBE")
