"""Token text that looks like markup renders as text in every view's export (file://, no network):
the neuron, logit-lens, patching, probe, concept and explorer views (the attention view has its own
live + export test). `window.__xss` stays undefined and the literal text is on the page."""
import pytest

import llm_widgets as lw

XSS = '<img src=x onerror="window.__xss=1">'
TEXT = f"the {XSS} cat"


def views(minilm, tiny_gpt2):
    yield "neuron", lambda: lw.NeuronView(minilm, TEXT, selected_layer=1)
    yield "logit_lens", lambda: lw.LogitLensView(tiny_gpt2, TEXT)
    yield "patching", lambda: lw.PatchingView(tiny_gpt2, TEXT + " john", TEXT + " mary", metric="logit_diff",
                                              answers=(" john", " mary"), per_head=False)
    yield "probe", lambda: lw.ProbeView(minilm, [f"{XSS} runs", "it ran", f"{XSS} walks", "he walked"] * 4,
                                        ["present", "past"] * 8, seeds=1, control=False, background=False)
    yield "concepts", lambda: lw.ConceptView(minilm, [TEXT, "a dog"], selected_layer=1, k=2, background=False)
    yield "explorer", lambda: lw.Explorer(minilm, TEXT)
    yield "direct_logit", lambda: lw.DirectLogitView(tiny_gpt2, TEXT, target="the")


@pytest.mark.parametrize("name", ["neuron", "logit_lens", "patching", "probe", "concepts", "explorer",
                                  "direct_logit"])
def test_markup_in_tokens_stays_text(name, minilm, tiny_gpt2, static_page, tmp_path):
    view = dict(views(minilm, tiny_gpt2))[name]()
    page = static_page(view.to_html(tmp_path / f"{name}.html"))
    page.wait_for_timeout(300)
    assert page.lw_errors == [] and page.lw_blocked == []
    assert page.evaluate("() => window.__xss") is None
    assert page.evaluate("() => document.querySelectorAll('img[src=x]').length") == 0
    if name in ("neuron", "explorer", "direct_logit"):  # token strips: the markup's pieces are shown as text
        toks = page.eval_on_selector_all(".lw-tok", "els => els.map(e => e.textContent)")
        assert "<" in toks and ">" in toks
