"""The tuned lens (Belrose et al. 2023) on the induction teaching model: it reads intermediate layers
closer to the final distribution than the logit lens on held-out texts, starts as the logit lens
exactly, round-trips through the tuned-lens package's folder format, refuses lenses of other models,
trains seeded and cached, and LogitLensView shows both lenses with their KL per layer."""
import copy
import json

import numpy as np
import pytest
import torch

import llm_widgets as lw
from llm_widgets.compute.logit_lens import lens_logits, logit_lens
from llm_widgets.compute.tuned_lens import (
    LENS_TYPE,
    compare_lenses,
    for_session,
    lens_result,
    load_tuned_lens,
    tuned_lens_logits,
)
from llm_widgets.compute.tuned_lens_train import mean_kl, train_tuned_lens
from llm_widgets.teaching.induction import repeated_prompt

# the tuned-lens package's TunedLensConfig fields (tuned_lens/nn/lenses.py)
PACKAGE_CONFIG = {"base_model_name_or_path", "d_model", "num_hidden_layers", "bias", "base_model_revision",
                  "unembed_hash", "lens_type"}
TRAIN = [repeated_prompt(p, seed) for seed, p in zip(range(100, 300), [6, 8, 10, 12] * 50)]
HELD_OUT = [repeated_prompt(p, seed) for seed, p in zip(range(1000, 1040), [6, 8, 10, 12] * 10)]


@pytest.fixture(scope="module")
def s():
    return lw.teaching.induction_model()


@pytest.fixture(scope="module")
def lens(s):
    return train_tuned_lens(s, TRAIN, cache=False)


def _kl_by_hand(logits: torch.Tensor) -> np.ndarray:
    """[rows] mean over positions of KL(final || row), with torch's kl_div as the reference."""
    final = torch.log_softmax(logits[-1].double(), -1)
    return np.array([torch.nn.functional.kl_div(torch.log_softmax(row.double(), -1), final, log_target=True,
                                                reduction="none").sum(-1).mean().item() for row in logits])


def test_tuned_lens_is_closer_to_the_final_distribution_at_every_intermediate_layer(s, lens):
    logit, tuned = mean_kl(s, HELD_OUT), mean_kl(s, HELD_OUT, lens)
    assert logit.shape == tuned.shape == (s.n_layers + 1,)
    assert logit[-1] == tuned[-1] == 0.0  # the last row is the model's own output
    # rows 0 .. L-1 (the embeddings, then every block but the last): the tuned lens is closer
    assert (tuned[:-1] < 0.8 * logit[:-1]).all(), (logit, tuned)
    # measured: logit lens about 8.3 / 4.4 nats, tuned lens about 3.1 / 3.1 (held-out prompts)
    assert logit[0] > 6 and tuned.max() < 4, (logit, tuned)


def test_mean_kl_equals_a_hand_computation_from_the_logit_lens(s, lens):
    text = HELD_OUT[0]
    assert np.allclose(mean_kl(s, [text]), _kl_by_hand(lens_logits(s, text)), atol=1e-4)
    assert np.allclose(mean_kl(s, [text], lens), _kl_by_hand(tuned_lens_logits(s, text, lens)), atol=1e-4)
    # several texts: the mean over all their tokens
    two = HELD_OUT[:2]
    n = [len(s.trace(t).tokens) for t in two]
    want = (n[0] * _kl_by_hand(lens_logits(s, two[0])) + n[1] * _kl_by_hand(lens_logits(s, two[1]))) / sum(n)
    assert np.allclose(mean_kl(s, two), want, atol=1e-4)


def test_an_untrained_tuned_lens_is_the_logit_lens_exactly(s):
    text = HELD_OUT[3]
    identity = for_session(s)
    assert torch.equal(tuned_lens_logits(s, text, identity), lens_logits(s, text))
    c = compare_lenses(s, text, identity)
    assert np.array_equal(c.kl[0], c.kl[1]) and np.array_equal(c.tuned.top_probs, c.logit.top_probs)
    # the comparison's logit lens is the logit lens view's numbers
    ref = logit_lens(s, text)
    assert c.logit.tokens == ref.tokens and c.logit.layer_names == ref.layer_names
    assert [c.logit.top_tokens[i] for i in c.logit.top_index.ravel()] == [ref.top_tokens[i] for i in ref.top_index.ravel()]
    assert np.allclose(c.logit.top_probs, ref.top_probs, atol=1e-6)
    assert np.allclose(c.logit.next_prob, ref.next_prob, atol=1e-6)


