"""Hooks, ablation, neurons and the logit lens, checked against independent computations."""
import numpy as np
import pytest
import torch

import llm_widgets as lw
from llm_widgets.compute.ablation import ablate, ablation_effect, num_neurons
from llm_widgets.execution.hooks import capture, hooks, num_hooks
from llm_widgets.compute.logit_lens import lens_logits, logit_lens
from llm_widgets.compute.neurons import neuron_activations
from llm_widgets.errors import LLMWidgetsError

TEXT = "The cat sat on the mat because it was tired"


def _enc(s, text=TEXT):
    return s.encode(text)[0]


def test_hooks_are_removed_after_an_exception(tiny_gpt2):
    model = tiny_gpt2.model
    base = num_hooks(model)
    with pytest.raises(RuntimeError, match="inside"):
        with ablate(tiny_gpt2, heads=[(0, 1), (2, 3)], neurons=[(1, 5)]):
            assert num_hooks(model) == base + 3
            raise RuntimeError("inside")
    assert num_hooks(model) == base

    def explode(x):
        raise ValueError("hook failed")
    with pytest.raises(ValueError, match="hook failed"):
        with hooks(model, [("resid", 1, explode)]):
            tiny_gpt2.forward(**_enc(tiny_gpt2))
    assert num_hooks(model) == base


def test_zero_ablating_every_head_leaves_only_the_projection_bias(tiny_gpt2):
    s = tiny_gpt2
    enc = _enc(s)
    with ablate(s, heads=[(1, h) for h in range(s.n_heads)]):
        got = capture(s.model, [("attn", 1)], lambda: s.forward(**enc))[("attn", 1)][0]
    bias = s.model.transformer.h[1].attn.c_proj.bias
    torch.testing.assert_close(got, bias.expand_as(got), atol=1e-6, rtol=0)


def test_one_head_ablation_removes_exactly_that_head(tiny_gpt2):
    s = tiny_gpt2
    enc = _enc(s)
    dh = s.config.n_embd // s.n_heads
    clean = capture(s.model, [("heads", 2)], lambda: s.forward(**enc))[("heads", 2)]
    with ablate(s, heads=[(2, 1)], mode="zero"):
        zero = capture(s.model, [("heads", 2)], lambda: s.forward(**enc))[("heads", 2)]
    with ablate(s, heads=[(2, 1)], mode="mean"):
        mean = capture(s.model, [("heads", 2)], lambda: s.forward(**enc))[("heads", 2)]
    sl = slice(dh, 2 * dh)
    assert torch.all(zero[..., sl] == 0)
    torch.testing.assert_close(zero[..., :dh], clean[..., :dh])  # other heads untouched
    torch.testing.assert_close(mean[..., sl], clean[..., sl].mean(1, keepdim=True).expand_as(mean[..., sl]))
    # the output changes, and comes back once the context exits
    base = s.forward(**enc).logits
    with ablate(s, heads=[(2, 1)]):
        ablated = s.forward(**enc).logits
    assert (ablated - base).abs().max() > 1e-4
    torch.testing.assert_close(s.forward(**enc).logits, base)


def test_ablation_effect_reports_probabilities(tiny_gpt2):
    eff = ablation_effect(tiny_gpt2, TEXT, neurons=[(0, n) for n in range(64)], k=5)
    probs = torch.softmax(torch.tensor(tiny_gpt2.trace(TEXT).logits[-1]), -1).numpy()
    np.testing.assert_allclose(eff.before, probs[eff.ids], atol=1e-6)
    assert np.abs(eff.change).max() > 0 and len(eff.outputs) == 5
    assert np.all(np.diff(np.abs(eff.change)) <= 1e-9)  # most changed first


