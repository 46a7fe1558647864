"""Views at a laptop/projector panel width (issue 31): in an 800 px wide JupyterLab nothing is cut off
on the right of the output area; what is wider than the panel sits in a sideways-scrolling box that
shows a cue. One notebook, six views (Explorer, PatchingView, LogitLensView, FeatureView with a
SAELens-format dictionary, SteeringView on a tiny GPT-2; AttentionView on MiniLM), every element of each checked
(tests/browser/overflow.py)."""
from __future__ import annotations

from pathlib import Path

from conftest import TINY_GPT2_CELL
from overflow import overflow

TESTS = str(Path(__file__).resolve().parents[1])
CLEAN = "When Mary and John went to the store, John gave a drink to"
CORRUPT = "When Mary and John went to the store, Mary gave a drink to"
VIEWS = ("explorer", "patching", "logit_lens", "features", "steering", "attention")
CELLS = [
    TINY_GPT2_CELL,
    f"ex = lw.Explorer(s, {CLEAN!r})\nex",
    f"pv = lw.PatchingView(s, {CLEAN!r}, {CORRUPT!r}, answers=(' mary', ' john'))\npv",
    f"lens = lw.LogitLensView(s, {CLEAN!r})\nlens",
    # a SAELens-format dictionary written by the dictionaries' tests (random weights, 200 features)
    f"import sys, tempfile, pathlib\nsys.path.insert(0, {TESTS!r})\nfrom test_dictionaries import write_saelens\n"
    "d = pathlib.Path(tempfile.mkdtemp()) / 'sae'\nwrite_saelens(d, 'jumprelu', 64, 200, 'blocks.1.hook_resid_post')\n"
    f"fv = lw.FeatureView(s, {CLEAN!r}, lw.load_dictionary(d, session=s), corpus=['the cat sat on the mat'], k=6)\nfv",
    "import numpy as np\nvec = np.random.default_rng(0).standard_normal(s.adapter.d_model).astype(np.float32) * 20\n"
    "sv = lw.SteeringView(s, ['the cat sat', 'When Mary and John went'], vec, layers=[0, 1, 2], strengths=[0, 1, 2, 4, 8],"
    " max_new_tokens=8)\nsv",
    # MiniLM's 6 x 12 head grid: the notebooks' head (2, 5) at a laptop width
    "av = lw.AttentionView(lw.load(), 'The cat sat on the mat because it was tired.', selected_layer=2, selected_head=5)\nav",
]


def test_views_fit_an_800px_panel_or_scroll_with_a_cue(notebook):
    nb = notebook(CELLS, name="narrow-views")
    page = nb.page
    page.set_viewport_size({"width": 800, "height": 900})
    for view in VIEWS:
        page.locator(f"[data-lw-view={view}][data-ready='1']").first.wait_for(timeout=120_000)
    bad = {view: overflow(page, view) for view in VIEWS}
    assert bad == {view: [] for view in VIEWS}, bad
    # the logit lens's cells hold 8-character tokens (issue 31, item 6): wider than tall, scrolling with a cue
    cell = page.evaluate("""() => { const c = document.querySelector('[data-lw-view=logit_lens] canvas[data-testid=heatmap]');
        return [Number(c.dataset.cell), Number(c.dataset.cellW)]; }""")
    assert cell[1] >= 58 and cell[1] > cell[0], cell
    nb.screenshot("narrow-views")
    assert not nb.errors
