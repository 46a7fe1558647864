"""Max-activating examples of neurons over a corpus (compute.neuron_corpus, NeuronView(corpus=...)):
on a GPT-2 with a planted neuron (block 0's neuron 5 reads a direction only the token "cat" carries)
its top examples are the corpus's "cat"s; every neuron's top k equal a brute-force sort of the
activations read with a hook; the scan is cached and the view shows it after a background run."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import llm_widgets as lw
from llm_widgets.compute import neuron_corpus as nc_mod
from llm_widgets.compute.neuron_corpus import neuron_corpus, neuron_top_examples

TEXTS = ["the cat sat on the mat", "a dog ran to the park today", "my cat likes fish and milk",
         "we saw a big red car", "the old cat slept all day long", "it was hot and the sun was out"]
NEURON = 5


@pytest.fixture(scope="module")
def planted(tiny_gpt2):
    """tiny GPT-2 whose token "cat" embeds as 10 x e0 and whose block-0 neuron 5 reads 5 x e0 - 2."""
    model = copy.deepcopy(tiny_gpt2.model)
    tok = tiny_gpt2.tokenizer
    cat = tok.convert_tokens_to_ids("cat")
    with torch.no_grad():
        wte = model.transformer.wte.weight
        wte[:, 0] = 0.0
        wte[cat] = 0.0
        wte[cat, 0] = 10.0
        model.transformer.wpe.weight[:, 0] = 0.0
        fc = model.transformer.h[0].mlp.c_fc  # Conv1D: weight [d_model, n_neurons]
        fc.weight[:, NEURON] = 0.0
        fc.weight[0, NEURON] = 5.0
        fc.bias[NEURON] = -2.0
    return lw.load((model, tok), device="cpu")


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(nc_mod, "cache_dir", lambda: tmp_path)


def test_planted_neuron_top_examples_are_the_planted_token(planted):
    ex = neuron_top_examples(planted, 0, NEURON, TEXTS, k=3)
    assert len(ex) == 3
    assert [e["tokens"][e["at"]] for e in ex] == ["cat"] * 3
    assert sorted(e["text"] for e in ex) == [0, 2, 4]
    assert ex[0]["activation"] >= ex[1]["activation"] >= ex[2]["activation"] > 10
    # the next strongest token of any other text is far weaker
    more = neuron_top_examples(planted, 0, NEURON, TEXTS, k=6)
    assert all(e["activation"] < 0.5 * ex[2]["activation"] for e in more if e["tokens"][e["at"]] != "cat")


def test_every_neuron_equals_a_brute_force_sort_with_a_hook(planted):
    k = 4
    nc = neuron_corpus(planted, TEXTS, k=k)
    acts = []  # per text [L, T, N] from a plain hook on c_proj's input
    for text in TEXTS:
        enc = planted.encode(text)[0]
        got = {}
        hs = [b.mlp.c_proj.register_forward_pre_hook(lambda m, a, l=l: got.__setitem__(l, a[0][0].detach()))
              for l, b in enumerate(planted.model.transformer.h)]
        with torch.no_grad():
            planted.model(input_ids=enc["input_ids"])
        for h in hs:
            h.remove()
        acts.append(np.stack([got[l].numpy() for l in range(len(got))]))
    L, N = acts[0].shape[0], acts[0].shape[2]
    for l in range(L):
        for n in range(0, N, 7):
            flat = [(float(a[l, t, n]), i, t) for i, a in enumerate(acts) for t in range(a.shape[1])]
            want = [x for x in sorted(flat, key=lambda x: -x[0])[:k] if x[0] > 0]
            got = nc.examples(l, n)  # equal activations (the same token at the same position) may come in any order
            np.testing.assert_allclose([e["activation"] for e in got], [v for v, _, _ in want], atol=1e-5)
            for e in got:
                assert abs(acts[e["text"]][l, e["position"], n] - e["activation"]) < 1e-5, (l, n)
        assert np.allclose(nc.max[l], np.max([a[l].max(0) for a in acts], axis=0), atol=1e-5)


def test_cached_scan_is_reused_and_equal(planted, tmp_path):
    a = neuron_corpus(planted, TEXTS, k=3)
    assert len(list(tmp_path.glob("neurons-*.npz"))) == 1
    b = neuron_corpus(planted, TEXTS, k=3)
    assert np.array_equal(a.top_text, b.top_text) and np.array_equal(a.top_value, b.top_value)
    assert b.tokens == a.tokens and b.widths == a.widths
    neuron_corpus(planted, TEXTS[:3], k=3)  # another corpus: another file
    assert len(list(tmp_path.glob("neurons-*.npz"))) == 2


def test_bad_input_is_refused(planted):
    with pytest.raises(TypeError, match="list of strings"):
        neuron_top_examples(planted, 0, 1, "the cat sat")
    with pytest.raises(lw.LLMWidgetsError, match="neuron must be"):
        neuron_top_examples(planted, 0, 10_000, TEXTS)
    with pytest.raises(lw.LLMWidgetsError):
        neuron_top_examples(planted, 7, 1, TEXTS)
    with pytest.raises(TypeError):
        neuron_top_examples(planted, 0, 1, TEXTS, top=3)


def test_view_scans_the_corpus_and_shows_the_selected_neurons_examples(planted):
    v = lw.NeuronView(planted, "the cat sat", corpus=TEXTS, k=3, background=True).wait()
    assert v.error == "" and v.corpus_summary["n_texts"] == len(TEXTS)
    assert v.corpus_examples == []  # no neuron selected
    v.selected_neuron = NEURON
    assert [e["tokens"][e["at"]] for e in v.corpus_examples] == ["cat"] * 3
    v.selected_layer = 1
    assert v.corpus_examples == neuron_corpus(planted, TEXTS, k=3).examples(1, NEURON)
    with pytest.raises(TypeError, match="list of strings"):
        lw.NeuronView(planted, "the cat sat", corpus="one text")


def test_view_scan_can_be_cancelled(planted, monkeypatch):
    import threading

    started, release = threading.Event(), threading.Event()
    real = nc_mod.neuron_activations

    def slow(*a, **kw):
        started.set()
        release.wait(5)
        return real(*a, **kw)

    monkeypatch.setattr(nc_mod, "neuron_activations", slow)
    v = lw.NeuronView(planted, "the cat sat", corpus=TEXTS, background=True)
    assert started.wait(5)
    v.cancel()
    release.set()
    v.wait()
    assert "cancelled" in v.error and v.corpus is None and v.corpus_summary == {}
