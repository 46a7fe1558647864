"""AuditView in a real JupyterLab 4 + chromium: the tour notebook renders, clicking a worst pair
reaches Python and shows both versions with attribution; the static export does the same with no
kernel."""
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
VIEW = "[data-lw-view=audit][data-ready='1']"


def tour_cells():
    """The tour notebook up to the first AuditView (the biased model)."""
    nb = nbformat.read(ROOT / "notebooks" / "05_audit.ipynb", as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    return code[:2]


def click_pair(page, k: int) -> str:
    row = page.locator(f"{VIEW} [data-testid=pairs] tbody tr").nth(k)
    pid = row.get_attribute("data-id")
    row.click()
    return pid


@pytest.mark.browser
def test_click_worst_pair_reaches_python_and_export(notebook, static_page, tmp_path):
    nb = notebook(tour_cells(), name="audit-tour")
    page = nb.page
    page.locator(VIEW).first.wait_for(timeout=120_000)
    rows = page.locator(f"{VIEW} [data-testid=summary] tbody tr")
    assert rows.count() == 1 and rows.first.get_attribute("data-passed") == "0"  # planted bias flagged
    pid = click_pair(page, 2)
    page.wait_for_selector(f"{VIEW} [data-testid=pair-detail][data-pair='{pid}'] [data-testid=pair-b] .lw-tok")
    assert nb.run("print(audit.selected_pair)") == pid
    # both versions shown, differing in the name: the same tokens as the kernel's attribution
    tokens = page.eval_on_selector_all(f"{VIEW} [data-testid=pair-a] .lw-tok", "els => els.map(e => e.textContent)")
    assert tokens == eval(nb.run(f"print(audit.attributions['{pid}']['a']['tokens'])"))
    assert "lw-sel" in page.locator(f"{VIEW} [data-testid=pairs] tbody tr").nth(2).get_attribute("class")
    nb.screenshot("audit-click")
    assert not nb.errors

    out = tmp_path / "audit.html"
    nb.run(f"audit.to_html({str(out)!r})")
    sp = static_page(out)
    sp.locator(VIEW).first.wait_for()
    pid2 = click_pair(sp, 4)
    sp.wait_for_selector(f"{VIEW} [data-testid=pair-detail][data-pair='{pid2}'] [data-testid=pair-a] .lw-tok")
    assert sp.locator(f"{VIEW} [data-testid=cf-hist]").count() == 1
    # the CSV button downloads the same summary table as Python's to_csv, with no kernel
    with sp.expect_download() as dl:
        sp.locator(f"{VIEW} [data-testid=csv]").click()
    py_csv = tmp_path / "py.csv"
    nb.run(f"audit.to_csv({str(py_csv)!r})")
    assert Path(dl.value.path()).read_bytes() == py_csv.read_bytes()
    sp.screenshot(path=str(ROOT / "test-artifacts" / "audit-export.png"), full_page=True)
    assert not sp.lw_blocked and not sp.lw_errors


@pytest.mark.browser
def test_export_shows_failing_perturbations_with_the_diff_highlighted(static_page, tmp_path):
    """A model that keys on capital letters: in the exported page (no kernel) the casing test fails,
    and each failing example marks exactly the words the perturbation changed."""
    import numpy as np

    import llm_widgets as lw
    from llm_widgets.audit.perturb import word_diff

    def keys_on_casing(texts):
        return np.array([[0.1, 0.9] if any(c.isupper() for c in t) else [0.9, 0.1] for t in texts])

    texts = ["The movie is great.", "The food was awful.", "The staff were <b>rude</b>.", "The plot is good."]
    v = lw.AuditView(task=keys_on_casing, texts=texts, background=False, n_boot=50)
    rob = {r["test"]: r for r in v.result.robustness.summary}
    assert rob["casing"]["pass_rate"] == 0.0 and rob["typo"]["pass_rate"] == 1.0
    page = static_page(v.to_html(tmp_path / "rob.html"))
    page.locator(VIEW).first.wait_for()
    fails = page.locator(f"{VIEW} [data-testid=failures] .lw-fail[data-test=casing]")
    assert fails.count() == len(texts)
    for k in range(fails.count()):
        item = fails.nth(k)
        orig = item.locator("[data-testid=fail-original] span").all_text_contents()
        changed = item.locator("[data-testid=fail-perturbed] .lw-changed").all_text_contents()
        text = " ".join(orig)
        want = [w for w, c in word_diff(text, text.lower())[1] if c]
        assert changed == want and changed  # the lower-cased first word(s), as text, not markup
    assert page.locator(f"{VIEW} b").count() == 0  # '<b>rude</b>' stays text
    rows = page.locator(f"{VIEW} [data-testid=summary] tbody tr[data-passed='0']")
    assert rows.count() == sum(not r["passed"] for r in v.result.summary)
    assert not page.lw_blocked and not page.lw_errors
