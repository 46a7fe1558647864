"""One vocabulary across views: counts are n_*, selections selected_*, `selected_layer` is the block
index everywhere (lw.EMBEDDINGS for the embedding output), None means nothing selected. Every pair of
views that share a selection is linked with ipywidgets.link, and what each view then shows is checked
against the block, token and head read straight from the model (forward hooks on the blocks)."""
from __future__ import annotations

import itertools

import ipywidgets
import numpy as np
import pytest
import torch

import llm_widgets as lw
from llm_widgets.adapter.facts import first_output

TEXT = "When Mary and John went to the store John gave a drink to"
CORRUPT = "When Mary and John went to the store Mary gave a drink to"
TEXTS = [TEXT, "the cat sat on the mat", "a dog ran to the park", "we saw a big red car"]
SELECTIONS = ("selected_layer", "selected_head", "selected_token")


@pytest.fixture(scope="module")
def views(tiny_gpt2):
    s = tiny_gpt2
    return {
        "attention": lw.AttentionView(s, TEXT),
        "neuron": lw.NeuronView(s, TEXT),
        "patching": lw.PatchingView(s, clean=TEXT, corrupted=CORRUPT, answers=(" john", " mary"), background=False),
        "logit_lens": lw.LogitLensView(s, TEXT),
        "attribution": lw.AttributionView(s, TEXT, method="saliency", compute_faithfulness=False, background=False),
        "explorer": lw.Explorer(s, TEXT, panels=("attention",)),
        "probe": lw.ProbeView(s, TEXTS * 3, ["a", "b"] * 6, seeds=2, background=False),
        "concepts": lw.ConceptView(s, TEXTS, k=2, background=False),
        "direct_logit": lw.DirectLogitView(s, TEXT, target="the", contrast="mean"),
    }


def block_outputs(session, text):
    """[L, T, D] output of every block, captured by forward hooks on the adapter's blocks."""
    out = []
    hooks = [b.module.register_forward_hook(lambda m, a, o: out.append(first_output(o)[0].detach()))
             for b in session.adapter.blocks]
    try:
        enc = session.tokenizer(text, return_tensors="pt")
        enc.pop("token_type_ids", None)  # a BERT tokenizer's segment ids mean nothing to this GPT-2
        with torch.no_grad():
            session.model(**enc)
    finally:
        for h in hooks:
            h.remove()
    return torch.stack(out).float().numpy()


def test_counts_and_selections_use_one_vocabulary(views, tiny_gpt2):
    for name, v in views.items():
        traits = v.trait_names(sync=True)
        assert not {"layers", "heads", "neurons", "layer", "selected_position"} & set(traits), name
        for sel in (t for t in traits if t.startswith("selected_")):
            assert getattr(v, sel) is None or not isinstance(getattr(v, sel), bool)
        if "n_layers" in traits:
            assert v.n_layers == tiny_gpt2.n_layers, name  # blocks, never blocks + 1
    # the same text gives the same displayed tokens everywhere
    tokens = tiny_gpt2.trace(TEXT).tokens
    for name in ("attention", "neuron", "logit_lens", "attribution", "explorer", "direct_logit"):
        assert views[name].tokens == tokens, name
    assert views["patching"].clean_tokens == tokens  # its columns are the corrupted run's tokens


@pytest.mark.parametrize("trait", SELECTIONS)
def test_every_pair_of_views_sharing_a_selection_agrees(views, trait):
    sharing = [n for n, v in views.items() if v.has_trait(trait) and n != "explorer"]
    assert len(sharing) >= 2
    value = {"selected_layer": 1, "selected_head": 2, "selected_token": 3}[trait]
    for a, b in itertools.permutations(sharing, 2):
        va, vb = views[a], views[b]
        start = 0 if trait != "selected_token" else 1
        va.set_trait(trait, start)
        vb.set_trait(trait, start)
        link = ipywidgets.link((va, trait), (vb, trait))
        try:
            va.set_trait(trait, value)
            assert getattr(vb, trait) == value, (a, b)
        finally:
            link.unlink()