def test_bad_interventions_are_explained(tiny_gpt2, minilm):
    with pytest.raises(LLMWidgetsError, match="out of range"):
        with ablate(tiny_gpt2, heads=[(3, 0)]):
            pass
    with pytest.raises(LLMWidgetsError, match="head 4 is out of range"):
        with ablate(tiny_gpt2, heads=[(0, 4)]):
            pass
    with pytest.raises(LLMWidgetsError, match="'zero', 'mean' or 'resample'"):
        with ablate(tiny_gpt2, heads=[(0, 0)], mode="random"):
            pass

    class Fake(torch.nn.Module):
        config = type("C", (), {"model_type": "mystery"})()
    with pytest.raises(lw.UnsupportedModelError, match="Fake.*Layout"):
        with hooks(Fake(), [("resid", 0, lambda x: x)]):
            pass


def test_neuron_activations_match_bert_intermediate(minilm):
    r = neuron_activations(minilm, TEXT)
    enc = _enc(minilm)
    inter = minilm.model.encoder.layer[3].intermediate
    got = {}
    hd = inter.register_forward_hook(lambda m, a, o: got.setdefault("x", o.detach()))
    try:
        minilm.forward(**enc)
    finally:
        hd.remove()
    np.testing.assert_allclose(r.activations[3], got["x"][0].numpy(), atol=1e-5)
    assert r.activations.shape == (6, len(r.tokens), 1536) == (6, len(r.tokens), num_neurons(minilm, 3))
    top = r.top_neurons(3, 2, k=5)
    assert [n for n, _ in top] == list(np.argsort(-r.activations[3, 2])[:5])
    fire = r.top_tokens(3, top[0][0])
    assert fire[0][1] == r.activations[3, :, top[0][0]].max()


def test_neuron_view(minilm, tiny_gpt2):
    v = lw.NeuronView(minilm, TEXT, selected_layer=3)
    np.testing.assert_allclose(v.acts, v.result.activations[3], rtol=1e-3, atol=1e-3)
    v.selected_layer = 5
    assert v.acts.of["layer"] == 5
    np.testing.assert_allclose(v.acts, v.result.activations[5], rtol=1e-3, atol=1e-3)
    with pytest.raises(Exception, match="layer must be in 0..5"):
        v.selected_layer = 6
    with pytest.raises(Exception, match="selected_neuron"):
        v.selected_neuron = 1536
    with pytest.raises(LLMWidgetsError, match="out of range"):
        lw.NeuronView(minilm, TEXT, selected_layer=6)
    v.selected_neuron = 3
    with pytest.raises(LLMWidgetsError, match="no output head"):
        v.ablate()
    g = lw.NeuronView(tiny_gpt2, TEXT, selected_layer=1)
    g.selected_neuron = 7
    eff = g.ablate()
    assert eff.before.shape == (10,) and np.abs(eff.change).max() > 0


def test_logit_lens_final_layer_reproduces_the_model(tiny_gpt2):
    lens = lens_logits(tiny_gpt2, TEXT)
    assert lens.shape[0] == tiny_gpt2.n_layers + 1
    np.testing.assert_allclose(lens[-1].numpy(), tiny_gpt2.trace(TEXT).logits, atol=1e-4)
    assert (lens[0] - lens[-1]).abs().max() > 1e-2  # earlier layers read differently
    r = logit_lens(tiny_gpt2, TEXT, k=3)
    probs = torch.softmax(lens, -1)
    np.testing.assert_allclose(r.top_probs[..., 0], probs.max(-1).values.numpy(), atol=1e-6)
    ids = tiny_gpt2.trace(TEXT).input_ids
    np.testing.assert_allclose(r.next_prob[2, :-1], probs[2, np.arange(len(ids) - 1), ids[1:]].numpy(), atol=1e-6)
    last_top = tiny_gpt2.readable_tokens(tiny_gpt2.tokenizer.convert_ids_to_tokens(
        tiny_gpt2.trace(TEXT).logits.argmax(-1).tolist()))
    assert [r.top(len(r.layer_names) - 2, i)[0][0] for i in range(len(ids))] == last_top  # the last block


