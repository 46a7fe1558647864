"""Token attribution (compute/attribution.py, compute/faithfulness.py) against known answers:
a classifier whose label is decided by one keyword, captum computed directly in the same test,
the IG completeness axiom, a hand-built faithfulness case, and bad input."""
import numpy as np
import pytest
import torch

from llm_widgets.compute.attribution import METHODS, AttributionResult, attribute
from llm_widgets.compute.faithfulness import completeness, faithfulness
from llm_widgets.figures import deletion_figure
from llm_widgets.errors import EmptyInputError, LLMWidgetsError
from llm_widgets.teaching.classifier import KEYWORD_LABELS, Settings, _build, keyword_dataset


@pytest.fixture(scope="module")
def keyword():
    from llm_widgets.teaching import keyword_classifier

    return keyword_classifier()


@pytest.fixture(scope="module")
def random_keyword(keyword):
    """The same architecture and tokenizer with random weights: knows nothing about keywords."""
    from llm_widgets.session import Session

    tok = keyword.tokenizer
    model = _build(Settings(seed=1), 2, list(KEYWORD_LABELS), tok.vocab_size, tok.pad_token_id)
    return Session(model.eval(), tok, device="cpu")


HELD_OUT = keyword_dataset(36, seed=123)  # never seen in training (seed 0)


@pytest.fixture(scope="module")
def needed(keyword):
    """The held-out cases where the trained model provably needs its keyword: replacing it by
    [PAD] flips the prediction (a model may also learn "no positive word -> NEGATIVE", and then a
    negative keyword carries no weight and no method should put it on top)."""
    tok, out = keyword.tokenizer, []
    for text, label, pos in zip(*HELD_OUT):
        ids = tok(text, return_tensors="pt")["input_ids"]
        assert ids.shape[1] == len(text.split()) + 2  # one WordPiece per word
        gone = ids.clone()
        gone[0, pos + 1] = tok.pad_token_id
        with torch.no_grad():
            pred = keyword.model(input_ids=torch.cat([ids, gone])).logits.argmax(-1).tolist()
        if pred == [label, 1 - label]:
            out.append((text, label, pos))
    assert len(out) >= 15, "the keyword classifier should need its keyword in most sentences"
    return out


def keyword_hit_rate(session, method: str, cases) -> float:
    """Fraction of cases whose top-attributed token is the deciding keyword."""
    hits = 0
    for text, label, pos in cases:
        r = attribute(session, text, target=KEYWORD_LABELS[label], method=method,
                      compute_faithfulness=False)
        hits += r.top(0, 1)[0][0] == text.split()[pos]
    return hits / len(cases)


# every method must find the keyword. The local-gradient ones only do because training keeps the
# model out of saturation (classifier._train's pooler penalty): on a ~99.9%-confident model the
# gradients at x are nearly flat and grad x input / saliency found the keyword in ~52% / ~67%.
KEYWORD_METHODS = ["ig", "occlusion", "shapley", "lime", "permutation", "grad_x_input", "saliency", "shap",
                   "attention_gradcam", "lrp"]


@pytest.mark.parametrize("method", KEYWORD_METHODS)
def test_keyword_is_top_token_for_trained_model_not_for_random(keyword, random_keyword, needed, method):
    assert keyword_hit_rate(keyword, method, needed) >= 0.9
    assert keyword_hit_rate(random_keyword, method, needed) < 0.5  # sanity control: it can fail


# ------------------------------------------------------------------------------------------------
# integrated gradients: completeness, captum, the steps rule