def test_the_translator_is_h_plus_a_h_plus_b(s, lens):
    h = torch.randn(5, s.adapter.d_model)
    t = lens.translators[1]
    assert torch.allclose(lens.transform(h, 1), h + h @ t.weight.T + t.bias, atol=1e-6)
    assert lens.transform(h, s.n_layers) is h  # the model's own output: no translator
    assert lens.n_layers == s.n_layers and len(lens.translators) == s.n_layers
    for bad in (-1, s.n_layers + 1, 1.0):  # never a silent index from the end
        with pytest.raises(lw.LLMWidgetsError, match="row must be"):
            lens.transform(h, bad)
    assert not any(p.requires_grad for p in lens.parameters())


def test_save_and_reload_give_identical_output_in_the_package_format(s, lens, tmp_path):
    lens.save(tmp_path / "lens")
    config = json.loads((tmp_path / "lens" / "config.json").read_text())
    assert set(config) == PACKAGE_CONFIG and config["lens_type"] == LENS_TYPE
    assert (config["d_model"], config["num_hidden_layers"]) == (s.adapter.d_model, s.n_layers)
    state = torch.load(tmp_path / "lens" / "params.pt", weights_only=True)
    assert sorted(state) == sorted(f"{i}.{p}" for i in range(s.n_layers) for p in ("weight", "bias"))
    back = load_tuned_lens(tmp_path / "lens", s)
    for text in HELD_OUT[:3]:
        assert torch.equal(tuned_lens_logits(s, text, back), tuned_lens_logits(s, text, lens))
    assert back.config == lens.config


def test_reads_a_lens_written_as_the_package_writes_it(s, tmp_path):
    # tuned_lens.nn.TunedLens.save: th.save(layer_translators.state_dict()) + json.dump(config.to_dict())
    torch.manual_seed(3)
    d, n = s.adapter.d_model, s.n_layers
    translators = torch.nn.ModuleList(torch.nn.Linear(d, d, dtype=torch.float16) for _ in range(n))
    (tmp_path / "pkg").mkdir()
    torch.save(translators.state_dict(), tmp_path / "pkg" / "params.pt")
    (tmp_path / "pkg" / "config.json").write_text(json.dumps(
        {"base_model_name_or_path": "induction", "d_model": d, "num_hidden_layers": n, "bias": True,
         "base_model_revision": None, "unembed_hash": None, "lens_type": "linear_tuned_lens"}))
    got = load_tuned_lens(tmp_path / "pkg", s)
    h = torch.randn(4, d)
    for i, t in enumerate(translators):
        want = h + t.float()(h)  # the package's transform_hidden: h + translator(h)
        assert torch.allclose(got.transform(h, i), want, atol=1e-5)
    # no bias
    plain = torch.nn.ModuleList(torch.nn.Linear(d, d, bias=False) for _ in range(n))
    (tmp_path / "nobias").mkdir()
    torch.save(plain.state_dict(), tmp_path / "nobias" / "params.pt")
    (tmp_path / "nobias" / "config.json").write_text(json.dumps({"d_model": d, "num_hidden_layers": n, "bias": False}))
    got = load_tuned_lens(tmp_path / "nobias", s)
    assert torch.allclose(got.transform(h, 0), h + h @ plain[0].weight.T, atol=1e-6)


