"""SteeringView in a real JupyterLab + chromium: a click on a cell of the layers x strengths grid reaches
Python (selected_layer, selected_strength), and Python's selection is drawn back (the detail names
the cell and lists each prompt's steered continuation as the kernel computed it)."""
import json

import pytest

from conftest import TINY_GPT2_CELL

VIEW = "[data-lw-view=steering][data-ready='1']"
CELLS = [
    TINY_GPT2_CELL,
    "import numpy as np\nvec = np.random.default_rng(0).standard_normal(s.adapter.d_model).astype(np.float32) * 20\n"
    "v = lw.SteeringView(s, ['the cat sat', '<b>x</b> y'], vec, layers=[1, 2], strengths=[0, 1, 8], max_new_tokens=5)\nv",
]


@pytest.mark.browser
def test_click_a_steering_cell_reaches_python(notebook):
    nb = notebook(CELLS, name="steering")
    page = nb.page
    page.locator(VIEW).first.wait_for(timeout=120_000)
    page.locator(f"{VIEW} td[data-layer='2'][data-strength='1']").click()
    page.wait_for_selector(f"{VIEW} [data-testid=detail][data-layer='2']")
    nb.run("v.wait()")
    assert nb.run("print(v.selected_layer, v.selected_strength)") == "2 1.0"
    title = page.locator(f"{VIEW} [data-testid=cell-title]").first
    assert title.inner_text() == "Layer 2, strength 1.00"
    want = json.loads(nb.run("import json; print(json.dumps([''.join(t) for t in v.cells[1][1]['tokens']]))"))
    got = page.locator(f"{VIEW} [data-testid=detail]").first.locator("[data-testid=continuation]").all_text_contents()
    assert got == want
    assert page.locator(f"{VIEW} td.lw-sel").count() == page.locator(VIEW).count()  # one per rendering of the view
    # Python drives the view back
    nb.run("v.selected_layer, v.selected_strength = 1, 8.0")
    page.wait_for_selector(f"{VIEW} [data-testid=detail][data-layer='1']")
    assert title.inner_text() == "Layer 1, strength 8.00"
    assert page.locator(f"{VIEW} b").count() == 0  # the prompt's markup stays text
    assert not nb.errors