def test_ig_completeness_on_classifier(keyword):
    text = "this excellent film was really quite some show"
    r = attribute(keyword, text, target="POSITIVE", steps=64, max_steps=64)
    fx, fb = r.faithfulness.fx[0], r.faithfulness.fbase[0]
    with torch.no_grad():  # f(x) is the real NEGATIVE logit of the model
        enc = keyword.tokenizer(text, return_tensors="pt")
        assert fx == pytest.approx(float(keyword.model(**enc).logits[0, 1]), abs=1e-4)
    assert abs(fx - fb) > 1.0
    assert abs(r.scores.sum() - (fx - fb)) < 1e-3 * abs(fx - fb)
    assert r.faithfulness.relative_delta[0] < 1e-3
    assert r.steps == 64 and r.notice == ""
    assert (r.scores[0, r.special_mask] == 0).all() and r.special_mask[[0, -1]].all()


def test_ig_equals_captum_layer_ig_on_minilm(minilm):
    from captum.attr import LayerIntegratedGradients

    torch.manual_seed(0)
    direction = torch.randn(minilm.model.config.hidden_size)

    def probe(out):  # mean-pooled sentence embedding projected on a fixed direction
        return out.last_hidden_state.mean(1) @ direction

    text = "Paris is the capital of France"
    ours = attribute(minilm, text, target=probe, method="ig", steps=64, max_steps=64)
    assert ours.output == "custom" and ours.targets == ["probe"]

    tok = minilm.tokenizer
    ids = tok(text, return_tensors="pt")["input_ids"]
    special = torch.tensor(ours.special_mask)
    base = torch.where(special, ids, torch.full_like(ids, tok.pad_token_id))

    def forward(input_ids):
        return probe(minilm.model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                  token_type_ids=torch.zeros_like(input_ids)))

    lig = LayerIntegratedGradients(forward, minilm.model.embeddings)
    ref, delta = lig.attribute(ids, baselines=base, n_steps=64, return_convergence_delta=True)
    ref = ref.sum(-1)[0].detach().numpy()
    np.testing.assert_allclose(ours.scores[0], ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())
    assert ours.faithfulness.delta[0] == pytest.approx(float(delta[0]), abs=1e-4)


@pytest.mark.parametrize("method", ["grad_x_input", "saliency"])
def test_local_gradient_methods_equal_captum(minilm, method):
    from captum.attr import LayerGradientXActivation

    torch.manual_seed(1)
    direction = torch.randn(minilm.model.config.hidden_size)

    def probe(out):
        return out.last_hidden_state.mean(1) @ direction

    text = "A quick brown fox"
    ours = attribute(minilm, text, target=probe, method=method, compute_faithfulness=False)
    ids = minilm.tokenizer(text, return_tensors="pt")["input_ids"]

    def forward(input_ids):
        return probe(minilm.model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                  token_type_ids=torch.zeros_like(input_ids)))

    gxa = LayerGradientXActivation(forward, minilm.model.embeddings,
                                   multiply_by_inputs=method == "grad_x_input")
    ref = gxa.attribute(ids)[0].detach()
    ref = (ref.sum(-1) if method == "grad_x_input" else ref.abs().sum(-1)).numpy()
    ref[ours.special_mask] = 0.0  # special tokens are never attributed
    np.testing.assert_allclose(ours.scores[0], ref, rtol=1e-4, atol=1e-6 * np.abs(ref).max())
    assert ours.signed == (method == "grad_x_input")


def test_ig_raises_steps_until_complete_and_says_so(keyword):
    text = "the movie was great today"
    few = attribute(keyword, text, target="POSITIVE", steps=2, max_steps=2)
    assert few.faithfulness.relative_delta[0] > 0.05  # 2 steps are not enough here...
    assert "still" in few.notice
    auto = attribute(keyword, text, target="POSITIVE", steps=2, max_steps=256)
    assert auto.steps > 2 and auto.steps in (4, 8, 16, 32, 64, 128, 256)  # doubled
    assert auto.faithfulness.relative_delta[0] <= 0.05
    assert "raised from 2 to" in auto.notice