def test_logit_lens_view_and_errors(tiny_gpt2, minilm, tmp_path):
    v = lw.LogitLensView(tiny_gpt2, TEXT)
    np.testing.assert_allclose(v.top_probs, v.result.top_probs)
    assert v.layer_names == ["embeddings", "layer 0", "layer 1", "layer 2"] and v.n_layers == 3
    v.selected_layer, v.selected_token = 2, 2
    v.selected_layer = lw.EMBEDDINGS  # the first row
    assert v.selected_layer == "embeddings" and v.result.top(lw.EMBEDDINGS, 2) == v.result.top("embeddings", 2)
    with pytest.raises(Exception, match=r"selected_layer must be in 0..2 \(negative: from the end\) or lw.EMBEDDINGS"):
        v.selected_layer = 3
    v.selected_layer = -1  # the last block, as in Python
    assert v.selected_layer == 2 and v.result.top(-1, 2) == v.result.top(2, 2)
    with pytest.raises(LLMWidgetsError, match="-1 is block 2"):
        v.result.top(3, 2)
    assert v.to_html(tmp_path / "lens.html").stat().st_size > 1000
    with pytest.raises(LLMWidgetsError, match="language-model head"):
        lw.LogitLensView(minilm, TEXT)


def test_neuron_view_shows_the_ablation_of_the_selected_neuron(tiny_gpt2, minilm):
    v = lw.NeuronView(tiny_gpt2, TEXT, selected_layer=1)
    v.selected_neuron = 7
    assert v.ablation == {}  # off until a mode is chosen (the view's ablation menu)
    v.ablation_mode = "mean"
    ref = ablation_effect(tiny_gpt2, TEXT, neurons=[(1, 7)], mode="mean")
    assert v.ablation["outputs"] == ref.outputs and v.ablation["neurons"] == [7]
    np.testing.assert_allclose(v.ablation["after"], ref.after, atol=1e-7)
    v.selected_neuron = 9  # follows the selection
    assert v.ablation["neurons"] == [9] and v.ablation["layer"] == 1
    v.ablation_mode = ""
    assert v.ablation == {}
    b = lw.NeuronView(minilm, TEXT, selected_layer=0)  # no output head: explained, not raised into the widget
    b.selected_neuron, b.ablation_mode = 3, "zero"
    assert "no output head" in b.error and b.ablation == {}


def test_neuron_view_menu_resample_ablates_from_the_donor_box(tiny_gpt2):
    """The view's menu set to resample with a donor text (what the front end commits) is
    NeuronView.ablate(mode="resample", donor=...); no donor: nothing runs (the view says why); a donor
    of another length: the Python error in the view's error area, the choices kept."""
    donor = "The dog ran in the park because he was bored"
    v = lw.NeuronView(tiny_gpt2, TEXT, selected_layer=1)
    v.selected_neuron, v.ablation_mode = 7, "resample"
    assert v.ablation == {} and v.error == ""  # waits for a donor text
    v.ablation_donor = donor
    ref = lw.NeuronView(tiny_gpt2, TEXT, selected_layer=1, selected_neuron=7)
    eff = ref.ablate(mode="resample", donor=donor)
    assert v.ablation == ref.ablation and v.ablation["mode"] == "resample" and np.abs(eff.change).max() > 0
    with pytest.raises(LLMWidgetsError) as raised:
        ref.ablate(mode="resample", donor="a short one")
    v.ablation_donor = "a short one"
    assert v.error == str(raised.value) and "same shape" in v.error and v.ablation == {}
    assert (v.ablation_mode, v.ablation_donor, v.selected_neuron) == ("resample", "a short one", 7)
    v.ablation_donor = donor  # fixed: the error goes, the ablation is back
    assert v.error == "" and v.ablation == ref.ablation


def _hand_resample(s, heads, donor_enc):
    """Resample ablation written out with capture and hooks (notebook 03's first version)."""
    dh = s.adapter.head_dim
    layers = sorted({l for l, _ in heads})
    donor = capture(s.model, [("heads", l) for l in layers], lambda: s.model(**donor_enc))

    def put(layer):
        def fn(x):
            x = x.clone()
            for l, h in heads:
                if l == layer:
                    x[..., h * dh:(h + 1) * dh] = donor[("heads", l)][..., h * dh:(h + 1) * dh]
            return x
        return fn
    return hooks(s.model, [("heads", l, put(l)) for l in layers])


