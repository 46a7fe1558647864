"""Explorer protocol in pure pytest: which panels apply, one selection shared by every panel
(Python <-> front-end messages), re-run on new text, export of every panel."""
import json

import ipywidgets
import pytest
import traitlets

import llm_widgets as lw
from llm_widgets.widgets.explorer import NEEDS_TARGET

TEXT = "the plot was dull but the ending was great"


@pytest.fixture(scope="module")
def keyword():
    return lw.teaching.keyword_classifier()


def front_end_sets(widget, **state):
    """What a click in the browser sends: an update message on the widget's comm."""
    widget._handle_msg({"content": {"data": {"method": "update", "state": state, "buffer_paths": []}},
                        "buffers": []})


def test_panels_that_apply(keyword, minilm, tiny_gpt2):
    assert lw.Explorer(keyword, TEXT).view_names == ["attention", "attribution", "neuron"]
    ex = lw.Explorer(minilm, "The keys are on the table.")  # no head: no attribution target, no lens
    assert ex.view_names == ["attention", "neuron"]
    assert ex.skipped == {"attribution": NEEDS_TARGET, "logit_lens": minilm.adapter.why_not("logit_lens")}
    assert "no language-model head" in ex.skipped["logit_lens"]
    # with a target the attribution panel applies to an encoder without a head
    ex = lw.Explorer(minilm, "The keys are on the table.", panels=("attribution",),
                     options={"attribution": {"target": lambda out: out.last_hidden_state[:, 0, 0],
                                              "method": "grad_x_input"}})
    assert ex.view_names == ["attribution"]
    ex = lw.Explorer(tiny_gpt2, "the cat sat on the", options={"attribution": {"method": "grad_x_input"}})
    assert ex.view_names == ["attention", "attribution", "neuron", "logit_lens"]
    ex.panels["attribution"].wait(60)
    assert len(ex.panels["attribution"].result.targets) == 4  # explains the next 4 generated tokens
    with pytest.raises(ValueError, match="Unknown panels"):
        lw.Explorer(minilm, "x", panels=("attention", "saliency_map"))


def test_one_selection_for_every_panel(keyword):
    ex = lw.Explorer(keyword, TEXT)
    assert ex.tokens == keyword.trace(TEXT).tokens
    front_end_sets(ex.panels["attention"], selected_token=4)  # a click in the attention panel
    assert ex.selected_token == 4 and [v.selected_token for v in ex.views] == [4, 4, 4]
    ex.selected_token = 9  # Python drives every panel, even while attribution still computes
    assert [v.selected_token for v in ex.views] == [9, 9, 9]
    front_end_sets(ex, selected_token=2)  # a click on the shared strip
    assert [v.selected_token for v in ex.views] == [2, 2, 2]
    seen = []
    ex.observe(lambda c: seen.append(c["new"]), "selected_token")
    other = ipywidgets.IntText()
    ipywidgets.link((ex, "selected_token"), (other, "value"))
    other.value = 7
    assert seen == [7] and ex.panels["neuron"].selected_token == 7
    with pytest.raises(traitlets.TraitError, match="selected_token must be in 0..10, or None"):
        ex.selected_token = len(ex.tokens)
    ex.panels["attribution"].wait(60)
    assert ex.panels["attribution"].selected_token == 7  # kept through the attribution's arrival


def test_rerun_on_new_text_and_bad_text_keeps_the_views(keyword):
    ex = lw.Explorer(keyword, TEXT)
    ex.selected_token = 3
    old = list(ex.views)
    front_end_sets(ex, text="the movie was awful")  # typed in the text box
    assert ex.tokens == keyword.trace("the movie was awful").tokens and ex.selected_token is None
    assert all(v not in old for v in ex.views) and ex.error == ""
    ex.selected_token = 4  # links re-made for the new panels
    assert [v.selected_token for v in ex.views] == [4, 4, 4]
    kept = list(ex.views)
    ex.text = "   "
    assert "empty" in ex.error.lower() and ex.views == kept  # nothing lost


def test_export_carries_every_panel(keyword, tmp_path):
    ex = lw.Explorer(keyword, "a <img src=x onerror=alert(1)> great film")
    ex.panels["attribution"].wait(60)
    ex.selected_token = 2
    html = ex.to_html(tmp_path / "ex.html").read_text()
    payload = json.loads(html.split('id="lw-payload">')[1].split("</script>")[0])
    (view,) = payload["views"]
    assert view["bundle"] == "explorer" and view["state"]["selected_token"] == 2
    children = view["state"]["_export"]["children"]
    assert [c["bundle"] for c in children] == ["attention", "attribution", "neuron"]
    assert all(c["state"]["selected_token"] == 2 for c in children)
    assert "<img" not in html  # the token text is data, never markup


def test_induction_model_panels_and_what_is_left_out():
    ind = lw.teaching.induction_model()
    ex = lw.Explorer(ind, lw.teaching.repeated_prompt(period=8), options={"attribution": {"method": "occlusion"}})
    assert ex.view_names == ["attention", "attribution", "logit_lens"]
    assert "neuron" in ex.skipped and "MLP" in ex.skipped["neuron"]  # attention-only: no neurons
    ex.panels["attribution"].wait(60)
    assert ex.panels["attribution"].error == ""
