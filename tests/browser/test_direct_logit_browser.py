"""DirectLogitView in a real browser: a head click and a token click reach Python (the shares of the
new position come back and are drawn); the static export reads every position with no kernel."""
import pytest

from conftest import TINY_GPT2_CELL as MODEL  # noqa: E402
from test_mechanistic_browser import click_cell  # noqa: E402

TEXT = "The cat sat on the mat"


@pytest.mark.browser
def test_head_and_token_clicks_reach_python(notebook):
    nb = notebook([MODEL, f"v = lw.DirectLogitView(s, {TEXT!r}, target='the', contrast='mean')\nv"], name="dla-demo")
    page = nb.page
    view = page.locator("[data-lw-view=direct_logit][data-ready='1']").first
    view.wait_for(timeout=60_000)
    click_cell(page, "heat-heads", 1, 2)
    page.wait_for_selector("[data-testid=detail][data-layer='1'][data-head='2']")
    assert nb.run("print(v.selected_layer, v.selected_head)") == "1 2"
    view.locator("[data-testid=tokens] .lw-tok").nth(2).click()
    view.locator("[data-testid=check]:has-text('at position 2')").wait_for(timeout=30_000)
    assert nb.run("print(v.selected_token, v.summary['position'])") == "2 2"
    want = nb.run("print(f\"{v.summary['total']:.4f}\")")
    assert f"sum of shares {want}" in view.locator("[data-testid=check]").inner_text()
    nb.screenshot("direct-logit-click")


@pytest.mark.browser
def test_export_reads_every_position_offline(tiny_gpt2, static_page, tmp_path):
    import llm_widgets as lw

    v = lw.DirectLogitView(tiny_gpt2, TEXT, target="the", contrast="mean")
    page = static_page(v.to_html(tmp_path / "dla.html"))
    page.wait_for_selector("[data-lw-view=direct_logit][data-ready='1']")
    assert page.lw_blocked == [] and page.lw_errors == []
    page.locator("[data-testid=tokens] .lw-tok").nth(1).click()
    check = page.locator("[data-testid=check]").inner_text()
    v.selected_token = 1
    assert f"model {v.summary['logit']:.4f}" in check and "they agree" in check