def test_a_lens_for_another_model_is_refused(s, lens, tiny_gpt2, tmp_path):
    lens.save(tmp_path / "lens")
    with pytest.raises(lw.LLMWidgetsError, match="3 layers"):  # tiny_gpt2: d_model 64 too, but 3 layers
        load_tuned_lens(tmp_path / "lens", tiny_gpt2)
    with pytest.raises(lw.LLMWidgetsError, match="3 layers"):
        lw.LogitLensView(tiny_gpt2, "The cat sat", tuned_lens=lens)
    with pytest.raises(lw.LLMWidgetsError, match="3 layers"):
        mean_kl(tiny_gpt2, ["The cat sat"], lens)
    # same shape, another unembedding matrix (the package's fingerprint differs)
    config = json.loads((tmp_path / "lens" / "config.json").read_text())
    (tmp_path / "lens" / "config.json").write_text(json.dumps({**config, "unembed_hash": "0" * 64}))
    with pytest.raises(lw.LLMWidgetsError, match="another unembedding"):
        load_tuned_lens(tmp_path / "lens", s)
    accepted = load_tuned_lens(tmp_path / "lens", s, check_unembedding=False)
    assert torch.equal(tuned_lens_logits(s, HELD_OUT[0], accepted), tuned_lens_logits(s, HELD_OUT[0], lens))
    # a lens object used on a model of the same shape whose unembedding differs
    other_model = copy.deepcopy(s.model)
    with torch.no_grad():
        other_model.get_output_embeddings().weight.mul_(1.5)
    other = lw.load((other_model, s.tokenizer), device="cpu")
    for use in (lambda: compare_lenses(other, HELD_OUT[0], lens), lambda: tuned_lens_logits(other, HELD_OUT[0], lens),
                lambda: mean_kl(other, HELD_OUT[:1], lens), lambda: lw.LogitLensView(other, HELD_OUT[0], tuned_lens=lens)):
        with pytest.raises(lw.LLMWidgetsError, match="another unembedding"):
            use()
    # parameters that do not match the config, another lens type, not a lens folder
    (tmp_path / "lens" / "config.json").write_text(json.dumps({**config, "bias": False}))
    with pytest.raises(lw.LLMWidgetsError, match="does not hold"):
        load_tuned_lens(tmp_path / "lens", s)
    (tmp_path / "lens" / "config.json").write_text(json.dumps({**config, "lens_type": "affine_lens"}))
    with pytest.raises(lw.LLMWidgetsError, match="only 'linear_tuned_lens'"):
        load_tuned_lens(tmp_path / "lens", s)
    with pytest.raises(lw.LLMWidgetsError, match="not a saved tuned lens"):
        load_tuned_lens(tmp_path, s)


