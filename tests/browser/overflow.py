"""Horizontal overflow of a view in a real browser (issue 31): what sticks out on the right of the
notebook's output area must sit inside a box that scrolls sideways and shows its scroll cue. Shared by
tests/browser/test_narrow_browser.py and `make gallery` (tests/browser/gallery.py)."""
from __future__ import annotations

# Every element of every view `view` (a data-lw-view name; of its `only`-th rendering, or all where null) whose right edge passes the right edge of
# its output area: allowed only inside a box that scrolls sideways (overflow-x auto/scroll, content
# wider than the box) with a visible cue ("scroll sideways ..."). Returns one line per offender.
# Explorer panels are checked with their Explorer. Elements with no width (hidden) are skipped.
OVERFLOW_JS = """([view, only]) => {
    const bad = [];
    const name = (e) => e.tagName.toLowerCase() + (e.dataset && e.dataset.testid ? `[${e.dataset.testid}]` : '') +
        (typeof e.className === 'string' && e.className ? '.' + e.className.split(' ').join('.') : '');
    const cueOf = (box) => {
        const near = [...box.querySelectorAll(':scope > [data-testid=scroll-cue]')];
        if (box.parentElement) near.push(...box.parentElement.querySelectorAll(
            ':scope > [data-testid=scroll-cue], :scope > * > [data-testid=scroll-cue]'));
        return near.some((e) => getComputedStyle(e).display !== 'none' && e.textContent.includes('scroll'));
    };
    const roots = [...document.querySelectorAll(`[data-lw-view=${view}]`)];
    for (const root of (only === null ? roots : roots.slice(only, only + 1))) {
        if (root.closest('.lw-panel') && view !== 'explorer') continue;
        const out = root.closest('.jp-OutputArea-output') || root.parentElement;
        const area = out.getBoundingClientRect();
        const rr = root.getBoundingClientRect();
        if (rr.right > area.right + 1) bad.push(`view root: right ${Math.round(rr.right)} > ${Math.round(area.right)}`);
        for (const e of root.querySelectorAll('*')) {
            const r = e.getBoundingClientRect();
            if (r.width === 0 || r.right <= area.right + 1) continue;
            let box = e.parentElement, ok = false;
            while (box && box !== out) {
                const cs = getComputedStyle(box);
                if (['auto', 'scroll', 'hidden'].includes(cs.overflowX) && box.getBoundingClientRect().right <= area.right + 1) {
                    // clipped by a box inside the area: fine when it scrolls with a cue, clipped otherwise
                    ok = cs.overflowX !== 'hidden' && box.scrollWidth > box.clientWidth + 1 && cueOf(box);
                    if (!ok) bad.push(`${name(e)} (right ${Math.round(r.right)}) clipped by ${name(box)} (right ` +
                        `${Math.round(box.getBoundingClientRect().right)}, scroll ${box.scrollWidth} / ${box.clientWidth}), which ` +
                        `${cs.overflowX === 'hidden' ? 'hides it' : 'shows no cue'}`);
                    ok = true;  // reported (or fine): not again as sticking out
                    break;
                }
                box = box.parentElement;
            }
            if (!ok) bad.push(`${name(e)}: right ${Math.round(r.right)} > ${Math.round(area.right)}`);
        }
    }
    return [...new Set(bad)];
}"""


def overflow(page, view: str, settle_s: float = 5.0) -> list[str]:
    """What of view `view` sticks out of its output area outside a scrolling box with a cue ([] when
    nothing does). Each rendering of the view is scrolled into sight first: JupyterLab 4 skips the
    layout of cells out of sight (content-visibility), so their resize observers, and with them the
    views' fitting and scroll cues, run only once they are shown. Polled for up to `settle_s`
    seconds (observers answer a frame or two after a resize)."""
    bad: list[str] = []
    for k in range(page.locator(f"[data-lw-view={view}]").count()):
        root = page.locator(f"[data-lw-view={view}]").nth(k)
        if not root.is_visible() or root.evaluate("(r) => !!r.closest('.lw-panel')") and view != "explorer":
            continue
        root.scroll_into_view_if_needed()
        for _ in range(max(1, int(settle_s / 0.25))):
            page.wait_for_timeout(250)
            bad = page.evaluate(OVERFLOW_JS, [view, k])
            if not bad:
                break
        if bad:
            return bad
    return bad