def test_linked_views_land_on_the_same_block_token_and_head(views, tiny_gpt2):
    """Link everything on selected_layer/head/token, set block 1, head 2, token 3 from one view, and
    check what each view shows against the model itself."""
    s, layer, head, tok = tiny_gpt2, 1, 2, 3
    links = []
    for trait in SELECTIONS:
        names = [n for n, v in views.items() if v.has_trait(trait) and n != "explorer"]
        links += [ipywidgets.link((views[names[0]], trait), (views[n], trait)) for n in names[1:]]
    try:
        views["logit_lens"].selected_layer = layer  # a click on the logit lens' row `layer + 1`
        views["attention"].selected_head = head
        views["neuron"].selected_token = tok
        blocks = block_outputs(s, TEXT)
        trace = s.trace(TEXT)
        # attention: the head of block `layer` (the model's own weights)
        att = views["attention"]
        assert att.matrix.of["layer"] == layer and att.matrix.of["head"] == head
        np.testing.assert_allclose(att.matrix, trace.attentions[layer, head], atol=1e-3)
        # neurons: block `layer`'s MLP
        assert views["neuron"].acts.of["layer"] == layer
        np.testing.assert_allclose(views["neuron"].acts, views["neuron"].result.activations[layer], atol=2e-3)
        # logit lens: the residual stream after block `layer`, read through the model's readout
        with torch.no_grad():
            p = torch.softmax(s.adapter.readout(torch.as_tensor(blocks[layer][None]))[0], -1)
        lens = views["logit_lens"]
        assert lens.result.top(layer, tok)[0][1] == pytest.approx(float(p[tok].max()), abs=1e-5)
        assert lens.top_probs[layer + 1, tok, 0] == pytest.approx(float(p[tok].max()), abs=1e-5)
        # patching: the cell (block `layer`, position `tok`)
        pv = views["patching"]
        assert (pv.selected_layer, pv.selected_token, pv.selected_head) == (layer, tok, head)
        # direct logit attribution: the shares at token `tok`, head (block `layer`, `head`) selected
        dla = views["direct_logit"]
        assert (dla.selected_layer, dla.selected_head, dla.selected_token) == (layer, head, tok)
        r = lw.direct_logit_attribution(s, TEXT, target="the", contrast="mean", positions=tok)
        assert dla.head_shares[layer, head] == pytest.approx(float(r.share(f"L{layer}H{head}")[0, 0]))
        # concepts and probes: the states of block `layer` (row layer + 1, embeddings first)
        cv = views["concepts"]
        acts = cv.activations
        own = np.stack([block_outputs(s, acts.texts[i])[layer][j] for i, j in zip(acts.text_index, acts.token_index)])
        np.testing.assert_allclose(acts.states[layer + 1], own, atol=1e-4)
        np.testing.assert_array_equal(cv.coords[layer + 1], cv.result.coords[layer + 1])
        pr = views["probe"]
        frame = pr.result.to_frame().set_index("layer")
        assert pr.curves[0, layer + 1] == pytest.approx(frame.loc[layer, "accuracy"])
    finally:
        for link in links:
            link.unlink()
    # the embeddings are a value of their own, never block 0; the views that have an embeddings row
    # share it (the others refuse it with an error that names it, see below)
    with_embeddings = [views[n] for n in ("logit_lens", "probe", "concepts")]
    links = [ipywidgets.link((with_embeddings[0], "selected_layer"), (v, "selected_layer")) for v in with_embeddings[1:]]
    try:
        views["logit_lens"].selected_layer = lw.EMBEDDINGS
        assert views["probe"].selected_layer == lw.EMBEDDINGS and views["concepts"].selected_layer == lw.EMBEDDINGS
        with torch.no_grad():
            p0 = torch.softmax(s.adapter.readout(torch.as_tensor(trace.hidden_states[0][None]))[0], -1)
        assert lens.result.top(lw.EMBEDDINGS, tok)[0][1] == pytest.approx(float(p0[tok].max()), abs=1e-5)
    finally:
        for link in links:
            link.unlink()
        views["logit_lens"].selected_layer = 0


def test_views_without_embeddings_refuse_them_and_none_means_nothing(views):
    with pytest.raises(Exception, match=r"selected_layer must be an integer index, got 'embeddings'"):  # no embeddings row
        views["attention"].selected_layer = lw.EMBEDDINGS
    views["attention"].selected_layer = -1  # Python's convention: the last block
    assert views["attention"].selected_layer == views["attention"].n_layers - 1
    with pytest.raises(Exception, match=r"selected_layer must be in 0\.\.2 \(negative: from the end\); got -4"):
        views["attention"].selected_layer = -4
    with pytest.raises(Exception, match="integer index"):
        views["attention"].selected_layer = None  # the attention view always shows one block
    views["patching"].selected_layer = None
    views["attribution"].selected_token = None
    views["explorer"].selected_token = None
    assert views["explorer"].views[0].selected_token is None  # mirrored into its panels
