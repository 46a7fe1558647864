"""AttributionView in a real browser: a generation attribution in JupyterLab (click an output token,
an input token, the word-level toggle; read the traits back in Python), and its static export
rendering from file:// with clicks that work with no kernel."""
import numpy as np
import pytest

from conftest import TINY_GPT2_CELL as MODEL  # noqa: E402
PROMPT = "The unbelievably tall tower stands in"
VIEW = "[data-lw-view=attribution][data-ready='1']"


def weights(page, strip):
    return np.array(page.eval_on_selector_all(f"{VIEW} [data-testid={strip}] .lw-tok",
                                              "els => els.map(e => Number(e.dataset.weight))"), np.float32)


def f16(a):
    return np.asarray(a, np.float32).astype(np.float16).astype(np.float32)


@pytest.mark.browser
def test_generation_clicks_read_back_in_python(notebook):
    nb = notebook([MODEL, f"v = lw.AttributionView(s, {PROMPT!r}, generate=3, method='occlusion')\nv"],
                  name="attribution-demo")
    page = nb.page
    page.locator(VIEW).first.wait_for(timeout=60_000)
    assert nb.run("print(v.error == '', len(v.targets))") == "True 3"
    # click the third generated token: its row colours the prompt
    page.locator(f"{VIEW} [data-testid=outputs] .lw-tok").nth(2).click()
    page.wait_for_selector(f"{VIEW}[data-selected-output='2']")
    assert nb.run("print(v.selected_output)") == "2"
    row2 = np.array(eval(nb.run("print(v.result.scores[2].tolist())")), np.float32)
    np.testing.assert_allclose(weights(page, "tokens"), f16(row2), rtol=1e-6, atol=1e-9)
    assert page.locator(f"{VIEW} [data-testid=faithfulness]").get_attribute("data-row") == "2"
    # click an input token: its influence on every output colours the generated tokens
    page.locator(f"{VIEW} [data-testid=tokens] .lw-tok").nth(4).click()
    page.wait_for_selector(f"{VIEW}[data-selected-token='4']")
    assert nb.run("print(v.selected_token)") == "4"
    col4 = np.array(eval(nb.run("print(v.result.scores[:, 4].tolist())")), np.float32)
    np.testing.assert_allclose(weights(page, "outputs"), f16(col4), rtol=1e-6, atol=1e-9)
    # Python -> view, and the word-level toggle -> Python
    nb.run("v.selected_output = 0")
    page.wait_for_selector(f"{VIEW}[data-selected-output='0']")
    page.locator(f"{VIEW} [data-testid=word-level]").check()
    page.wait_for_selector(f"{VIEW}[data-word-level='1']")
    assert nb.run("print(v.word_level, len(v.words))") == "True 8"
    assert page.locator(f"{VIEW} [data-testid=tokens] .lw-tok").count() == 8
    # words colour by the summed scores; a click on a word selects its first token ('tall' = 7)
    w = np.array(eval(nb.run("print(v.result.word_scores()[0].tolist())")), np.float32)
    np.testing.assert_allclose(weights(page, "tokens"), f16(w), rtol=1e-6, atol=1e-9)
    page.locator(f"{VIEW} [data-testid=tokens] .lw-tok").nth(3).click()
    page.wait_for_selector(f"{VIEW}[data-selected-token='7']")
    assert nb.run("print(v.selected_token, v.tokens[v.selected_token])") == "7 tall"
    # another method from the menu: recomputed in the kernel, shown when done
    page.select_option(f"{VIEW} [data-testid=method]", "grad_x_input")
    page.wait_for_selector(f"{VIEW} [data-testid=info]:has-text('gradient')")
    assert nb.run("v.wait(); print(v.method, v.result.method)") == "grad_x_input grad_x_input"
    nb.screenshot("attribution-click")
    assert not nb.errors


@pytest.mark.browser
def test_attribution_export_renders_and_clicks_offline(tiny_gpt2, static_page, tmp_path):
    import llm_widgets as lw

    v = lw.AttributionView(tiny_gpt2, PROMPT, generate=3, method="grad_x_input", background=False)
    page = static_page(v.to_html(tmp_path / "attribution.html"))
    page.wait_for_selector(VIEW)
    assert page.lw_blocked == [] and page.lw_errors == []
    assert page.locator(f"{VIEW} [data-testid=method]").is_disabled()  # recomputing needs a kernel
    np.testing.assert_allclose(weights(page, "tokens"), f16(v.result.scores[0]), rtol=1e-6, atol=1e-9)
    page.locator(f"{VIEW} [data-testid=outputs] .lw-tok").nth(1).click()
    page.wait_for_selector(f"{VIEW}[data-selected-output='1']")
    np.testing.assert_allclose(weights(page, "tokens"), f16(v.result.scores[1]), rtol=1e-6, atol=1e-9)
    # the faithfulness panel follows the row, with the deletion curve drawn from the buffers
    panel = page.locator(f"{VIEW} [data-testid=faithfulness]")
    assert panel.get_attribute("data-row") == "1"
    delta = v.result.faithfulness.summary(1)["delta"]
    assert page.locator(f"{VIEW} [data-testid=faith-delta]").inner_text().startswith(f"{delta:.4f}")
    assert page.locator(f"{VIEW} [data-testid=deletion-chart] polyline").count() == 2
    # a click in the matrix selects an output and an input token at once
    canvas = page.locator(f"{VIEW} [data-testid=matrix]")
    d = canvas.evaluate("e => ({...e.dataset})")
    cell, left, top = float(d["cell"]), float(d["left"]), float(d["top"])
    canvas.click(position={"x": left + 3.5 * cell, "y": top + 2.5 * cell})
    page.wait_for_selector(f"{VIEW}[data-selected-output='2'][data-selected-token='3']")
    np.testing.assert_allclose(weights(page, "outputs"), f16(v.result.scores[:, 3]), rtol=1e-6, atol=1e-9)
    # the word-level toggle works with no kernel too: columns and colours become words
    page.locator(f"{VIEW} [data-testid=word-level]").check()
    page.wait_for_selector(f"{VIEW}[data-word-level='1']")
    assert page.eval_on_selector_all(f"{VIEW} [data-testid=tokens] .lw-tok", "els => els.map(e => e.textContent)") == v.words
    np.testing.assert_allclose(weights(page, "tokens"), f16(v.result.word_scores()[2]), rtol=1e-6, atol=1e-9)
    assert page.locator(f"{VIEW} [data-testid=matrix]").get_attribute("data-cols") == str(len(v.words))
    # a failed run shows its error (escaped text) instead of a view
    bad = lw.AttributionView(tiny_gpt2, PROMPT, contrast="london", background=True).wait(60)
    page = static_page(bad.to_html(tmp_path / "bad.html"))
    err = page.locator("[data-lw-view=attribution] [data-testid=error]")
    assert "contrastive target needs both" in err.inner_text() and err.is_visible()
    assert page.locator("[data-lw-view=attribution] [data-testid=tokens]").count() == 0