def test_training_is_seeded_cached_reports_progress_and_leaves_the_model_alone(s, tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_WIDGETS_CACHE", str(tmp_path))
    before = [(p.requires_grad, p.detach().clone()) for p in s.model.parameters()]
    seen = []
    first = train_tuned_lens(s, TRAIN[:40], epochs=3, report=lambda f, label: seen.append((f, label)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert any("training the tuned lens" in label for _, label in seen)
    assert len(list(tmp_path.glob("tuned-lens-*/params.pt"))) == 1
    seen.clear()
    again = train_tuned_lens(s, TRAIN[:40], epochs=3, report=lambda f, label: seen.append((f, label)))
    assert seen == [(1.0, "tuned lens loaded from the cache")]
    fresh = train_tuned_lens(s, TRAIN[:40], epochs=3, cache=False)  # the same seed: the same lens
    other = train_tuned_lens(s, TRAIN[:40], epochs=3, seed=1, cache=False)
    for a, b, c in zip(first.state_dict().values(), again.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b) and torch.equal(a, c)
    assert not all(torch.equal(a, d) for a, d in zip(first.state_dict().values(), other.state_dict().values()))
    for p, (grad, value) in zip(s.model.parameters(), before):  # frozen, untouched, no gradients left
        assert p.requires_grad == grad and p.grad is None and torch.equal(p, value)


def test_a_report_that_raises_stops_training_and_caches_nothing(s, tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_WIDGETS_CACHE", str(tmp_path))

    class Stop(Exception):
        pass

    def report(fraction, label):
        if "training" in label and fraction > 0.5:
            raise Stop

    with pytest.raises(Stop):
        train_tuned_lens(s, TRAIN[:40], epochs=4, report=report)
    assert not list(tmp_path.iterdir())
    assert all(p.requires_grad for p in s.model.parameters())


def test_bad_arguments_are_clear_errors(s):
    with pytest.raises(TypeError, match="list of strings"):
        train_tuned_lens(s, "K q B w K q B w")
    with pytest.raises(lw.LLMWidgetsError, match="epochs"):
        train_tuned_lens(s, TRAIN[:4], epochs=0)
    with pytest.raises(TypeError, match="unexpected keyword"):
        train_tuned_lens(s, TRAIN[:4], steps=10)
    with pytest.raises(lw.LLMWidgetsError, match="TunedLens"):
        compare_lenses(s, HELD_OUT[0], lens="not a lens")


def test_view_shows_both_lenses_and_their_kl(s, lens, tmp_path):
    text = HELD_OUT[5]
    v = lw.LogitLensView(s, text, tuned_lens=lens)
    c = compare_lenses(s, text, lens)
    assert v.lens == "tuned" and v.lens_names == ["logit lens", "tuned lens"]
    kl = v.kl
    assert kl.shape == (2, s.n_layers + 1) and np.allclose(kl, c.mean_kl, atol=1e-6)
    assert (kl[1, :-1] < kl[0, :-1]).all() and np.allclose(kl[:, -1], 0, atol=1e-6)
    assert np.allclose(v.tuned_top_probs, c.tuned.top_probs)
    assert np.array_equal(v.tuned_top_index, c.tuned.top_index)
    assert v.tuned_top_tokens == c.tuned.top_tokens
    assert np.allclose(v.top_probs, logit_lens(s, text).top_probs, atol=1e-6)
    assert np.allclose(v.comparison.kl, c.kl)
    # the tuned lens's own numbers: its top-k of its logits
    ref = lens_result(s, text, tuned_lens_logits(s, text, lens))
    assert np.allclose(v.comparison.tuned.top_probs, ref.top_probs, atol=1e-6)
    # a saved lens by its folder
    lens.save(tmp_path / "lens")
    w = lw.LogitLensView(s, text, lens="tuned", tuned_lens=str(tmp_path / "lens"))
    assert np.allclose(w.kl, kl, atol=1e-6)
    page = v.to_html(tmp_path / "v.html").read_text()
    assert "Tuned lens: probability" in page and "KL to the final distribution" in page


def test_view_defaults_and_errors(s, lens):
    v = lw.LogitLensView(s, HELD_OUT[0])
    assert v.lens == "logit" and v.kl is None and v.comparison is None
    with pytest.raises(lw.LLMWidgetsError, match="needs tuned_lens"):
        lw.LogitLensView(s, HELD_OUT[0], lens="tuned")
    with pytest.raises(lw.LLMWidgetsError, match="lens='tuned'"):
        lw.LogitLensView(s, HELD_OUT[0], lens="logit", tuned_lens=lens)
    with pytest.raises(lw.LLMWidgetsError, match="lens must be one of"):
        lw.LogitLensView(s, HELD_OUT[0], lens="tuned lens", tuned_lens=lens)
    with pytest.raises(lw.LLMWidgetsError, match="TunedLens or the folder"):
        lw.LogitLensView(s, HELD_OUT[0], tuned_lens=42)
    with pytest.raises(TypeError, match="unexpected keyword"):
        lw.LogitLensView(s, HELD_OUT[0], tuned=lens)


def test_view_trains_a_lens_with_progress_and_can_be_cancelled(s, tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_WIDGETS_CACHE", str(tmp_path))
    text, texts = HELD_OUT[2], TRAIN[:60]
    stopped = lw.LogitLensView(s, text, train_texts=texts, background=True)
    assert stopped.lens == "tuned" and stopped.kl is None  # the logit lens is there at once
    assert np.allclose(stopped.top_probs, logit_lens(s, text).top_probs, atol=1e-6)
    stopped.cancel().wait()
    assert "cancelled" in stopped.error and stopped.comparison is None and stopped.kl is None
    assert not list(tmp_path.glob("tuned-lens-*"))
    labels = []
    v = lw.LogitLensView(s, text, train_texts=texts, background=True)
    v.observe(lambda ch: labels.append(ch["new"]), "progress_label")
    v.wait()
    assert v.error == "" and v.progress == -1.0
    assert any("training the tuned lens" in label for label in labels)
    trained = train_tuned_lens(s, texts)  # the view's lens, from the cache it wrote
    assert all(torch.equal(a, b) for a, b in zip(v.tuned_lens.state_dict().values(), trained.state_dict().values()))
    assert np.allclose(v.kl, compare_lenses(s, text, trained).mean_kl, atol=1e-6)
    with pytest.raises(lw.LLMWidgetsError, match="not both"):
        lw.LogitLensView(s, text, tuned_lens=trained, train_texts=texts)
    with pytest.raises(TypeError, match="list of strings"):
        lw.LogitLensView(s, text, train_texts="K q B")
