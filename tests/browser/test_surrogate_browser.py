"""SurrogateView in a real JupyterLab + chromium: click a point on the size/fidelity chart ->
selected_surrogate in Python and its explanation (a tree's rules, a student's attributions, computed
by the kernel for a newly picked text) in the page. The audit's security and privacy sections
(attack with its baseline and examples, memorization strings and canaries) render in static exports
with no kernel, with the numbers Python computed."""
import json

import pytest

VIEW = "[data-lw-view=surrogate][data-ready='1']"
CELLS = [
    "import llm_widgets as lw\n"
    "texts, labels, _ = lw.teaching.keyword_dataset(200, seed=1)\n"
    "s = lw.teaching.keyword_classifier()",
    "v = lw.SurrogateView(s, texts, labels, student_layers=(1, 2))\nv",
]


@pytest.mark.browser
def test_click_a_surrogate_and_read_its_explanation(notebook):
    nb = notebook(CELLS, name="surrogates")
    page = nb.page
    page.locator(VIEW).first.wait_for(timeout=120_000)
    names = json.loads(nb.run("v.wait(); import json; print(json.dumps([r['name'] for r in v.surrogates]))"))
    tree = next(i for i, n in enumerate(names) if n.startswith("tree (depth \u2264 5)"))
    student = next(i for i, n in enumerate(names) if n.startswith("student 2"))
    # a click on the tree's point reaches Python, and its rules are listed
    page.locator(f"{VIEW} [data-testid=point-{tree}]").click()
    page.wait_for_selector(f"{VIEW} [data-testid=explanation][data-surrogate='{tree}'] [data-testid=rules] li")
    assert nb.run("print(v.selected_surrogate)") == str(tree)
    rules = page.locator(f"{VIEW} [data-testid=rules] li").all_text_contents()
    want = json.loads(nb.run(f"print(json.dumps([r['text'] for r in v.explanations['{tree}']['rules']]))"))
    assert [r.split("   (")[0] for r in rules] == want
    # a student: its attributions beside the model's; then another held-out text, explained by the kernel
    page.locator(f"{VIEW} [data-testid=point-{student}]").click()
    page.wait_for_selector(f"{VIEW} [data-testid=explanation][data-surrogate='{student}'] [data-testid=student-attr] .lw-tok")
    page.locator(f"{VIEW} [data-testid=text]").select_option("5")
    page.wait_for_selector(f"{VIEW} [data-testid=explanation][data-text='5'] [data-testid=teacher-attr] .lw-tok",
                           timeout=60_000)
    assert nb.run("print(v.selected_surrogate, v.selected_text)") == f"{student} 5"
    tokens = page.locator(f"{VIEW} [data-testid=teacher-attr] .lw-tok").all_text_contents()
    assert tokens == json.loads(nb.run(f"print(json.dumps(v.details['{student}:5']['tokens']))"))
    agreement = page.locator(f"{VIEW} [data-testid=agreement]").text_content()
    k = json.loads(nb.run(f"d = v.details['{student}:5']; print(json.dumps([d['k'], round(d['agreement'] * d['k'])]))"))
    assert f"Top-{k[0]} agreement: {k[1]}/{k[0]}" in agreement
    # Python drives the view back: a logistic surrogate shows its top weights, a keyword first
    nb.run("v.selected_surrogate = 0")
    page.wait_for_selector(f"{VIEW} [data-testid=explanation][data-surrogate='0'] [data-testid=weights] tbody tr")
    first = page.locator(f"{VIEW} [data-testid=weights] tbody tr").first.locator("td").nth(1).text_content()
    assert first in ("great", "excellent", "wonderful", "superb", "brilliant", "terrible", "awful", "horrible",
                     "dreadful", "poor")
    nb.screenshot("surrogate-click")
    assert not nb.errors


@pytest.mark.browser
def test_security_sections_render_in_static_exports(static_page, tmp_path):
    import llm_widgets as lw
    from llm_widgets.teaching.canary import PLANTED, UNPLANTED

    texts, _, _ = lw.teaching.keyword_dataset(20, seed=3)
    v = lw.AuditView(lw.teaching.keyword_classifier(), texts=texts, attack=True, robustness=False, background=False)
    first = v.attack_result["examples"][0]["id"]
    v.selected_example = first  # explained before the export, so the page has both strips
    page = static_page(v.to_html(tmp_path / "attack.html"))
    view = "[data-lw-view=audit][data-ready='1']"
    page.locator(view).first.wait_for()
    summary = page.locator(f"{view} [data-testid=attack-summary] tbody tr")
    assert summary.count() == 2
    rate = v.result.attack.summary[0]["success_rate"]
    assert summary.first.locator("td").nth(2).text_content().startswith(f"{rate:.3f}")
    examples = page.locator(f"{view} [data-testid=attack-examples] .lw-example")
    assert examples.count() == int(v.result.attack.main.success.sum())
    page.locator(f"{view} .lw-example[data-id='{first}']").click()
    page.wait_for_selector(f"{view} [data-testid=example-detail][data-example='{first}'] [data-testid=example-adversarial] .lw-tok")
    adv = page.locator(f"{view} [data-testid=example-adversarial] .lw-tok").all_text_contents()
    assert adv == v.example_attributions[str(first)]["adversarial"]["tokens"]
    row = page.locator(f"{view} [data-testid=summary] tbody tr").last
    assert row.get_attribute("data-passed") == "0" and "attack" in row.text_content()
    page.screenshot(path=str(tmp_path / "attack.png"), full_page=True)
    assert not page.lw_blocked and not page.lw_errors

    m = lw.AuditView(lw.teaching.canary_model(), memorization=dict(
        strings=list(PLANTED) + ["my <b>PIN</b> is 9 2 6 0"], prefix_tokens=3, canaries=list(PLANTED) + UNPLANTED[:2]),
        background=False)
    page = static_page(m.to_html(tmp_path / "memorization.html"))
    page.locator(view).first.wait_for()
    extracted = page.locator(f"{view} [data-testid=memorization-strings] tbody tr td:nth-child(3)").all_text_contents()
    assert extracted == ["yes" if r["exact"] else "no" for r in m.memorization_result["strings"]] == ["yes", "yes", "no"]
    exposures = page.locator(f"{view} [data-testid=memorization-canaries] tbody tr td:nth-child(5)").all_text_contents()
    assert exposures == [f"{c['exposure']:.2f}" for c in sorted(m.memorization_result["canaries"],
                                                                key=lambda c: -c["exposure"])]
    assert page.locator(f"{view} b").count() == 0  # the string's markup stays text
    assert page.locator(f"{view} [data-testid=summary] tbody tr[data-passed='0']").count() == 3
    assert not page.lw_blocked and not page.lw_errors