def test_batching_does_not_change_results(keyword):
    text = "we watched the awful show on night"
    a = attribute(keyword, text, target="NEGATIVE", method="ig", steps=16, max_steps=16)
    b = attribute(keyword, text, target="NEGATIVE", method="ig", steps=16, max_steps=16,
                  internal_batch_size=3)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-6)
    c = attribute(keyword, text, target="NEGATIVE", method="shapley", internal_batch_size=5)
    d = attribute(keyword, text, target="NEGATIVE", method="shapley")
    np.testing.assert_allclose(c.scores, d.scores, atol=1e-5)
    # Shapley value sampling is exactly efficient: scores sum to f(x) - f(baseline)
    assert abs(d.faithfulness.delta[0]) < 1e-4


# ------------------------------------------------------------------------------------------------
# generation: the [generated x prompt] matrix equals captum run once per target


GEN_TEXT = "the cat sat on the mat because it was"


@pytest.fixture(scope="module")
def gen_ig(tiny_gpt2):
    return attribute(tiny_gpt2, GEN_TEXT, generate=4, method="ig", steps=20, max_steps=20)


def _captum_input(session):
    from captum.attr import TextTokenInput

    tok = session.tokenizer
    return TextTokenInput(GEN_TEXT, tok, baselines=tok.pad_token_id,
                          skip_tokens=[tok.cls_token_id, tok.sep_token_id])


def test_generation_ig_matrix_equals_captum_per_target(tiny_gpt2, gen_ig):
    from captum.attr import LayerIntegratedGradients, LLMGradientAttribution

    r = gen_ig
    assert r.generated and r.scores.shape == (4, len(r.tokens)) and r.output == "log_prob"
    with torch.no_grad():  # the targets are the model's greedy continuation
        ids = torch.tensor([list(r.input_ids) + r.target_ids])
        logits = tiny_gpt2.model(input_ids=ids).logits[0]
    T = len(r.tokens)
    assert r.target_ids == logits[T - 1:-1].argmax(-1).tolist()
    model = tiny_gpt2.model
    lig = LLMGradientAttribution(LayerIntegratedGradients(model, model.transformer.wte),
                                 tiny_gpt2.tokenizer)
    ref = lig.attribute(_captum_input(tiny_gpt2), target=torch.tensor(r.target_ids), n_steps=20)
    ref = ref.token_attr.detach().numpy()
    ours = r.scores[:, ~r.special_mask]
    assert np.abs(ours - ref).max() <= 1e-5 * np.abs(ref).max()
    # each row obeys completeness against its own target's f(x) - f(baseline)
    lp = torch.log_softmax(logits[T - 1:-1], -1)[torch.arange(4), r.target_ids].numpy()
    np.testing.assert_allclose(r.faithfulness.fx, lp, atol=1e-5)


def test_generation_occlusion_equals_captum_feature_ablation(tiny_gpt2, gen_ig):
    from captum.attr import FeatureAblation, LLMAttribution

    r = attribute(tiny_gpt2, GEN_TEXT, target=gen_ig.target_ids, method="occlusion")
    assert not r.generated and r.targets == gen_ig.targets
    fa = LLMAttribution(FeatureAblation(tiny_gpt2.model), tiny_gpt2.tokenizer)
    # exact token-by-token decoding (captum's cached default drifts on transformers 5)
    ref = fa.attribute(_captum_input(tiny_gpt2), target=torch.tensor(gen_ig.target_ids),
                       use_cached_outputs=False).token_attr.detach().numpy()
    assert np.abs(r.scores[:, ~r.special_mask] - ref).max() <= 1e-4


@pytest.mark.parametrize("method", ["ig", "grad_x_input", "occlusion"])
def test_contrast_is_difference_of_single_targets_causal_lm(tiny_gpt2, method):
    kw = dict(method=method, steps=16, max_steps=16, compute_faithfulness=False)
    both = attribute(tiny_gpt2, GEN_TEXT, target="dog", contrast="car", **kw)
    a = attribute(tiny_gpt2, GEN_TEXT, target="dog", **kw)
    b = attribute(tiny_gpt2, GEN_TEXT, target="car", **kw)
    assert both.contrast == "car" and both.targets == ["dog \u2212 car"]
    diff = a.scores - b.scores
    np.testing.assert_allclose(both.scores, diff, atol=1e-5 * np.abs(diff).max() + 1e-9)


