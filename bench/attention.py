"""AttentionView vs bertviz (model_view and head_view, html_action='return') on all-MiniLM-L6-v2.

For T = 32, 128, 512 tokens prints, side by side and as ratios:
- data bytes sent to the browser (ours: widget state JSON + binary buffers; bertviz: its HTML/JSON),
- Python time to build the view (forward pass included, trace cache cleared),
- extraction overhead: our traced forward vs a bare HF forward with output_attentions,
- time to first drawn frame in headless chromium (ours: the static export; bertviz: its page, with
  require.js/d3/jQuery served from local npm copies because it loads them from CDNs and renders
  nothing offline).

Run: .venv/bin/python bench/attention.py [--lengths 32 128 512] [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch  # noqa: E402
from ipywidgets.widgets.widget import _remove_buffers  # noqa: E402

import llm_widgets as lw  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CHROMIUM_ARGS, offline_context, text_with_tokens, timed  # noqa: E402


def our_bytes(view) -> int:
    state = {k: v for k, v in view.get_state().items() if k != "_esm"}
    state, _, buffers = _remove_buffers(state)
    return len(json.dumps(state)) + sum(len(b) for b in buffers)


def frame_time(browser, html_path: Path, ready_js: str, serve_cdn: bool, timeout_ms=60_000):
    """ms from navigation start until ready_js is true, or None if it never is."""
    ctx = offline_context(browser, serve_cdn)
    page = ctx.new_page()
    try:
        page.goto(html_path.as_uri())
        page.wait_for_function(ready_js, timeout=timeout_ms)
        # the frame after the ready signal has been painted
        return page.evaluate("() => new Promise(r => requestAnimationFrame(() => r(performance.now())))")
    except Exception:
        return None
    finally:
        ctx.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", type=int, nargs="+", default=[32, 128, 512])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from bertviz import head_view, model_view
    from playwright.sync_api import sync_playwright

    torch.set_num_threads(2)
    s = lw.load()
    model, tok = s.model, s.tokenizer
    tmp = Path(tempfile.mkdtemp())
    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        for n in args.lengths:
            text = text_with_tokens(tok, n)
            enc = tok(text, return_tensors="pt")

            def bare():
                with torch.no_grad():
                    return model(**enc, output_attentions=True)

            def ours():
                s._cache.clear()
                return lw.AttentionView(s, text)

            def bertviz_model():
                out = bare()
                return model_view(out.attentions, tok.convert_ids_to_tokens(enc["input_ids"][0]), html_action="return")

            def bertviz_head():
                out = bare()
                return head_view(out.attentions, tok.convert_ids_to_tokens(enc["input_ids"][0]), html_action="return")

            bare()  # warm up
            _, t_bare = timed(bare, args.repeat)
            _, t_trace = timed(lambda: (s._cache.clear(), s.trace(text)), args.repeat)
            view, t_ours = timed(ours, args.repeat)
            bv_model, t_bv_model = timed(bertviz_model, args.repeat)
            bv_head, t_bv_head = timed(bertviz_head, args.repeat)
            ours_b = our_bytes(view)
            cells = view.layers * view.heads * n * n  # every cell of every head is shown
            ours_html = view.to_html(tmp / f"ours-{n}.html")
            bv_file = tmp / f"bertviz-{n}.html"
            bv_file.write_text(f"<!doctype html><html><body>{bv_model.data}</body></html>")
            ours_ms = frame_time(browser, ours_html,
                                 "() => document.querySelector(\"[data-lw-view=attention][data-ready='1']\")", False)
            # bertviz draws one SVG <line> per cell of every head: drawn when all of them exist
            bv_ready = f"() => document.getElementsByTagName('line').length >= {cells}"
            bv_ms = frame_time(browser, bv_file, bv_ready, True)
            bv_offline = frame_time(browser, bv_file, bv_ready, False, timeout_ms=5_000)
            rows.append(dict(T=n, cells=cells, ours_bytes=ours_b, bv_model_bytes=len(bv_model.data),
                             bv_head_bytes=len(bv_head.data), t_bare=t_bare, t_trace=t_trace, t_ours=t_ours,
                             t_bv_model=t_bv_model, t_bv_head=t_bv_head, ours_ms=ours_ms, bv_ms=bv_ms,
                             bv_offline=bv_offline))
            r = rows[-1]
            print(f"T={n}: computed", file=sys.stderr)
        browser.close()

    fmt_ms = lambda v: "did not render" if v is None else f"{v:,.0f} ms"  # noqa: E731
    print(f"\nAttentionView vs bertviz on all-MiniLM-L6-v2 (6 layers x 12 heads), CPU, torch {torch.__version__}")
    print("| T | cells shown | ours bytes (bytes/cell) | bertviz model_view bytes | ratio | head_view bytes |"
          " ours build | bertviz model_view build | extraction / bare forward | ours first frame |"
          " bertviz first frame (CDN libs served locally) | bertviz offline |")
    print("|" + "---|" * 12)
    for r in rows:
        ratio_ms = "" if r["bv_ms"] is None or r["ours_ms"] is None else f" ({r['bv_ms'] / r['ours_ms']:.1f}x slower)"
        print(f"| {r['T']} | {r['cells']:,} | {r['ours_bytes']:,} ({r['ours_bytes'] / r['cells']:.2f}) "
              f"| {r['bv_model_bytes']:,} | {r['bv_model_bytes'] / r['ours_bytes']:.1f}x smaller "
              f"| {r['bv_head_bytes']:,} | {r['t_ours'] * 1e3:.0f} ms | {r['t_bv_model'] * 1e3:.0f} ms "
              f"| {r['t_trace'] / r['t_bare']:.2f}x | {fmt_ms(r['ours_ms'])} | {fmt_ms(r['bv_ms'])}{ratio_ms} "
              f"| {fmt_ms(r['bv_offline'])} |")


if __name__ == "__main__":
    main()
