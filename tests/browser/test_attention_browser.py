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


def click_grid(page, layer, head, which="first"):
    grid = getattr(page.locator("[data-lw-view=attention] [data-testid=grid]"), which)
    d = grid.evaluate("e => ({...e.dataset})")
    thumb, gap, left, top = (float(d[k]) for k in ("thumb", "gap", "left", "top"))
    grid.click(position={"x": left + head * (thumb + gap) + thumb / 2, "y": top + layer * (thumb + gap) + thumb / 2})


def drawn_matrix(page, which="first"):
    return page.evaluate("""(which) => {
        const all = document.querySelectorAll('[data-lw-view=attention]');
        const el = all[which === "last" ? all.length - 1 : 0].parentElement;
        const m = el.__lw.heat.matrix; return {shape: m.shape, values: Array.from(m.values)};
    }""", which)


def test_demo_notebook_click_hover_and_python_round_trip(notebook):
    # the chapter shows the IOI model's view first; MiniLM's `view` is shown again last, where the test reads
    nb = notebook(demo_cells() + ["view"], name="demo-attention")
    page = nb.page
    page.locator("[data-lw-view=attention][data-ready='1']").last.wait_for()
    root = page.locator("[data-lw-view=attention]").last
    assert root.locator("[data-testid=grid]").count() == 1
    # click head (2, 5) in the grid -> the kernel sees it, and the head view shows it
    click_grid(page, 2, 5, "last")
    root.locator("[data-testid=head-view][data-layer='2'][data-head='5']").wait_for()
    assert nb.run("print(view.selected_layer, view.selected_head)") == "2 5"
    # what is drawn equals the model's attention for that head (float16 transport)
    drawn = drawn_matrix(page, "last")
    expected = json.loads(nb.run("import json; print(json.dumps(view.result.attentions[2, 5].tolist()))"))
    np.testing.assert_allclose(np.array(drawn["values"]).reshape(drawn["shape"]), expected, atol=1e-3)
    # hover a token: the strip colours by where it attends, and the row is highlighted
    tok = root.locator("[data-testid=tokens] .lw-tok").nth(3)
    tok.hover()
    weights = root.locator("[data-testid=tokens] .lw-tok").evaluate_all(
        "els => els.map(e => e.dataset.weight === undefined ? null : Number(e.dataset.weight))")
    np.testing.assert_allclose(weights, expected[3], atol=1e-3)
    # click a token -> selected_token in Python
    tok.click()
    assert nb.run("print(view.selected_token)") == "3"
    assert "lw-sel" in tok.get_attribute("class")
    # Python drives the view
    nb.run("view.selected_head = 7; view.mode = 'mean'")
    root.locator("[data-testid=head-view][data-mode='mean'][data-head='7']").wait_for()
    assert root.locator("[data-testid=mode]").input_value() == "mean"
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


def test_hundred_tokens_are_labelled_with_a_colour_bar_and_zoom(notebook):
    """At T ~ 100 the heatmap keeps row and column labels (every k-th, never none), uses the width of
    the output area, has a colour bar, and zooms about the point under the wheel."""
    text = "The quick brown fox jumps over the lazy dog near the river bank. " * 8
    cells = ["import llm_widgets as lw\ns = lw.load()", f"v = lw.AttentionView(s, {text!r})\nv"]
    nb = notebook(cells, name="attention-100")
    page = nb.page
    page.locator("[data-lw-view=attention][data-ready='1']").first.wait_for()
    n = int(nb.run("print(len(v.tokens))"))
    assert 90 <= n <= 140, n
    canvas = page.locator("[data-lw-view=attention] canvas[data-testid=heatmap]").first
    canvas.scroll_into_view_if_needed()
    d = canvas.evaluate("e => ({...e.dataset})")
    assert int(d["rows"]) == n and d["step"] == "1"
    assert int(d["rowLabels"]) > 0 and int(d["colLabels"]) > 0
    # labels never overlap: consecutive labels at least one label font apart
    labels = page.evaluate("""() => {
        const h = document.querySelector('[data-lw-view=attention]').parentElement.__lw.heat;
        return {rows: h.labels.rows, font: h.labels.font, cell: h.cell, width: h.plot.width};
    }""")
    gaps = np.diff(labels["rows"]) * labels["cell"]
    assert len(labels["rows"]) == int(d["rowLabels"]) and (gaps >= labels["font"]).all()
    assert labels["width"] > 520  # sized from the output area, not capped at 520 px
    # a colour bar with units beside the heatmap (and one for the thumbnails)
    bar = page.locator("[data-lw-view=attention] [data-testid=heatmap-colorbar]").first
    assert bar.is_visible() and bar.get_attribute("data-label") == "attention weight"
    assert float(bar.get_attribute("data-min")) == 0 and float(bar.get_attribute("data-max")) > 0
    assert page.locator("[data-lw-view=attention] [data-testid=grid-colorbar]").first.is_visible()
    # the wheel zooms in about the mouse: the token under it stays under it
    box = canvas.bounding_box()
    x, y = box["x"] + float(d["left"]) + 40.5 * float(d["cell"]), box["y"] + float(d["top"]) + 30.5 * float(d["cell"])
    page.mouse.move(x, y)
    cell_before = page.evaluate("""([x, y]) => { const h = document.querySelector('[data-lw-view=attention]').parentElement.__lw.heat;
        const r = h.canvas.getBoundingClientRect(); return h.cellAtPoint(x - r.left, y - r.top); }""", [x, y])
    assert cell_before == [30, 40]
    page.mouse.wheel(0, -300)
    page.wait_for_function("() => Number(document.querySelector('[data-lw-view=attention] canvas[data-testid=heatmap]').dataset.zoom) > 1")
    cell_after = page.evaluate("""([x, y]) => { const h = document.querySelector('[data-lw-view=attention]').parentElement.__lw.heat;
        const r = h.canvas.getBoundingClientRect(); return h.cellAtPoint(x - r.left, y - r.top); }""", [x, y])
    assert cell_after == [30, 40]
    nb.screenshot("attention-100-tokens")
    assert not nb.errors