def test_resample_ablation_equals_the_hand_written_one(tiny_gpt2):
    s = tiny_gpt2
    enc, donor_text = _enc(s), "The dog ran in the park because he was bored"
    donor_enc = _enc(s, donor_text)
    assert donor_enc["input_ids"].shape == enc["input_ids"].shape
    heads = [(0, 1), (2, 3), (2, 0)]
    base = s.forward(**enc).logits
    with _hand_resample(s, heads, donor_enc):
        hand = s.forward(**enc).logits
    with ablate(s, heads=heads, mode="resample", donor=donor_text):
        got = s.forward(**enc).logits
    assert torch.equal(got, hand) and (got - base).abs().max() > 1e-3
    with ablate(s, heads=heads, mode="resample", donor=donor_enc["input_ids"]):  # token ids work too
        assert torch.equal(s.forward(**enc).logits, hand)
    # neurons take the donor's activations, and only the chosen ones
    donor_acts = capture(s.model, [("neurons", 1)], lambda: s.forward(**donor_enc))[("neurons", 1)]
    with ablate(s, neurons=[(1, 5), (1, 9)], mode="resample", donor=donor_text):
        acts = capture(s.model, [("neurons", 1)], lambda: s.forward(**enc))[("neurons", 1)]
    clean = capture(s.model, [("neurons", 1)], lambda: s.forward(**enc))[("neurons", 1)]
    assert torch.equal(acts[..., [5, 9]], donor_acts[..., [5, 9]])
    keep = [i for i in range(acts.shape[-1]) if i not in (5, 9)]
    assert torch.equal(acts[..., keep], clean[..., keep])


def test_resample_from_the_same_input_changes_nothing(tiny_gpt2):
    s = tiny_gpt2
    enc = _enc(s)
    base = s.forward(**enc).logits
    with ablate(s, heads=[(1, h) for h in range(4)], neurons=[(0, 3)], mode="resample", donor=TEXT):
        assert torch.equal(s.forward(**enc).logits, base)
    eff = ablation_effect(s, TEXT, heads=[(2, 1)], mode="resample", donor=TEXT)
    assert np.abs(eff.change).max() == 0


def test_resample_needs_a_donor_of_the_inputs_shape(tiny_gpt2):
    s = tiny_gpt2
    n = num_hooks(s.model)
    with pytest.raises(LLMWidgetsError, match="needs donor"):
        with ablate(s, heads=[(0, 0)], mode="resample"):
            pass
    with pytest.raises(LLMWidgetsError, match="only used with mode='resample'"):
        with ablate(s, heads=[(0, 0)], donor=TEXT):
            pass
    with pytest.raises(LLMWidgetsError, match=r"donor is \[batch, tokens\] = \[1, 5\], this run.s input is \[1, 12\].*same shape"):
        with ablate(s, heads=[(0, 0)], mode="resample", donor="a short one"):
            s.forward(**_enc(s))
    assert num_hooks(s.model) == n
    v = lw.NeuronView(s, TEXT, selected_layer=1)
    v.selected_neuron = 7
    with pytest.raises(LLMWidgetsError, match="needs donor"):
        v.ablate(mode="resample")
    other = "The dog ran in the park because he was bored"
    eff = v.ablate(mode="resample", donor=other)
    ref = ablation_effect(s, TEXT, neurons=[(1, 7)], mode="resample", donor=other)
    assert eff.outputs == ref.outputs and v.ablation["mode"] == "resample" and np.abs(eff.change).max() > 0


def test_resample_ablation_on_the_induction_model_equals_the_notebooks_hand_version():
    from llm_widgets.teaching.induction import induction_dataset, repeated_token_loss

    s = lw.teaching.induction_model()
    ids, mask = induction_dataset(64, seed=12345)
    donor_ids, _ = induction_dataset(64, seed=999)
    heads = [(1, h) for h in range(4)]
    with _hand_resample(s, heads, {"input_ids": donor_ids}):
        hand = repeated_token_loss(s.model, ids, mask)
    with ablate(s, heads=heads, mode="resample", donor=donor_ids):
        got = repeated_token_loss(s.model, ids, mask)
    assert got == hand and got > np.log(52)  # worse than chance, as notebook 03 says
