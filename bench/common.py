"""Pieces the benchmarks share: exact-length texts, median timing, offline browser pages."""
from __future__ import annotations

import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORDS = ("the cat sat on mat dog ran to park and it was very tired because day long sun hot "
         "we saw a big red car in street near old house").split()
# bertviz loads these from CDNs; served from local npm copies so it can render with no network
CDN_LOCAL = {
    "require.min.js": ROOT / "node_modules/requirejs/require.js",
    "d3.min.js": ROOT / "node_modules/d3/dist/d3.min.js",
    "jquery.min.js": ROOT / "node_modules/jquery/dist/jquery.min.js",
}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic"]


def text_with_tokens(tok, n: int) -> str:
    """A text of exactly n tokens for a WordPiece tokenizer ([CLS] + n-2 one-piece words + [SEP])."""
    words = [WORDS[i % len(WORDS)] for i in range(n - 2)]
    text = " ".join(words)
    assert len(tok(text)["input_ids"]) == n, "benchmark text must have exactly n tokens"
    return text


def timed(fn, repeat: int):
    """(last result, median seconds) over `repeat` calls."""
    out, times = None, []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def offline_context(browser, serve_cdn: bool = False):
    """A browser context where only file:/blob:/data: load (and, with serve_cdn, bertviz's CDN
    libraries from local copies); every other request is refused."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})

    def route(r):
        url = r.request.url
        name = url.rsplit("/", 1)[-1]
        if url.startswith(("file:", "blob:", "data:")):
            r.continue_()
        elif serve_cdn and name in CDN_LOCAL:
            r.fulfill(path=str(CDN_LOCAL[name]), content_type="application/javascript")
        else:
            r.abort()

    ctx.route("**/*", route)
    return ctx
