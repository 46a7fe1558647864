"""Workshop-grade views in a real JupyterLab 4 + chromium (issue 16): controls that cannot work say
why, the Explorer's panels sit side by side with one Snapshot that shows it is busy, and views follow
JupyterLab's dark theme with readable text (WCAG contrast >= 4.5).

One notebook serves every test here (a kernel and a model load are the slow part)."""
from __future__ import annotations

import pytest

from conftest import _open_notebook

TEXT = "The cat sat on the mat because it was tired."
EXPLORER_TEXT = "the plot was dull but the ending was great"
CELLS = [
    "import llm_widgets as lw\ns = lw.load()",  # the offline default: an encoder with no output head
    f"nv = lw.NeuronView(s, {TEXT!r}, selected_layer=2)\nnv",
    f"ex = lw.Explorer(lw.teaching.keyword_classifier(), {EXPLORER_TEXT!r})\nex",
    f"attn = lw.AttentionView(s, {TEXT!r})\nattn",
]

# WCAG 2 contrast of an element's text against the background it sits on: colours parsed from the
# computed style, translucent text (JupyterLab's rgba font colours) composited over the background
CONTRAST_JS = """([sel, bgSel]) => {
    const parse = (c) => { const m = c.match(/rgba?\\(([^)]+)\\)/); const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
                           return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
    const lum = ([r, g, b]) => { const f = (u) => { u /= 255; return u <= 0.04045 ? u / 12.92 : ((u + 0.055) / 1.055) ** 2.4; };
                                 return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
    const el = document.querySelector(sel), bgEl = document.querySelector(bgSel);
    const bg = parse(getComputedStyle(bgEl).backgroundColor), fg = parse(getComputedStyle(el).color);
    const mix = [0, 1, 2].map((i) => fg[3] * fg[i] + (1 - fg[3]) * bg[i]);
    const [a, b] = [lum(mix), lum(bg)];
    return {ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05), bg: lum(bg), fg: getComputedStyle(el).color,
            bgColor: getComputedStyle(bgEl).backgroundColor};
}"""


@pytest.fixture(scope="module")
def nb(browser, lab_server):
    session = _open_notebook(browser, lab_server, CELLS, "ux", "lab")
    yield session
    session.page.context.close()


@pytest.mark.browser
def test_neuron_ablation_disabled_with_reason_on_bare_encoder(nb):
    page = nb.page
    view = page.locator("[data-lw-view=neuron][data-ready='1']").first
    view.wait_for()
    menu = view.locator("[data-testid=ablation-mode]")
    assert menu.is_disabled()
    reason = nb.run("print(nv.ablation_note)")
    assert "no output head" in reason
    assert menu.get_attribute("title") == f"ablation unavailable: {reason}"
    note = view.locator("[data-testid=why-disabled]")
    assert note.is_visible() and note.text_content() == f"ablation unavailable: {reason}"
    assert not nb.errors


@pytest.mark.browser
def test_explorer_panels_side_by_side_with_one_busy_snapshot(nb):
    page = nb.page
    page.set_viewport_size({"width": 1400, "height": 1000})
    root = page.locator("[data-lw-view=explorer][data-ready='1']").first
    root.wait_for()
    root.scroll_into_view_if_needed()
    page.wait_for_timeout(300)  # the grid re-lays out at the new width
    boxes = {p.get_attribute("data-panel"): p.bounding_box() for p in root.locator("[data-panel]").all()}
    assert set(boxes) == {"attention", "attribution", "neuron"}
    # at least two panels on one row: the same top, side by side, no overlap
    rows: dict[int, list] = {}
    for b in boxes.values():
        rows.setdefault(round(b["y"]), []).append(b)
    widest = max(rows.values(), key=len)
    assert len(widest) >= 2, boxes
    widest.sort(key=lambda b: b["x"])
    assert all(a["x"] + a["width"] <= b["x"] + 1 for a, b in zip(widest, widest[1:])), boxes
    # one Snapshot button and one title shown (the panels' own are hidden)
    snaps = [b for b in root.locator("[data-testid=snapshot]").all() if b.is_visible()]
    assert len(snaps) == 1
    titles = [t.text_content() for t in root.locator(".lw-view-title").all() if t.is_visible()]
    assert len(titles) == 1 and titles[0].startswith("Explorer")
    # Snapshot shows it is working (disabled, "saving…") and is ready again once the PNG is saved
    # (it can take well under a second: record every state the button goes through)
    snaps[0].evaluate("""(b) => { window.__snapStates = [];
        new MutationObserver(() => window.__snapStates.push([b.textContent, b.disabled]))
            .observe(b, {attributes: true, childList: true, characterData: true, subtree: true}); }""")
    with page.expect_download() as dl:
        snaps[0].click()
    assert dl.value.suggested_filename == "explorer.png"
    page.wait_for_function("""() => { const b = document.querySelector('[data-lw-view=explorer] > .lw-head [data-testid=snapshot]');
        return b.textContent === 'Snapshot' && !b.disabled; }""")
    states = page.evaluate("() => window.__snapStates")
    assert ["saving\u2026", True] in states and states[-1] == ["Snapshot", False], states
    nb.screenshot("ux-explorer-1400")
    assert not nb.errors


def _theme(page, name: str, light: bool) -> None:
    page.evaluate("(t) => window.jupyterapp.commands.execute('apputils:change-theme', {theme: t})", name)
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{str(light).lower()}'", timeout=30_000)
    page.wait_for_timeout(800)  # the theme's stylesheet applied, canvases redrawn


@pytest.mark.browser
def test_dark_theme_text_is_readable(nb):
    page = nb.page
    view = "[data-lw-view=attention][data-ready='1']:not(.lw-panel *)"  # the AttentionViews, not the Explorer's panel
    page.locator(view).first.wait_for()
    light = page.evaluate(CONTRAST_JS, [f"{view} [data-testid=info]", view])
    assert light["ratio"] >= 4.5 and light["bg"] > 0.8, light
    try:
        _theme(page, "JupyterLab Dark", light=False)
        # a view rendered in the dark theme, and the ones already there, follow it
        nb.run(f"attn2 = lw.AttentionView(s, {TEXT!r}, selected_layer=1)\nattn2")
        page.locator(view).nth(1).wait_for()
        for sel in (view, f"{view} .lw-view-title", f"{view} [data-testid=info]", f"{view} .lw-table td"):
            dark = page.evaluate(CONTRAST_JS, [sel, view])
            assert dark["ratio"] >= 4.5, (sel, dark)
        assert dark["bg"] < 0.05, dark  # the background is dark (relative luminance of #111 is 0.006)
        # canvas labels (the heatmap's, in the view drawn before the switch too) are in the root's text colour
        inks = page.evaluate("""() => Array.from(document.querySelectorAll('[data-lw-view=attention]')).map((r) =>
            [r.querySelector('canvas[data-testid=heatmap]').dataset.ink, getComputedStyle(r).color])""")
        assert len(inks) == 3 and all(ink == color for ink, color in inks), inks  # the Explorer's panel too
        page.locator(view).nth(1).scroll_into_view_if_needed()
        nb.screenshot("ux-attention-dark")
    finally:
        _theme(page, "JupyterLab Light", light=True)
    assert not nb.errors
