"""DirectLogitView: the synced arrays are direct_logit_attribution's numbers at the selected position,
token and head selections work and link with AttentionView, the induction model's repeated tokens are
written by layer-1 heads, and models where the logit is not a sum are refused in the constructor."""
import ipywidgets
import numpy as np
import pytest

import llm_widgets as lw
from llm_widgets.compute.direct_logit import direct_logit_attribution
from llm_widgets.errors import DoesNotApplyError, LLMWidgetsError
from llm_widgets.widgets import direct_logit as dl
from llm_widgets.widgets.traits import _unpack

from llm_widgets.testing import build

TEXT = "When Mary and John went to the store John gave a drink to"


def _check_position(v, session, position, contrast="mean"):
    r = direct_logit_attribution(session, TEXT, target="the", contrast=contrast, positions=position)
    heads = r.head_shares()[:, :, 0, 0]
    np.testing.assert_array_equal(v.head_shares, heads.astype(np.float32))
    others = [c for c in r.components if c not in {f"L{l}H{h}" for l in range(r.n_layers) for h in range(r.n_heads)}]
    assert v.components == others
    np.testing.assert_allclose(v.component_shares, [r.share(c)[0, 0] for c in others], rtol=1e-6)
    assert v.head_shares.of["position"] == v.component_shares.of["position"] == position == v.summary["position"]
    assert v.summary["logit"] == pytest.approx(float(r.logit[0, 0]), abs=1e-6)
    assert v.summary["total"] == pytest.approx(v.summary["logit"], rel=1e-4, abs=1e-5)  # the check shown
    assert v.summary["error"] <= 1e-4 and v.summary["metric"] == r.metric == "logit(the) - mean logit"


@pytest.fixture(scope="module")
def view(tiny_gpt2):
    return lw.DirectLogitView(tiny_gpt2, TEXT, target="the", contrast="mean")


def test_arrays_equal_the_function_at_the_selected_token(view, tiny_gpt2):
    T = len(tiny_gpt2.trace(TEXT).tokens)
    assert view.tokens == tiny_gpt2.trace(TEXT).tokens and view.n_tokens == T
    assert (view.n_layers, view.n_heads) == (tiny_gpt2.n_layers, tiny_gpt2.n_heads)
    assert view.selected_token == T - 1 and view.selected_layer is None and view.selected_head is None
    _check_position(view, tiny_gpt2, T - 1)
    assert len(view._cache) == T  # a tiny model: every position computed up front
    view.selected_token = 3  # a token click
    _check_position(view, tiny_gpt2, 3)
    view.selected_token = None  # nothing selected: nothing drawn
    assert view.head_shares is None and view.summary is None
    view.selected_token = 2
    _check_position(view, tiny_gpt2, 2)


def test_positions_on_demand_when_all_at_once_is_dear(tiny_gpt2, monkeypatch):
    monkeypatch.setattr(dl, "ALL_AT_ONCE", 0)
    v = lw.DirectLogitView(tiny_gpt2, TEXT, target="the", contrast="mean", selected_token=4)
    assert list(v._cache) == [4]
    _check_position(v, tiny_gpt2, 4)
    v.selected_token = 1
    assert sorted(v._cache) == [1, 4]
    _check_position(v, tiny_gpt2, 1)
    other = lw.DirectLogitView(tiny_gpt2, TEXT, target="the", contrast="a")
    r = direct_logit_attribution(tiny_gpt2, TEXT, target="the", contrast="a")
    assert other.summary["logit"] == pytest.approx(float(r.logit[0, 0]), abs=1e-6)


def test_head_click_and_link_with_attention(view, tiny_gpt2):
    att = lw.AttentionView(tiny_gpt2, TEXT)
    links = [ipywidgets.link((att, k), (view, k)) for k in ("selected_layer", "selected_head")]
    try:
        view.set_state({"selected_layer": 1, "selected_head": 2})  # what a click on cell (1, 2) sends
        assert (view.selected_layer, view.selected_head) == (1, 2)
        assert (att.selected_layer, att.selected_head) == (1, 2)
        assert att.matrix.of["layer"] == 1 and att.matrix.of["head"] == 2
        att.selected_head = 3
        assert view.selected_head == 3
    finally:
        for link in links:
            link.unlink()
    with pytest.raises(Exception, match="selected_head must be in"):
        view.selected_head = tiny_gpt2.n_heads


def test_induction_model_largest_head_is_in_layer_1():
    from llm_widgets.teaching.induction import repeated_prompt

    s = lw.teaching.induction_model()
    text = repeated_prompt(12)
    letters = text.split()
    for k in (3, 7):  # position 1 + 12 + k holds letters[k] again; its next token is letters[k + 1]
        v = lw.DirectLogitView(s, text, target=letters[k + 1], contrast="mean", selected_token=13 + k)
        heads = v.head_shares
        layer, head = np.unravel_index(np.abs(heads).argmax(), heads.shape)
        assert layer == 1 and heads[layer, head] > 1.0, heads
        assert v.summary["total"] == pytest.approx(v.summary["logit"], rel=1e-4)


def test_refused_where_it_does_not_apply(minilm, minilm_tokenizer, tiny_gpt2):
    bert = lw.load((build("bert-mlm"), minilm_tokenizer), device="cpu")
    with pytest.raises(DoesNotApplyError, match="block 0's output"):
        lw.DirectLogitView(bert, TEXT, target="the")
    with pytest.raises(LLMWidgetsError, match="language-model head"):
        lw.DirectLogitView(minilm, TEXT, target="the")
    with pytest.raises(LLMWidgetsError, match="one token"):
        lw.DirectLogitView(tiny_gpt2, TEXT, target=[[1, 2]])
    with pytest.raises(LLMWidgetsError, match="selected_token must be in"):
        lw.DirectLogitView(tiny_gpt2, TEXT, target="the", selected_token=99)
    with pytest.raises(TypeError, match="did you mean 'contrast'"):
        lw.DirectLogitView(tiny_gpt2, TEXT, target="the", contrats="mean")


def test_export_has_every_position_and_a_png_fallback(view, tmp_path):
    page = view.to_html(tmp_path / "dla.html").read_text()
    assert "data:image/png;base64," in page and "sum of shares" in page
    extra = view._export_extra()
    assert _unpack(extra["heads"]).shape == (view.n_tokens, view.n_layers, view.n_heads)
    np.testing.assert_array_equal(_unpack(extra["heads"])[view.selected_token], view.head_shares)
