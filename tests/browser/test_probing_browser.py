"""ProbeView and ConceptView in a real JupyterLab + chromium: render, click a layer, brush points,
read the selections back in Python; both static exports render and respond with no kernel."""
import json

import numpy as np
import pytest

CELLS = [
    "import llm_widgets as lw\ns = lw.load()",
    "probe = lw.ProbeView(s, lw.datasets.tense(40), seeds=3)\nprobe",
    "cv = lw.ConceptView(s, lw.datasets.part_of_speech(10), selected_layer=2)\ncv",
]


def brush(page, canvas, frac_x0, frac_x1):
    """Drag a rectangle over the full height, from frac_x0 to frac_x1 of the canvas width."""
    box = canvas.bounding_box()
    y0, y1 = box["y"] + 2, box["y"] + box["height"] - 2
    page.mouse.move(box["x"] + frac_x0 * box["width"], y0)
    page.mouse.down()
    page.mouse.move(box["x"] + frac_x1 * box["width"], y1, steps=6)
    page.mouse.up()


def inside(coords, d, frac_x0, frac_x1, width):
    """Indices the scatter puts inside [frac_x0, frac_x1] of its width (same mapping as scatter.ts)."""
    x0, x1, pad = float(d["x0"]), float(d["x1"]), float(d["pad"])
    px = pad + (coords[:, 0].astype(np.float64) - x0) / (x1 - x0) * (width - 2 * pad)
    return [int(i) for i in np.flatnonzero((px >= frac_x0 * width) & (px <= frac_x1 * width))]


@pytest.mark.browser
def test_probe_and_concepts_in_jupyterlab_and_static_export(notebook, static_page, tmp_path):
    nb = notebook(CELLS, name="probe-concepts")
    page = nb.page
    page.locator("[data-lw-view=probe][data-ready='1']").first.wait_for(timeout=120_000)
    assert nb.run("probe.wait(); print(probe.done, probe.progress)") == "True -1.0"
    # click the chart's 4th column (embeddings first: block 2) -> Python sees selected_layer 2; the
    # detail panel shows that layer's confusion matrix (row 3 of the per-layer arrays)
    page.locator("[data-lw-view=probe] [data-testid=chart] [data-testid=layer-3]").first.click()
    page.wait_for_selector("[data-lw-view=probe] [data-testid=detail][data-layer='2']")
    assert nb.run("print(probe.selected_layer)") == "2"
    drawn = page.evaluate("""() => {
        const m = document.querySelector('[data-lw-view=probe]').parentElement.__lw.heat.m;
        return Array.from(m.values); }""")
    expected = json.loads(nb.run("import json; print(json.dumps(probe.result.confusion[3].ravel().tolist()))"))
    assert drawn == expected
    # Python drives the view; the weakest layer's mistakes are drawn with each token's share of the
    # wrong decision (the numbers of probe.contributions)
    worst = json.loads(nb.run("import numpy as np\nrow = int(np.argmin(probe.result.mean))\nL = probe.result.layers[row]\n"
                              "probe.selected_layer = L\n"
                              "print(json.dumps([L, probe.contributions[(L, probe.examples[row][0]['row'])].tolist()]))"))
    page.wait_for_selector(f"[data-lw-view=probe] [data-testid=detail][data-layer='{worst[0]}'] [data-testid=weights-legend]")
    drawn = page.eval_on_selector("[data-lw-view=probe] [data-testid=wrong-example]",
                                  "e => Array.from(e.querySelectorAll('.lw-tok')).map(s => Number(s.dataset.weight))")
    np.testing.assert_allclose(drawn, worst[1], rtol=1e-5, atol=1e-7)

    # ConceptView: brush the left 45% of the scatter -> selected_indices in Python
    page.locator("[data-lw-view=concepts][data-ready='1']").first.wait_for(timeout=120_000)
    canvas = page.locator("[data-lw-view=concepts] [data-testid=scatter]").first
    canvas.scroll_into_view_if_needed()
    d = canvas.evaluate("e => ({...e.dataset})")
    coords = np.array(json.loads(nb.run("print(json.dumps(cv.result.coords[3].tolist()))")), dtype=np.float32)
    want = inside(coords, d, 0.0, 0.45, canvas.bounding_box()["width"])
    assert 0 < len(want) < len(coords)
    brush(page, canvas, 0.005, 0.45)
    page.wait_for_selector(f"[data-lw-view=concepts] canvas[data-selected='{len(want)}']")
    assert json.loads(nb.run("print(cv.selected_indices)")) == want
    assert page.locator("[data-lw-view=concepts] [data-testid=context]").count() == len(want)
    nb.run("cv.selected_layer = 0")
    page.wait_for_function("() => document.querySelector('[data-lw-view=concepts] [data-testid=layer-label]').textContent === 'block 0'")
    nb.screenshot("probe-concepts")
    assert not nb.errors

    # static exports: render with no kernel; clicking a layer and brushing still work
    probe_html = nb.run("print(probe.to_html(%r))" % str(tmp_path / "probe.html"))
    sp = static_page(probe_html)
    sp.locator("[data-lw-view=probe][data-ready='1']").wait_for()
    sp.locator("[data-testid=chart] [data-testid=layer-2]").click()
    sp.wait_for_selector("[data-testid=detail][data-layer='1']")
    cv_html = nb.run("cv.selected_indices = []\nprint(cv.to_html(%r))" % str(tmp_path / "cv.html"))
    sc = static_page(cv_html)
    sc.locator("[data-lw-view=concepts][data-ready='1']").wait_for()
    canvas = sc.locator("[data-testid=scatter]")
    brush(sc, canvas, 0.005, 0.999)
    sc.wait_for_selector(f"canvas[data-selected='{len(coords)}']")
    assert sc.evaluate("() => window.__lw_models[0].get('selected_indices').length") == len(coords)
    # colour by cluster / label, and the layer slider re-projects, with no kernel
    legend = sc.locator("[data-testid=legend]")
    assert "noun (" in legend.inner_text()  # labelled data: coloured by label first
    sc.select_option("[data-testid=color-by]", "cluster")
    sc.wait_for_function("() => document.querySelector('[data-testid=legend]').textContent.includes('cluster 0')")
    assert sc.evaluate("() => window.__lw_models[0].get('color_by')") == "cluster"
    assert sc.locator("[data-testid=layer-label]").text_content() == "block 0"  # exported after cv.selected_layer = 0
    sc.locator("[data-testid=layer]").fill("3")  # the slider's positions are rows: block 2 is row 3 of coords
    sc.wait_for_function("() => document.querySelector('[data-testid=layer-label]').textContent === 'block 2'")
    assert float(canvas.evaluate("e => e.dataset.x0")) == pytest.approx(float(coords[:, 0].min()), abs=1e-4)
    assert float(canvas.evaluate("e => e.dataset.x0")) != pytest.approx(
        min(c[0] for c in json.loads(nb.run("print(json.dumps(cv.result.coords[1].tolist()))"))), abs=1e-4)
    assert not sp.lw_blocked and not sc.lw_blocked and not sp.lw_errors and not sc.lw_errors
