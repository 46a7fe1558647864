"""AttentionView in a real JupyterLab 4 + chromium: render, click, hover, Python round trips, XSS."""
import json
from pathlib import Path

import nbformat
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
XSS = '<img src=x onerror="window.__xss=1">'


def demo_cells():
    nb = nbformat.read(ROOT / "notebooks" / "01_attention.ipynb", as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code" and "to_html" not in c.source]


def click_grid(page, layer, head):
    grid = page.locator("[data-lw-view=attention] [data-testid=grid]").first
    d = grid.evaluate("e => ({...e.dataset})")
    thumb, gap, left, top = (float(d[k]) for k in ("thumb", "gap", "left", "top"))
    grid.click(position={"x": left + head * (thumb + gap) + thumb / 2, "y": top + layer * (thumb + gap) + thumb / 2})


def drawn_matrix(page):
    return page.evaluate("""() => {
        const el = document.querySelector('[data-lw-view=attention]').parentElement;
        const m = el.__lw.heat.matrix; return {shape: m.shape, values: Array.from(m.values)};
    }""")


def test_demo_notebook_click_hover_and_python_round_trip(notebook):
    nb = notebook(demo_cells(), name="demo-attention")
    page = nb.page
    root = page.locator("[data-lw-view=attention][data-ready='1']").first
    root.wait_for()
    assert page.locator("[data-lw-view=attention] [data-testid=grid]").count() == 1
    # click head (2, 5) in the grid -> the kernel sees it, and the head view shows it
    click_grid(page, 2, 5)
    page.wait_for_selector("[data-testid=head-view][data-layer='2'][data-head='5']")
    assert nb.run("print(view.selected_layer, view.selected_head)") == "2 5"
    # what is drawn equals the model's attention for that head (float16 transport)
    drawn = drawn_matrix(page)
    expected = json.loads(nb.run("import json; print(json.dumps(view.result.attentions[2, 5].tolist()))"))
    np.testing.assert_allclose(np.array(drawn["values"]).reshape(drawn["shape"]), expected, atol=1e-3)
    # hover a token: the strip colours by where it attends, and the row is highlighted
    tok = page.locator("[data-lw-view=attention] [data-testid=tokens] .lw-tok").nth(3)
    tok.hover()
    weights = page.eval_on_selector_all("[data-lw-view=attention] [data-testid=tokens] .lw-tok",
                                        "els => els.map(e => e.dataset.weight === undefined ? null : Number(e.dataset.weight))")
    np.testing.assert_allclose(weights, expected[3], atol=1e-3)
    # click a token -> selected_token in Python
    tok.click()
    assert nb.run("print(view.selected_token)") == "3"
    assert "lw-sel" in tok.get_attribute("class")
    # Python drives the view
    nb.run("view.selected_head = 7; view.mode = 'mean'")
    page.wait_for_selector("[data-testid=head-view][data-mode='mean'][data-head='7']")
    assert page.locator("[data-lw-view=attention] [data-testid=mode]").input_value() == "mean"
    nb.screenshot("attention-demo")
    assert not nb.errors


def test_token_text_is_escaped_live_and_in_export(notebook, static_page, tmp_path):
    cells = [
        "import llm_widgets as lw\ns = lw.load()\n"
        f"s.tokenizer.add_tokens([{XSS!r}, '</script>'])\ns.model.resize_token_embeddings(len(s.tokenizer))",
        f"v = lw.AttentionView(s, 'before ' + {XSS!r} + ' </script> after')\nv",
    ]
    nb = notebook(cells, name="xss-attention")
    page = nb.page
    page.locator("[data-lw-view=attention][data-ready='1']").first.wait_for()
    texts = page.eval_on_selector_all("[data-lw-view=attention] [data-testid=tokens] .lw-tok", "els => els.map(e => e.textContent)")
    assert XSS in texts and "</script>" in texts  # shown literally, one token each
    assert page.locator("[data-lw-view=attention] img").count() == 0
    page.wait_for_timeout(300)
    assert page.evaluate("() => window.__xss") is None
    out = tmp_path / "xss.html"
    nb.run(f"v.to_html({str(out)!r})")
    sp = static_page(out)
    texts = sp.eval_on_selector_all("[data-testid=tokens] .lw-tok", "els => els.map(e => e.textContent)")
    assert XSS in texts and "</script>" in texts
    assert sp.locator("img").count() == 0
    assert sp.evaluate("() => window.__xss") is None
    assert not sp.lw_errors


def test_static_export_renders_offline_and_responds(minilm, static_page, tmp_path):
    import llm_widgets as lw

    view = lw.AttentionView(minilm, "The keys to the cabinet are on the table.")
    page = static_page(view.to_html(tmp_path / "attention.html"))
    assert page.lw_blocked == [] and page.lw_errors == []
    page.wait_for_selector("[data-lw-view=attention][data-ready='1']")
    click_grid(page, 4, 3)  # no kernel: the export carries every head
    page.wait_for_selector("[data-testid=head-view][data-layer='4'][data-head='3']")
    drawn = drawn_matrix(page)
    np.testing.assert_allclose(np.array(drawn["values"]).reshape(drawn["shape"]),
                               view.result.attentions[4, 3], atol=1e-3)
    page.screenshot(path=str(Path(__file__).resolve().parents[2] / "test-artifacts" / "attention-export.png"))
