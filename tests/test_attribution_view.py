"""AttributionView (widget half of issue 3): the buffers carry exactly the result's numbers, the
selection traits behave as the front end drives them, background work reports progress, errors
are clear, and a static export holds everything a click needs."""
import base64
import json
import re
import threading

import numpy as np
import pytest
import traitlets

import llm_widgets as lw
from llm_widgets.widgets.traits import _unpack

NEG = "the film was terrible and the acting was slow"
PROMPT = "The unbelievably tall tower stands in"  # 'unbelievably' is 5 WordPiece tokens


@pytest.fixture(scope="module")
def keyword():
    return lw.teaching.keyword_classifier()


@pytest.fixture(scope="module")
def clf_view(keyword):
    return lw.AttributionView(keyword, NEG, target="NEGATIVE", method="occlusion", background=False)


@pytest.fixture(scope="module")
def gen_view(tiny_gpt2):
    return lw.AttributionView(tiny_gpt2, PROMPT, generate=3, method="grad_x_input", background=False,
                              selected_output=1, selected_token=2)


def f16(a):
    """What the front end receives of a float16-transported array."""
    return np.asarray(a, np.float32).astype(np.float16).astype(np.float32)


def f32(a):
    """What an Array trait holds (float32)."""
    return np.asarray(a, np.float32)


def update(view, **state):
    """What the front end sends when a user clicks: a comm 'update' message."""
    view._handle_msg({"content": {"data": {"method": "update", "state": state, "buffer_paths": []}},
                      "buffers": []})


def test_classifier_view_draws_the_result(clf_view):
    v, r = clf_view, clf_view.result
    # known answer: the keyword decides the label, and occlusion finds it
    assert r.top(0, 1)[0][0] == "terrible"
    assert v.targets == ["NEGATIVE"] and v.tokens == r.tokens and v.error == ""
    scores = v.scores
    assert scores.shape == r.scores.shape == (1, len(r.tokens))
    np.testing.assert_array_equal(scores, f32(r.scores))
    np.testing.assert_array_equal(v.word_scores, f32(r.word_scores()))
    assert v.special == [bool(x) for x in r.special_mask] and v.special[0] and v.special[-1]
    assert v.info["method"] == "occlusion" and v.info["signed"] is True and v.info["output"] == "logit"
    assert "[PAD]" in v.info["baseline"]  # the baseline used is shown
    # faithfulness panel: the summary of row 0 and the deletion curves, as binary buffers
    fa = r.faithfulness
    assert v.faithfulness["rows"][0] == fa.summary(0)
    np.testing.assert_array_equal(v.faithfulness["deletion"], fa.deletion)
    np.testing.assert_array_equal(v.faithfulness["deletion_random"], fa.deletion_random)
    np.testing.assert_array_equal(v.faithfulness["deletion_x"], fa.deletion_x)
    # removing the keyword first collapses the logit: comprehensiveness beats a random order
    assert fa.aopc_comprehensiveness[0] > 1.0 and fa.deletion_auc[0] < fa.deletion_random_auc[0]
    sent = v.get_state()  # what the front end receives: bytes, not lists
    assert all(isinstance(sent[k]["data"], bytes) and sent[k]["dtype"] == "float16" for k in ("scores", "word_scores"))
    np.testing.assert_array_equal(_unpack(sent["scores"]), f16(r.scores))


def test_generation_matrix_and_word_level(gen_view):
    v, r = gen_view, gen_view.result
    assert r.generated and len(v.targets) == 3 and v.info["generated"]
    assert (v.selected_output, v.selected_token) == (1, 2)  # asked for up front, applied with the data
    np.testing.assert_array_equal(v.scores, f32(r.scores))
    words = v.word_scores
    np.testing.assert_array_equal(words, f32(r.word_scores()))
    # 'unbelievably' is one word made of five tokens: its word score is their sum
    w = v.words.index("unbelievably")
    members = [i for i, g in enumerate(v.groups) if g == w]
    assert len(members) == 5 and words.shape == (3, len(v.words)) and len(v.words) == len(v.tokens) - 4
    np.testing.assert_allclose(r.word_scores()[:, w], r.scores[:, members].sum(1), rtol=1e-5, atol=1e-6)
    v.word_level = True
    assert v.get_state()["word_level"] is True
    v.word_level = False


def test_selection_traits_from_the_front_end(gen_view):
    v = gen_view
    update(v, selected_output=2, selected_token=3)
    assert (v.selected_output, v.selected_token) == (2, 3)
    v.set_state({"selected_token": None})
    assert v.selected_token is None
    with pytest.raises(traitlets.TraitError, match=r"selected_token must be in 0\.\.11, or None"):
        v.set_state({"selected_token": -1})  # -1 is not "none": None is
    # out of range from Python: a clear error, the value is kept
    with pytest.raises(traitlets.TraitError, match=r"selected_output must be an output row in 0\.\.2"):
        v.selected_output = 3
    with pytest.raises(traitlets.TraitError, match=r"selected_token must be in 0\.\.11"):
        v.set_state({"selected_token": len(v.tokens)})
    with pytest.raises(traitlets.TraitError, match="selected_output"):
        v.selected_output = -1
    # a bad message from a front end is refused (logged by ipywidgets), never applied
    update(v, selected_output=7)
    assert v.selected_output == 2
    v.selected_output = 0


