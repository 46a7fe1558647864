"""Views at a laptop/projector panel width (issue 31): in an 800 px wide JupyterLab nothing is cut off
on the right of the output area; what is wider than the panel sits in a sideways-scrolling box that
shows a cue. One notebook, four views (Explorer, PatchingView, LogitLensView on a tiny GPT-2)."""
from __future__ import annotations

from conftest import TINY_GPT2_CELL

CLEAN = "When Mary and John went to the store, John gave a drink to"
CORRUPT = "When Mary and John went to the store, Mary gave a drink to"
CELLS = [
    TINY_GPT2_CELL,
    f"ex = lw.Explorer(s, {CLEAN!r})\nex",
    f"pv = lw.PatchingView(s, {CLEAN!r}, {CORRUPT!r}, answers=(' mary', ' john'))\npv",
    f"lens = lw.LogitLensView(s, {CLEAN!r})\nlens",
]

# every canvas of a view: its right edge inside the output area, or inside a scroll box that scrolls
# and shows its cue (a box whose content is wider than itself, overflow-x auto/scroll)
CLIPPED_JS = """(view) => {
    const bad = [];
    for (const root of document.querySelectorAll(`[data-lw-view=${view}]`)) {
        if (root.closest('.lw-panel') && view !== 'explorer') continue;  // panels: checked with their Explorer
        const area = root.closest('.jp-OutputArea-output').getBoundingClientRect();
        for (const c of root.querySelectorAll('canvas')) {
            const r = c.getBoundingClientRect();
            if (r.width === 0 || r.right <= area.right + 1) continue;
            let box = c.parentElement, ok = false;
            while (box && box !== document.body) {
                const cs = getComputedStyle(box);
                if (['auto', 'scroll'].includes(cs.overflowX) && box.scrollWidth > box.clientWidth + 1) {
                    const cue = [...box.parentElement.querySelectorAll(':scope > [data-testid=scroll-cue], :scope > * > [data-testid=scroll-cue]')]
                        .concat([...box.querySelectorAll(':scope > [data-testid=scroll-cue]')]);
                    ok = cue.some((e) => getComputedStyle(e).display !== 'none' && e.textContent.includes('scroll'));
                    break;
                }
                box = box.parentElement;
            }
            if (!ok) bad.push(`${c.dataset.testid || 'canvas'}: right ${Math.round(r.right)} > ${Math.round(area.right)}`);
        }
    }
    return bad;
}"""


def test_views_fit_an_800px_panel_or_scroll_with_a_cue(notebook):
    nb = notebook(CELLS, name="narrow-views")
    page = nb.page
    page.set_viewport_size({"width": 800, "height": 900})
    for view in ("explorer", "patching", "logit_lens"):
        page.locator(f"[data-lw-view={view}][data-ready='1']").first.wait_for(timeout=120_000)
    page.wait_for_timeout(500)  # resize observers settle
    for view in ("explorer", "patching", "logit_lens"):
        assert page.evaluate(CLIPPED_JS, view) == [], view
    nb.screenshot("narrow-views")
    assert not nb.errors
