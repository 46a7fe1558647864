"""PatchingView, LogitLensView and NeuronView in a real browser: click a patching cell, read the
selection back in Python; the static exports render and respond with no kernel."""
import json

import pytest

from conftest import TINY_GPT2_CELL as MODEL  # noqa: E402
CLEAN = "When Mary and John went to the store, John gave a drink to"
CORRUPT = "When Mary and John went to the store, Mary gave a drink to"


def quoted(token: str) -> str:
    """A token as js/src/lib/format.ts quoted() writes it: JSON-quoted, isolated from the line's direction."""
    return "\u2068" + json.dumps(token, ensure_ascii=False) + "\u2069"


def prob(p: float) -> str:
    """A probability as js/src/lib/format.ts prob() writes it (never 0.0%)."""
    return "0" if p == 0 else f"{100 * p:.1f}%" if abs(p) >= 1e-3 else f"{p:.1e}".replace("e-0", "e-")


def click_cell(page, testid, row, col):
    canvas = page.locator(f"[data-testid={testid}]").first
    d = canvas.evaluate("e => ({...e.dataset})")
    cell, left, top = float(d["cell"]), float(d["left"]), float(d["top"])
    cell_w = float(d.get("cellW", cell))  # cells may be wider than tall (the logit lens fits its tokens)
    canvas.click(position={"x": left + (col + 0.5) * cell_w, "y": top + (row + 0.5) * cell})


@pytest.mark.browser
def test_patching_click_reads_back_in_python(notebook):
    nb = notebook([MODEL, f"v = lw.PatchingView(s, clean={CLEAN!r}, corrupted={CORRUPT!r}, "
                          "answers=('mary', 'john'), background=True)\nv",
                      f"nv = lw.NeuronView(s, {CLEAN!r}, selected_layer=1)\nnv"], name="patching-demo")
    page = nb.page
    page.locator("[data-lw-view=patching][data-ready='1']").first.wait_for(timeout=60_000)
    assert page.locator("[data-lw-view=patching] canvas[data-testid^=heat-]").count() == 4
    last = int(nb.run("print(len(v.tokens) - 1)"))
    click_cell(page, "heat-resid", 2, last)
    page.wait_for_selector(f"[data-testid=detail][data-site=resid][data-layer='2'][data-token='{last}']")
    assert nb.run("print(v.selected_site, v.selected_layer, v.selected_token)") == f"resid 2 {last}"
    # the full clean residual at the last layer restores the clean output: the view says 1.0000
    assert page.locator("[data-testid=detail-title]").inner_text().endswith(": 1.0000")
    click_cell(page, "heat-heads", 1, 3)
    page.wait_for_selector("[data-testid=detail][data-site=heads][data-layer='1'][data-head='3']")
    assert nb.run("print(v.selected_site, v.selected_layer, v.selected_head, v.selected_token)") == "heads 1 3 None"
    nb.screenshot("patching-click")
    # NeuronView in the kernel: token -> top neuron -> zero-ablate it; the output change is shown
    nv = page.locator("[data-lw-view=neuron][data-ready='1']").first
    nv.locator("[data-testid=tokens] .lw-tok").nth(3).click()
    nv.locator("[data-testid=neuron-table] tbody tr").first.click()
    nv.locator("[data-testid=ablation-mode]").select_option("zero")
    nv.locator("[data-testid=ablation] td").first.wait_for(timeout=30_000)
    assert nb.run("print(nv.selected_token, nv.ablation['neurons'] == [nv.selected_neuron], nv.ablation['mode'])") == "3 True zero"
    first = nb.run("print(nv.ablation['outputs'][0])")
    assert nv.locator("[data-testid=ablation] td").first.inner_text() == quoted(first)
    # resample: a donor of another length shows the Python error, keeping the box; a fitting one ablates
    donor = nv.locator("[data-testid=ablation-donor]")
    donor.fill("too short")
    donor.press("Tab")
    nv.locator("[data-testid=ablation-mode]").select_option("resample")
    nv.locator("[data-testid=error]:has-text('same shape')").wait_for(timeout=30_000)
    assert donor.input_value() == "too short" and nb.run("print(nv.ablation_donor, nv.ablation == {})") == "too short True"
    donor.fill(CORRUPT)  # as many tokens as the view's text
    donor.press("Tab")
    nv.locator("[data-testid=ablation] .lw-title:has-text('resample-ablating')").wait_for(timeout=30_000)
    assert nb.run("print(nv.ablation['mode'], repr(nv.error))") == "resample ''"


@pytest.mark.browser
def test_mechanistic_exports_render_offline(tiny_gpt2, minilm, static_page, tmp_path):
    import llm_widgets as lw

    v = lw.PatchingView(tiny_gpt2, clean=CLEAN, corrupted=CORRUPT, answers=("mary", "john"))
    page = static_page(v.to_html(tmp_path / "patching.html"))
    page.wait_for_selector("[data-lw-view=patching][data-ready='1']")
    assert page.lw_blocked == [] and page.lw_errors == []
    click_cell(page, "heat-mlp", 1, 10)
    title = page.locator("[data-testid=detail-title]").inner_text()
    assert title.startswith("patch MLP output, layer 1, position 10") and title.endswith(f"{v.result.score('mlp', 1, 10):.4f}")
    noise = lw.PatchingView(tiny_gpt2, clean=CLEAN, corrupted=CORRUPT, answers=("mary", "john"), direction="noising")
    page = static_page(noise.to_html(tmp_path / "noising.html"))
    page.wait_for_selector("[data-lw-view=patching][data-ready='1']")
    assert page.locator("[data-testid=direction]").inner_text() == "noising: the clean run, patched from: corrupted run"
    label = page.locator("[data-testid=heat-resid-colorbar]").get_attribute("data-label")
    assert label == "normalised metric (0 = clean output, 1 = corrupted output)"

    lens = lw.LogitLensView(tiny_gpt2, "The cat sat on the mat")
    page = static_page(lens.to_html(tmp_path / "lens.html"))
    page.wait_for_selector("[data-lw-view=logit_lens][data-ready='1']")
    click_cell(page, "heatmap", 3, 2)
    first = page.locator("[data-lw-view=logit_lens] [data-testid=detail] li").first.inner_text()
    label, p = lens.result.top(2, 2)[0]  # row 3 is block 2 (the embeddings are row 0)
    assert first == f"{quoted(label)} {prob(p)}"
    assert page.evaluate("() => window.__lw_models[0].get('selected_layer')") == 2

    nv = lw.NeuronView(minilm, "The cat sat on the mat", selected_layer=2)
    page = static_page(nv.to_html(tmp_path / "neurons.html"))
    page.wait_for_selector("[data-lw-view=neuron][data-ready='1']")
    page.locator("[data-testid=tokens] .lw-tok").nth(2).click()
    page.locator("[data-testid=neuron-table] tbody tr").first.click()
    top = nv.result.top_neurons(2, 2, k=1)[0][0]
    assert page.locator("[data-testid=neuron-input]").input_value() == str(top)
    weights = page.eval_on_selector_all("[data-testid=tokens] .lw-tok", "els => els.map(e => Number(e.dataset.weight))")
    assert max(range(len(weights)), key=weights.__getitem__) == nv.result.top_tokens(2, top)[0][0]
    page.select_option("[data-testid=layer]", "4")  # every layer is in the export
    page.wait_for_selector("[data-testid=info]:has-text('layer 4')")
