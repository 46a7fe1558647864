"""FeatureView in a real browser, from a static export (no kernel): the quality line, the selected
token's feature table, the selected feature's logits and corpus contexts are drawn, no page errors,
nothing fetched; token strings reach the DOM as text (an HTML-looking corpus text stays text)."""
import pytest


@pytest.mark.browser
def test_export_draws_token_features_and_contexts(tiny_gpt2, static_page, tmp_path, monkeypatch):
    import sys
    from pathlib import Path

    monkeypatch.setenv("LLM_WIDGETS_CACHE", str(tmp_path / "cache"))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from test_dictionaries import write_saelens

    import llm_widgets as lw

    write_saelens(tmp_path / "sae", "jumprelu", 64, 200, "blocks.1.hook_resid_post")
    sae = lw.load_dictionary(tmp_path / "sae", session=tiny_gpt2)
    corpus = ["the cat sat on the mat", "<img src=x onerror=alert(1)> the dog"]
    v = lw.FeatureView(tiny_gpt2, "the cat sat on the mat", sae, corpus=corpus, k=6, background=False)
    v.selected_token = 2
    f = v.token_features[0]["feature"]
    v.selected_feature = f
    page = static_page(v.to_html(tmp_path / "features.html"))
    page.wait_for_selector("[data-lw-view=features][data-ready='1']")
    assert page.lw_blocked == [] and page.lw_errors == []
    assert "FVU" in page.locator("[data-testid=quality]").inner_text()
    rows = page.locator("[data-testid=token-feature-table] tbody tr")
    assert rows.count() == len(v.token_features)
    assert page.locator("[data-testid=contexts]").count() == 1
    assert page.locator("[data-testid=feature]").inner_text().startswith(f"feature {f}")
    assert page.locator("img").count() == 0