LONG_GPT2_CELL = (  # a small seeded GPT-2 that takes 1024 positions (MiniLM's tokenizer)
    "import llm_widgets as lw, torch\n"
    "from transformers import GPT2Config, GPT2LMHeadModel\n"
    "tok = lw.load().tokenizer\ntok.model_max_length = 1024\n"
    "torch.manual_seed(0)\n"
    "cfg = GPT2Config(vocab_size=tok.vocab_size, n_positions=1024, n_embd=64, n_layer=3, n_head=4)\n"
    "s = lw.load((GPT2LMHeadModel(cfg), tok), device='cpu')"
)


def test_long_input_overview_then_exact_tile_on_zoom(notebook):
    """Over 512 tokens the head view starts as an overview (block maxima); zooming in to a window of at
    most 256 x 256 tokens fetches its exact weights from the kernel and draws them in place."""
    text = "The quick brown fox jumps over the lazy dog near the river bank. " * 50
    nb = notebook([LONG_GPT2_CELL, f"v = lw.AttentionView(s, {text!r})\nv"], name="attention-long")
    page = nb.page
    page.locator("[data-lw-view=attention][data-ready='1']").first.wait_for()
    n = int(nb.run("print(v.n_tokens)"))
    assert n > 512
    canvas = page.locator("[data-lw-view=attention] canvas[data-testid=heatmap]").first
    canvas.scroll_into_view_if_needed()
    d = canvas.evaluate("e => ({...e.dataset})")
    assert int(d["rows"]) == n and int(d["step"]) > 1 and d["exact"] == "overview"
    assert int(d["rowLabels"]) > 0
    assert page.locator("[data-lw-view=attention] [data-testid=tokens] .lw-tok").count() <= 512
    box = canvas.bounding_box()
    x, y = box["x"] + float(d["left"]) + 300, box["y"] + float(d["top"]) + 300
    page.mouse.move(x, y)
    for _ in range(6):
        page.mouse.wheel(0, -400)
        page.wait_for_timeout(100)
    page.wait_for_function("() => document.querySelector('[data-lw-view=attention] canvas[data-testid=heatmap]').dataset.exact === 'tile'",
                           timeout=30_000)
    q = json.loads(nb.run("import json; print(json.dumps(v.tile_request))"))
    assert q["mode"] == "head" and q["rows"] <= 256 and q["cols"] <= 256
    # what is drawn in place of the overview is the exact weights of that window
    drawn = page.evaluate("""() => { const t = document.querySelector('[data-lw-view=attention]').parentElement.__lw.heat.tile;
        return {r0: t.r0, c0: t.c0, shape: t.m.shape, values: Array.from(t.m.values)}; }""")
    assert [drawn["r0"], drawn["c0"]] == [q["r0"], q["c0"]] and drawn["shape"] == [q["rows"], q["cols"]]
    expected = json.loads(nb.run(
        f"print(json.dumps(v.result.source.tile(0, 0, {q['r0']}, {q['c0']}, {q['rows']}, {q['cols']}).tolist()))"))
    np.testing.assert_allclose(np.array(drawn["values"]).reshape(drawn["shape"]), expected, atol=1e-3)
    # the strip shows the tokens of the visible columns only
    strip = page.locator("[data-lw-view=attention] [data-testid=tokens]").first
    lo, hi = int(strip.get_attribute("data-start")), int(strip.get_attribute("data-end"))
    assert 0 < hi - lo <= 256
    nb.screenshot("attention-long-tile")
    assert not nb.errors


def test_head_grid_fits_a_narrow_panel_and_every_head_stays_reachable(notebook):
    """At a laptop/projector panel width the layer x head grid shrinks its thumbnails to the output
    area (it was clipped on the right: head (5, 11) hidden); a click on the last head still reaches
    Python."""
    nb = notebook(["import llm_widgets as lw\ns = lw.load()\n"
                   "view = lw.AttentionView(s, 'The cat sat on the mat because it was tired.')\nview"], name="attention-narrow")
    page = nb.page
    page.locator("[data-lw-view=attention][data-ready='1']").first.wait_for()
    wide = float(page.locator("[data-lw-view=attention] [data-testid=grid]").first.get_attribute("data-thumb"))
    page.set_viewport_size({"width": 720, "height": 900})
    page.wait_for_function(f"() => Number(document.querySelector('[data-lw-view=attention] [data-testid=grid]').dataset.thumb) < {wide}")
    g = page.evaluate("""() => {
        const grid = document.querySelector('[data-lw-view=attention] [data-testid=grid]');
        const area = grid.closest('.jp-OutputArea-output');
        return {grid: grid.getBoundingClientRect().right, area: area.getBoundingClientRect().right,
                cue: getComputedStyle(document.querySelector('[data-lw-view=attention] [data-testid=scroll-cue]')).display};
    }""")
    assert g["grid"] <= g["area"] + 1, g  # 12 heads fit: no scroll needed, so no cue
    assert g["cue"] == "none"
    click_grid(page, 5, 11)
    page.wait_for_selector("[data-testid=head-view][data-layer='5'][data-head='11']")
    assert nb.run("print(view.selected_layer, view.selected_head)") == "5 11"
    nb.screenshot("attention-narrow")
    assert not nb.errors