def test_contrast_is_difference_of_single_targets_classifier(keyword):
    text = "the story was brilliant"
    both = attribute(keyword, text, target="POSITIVE", contrast="NEGATIVE", steps=32, max_steps=32)
    a = attribute(keyword, text, target="POSITIVE", steps=32, max_steps=32)
    b = attribute(keyword, text, target=0, steps=32, max_steps=32)  # index 0 = NEGATIVE
    np.testing.assert_allclose(both.scores, a.scores - b.scores, atol=1e-5)
    assert both.faithfulness.fx[0] == pytest.approx(a.faithfulness.fx[0] - b.faithfulness.fx[0], abs=1e-5)


# ------------------------------------------------------------------------------------------------
# faithfulness on a case with a known answer


def test_faithfulness_known_answer():
    """n = 10 tokens; the output is 1 while token 3 is present and 0 once it is removed."""
    n = 10

    def evaluate(masks):
        return masks[:, [3]].astype(np.float64)  # [N, 1]

    good = np.zeros((1, n), np.float32)
    good[0, 3] = 1.0
    bad = -np.arange(n, dtype=np.float32)[None]  # token 3 ranked 4th, the others first
    f_good = faithfulness(evaluate, good, np.array([1.0]), np.array([0.0]))
    f_bad = faithfulness(evaluate, bad, np.array([1.0]), np.array([0.0]))
    # removing the top 1/1/1/2/5 tokens: the good ranking always removes token 3
    assert f_good.percents == (1, 5, 10, 20, 50)
    np.testing.assert_allclose(f_good.comprehensiveness, [[1, 1, 1, 1, 1]])
    np.testing.assert_allclose(f_good.sufficiency, [[0, 0, 0, 0, 0]])
    assert f_good.aopc_comprehensiveness[0] == 1.0 and f_good.aopc_sufficiency[0] == 0.0
    # the bad ranking keeps token 3 until the top 5 (50%) are removed
    np.testing.assert_allclose(f_bad.comprehensiveness, [[0, 0, 0, 0, 1]])
    np.testing.assert_allclose(f_bad.sufficiency, [[1, 1, 1, 1, 0]])
    # completeness: sum(scores) - (f(x) - f(baseline))
    assert f_good.delta[0] == pytest.approx(0.0) and f_bad.delta[0] == pytest.approx(-46.0)
    # deletion: top-first drops to 0 after the first removal; bad ranking after the 4th
    np.testing.assert_allclose(f_good.deletion[0], [1] + [0] * n)
    np.testing.assert_allclose(f_bad.deletion[0], [1] * 4 + [0] * 7)
    np.testing.assert_allclose(f_good.deletion_x, np.arange(n + 1) / n)
    assert f_good.deletion_auc[0] == pytest.approx(0.05)
    assert f_good.deletion_auc[0] < f_good.deletion_random_auc[0] < f_bad.deletion_auc[0] + 0.3
    assert set(f_good.summary(0)) >= {"delta", "comprehensiveness", "sufficiency", "deletion_auc"}
    delta, rel = completeness(np.array([[1.0, 1.0]]), np.array([3.0]), np.array([0.0]))
    assert delta[0] == pytest.approx(-1.0) and rel[0] == pytest.approx(1 / 3)


