"""Concept erasure: the affine op in the forward is the LEACE eraser (equal to concept-erasure's own
on the block's states), through nnsight equal to native; on the keyword classifier erasing at the
readout position of the last block drops it to chance while a random direction of the same rank
and erasure at every token do not; a fresh probe after erasure is at the majority baseline."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import llm_widgets as lw
from llm_widgets.compute.amnesic import amnesic, task_metric
from llm_widgets.compute.erasure import block_states, erase_concept, random_erasure, readout_position
from llm_widgets.errors import LLMWidgetsError
from llm_widgets.execution import Program, run
from llm_widgets.teaching.classifier import keyword_classifier, keyword_dataset
from llm_widgets.testing import build


@pytest.fixture(scope="module")
def keyword():
    s = keyword_classifier()
    texts, labels, _ = keyword_dataset(160, seed=1)
    return s, texts, labels


def test_the_op_is_the_leace_eraser(keyword):
    from concept_erasure import LeaceFitter

    s, texts, labels = keyword
    e = erase_concept(s, texts, labels, layer=0, positions="all")
    X, owner = block_states(s, texts, 0, None)
    y = torch.tensor([labels[i] for i in owner], dtype=torch.float64)[:, None]
    ref = LeaceFitter.fit(torch.as_tensor(X, dtype=torch.float64), y).eraser
    want = ref(torch.as_tensor(X, dtype=torch.float64)).numpy()
    got, _ = block_states(s, texts, 0, None, writes=e.writes())  # read back from the forward, after the write
    np.testing.assert_allclose(got, want, atol=1e-4)
    np.testing.assert_allclose(e.apply(X), want, atol=1e-6)
    # erased: the class means coincide along every direction
    gap = got[y[:, 0].numpy() == 1].mean(0) - got[y[:, 0].numpy() == 0].mean(0)
    assert np.abs(gap).max() < 1e-3 * np.abs(X).max()


def test_readout_erasure_breaks_the_classifier_and_controls_do_not(keyword):
    s, texts, labels = keyword
    assert readout_position(s) == 0  # BERT's head reads [CLS]
    acc = {}
    for layer, pos in ((1, "readout"), (1, "all"), (0, "all")):
        e = erase_concept(s, texts, labels, layer=layer, positions=pos)
        assert e.rank == 1
        acc[(layer, pos)] = task_metric(s, texts, e.writes(), targets=labels)[1]
        if (layer, pos) == (1, "readout"):
            acc["random"] = task_metric(s, texts, random_erasure(e).writes(), targets=labels)[1]
            with e:  # the context: every forward of this thread
                enc = s.tokenizer(texts, return_tensors="pt", padding=True)
                with torch.no_grad():
                    inside = float((s.model(**enc).logits.argmax(-1).numpy() == np.array(labels)).mean())
            assert inside == pytest.approx(acc[(1, "readout")])
    assert task_metric(s, texts, targets=labels)[1] == 1.0
    assert acc[(1, "readout")] <= 0.6  # chance (0.51 measured on 300 texts)
    assert acc["random"] >= 0.95 and acc[(1, "all")] >= 0.95 and acc[(0, "all")] >= 0.95


@pytest.mark.slow
def test_fresh_probe_after_erasure_is_at_the_majority_baseline(keyword):
    s, texts, labels = keyword
    e = erase_concept(s, texts[:120], labels[:120], layer=1, positions="readout")
    r = amnesic(s, e, texts[:120], labels[:120], splits=3)
    assert r.probe_before >= 0.95 and r.probe_random >= 0.95
    assert abs(r.probe_after - r.majority) <= 0.05
    assert r.metric == "accuracy" and r.task_before == 1.0 and r.task_erased <= 0.65 and r.task_random >= 0.95


def test_readout_of_a_language_model_and_refusals(minilm_tokenizer, keyword):
    s = lw.load((build("gpt2"), minilm_tokenizer), device="cpu")
    assert readout_position(s) == -1
    lm_texts = ["the cat sat", "a dog ran far away today", "it was hot", "we saw a big red car", "the sun", "a b c d e"]
    e = erase_concept(s, lm_texts, [0, 1, 0, 1, 0, 1], layer=1, positions="readout")
    X, _ = block_states(s, lm_texts, 1, -1)  # texts of different lengths: each text's own last token
    got, _ = block_states(s, lm_texts, 1, -1, writes=e.writes())
    np.testing.assert_allclose(got, e.apply(X), atol=1e-4)
    k, texts, labels = keyword
    with pytest.raises(LLMWidgetsError, match="positions"):
        erase_concept(k, texts[:10], labels[:10], layer=0, positions="middle")
    with pytest.raises(LLMWidgetsError, match="two classes"):
        erase_concept(k, texts[:10], [1] * 10, layer=0)
    with pytest.raises(LLMWidgetsError, match="labels"):
        erase_concept(k, texts[:10], labels[:9], layer=0)


def test_erasure_through_nnsight_equals_native(minilm_tokenizer):
    pytest.importorskip("nnsight")
    m = build("bert")
    native = lw.load((m, minilm_tokenizer), device="cpu")
    nn = lw.load((copy.deepcopy(m), minilm_tokenizer), device="cpu", backend="nnsight")
    texts = ["the cat sat", "a dog ran far away", "it was hot", "we saw a red car", "the sun is up", "a b c d"]
    labels = [0, 1, 0, 1, 0, 1]
    e = erase_concept(native, texts, labels, layer=1, positions="readout")
    e2 = erase_concept(nn, texts, labels, layer=1, positions="readout")
    np.testing.assert_allclose(e.left @ e.right, e2.left @ e2.right, atol=1e-5)
    enc, _, _ = native.encode(texts[1])
    a, b = (run(s, Program(enc, writes=e.writes(), logits="all")).logits for s in (native, nn))
    assert float((a - b).abs().max()) <= 1e-6


@pytest.mark.slow
def test_probe_view_amnesic_rows(keyword):
    s, texts, labels = keyword
    v = lw.ProbeView(s, texts[:100], labels[:100], seeds=2, amnesic="readout", background=False)
    rows = v.amnesic_rows
    assert rows.shape == (4, 2)  # a column per block
    last = v.amnesic[-1]
    assert rows[0, 1] == pytest.approx(last.probe_after, abs=1e-6) and abs(last.probe_after - last.majority) <= 0.05
    assert last.task_change <= -0.3 and abs(last.random_change) <= 0.05  # used at the readout of the last block
    with pytest.raises(LLMWidgetsError, match="sentence"):
        lw.ProbeView(s, ["a b", "c d"], [["x", "y"], ["y", "x"]], level="token", amnesic=True)


def test_the_new_ops_ship_to_a_remote_run(minilm_tokenizer):
    """remote='local': nnsight's serialized dry run of an NDIF request (llm_widgets hidden there)."""
    pytest.importorskip("nnsight")
    from llm_widgets.compute.steering_ops import RowAdd
    from llm_widgets.execution import Write

    m = build("gpt2")
    native = lw.load((m, minilm_tokenizer), device="cpu")
    sim = lw.load((copy.deepcopy(m), minilm_tokenizer), device="cpu", backend="nnsight", remote="local")
    enc, _, _ = native.encode("the cat sat on the mat")
    rows = {k: v.repeat(2, 1) for k, v in enc.items()}
    g = torch.Generator().manual_seed(0)
    e = random_erasure(erase_concept(native, ["a b c", "d e f", "g h i", "j k l"], [0, 1, 0, 1], layer=0,
                                     positions="all"))
    writes = [Write("resid", 1, RowAdd(torch.randn(64, generator=g), torch.tensor([1.0, -3.0]))), *e.writes()]
    a, b = (run(s, Program(rows, writes=writes, logits="all")).logits for s in (native, sim))
    assert float((a - b).abs().max()) <= 1e-6
