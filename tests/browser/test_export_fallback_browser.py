"""An export opened where scripts do not run (JupyterLab's untrusted HTML, a sandboxed iframe)
shows a message and a static picture; where they run, the interactive view replaces it."""
from __future__ import annotations

from pathlib import Path

import pytest

import llm_widgets as lw


@pytest.mark.browser
def test_export_without_scripts_shows_the_fallback(browser, static_page, tmp_path, minilm):
    path = lw.AttentionView(minilm, "The cat sat on the mat because it was tired.").to_html(tmp_path / "a.html")
    # a sandboxed iframe without allow-scripts, as an untrusted viewer would show it
    host = tmp_path / "host.html"
    host.write_text(f'<iframe id="f" sandbox="" width="1000" height="800" src="{path.name}"></iframe>')
    ctx = browser.new_context(viewport={"width": 1200, "height": 900}, offline=True)
    try:
        page = ctx.new_page()
        page.goto(host.resolve().as_uri())
        frame = page.frame_locator("#f")
        fb = frame.locator("#lw-fallback")
        fb.wait_for(timeout=10_000)
        assert "Trust HTML" in fb.inner_text()
        img = fb.locator("img")
        img.wait_for()
        assert img.evaluate("e => e.complete && e.naturalWidth") >= 320  # the PNG decoded
        assert frame.locator("[data-lw-view]").count() == 0  # nothing interactive mounted
    finally:
        ctx.close()
    # with scripts: the view mounts and the fallback is gone
    page = static_page(Path(path))
    assert page.locator("#lw-fallback").count() == 0 and page.locator("[data-lw-view=attention]").count() == 1