def test_background_run_reports_progress_and_stays_responsive(keyword):
    gate = threading.Event()

    def negative(out):  # a custom target that holds the work until the test lets it go
        gate.wait(30)
        return out.logits[:, 0]

    events = []
    v = lw.AttributionView(keyword, NEG, negative, method="ig", steps=32, internal_batch_size=8, background=True)
    # the constructor returned while the work is still running: the kernel is free
    assert v.computing and v.result is None and v.targets == []
    v.selected_token = 2  # the prompt's tokens are known already: a linked selection can land now
    assert v.tokens[2] == keyword.trace(NEG).tokens[2]
    v.observe(lambda c: events.append((c["new"], v.progress_label)), "progress")
    gate.set()
    v.wait(120)
    assert v.error == "" and v.result is not None and v.targets == ["negative"]
    fractions = [p for p, _ in events if p >= 0]
    assert max(fractions) == 1.0 and len({p for p in fractions if 0 < p < 1}) >= 3  # 4 batches of IG steps
    assert any("integrated gradients" in label for _, label in events)
    assert events[-1][0] == -1.0 and v.progress == -1.0  # idle again
    # IG is complete: the view shows a small completeness delta
    assert abs(v.faithfulness["rows"][0]["relative_delta"]) < 0.05
    np.testing.assert_array_equal(v.scores, f32(v.result.scores))


def test_bad_target_lands_in_error_trait(keyword):
    v = lw.AttributionView(keyword, NEG, target="NEUTRAL", method="saliency", background=True).wait(60)
    assert v.result is None
    assert "'NEUTRAL' is not one of this model's labels" in v.error and "POSITIVE" in v.error
    with pytest.raises(lw.LLMWidgetsError, match="NEGATIVE"):
        lw.AttributionView(keyword, NEG, target=5, method="saliency", background=False)
    with pytest.raises(lw.EmptyInputError, match="empty"):
        lw.AttributionView(keyword, "   ")
    with pytest.raises(lw.LLMWidgetsError, match="Unknown method 'magic'"):
        lw.AttributionView(keyword, NEG, method="magic")
    with pytest.raises(lw.LLMWidgetsError, match="No attribution to plot"):
        v.deletion_figure()


def test_deletion_figure_is_the_selected_rows_curve(gen_view):
    gen_view.selected_output = 1
    fig = gen_view.deletion_figure()
    fa = gen_view.result.faithfulness
    (lines,) = fig.marks
    np.testing.assert_allclose(lines.x, fa.deletion_x)
    np.testing.assert_allclose(lines.y, np.stack([fa.deletion[1], fa.deletion_random[1]]))
    assert gen_view.result.targets[1] in fig.title
    gen_view.selected_output = 0


def test_export_contains_the_data_and_escapes_text(keyword, tmp_path):
    v = lw.AttributionView(keyword, 'terrible <img src=x onerror="alert(1)"> film', method="grad_x_input",
                           background=False)
    html = v.to_html(tmp_path / "attr.html").read_text()
    assert "<img" not in html  # token text never leaves the JSON payload as markup
    payload = json.loads(re.search(r'id="lw-payload">(.*?)</script>', html, re.S).group(1))
    state = payload["views"][0]["state"]
    assert payload["views"][0]["bundle"] == "attribution" and "attribution" in payload["bundles"]

    def unpack(p):
        return _unpack({**p, "data": base64.b64decode(p["data"]["__b64__"])})

    np.testing.assert_array_equal(unpack(state["scores"]), f16(v.result.scores))
    np.testing.assert_array_equal(unpack(state["word_scores"]), f16(v.result.word_scores()))
    np.testing.assert_array_equal(unpack(state["faithfulness"]["deletion"]), v.result.faithfulness.deletion)
    assert state["tokens"] == v.result.tokens and any("<" in t for t in state["tokens"])
    assert state["selected_output"] == 0 and state["selected_token"] is None


def test_contrast_row_is_the_difference_of_the_two_targets(tiny_gpt2):
    # gradient x input is linear in the target: "paris rather than london" = paris - london
    kw = dict(method="grad_x_input", compute_faithfulness=False, background=False)
    both = lw.AttributionView(tiny_gpt2, PROMPT, target="paris", contrast="london", **kw)
    a = lw.AttributionView(tiny_gpt2, PROMPT, target="paris", **kw).result.scores
    b = lw.AttributionView(tiny_gpt2, PROMPT, target="london", **kw).result.scores
    assert both.targets == ["paris \u2212 london"] and both.info["contrast"] == "london"
    np.testing.assert_allclose(both.result.scores, a - b, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(both.scores, f32(both.result.scores))
    assert both.faithfulness is None  # not computed: the panel says so
    with pytest.raises(lw.LLMWidgetsError, match="compute_faithfulness=False"):
        both.deletion_figure()


def test_saliency_is_unsigned(keyword):
    v = lw.AttributionView(keyword, NEG, method="saliency", background=False)
    assert v.info["signed"] is False and v.info["method_label"].startswith("saliency")
    assert (v.scores >= 0).all() and v.result.top(0, 1)[0][0] != "[CLS]"


def test_changing_method_recomputes(keyword):
    v = lw.AttributionView(keyword, NEG, method="grad_x_input", background=True, selected_token=4).wait(60)
    assert v.result.method == "grad_x_input" and v.info["method"] == "grad_x_input"
    assert v.selected_token == 4
    v.selected_token = 2
    update(v, method="feature_ablation")  # the view's menu; aliases are normalized
    assert v.method == "occlusion"
    v.wait(60)
    assert v.error == "" and v.result.method == "occlusion" and v.info["method"] == "occlusion"
    assert v.result.top(0, 1)[0][0] == "terrible"
    np.testing.assert_array_equal(v.scores, f32(v.result.scores))
    assert v.faithfulness["rows"][0] == v.result.faithfulness.summary(0)
    assert v.selected_token == 2  # the user's selection survives the recomputation
    with pytest.raises(traitlets.TraitError, match="Unknown method 'magic'"):
        v.method = "magic"
    assert v.method == "occlusion"
