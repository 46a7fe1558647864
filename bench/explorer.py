"""Explorer latency in headless chromium: linked hover within one frame, committed click to Python.

1. Hover sweep (static export, no kernel): a scripted mouseover on every token, one per frame, first
   across the shared token strip (every panel's strip is marked), then across the attention panel's
   own strip (its canvas redraws the hovered row/column too). Per hover: time for the handler plus
   the style/layout it causes (forced), p50/p95/max, and the interval between consecutive frames
   (paint included). Target: p95 < 16.7 ms at T=512.
   Peer in the same run: bertviz head_view (the token hover of its attention lines), at T=128 — at
   T=512 its page carries ~870 MB of JSON and does not finish loading in a useful time.
2. Click round trip in JupyterLab 4 (live kernel): click a token in the shared strip; a Python
   observer copies `ex.selected_token` into an IntText; time until the browser shows it.
   Target: p95 < 150 ms.

Run: .venv/bin/python bench/explorer.py [--lengths 128 512] [--clicks 20]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests" / "browser")]

import llm_widgets as lw  # noqa: E402
from common import offline_context, record, text_with_tokens  # noqa: E402  (bench/common.py)
from conftest import CHROMIUM_ARGS, _chromium, _open_notebook, _start_server, _stop  # noqa: E402

SWEEP_JS = """async (selector) => {
  const toks = Array.from(document.querySelectorAll(selector));
  const work = [], frames = [];
  const frame = () => new Promise(r => requestAnimationFrame(r));
  let last = await frame();
  let prev = null;
  for (const el of toks) {
    const t0 = performance.now();   // the events a real pointer moving from prev to el fires
    if (prev) { prev.dispatchEvent(new MouseEvent('mouseout', {bubbles: true})); prev.dispatchEvent(new MouseEvent('mouseleave')); }
    el.dispatchEvent(new MouseEvent('mouseover', {bubbles: true}));
    el.dispatchEvent(new MouseEvent('mouseenter'));
    el.dispatchEvent(new MouseEvent('mousemove', {bubbles: true}));
    prev = el;
    document.body.getBoundingClientRect();   // force the style/layout the hover caused
    work.push(performance.now() - t0);
    const now = await frame();
    frames.push(now - last);
    last = now;
  }
  return {n: toks.length, work, frames};
}"""


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def summary(r):
    return (f"{r['n']} hovers | handler+layout p50 {pct(r['work'], 50):.2f} ms, p95 {pct(r['work'], 95):.2f} ms, "
            f"max {max(r['work']):.2f} ms | frame interval p50 {pct(r['frames'], 50):.1f} ms, "
            f"p95 {pct(r['frames'], 95):.1f} ms")


def open_page(browser, path: Path, ready_js: str, serve_cdn=False, timeout_ms=300_000):
    ctx = offline_context(browser, serve_cdn)
    page = ctx.new_page()
    page.goto(path.as_uri())
    page.wait_for_function(ready_js, timeout=timeout_ms)
    return ctx, page


def hover_sweeps(browser, s, lengths, tmp):
    from bertviz import head_view
    import torch

    rows = []
    for n in lengths:
        text = text_with_tokens(s.tokenizer, n)
        ex = lw.Explorer(s, text)
        ctx, page = open_page(browser, ex.to_html(tmp / f"explorer-{n}.html"),
                              "() => document.querySelector(\"[data-lw-view=explorer][data-ready='1']\")")
        shared = page.evaluate(SWEEP_JS, "[data-lw-view=explorer] [data-testid=shared-tokens] .lw-tok")
        attn = page.evaluate(SWEEP_JS, "[data-panel=attention] [data-testid=tokens] .lw-tok")
        ctx.close()
        rows.append((f"ours, T={n}, shared strip", shared))
        rows.append((f"ours, T={n}, attention strip", attn))
        if n <= 128:
            enc = s.tokenizer(text, return_tensors="pt")
            with torch.no_grad():
                out = s.model(**enc, output_attentions=True)
            html = head_view(out.attentions, s.tokenizer.convert_ids_to_tokens(enc["input_ids"][0]),
                             html_action="return").data
            f = tmp / f"bertviz-head-{n}.html"
            f.write_text(f"<!doctype html><html><body>{html}</body></html>")
            ready = f"() => document.getElementsByTagName('line').length >= {s.n_heads * n * n}"
            ctx, page = open_page(browser, f, ready, serve_cdn=True)
            bv = page.evaluate(SWEEP_JS, "svg #left text")
            ctx.close()
            rows.append((f"bertviz head_view, T={n}, token hover", bv))
            ratio = pct(bv["work"], 95) / max(pct(attn["work"], 95), 1e-3)
            rows.append((f"  -> bertviz / ours (attention strip) p95 handler+layout at T={n}: {ratio:.1f}x", None))
            record(f"attention hover p95 (handler + layout), T={n}", "bertviz head_view token hover",
                   pct(attn["work"], 95), pct(bv["work"], 95), "same attention tensors", unit="ms")
    return rows


def click_round_trip(browser, clicks: int):
    tmp = Path(tempfile.mkdtemp())
    server = _start_server(tmp, "jupyterlab")
    try:
        nb = _open_notebook(browser, server, [
            "import llm_widgets as lw, ipywidgets as W\ns = lw.load()",
            "ex = lw.Explorer(s, 'The keys to the cabinet are on the table, said the old man quietly.')\nex",
            "echo = W.IntText(-1, description='python saw')\n"
            "ex.observe(lambda c: setattr(echo, 'value', c['new']), 'selected_token')\necho",
        ], "explorer-bench", "lab")
        page = nb.page
        page.wait_for_selector("[data-lw-view=explorer][data-ready='1']")
        times = page.evaluate("""async (k) => {
          const toks = Array.from(document.querySelectorAll('[data-lw-view=explorer] [data-testid=shared-tokens] .lw-tok'));
          const echo = document.querySelector('.widget-inline-hbox input');
          const out = [];
          for (let j = 0; j < k; j++) {
            const want = String(1 + (j % (toks.length - 2)));  // a different token each click
            const t0 = performance.now();
            toks[Number(want)].click();
            while (echo.value !== want) {
              if (performance.now() - t0 > 5000) throw new Error('no echo from Python for token ' + want);
              await new Promise(r => setTimeout(r, 1));
            }
            out.push(performance.now() - t0);
            await new Promise(r => setTimeout(r, 50));
          }
          return out;
        }""", clicks)
        page.context.close()
        return times
    finally:
        _stop(server)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", type=int, nargs="+", default=[128, 512])
    ap.add_argument("--clicks", type=int, default=20)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    s = lw.load()
    tmp = Path(tempfile.mkdtemp())
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS, headless=True)
        rows = hover_sweeps(browser, s, args.lengths, tmp)
        clicks = click_round_trip(browser, args.clicks)
        browser.close()
    print("\nLinked hover (static export in headless chromium; target p95 < 16.7 ms):")
    for name, r in rows:
        print(f"- {name}" + ("" if r is None else f": {summary(r)}"))
    print(f"\nClick -> Python -> browser round trip in JupyterLab 4, {len(clicks)} clicks "
          f"(target p95 < 150 ms): p50 {pct(clicks, 50):.0f} ms, p95 {pct(clicks, 95):.0f} ms, "
          f"max {max(clicks):.0f} ms")


if __name__ == "__main__":
    main()
