"""Explorer in real browsers: JupyterLab 4 and Notebook 7 (linked selection both ways), and its
static export (renders offline, clicks stay linked with no kernel)."""
from pathlib import Path


TEXT = "the plot was dull but the ending was great"
# the trained keyword classifier: an encoder with a classifier head, so attention, attribution and
# neuron panels all apply (logit lens does not: no LM head)
CELLS = ["import llm_widgets as lw\ns = lw.teaching.keyword_classifier()",
         f"ex = lw.Explorer(s, {TEXT!r})\nex"]


def selected_in_panels(page):
    """Index of the selected token in each panel's token strip (None where nothing is selected); those
    strips are hidden in the Explorer (its shared strip shows the tokens) but follow the selection."""
    return page.evaluate("""() => Array.from(document.querySelectorAll('[data-lw-view=explorer] [data-panel]')).map(p => {
        const s = p.querySelector('[data-testid=tokens] .lw-tok.lw-sel'); return s ? Number(s.dataset.index) : null; })""")


def check_linked_selection(nb):
    page = nb.page
    page.locator("[data-lw-view=explorer][data-ready='1']").first.wait_for()
    panels = page.eval_on_selector_all("[data-lw-view=explorer] [data-panel]", "els => els.map(e => e.dataset.panel)")
    assert panels == ["attention", "attribution", "neuron"]
    # one strip of the text shows: the panels' strips of the same tokens are hidden (issue 31, item 9)
    visible = page.eval_on_selector_all("[data-lw-view=explorer] .lw-strip",
                                        "els => els.filter(e => e.offsetParent !== null).map(e => e.dataset.testid)")
    assert visible == ["shared-tokens"]
    # the shared strip shows the attribution panel's scores (auto mode), with their colour bar
    page.wait_for_function("() => document.querySelector('[data-lw-view=explorer] [data-testid=shared-strip]').dataset.mode === 'attribution'")
    assert page.locator("[data-testid=shared-tokens] .lw-tok[data-weight]").count() == len(TEXT.split()) + 2
    # hover highlights the same token in every view, in the browser alone
    page.locator("[data-testid=shared-tokens] .lw-tok").nth(2).hover()
    hovered = page.eval_on_selector_all("[data-lw-view=explorer] .lw-tok.lw-hover", "els => els.map(e => Number(e.dataset.index))")
    assert set(hovered) == {2} and len(hovered) >= 4  # shared strip + attention + attribution + neuron
    # click a token in the shared strip -> every view selects it and Python reads it
    page.locator("[data-testid=shared-tokens] .lw-tok").nth(3).click()
    page.wait_for_function("() => document.querySelector('[data-lw-view=explorer]').dataset.selected === '3'")
    assert selected_in_panels(page) == [3, 3, 3]  # the attribution view highlights it too
    assert nb.run("print(ex.selected_token, [v.selected_token for v in ex.views])") == "3 [3, 3, 3]"
    # Python drives every view
    nb.run("ex.selected_token = 5")
    page.wait_for_function("""() => Array.from(document.querySelectorAll('[data-lw-view=explorer] [data-panel] [data-testid=tokens] .lw-tok.lw-sel')).map(e => e.dataset.index).join() === '5,5,5'""")
    assert not nb.errors


def test_explorer_in_jupyterlab(notebook):
    nb = notebook(CELLS, name="explorer-lab")
    check_linked_selection(nb)
    # re-run on new text from the text box
    page = nb.page
    box = page.locator("[data-lw-view=explorer] [data-testid=text]").first
    box.fill("the movie was awful")
    box.press("Enter")
    page.wait_for_function("""() => { const r = document.querySelector('[data-lw-view=explorer]');
        return r.dataset.ready === '1' && r.querySelector('[data-testid=shared-tokens]').textContent.includes('awful'); }""")
    assert nb.run("print(len(ex.tokens), ex.text)") == "6 the movie was awful"
    nb.page.locator("[data-lw-view=explorer]").first.scroll_into_view_if_needed()
    nb.screenshot("explorer-lab")


def test_explorer_in_notebook7(notebook7):
    nb = notebook7(CELLS, name="explorer-nb7")
    check_linked_selection(nb)
    nb.screenshot("explorer-nb7")


def test_explorer_static_export_stays_linked(static_page, tmp_path):
    import llm_widgets as lw

    ex = lw.Explorer(lw.teaching.keyword_classifier(), TEXT)
    ex.panels["attribution"].wait()
    page = static_page(ex.to_html(tmp_path / "explorer.html"))
    assert page.lw_blocked == [] and page.lw_errors == []
    page.wait_for_selector("[data-lw-view=explorer][data-ready='1']")
    assert page.locator("[data-lw-view=explorer] [data-panel] [data-lw-view]").count() == 3  # every panel drawn
    page.locator("[data-testid=shared-tokens] .lw-tok").nth(4).click()
    assert selected_in_panels(page) == [4, 4, 4]
    assert page.evaluate("() => window.__lw_models[0].get('selected_token')") == 4


def test_snapshot_saves_the_whole_view_as_png(static_page, tmp_path):
    """The Snapshot button of any view writes a PNG of everything the view shows (canvases too)."""
    import struct

    import llm_widgets as lw

    ex = lw.Explorer(lw.teaching.keyword_classifier(), TEXT)
    ex.panels["attribution"].wait()
    page = static_page(ex.to_html(tmp_path / "explorer.html"))
    page.wait_for_selector("[data-lw-view=explorer][data-ready='1']")
    root = page.locator("[data-lw-view=explorer]").first
    with page.expect_download() as dl:
        root.locator("[data-testid=snapshot]").first.click()
    png = Path(dl.value.path()).read_bytes()
    (Path("test-artifacts") / "explorer-snapshot.png").write_bytes(png)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and dl.value.suggested_filename == "explorer.png"
    w, h = struct.unpack(">II", png[16:24])
    box = root.bounding_box()
    assert w >= box["width"] * 0.95 and h >= box["height"] * 0.95  # the whole view, not a thumbnail
    # not a blank page: heatmaps and token highlights made it into the image in many colours
    import base64
    colours = page.evaluate("""async (b64) => {
        const img = new Image(); img.src = 'data:image/png;base64,' + b64; await img.decode();
        const c = document.createElement('canvas'); c.width = img.width; c.height = img.height;
        const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
        const d = ctx.getImageData(0, 0, c.width, c.height).data, seen = new Set();
        for (let i = 0; i < d.length; i += 4) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
        return seen.size; }""", base64.b64encode(png).decode())
    assert colours > 200
