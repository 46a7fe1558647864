"""AttentionView vs bertviz (model_view and head_view, html_action='return') and CircuitsVis
(attention_heads, all 72 heads in one view) on all-MiniLM-L6-v2.

For T = 32, 128, 512 tokens prints, side by side and as ratios:
- data bytes sent to the browser (ours: widget state JSON + binary buffers; bertviz: its HTML/JSON),
- Python time to build the view (forward pass included, trace cache cleared),
- extraction overhead: our traced forward vs a bare HF forward with output_attentions,
- time to first drawn frame in headless chromium (ours: the static export; bertviz: its page, with
  require.js/d3/jQuery served from local npm copies because it loads them from CDNs and renders
  nothing offline). CircuitsVis: `attention_heads` over all layers' heads at once (named L0H0...,
  upper triangle not masked: the model is bidirectional), drawn when every head's canvas and the
  zoomed one hold pixels. The CDN page (`str(html)`: an ES module import from unpkg); the npm
  registry here has no circuitsvis package, so the CDN's dist/cdn/esm.js is served as the pip
  package's own dist/cdn/iife.js (the same build) re-exported as an ES module. With
  --cv-offline-page also the HTML it returns offline (its 1.3 MB bundle inlined, as `_repr_html_`
  does without internet); it draws in about the same time. One page load takes over a minute at
  T=128 on 2 cores, so --cv-repeat defaults to 1.

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
from common import CHROMIUM_ARGS, machine_line, offline_context, record, text_with_tokens, timed  # noqa: E402


def our_bytes(view) -> int:
    state = {k: v for k, v in view.get_state().items() if k != "_esm"}
    state, _, buffers = _remove_buffers(state)
    return len(json.dumps(state)) + sum(len(b) for b in buffers)


def frame_time(browser, html_path: Path, ready_js: str, serve_cdn: bool, timeout_ms=60_000, extra=None):
    """ms from navigation start until ready_js is true, or None if it never is."""
    ctx = offline_context(browser, serve_cdn, extra)
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


# every canvas of the CircuitsVis view (one per head + the zoomed head) exists and holds pixels
CV_READY = """() => {
  const cs = document.getElementsByTagName('canvas');
  if (cs.length < %d) return false;
  for (const c of cs) {
    if (!c.width || !c.height) return false;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let drawn = false;
    for (let i = 3; i < d.length; i += 4 * 7) if (d[i]) { drawn = true; break; }
    if (!drawn) return false;
  }
  return true;
}"""


def circuitsvis_esm(tmp: Path) -> tuple[str, Path]:
    """(unpkg URL the CDN page imports, local file serving it): the pip package's iife bundle
    re-exported as an ES module."""
    import circuitsvis

    src = Path(circuitsvis.__file__).parent / "dist" / "cdn" / "iife.js"
    out = tmp / "circuitsvis-esm.js"
    out.write_text(src.read_text(encoding="utf-8") + "\nexport const { render, AttentionHeads, AttentionPatterns } = CircuitsVis;\n"
                   "export default CircuitsVis;\n", encoding="utf-8")
    return f"https://unpkg.com/circuitsvis@{circuitsvis.__version__}/dist/cdn/esm.js", out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", type=int, nargs="+", default=[32, 128, 512])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cv-max", type=int, default=128,
                    help="longest T for CircuitsVis (its page carries ~22 bytes of JSON per cell, twice: ~830 MB at 512)")
    ap.add_argument("--cv-timeout", type=int, default=300, help="seconds to wait for CircuitsVis' first frame")
    ap.add_argument("--cv-offline-page", action="store_true",
                    help="also time the page CircuitsVis returns offline (bundle inlined; about as slow as the CDN page)")
    ap.add_argument("--cv-repeat", type=int, default=1,
                    help="page loads per CircuitsVis page (median; one load takes over a minute at T=128)")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    import circuitsvis
    from bertviz import head_view, model_view
    from circuitsvis.attention import attention_heads
    from playwright.sync_api import sync_playwright

    torch.set_num_threads(2)
    s = lw.load()
    model, tok = s.model, s.tokenizer
    tmp = Path(tempfile.mkdtemp())
    esm_url, esm_file = circuitsvis_esm(tmp)
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

            def cv_view():
                out = bare()
                att = torch.cat([a[0] for a in out.attentions])  # [layers * heads, T, T]
                names = [f"L{l}H{h}" for l in range(len(out.attentions)) for h in range(out.attentions[0].shape[1])]
                return attention_heads(att, tok.convert_ids_to_tokens(enc["input_ids"][0]),
                                       attention_head_names=names, mask_upper_tri=False)

            bare()  # warm up
            _, t_bare = timed(bare, args.repeat)
            _, t_trace = timed(lambda: (s._cache.clear(), s.trace(text)), args.repeat)
            view, t_ours = timed(ours, args.repeat)
            bv_model, t_bv_model = timed(bertviz_model, args.repeat)
            bv_head, t_bv_head = timed(bertviz_head, args.repeat)
            ours_b = our_bytes(view)
            cells = view.n_layers * view.n_heads * n * n  # every cell of every head is shown
            ours_html = view.to_html(tmp / f"ours-{n}.html")
            bv_file = tmp / f"bertviz-{n}.html"
            bv_file.write_text(f"<!doctype html><html><body>{bv_model.data}</body></html>")
            ours_ms = frame_time(browser, ours_html,
                                 "() => document.querySelector(\"[data-lw-view=attention][data-ready='1']\")", False)
            # bertviz draws one SVG <line> per cell of every head: drawn when all of them exist
            bv_ready = f"() => document.getElementsByTagName('line').length >= {cells}"
            bv_ms = frame_time(browser, bv_file, bv_ready, True)
            bv_offline = frame_time(browser, bv_file, bv_ready, False, timeout_ms=5_000)
            cv = dict(cv_local_bytes=None, cv_cdn_bytes=None, t_cv=None, cv_local_ms=None, cv_cdn_ms=None)
            if n <= args.cv_max:
                cv_html, t_cv = timed(cv_view, args.repeat)
                heads = view.n_layers * view.n_heads
                page = "<!doctype html><html><body>{}</body></html>"
                cv_local, cv_cdn = tmp / f"cv-local-{n}.html", tmp / f"cv-cdn-{n}.html"
                cv_local.write_text(page.format(cv_html.local_src), encoding="utf-8")
                cv_cdn.write_text(page.format(cv_html.cdn_src), encoding="utf-8")
                cv.update(cv_local_bytes=len(cv_html.local_src), cv_cdn_bytes=len(cv_html.cdn_src), t_cv=t_cv)
                # median over --repeat page loads, like the Python timings (None if any load never drew)
                if args.cv_offline_page:
                    loads = [frame_time(browser, cv_local, CV_READY % (heads + 1), False, args.cv_timeout * 1000)
                             for _ in range(args.cv_repeat)]
                    cv["cv_local_ms"] = None if None in loads else sorted(loads)[len(loads) // 2]
                loads = [frame_time(browser, cv_cdn, CV_READY % (heads + 1), False, args.cv_timeout * 1000,
                                    extra={esm_url: esm_file}) for _ in range(args.cv_repeat)]
                cv["cv_cdn_ms"] = None if None in loads else sorted(loads)[len(loads) // 2]
            rows.append(dict(T=n, cells=cells, ours_bytes=ours_b, bv_model_bytes=len(bv_model.data),
                             bv_head_bytes=len(bv_head.data), t_bare=t_bare, t_trace=t_trace, t_ours=t_ours,
                             t_bv_model=t_bv_model, t_bv_head=t_bv_head, ours_ms=ours_ms, bv_ms=bv_ms,
                             bv_offline=bv_offline, **cv))
            r = rows[-1]
            print(f"T={n}: computed", file=sys.stderr)
        browser.close()

    fmt_ms = lambda v: "did not render" if v is None else f"{v:,.0f} ms"  # noqa: E731
    print(f"\nAttentionView vs bertviz on all-MiniLM-L6-v2 (6 layers x 12 heads); {machine_line()}")
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

    print(f"\nAttentionView vs CircuitsVis {circuitsvis.__version__} attention_heads (all {view.n_layers * view.n_heads} heads "
          "in one view, first frame = every head's canvas drawn), same chromium; page loads per page:", args.cv_repeat)
    print("| T | ours first frame | CircuitsVis offline page (bundle inlined) | ratio | CircuitsVis CDN page "
          "(bundle served locally) | ratio | ours bytes | CircuitsVis bytes (offline page) | CircuitsVis build |")
    print("|" + "---|" * 9)
    ratio = lambda a, b: "" if a is None or b is None else f"{a / b:.1f}x"  # noqa: E731
    for r in rows:
        if r["t_cv"] is None:
            print(f"| {r['T']} | {fmt_ms(r['ours_ms'])} | not run (--cv-max {args.cv_max}: page of "
                  f"~{44 * r['cells'] / 1e6:.0f} MB) | | | | {r['ours_bytes']:,} | | |")
            continue
        local = fmt_ms(r["cv_local_ms"]) if args.cv_offline_page else "not run (--cv-offline-page)"
        print(f"| {r['T']} | {fmt_ms(r['ours_ms'])} | {local} | {ratio(r['cv_local_ms'], r['ours_ms'])} "
              f"| {fmt_ms(r['cv_cdn_ms'])} | {ratio(r['cv_cdn_ms'], r['ours_ms'])} | {r['ours_bytes']:,} "
              f"| {r['cv_local_bytes']:,} | {r['t_cv'] * 1e3:.0f} ms |")

    if not args.no_record:
        for r in rows:
            bench = f"attention first frame T={r['T']}"
            record(bench, "bertviz model_view (CDN libs served locally)", r["ours_ms"], r["bv_ms"],
                   "same attention tensors", unit="ms",
                   note="" if r["bv_ms"] is not None else "did not render in 60 s")
            if r["t_cv"] is None:
                continue
            cands = [(v, k) for v, k in ((r["cv_local_ms"], "offline page, bundle inlined"),
                                         (r["cv_cdn_ms"], "CDN page, bundle served locally")) if v is not None]
            best = min(cands) if cands else (None, "did not render")
            record(bench, f"CircuitsVis attention_heads ({best[1]})", r["ours_ms"], best[0],
                   "same attention tensors", target=50.0 if r["T"] == 128 else None, unit="ms",
                   note="" if cands else f"did not draw within {args.cv_timeout} s")


if __name__ == "__main__":
    main()