def test_faithfulness_of_real_attribution(keyword):
    r = attribute(keyword, "this excellent film was really quite some show", target="POSITIVE",
                  method="occlusion")
    fa = r.faithfulness
    assert r.top(0, 1)[0][0] == "excellent"
    span = fa.fx[0] - fa.fbase[0]  # what removing every token costs (~1.2 logits here, ~6 on an
    assert span > 1.0  # over-confident model: so the bounds below are relative to it)
    assert fa.aopc_comprehensiveness[0] > 0.35 * span  # removing the keyword first costs a lot...
    assert abs(fa.aopc_sufficiency[0]) < 0.01 * span  # ...and the keyword alone keeps the logit
    assert fa.deletion_auc[0] < fa.deletion_random_auc[0]
    fig = deletion_figure(fa)
    assert len(fig.marks[0].y) == 2 and len(fig.marks[0].x) == len(fa.deletion_x)


# ------------------------------------------------------------------------------------------------
# result, progress, bad input


def test_result_fields_and_progress(keyword):
    seen = []
    r = attribute(keyword, "the film was awful", method="ig", steps=8,
                  report=lambda frac, label="": seen.append(frac))
    assert isinstance(r, AttributionResult)
    assert r.targets == ["NEGATIVE"] and r.target_ids == [0]  # default: the predicted class
    assert r.scores.dtype == np.float32 and r.scores.shape == (1, len(r.tokens))
    assert r.tokens[0] == "[CLS]" and "[PAD]" in r.baseline  # shown in the UI
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)
    assert r.word_scores().shape == (1, len(r.words))
    np.testing.assert_allclose(r.word_scores().sum(), r.scores.sum(), rtol=1e-5)


def test_bad_input(keyword, tiny_gpt2):
    with pytest.raises(LLMWidgetsError, match=r"NEGATIVE.*POSITIVE"):
        attribute(keyword, "a great film", target="NEUTRAL")
    with pytest.raises(LLMWidgetsError, match=r"out of range.*2 classes"):
        attribute(keyword, "a great film", target=5)
    with pytest.raises(EmptyInputError):
        attribute(keyword, "   ", target="POSITIVE")
    with pytest.raises(EmptyInputError):
        attribute(tiny_gpt2, "", generate=2)
    with pytest.raises(LLMWidgetsError, match=r"Unknown method 'magic'.*occlusion"):
        attribute(keyword, "a great film", method="magic")
    with pytest.raises(LLMWidgetsError, match="generate= is for causal LMs"):
        attribute(keyword, "a great film", generate=3)
    with pytest.raises(LLMWidgetsError, match="baseline must be one of"):
        attribute(keyword, "a great film", baseline="noise")
    with pytest.raises(LLMWidgetsError, match="not both"):
        attribute(tiny_gpt2, GEN_TEXT, target="dog", generate=2)


def test_every_method_runs_on_generation(tiny_gpt2):
    for method in METHODS:
        r = attribute(tiny_gpt2, "the cat sat", generate=2, method=method, n_samples=40,
                      steps=8, max_steps=8)
        assert r.scores.shape == (2, len(r.tokens)) and np.isfinite(r.scores).all()
        assert (r.scores[:, r.special_mask] == 0).all()


def test_half_precision_model_accumulates_in_float32(tiny_gpt2):
    """A float16 copy of the causal LM (CPU half ops): scores stay float32, finite, and close
    to the float32 model's."""
    import copy

    import llm_widgets as lw

    half = lw.load((copy.deepcopy(tiny_gpt2.model).half(), tiny_gpt2.tokenizer), device="cpu")
    assert next(half.model.parameters()).dtype == torch.float16
    full = attribute(tiny_gpt2, GEN_TEXT, target=[2003, 1037], method="ig", steps=16, max_steps=16)
    r = attribute(half, GEN_TEXT, target=[2003, 1037], method="ig", steps=16, max_steps=16)
    assert r.scores.dtype == np.float32 and np.isfinite(r.scores).all()
    assert np.isfinite(r.faithfulness.comprehensiveness).all()
    corr = np.corrcoef(r.scores.ravel(), full.scores.ravel())[0, 1]
    assert corr > 0.95
