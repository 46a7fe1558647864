"""A picture of every view, in JupyterLab Light and JupyterLab Dark, at 1400 px and 800 px: `make gallery`.

Runs one notebook that shows each view (small offline models: the default MiniLM, the keyword
classifier, a seeded tiny GPT-2 with a random SAELens-format dictionary) in JupyterLab 4, driven by
headless chromium with the browser tests' own fixtures (tests/browser/conftest.py), and writes
gallery/<view>-<theme>-<width>.png for every view, theme and window width, plus gallery/index.html
showing them side by side. At each width every view is checked for horizontal overflow
(tests/browser/overflow.py: nothing past the output area's right edge outside a sideways-scrolling
box with its cue); what overflows is printed and the exit status is 1. For looking over the views by
eye (layout, colours, contrast, clipped labels) after a front-end change.

    python tests/browser/gallery.py [--out gallery] [--only attention,probe] [--widths 1400,800]
"""
from __future__ import annotations

import argparse
import html
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from conftest import CHROMIUM_ARGS, TINY_GPT2_CELL, _chromium, _open_notebook, _start_server, _stop  # noqa: E402
from overflow import overflow  # noqa: E402

ROOT = HERE.parents[1]
TEXT = "The cat sat on the mat because it was tired."
CLEAN = "When Mary and John went to the store, John gave a drink to"
CORRUPT = "When Mary and John went to the store, Mary gave a drink to"

# name -> (code whose last line shows the view, what it shows)
VIEWS: dict[str, tuple[str, str]] = {
    "attention": (f"v = lw.AttentionView(s, {TEXT!r}, selected_layer=2, selected_head=5, selected_token=6)\nv",
                  "AttentionView, MiniLM: the head grid and head 2.5"),
    "attribution": ("v = lw.AttributionView(clf, 'a terrible film with a wonderful cast', background=False)\nv",
                    "AttributionView, keyword classifier: integrated gradients and faithfulness"),
    "probe": ("v = lw.ProbeView(s, lw.datasets.tense(40), seeds=3, background=False, selected_layer=2)\nv",
              "ProbeView, MiniLM on tense: accuracy per layer and layer 2's mistakes"),
    "concepts": ("v = lw.ConceptView(s, lw.datasets.part_of_speech(10), selected_layer=2, background=False)\n"
                 "v.selected_indices = list(range(0, 60, 2))\nv",
                 "ConceptView, MiniLM on parts of speech: 30 points brushed"),
    "neuron": (f"v = lw.NeuronView(s, {TEXT!r}, selected_layer=2)\nv.selected_token = 2\n"
               "v.selected_neuron = int(v.result.top_neurons(2, 2, k=1)[0][0])\nv",
               "NeuronView, MiniLM (no output head: ablation disabled, with the reason)"),
    "patching": (f"v = lw.PatchingView(g, clean={CLEAN!r}, corrupted={CORRUPT!r}, answers=('mary', 'john'), "
                 "background=False)\nv.selected_site, v.selected_layer, v.selected_token = 'resid', 2, 10\nv",
                 "PatchingView, tiny GPT-2 (random weights)"),
    "logit_lens": ("v = lw.LogitLensView(g, 'The cat sat on the mat')\nv.selected_layer, v.selected_token = 1, 3\nv",
                   "LogitLensView, tiny GPT-2 (random weights)"),
    "direct_logit": ("v = lw.DirectLogitView(g, 'The cat sat on the mat', target='the', contrast='mean')\n"
                     "v.selected_layer, v.selected_head = 1, 2\nv",
                     "DirectLogitView, tiny GPT-2 (random weights): head shares at the last token"),
    "audit": ("biased = lw.audit.demo.name_leak_classifier(biased=True)\n"
              "v = lw.AuditView(biased, templates=lw.audit.demo.REVIEWS, attribute='name', robustness=False)\nv",
              "AuditView: the planted name bias of notebook 05"),
    "explorer": ("v = lw.Explorer(clf, 'the plot was dull but the ending was great')\nv.selected_token = 9\nv",
                 "Explorer, keyword classifier: linked panels side by side"),
    "surrogate": ("texts, labels, _ = lw.teaching.keyword_dataset(200, seed=1)\n"
                  "v = lw.SurrogateView(clf, texts, labels, student_layers=(1, 2))\nv.wait()\nv",
                  "SurrogateView, keyword classifier: size against fidelity of the surrogates"),
    "features": (f"v = lw.FeatureView(g, {TEXT!r}, sae, corpus=[{TEXT!r}, 'the dog ran to the park'], k=6, background=False)\n"
                 "v.selected_token = 2\nv.selected_feature = v.token_features[0]['feature']\nv",
                 "FeatureView, tiny GPT-2 with a random SAELens-format dictionary (200 features)"),
    "steering": ("vec = np.random.default_rng(0).standard_normal(g.adapter.d_model).astype(np.float32) * 20\n"
                 "v = lw.SteeringView(g, ['the cat sat', 'When Mary and John went'], vec, layers=[0, 1, 2], "
                 "strengths=[0, 1, 2, 4, 8], max_new_tokens=8, background=False)\nv.selected_layer, v.selected_strength = 1, 4.0\nv",
                 "SteeringView, tiny GPT-2 (random vector): continuations per layer and strength"),
    "graph": ("th = lw.teaching.two_hop()\n"
              "v = lw.GraphView(th.session, th.prompt('Mary'), th.transcoders, node_threshold=1.0, edge_threshold=1.0)\n"
              "v.wait()\nv",
              "GraphView, the two-hop teaching model with its transcoders: the whole attribution graph"),
}
SETUP = "\n".join([TINY_GPT2_CELL.replace("s = lw.load((", "g = lw.load(("),
                   "s = lw.load()", "clf = lw.teaching.keyword_classifier()",
                   # a SAELens-format dictionary with random weights, written as the dictionaries' tests do
                   "import sys, tempfile, pathlib, numpy as np",
                   f"sys.path.insert(0, {str(HERE.parent)!r})",
                   "from test_dictionaries import write_saelens",
                   "_d = pathlib.Path(tempfile.mkdtemp()) / 'sae'",
                   "write_saelens(_d, 'jumprelu', 64, 200, 'blocks.1.hook_resid_post')",
                   "sae = lw.load_dictionary(_d, session=g)"])
THEMES = {"light": ("JupyterLab Light", True), "dark": ("JupyterLab Dark", False)}
WIDTHS = (1400, 800)  # a wide window (left sidebar closed) and a laptop/projector one
HEIGHT = 2600  # tall enough that every view fits the notebook panel whole


def _wait_ready(page, name: str, timeout_s: float = 300) -> None:
    sel = f"[data-gallery='{name}']"
    page.wait_for_selector(f"{sel} [data-lw-view]", state="attached", timeout=timeout_s * 1000)
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        ok = page.evaluate("""(sel) => { const r = document.querySelector(sel + ' [data-lw-view]');
            const p = r.querySelector('[data-testid=progress]');
            return r.dataset.ready === '1' && (!p || p.style.display === 'none'); }""", sel)
        if ok:
            return
        page.wait_for_timeout(500)
    raise TimeoutError(f"{name} did not finish drawing")


def _tag_outputs(page, names: list[str], first: int) -> None:
    """Mark the output area of code cell first + k with data-gallery=names[k]."""
    page.evaluate("""([names, first]) => {
        const nb = window.jupyterapp.shell.currentWidget.content;
        const code = nb.widgets.filter((c) => c.model.type === 'code');
        names.forEach((n, k) => { const cell = code[first + k]; if (cell) cell.node.dataset.gallery = n; });
    }""", [names, first])


def _set_theme(page, theme: str, light: bool) -> None:
    page.evaluate("(t) => window.jupyterapp.commands.execute('apputils:change-theme', {theme: t})", theme)
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{str(light).lower()}'", timeout=60_000)
    page.wait_for_timeout(1000)  # the theme's stylesheet applied, canvases redrawn


def _shoot(page, name: str, path: Path) -> None:
    el = page.locator(f"[data-gallery='{name}'] [data-lw-view]").first
    el.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    el.screenshot(path=str(path))


def _index(out: Path, names: list[str], shots: dict[tuple[str, str, int], Path], widths=WIDTHS,
           bad: dict[tuple[str, int], list[str]] | None = None) -> Path:
    rows = []
    cols = [(t, w) for w in widths for t in THEMES]
    for n in names:
        cells = "".join(
            f'<td><a href="{html.escape(shots[(n, t, w)].name)}"><img src="{html.escape(shots[(n, t, w)].name)}" '
            f'alt="{html.escape(n)} ({t}, {w} px)"></a></td>' if (n, t, w) in shots else "<td>(missing)</td>"
            for t, w in cols)
        over = "".join(f"<br><small>overflows at {w} px: {html.escape('; '.join(v))}</small>"
                       for (m, w), v in (bad or {}).items() if m == n and v)
        rows.append(f"<tr><th>{html.escape(n)}<br><small>{html.escape(VIEWS[n][1])}</small>{over}</th>{cells}</tr>")
    page = ("<!doctype html><meta charset='utf-8'><title>llm-widgets gallery</title>"
            "<style>body{font:14px system-ui,sans-serif;margin:16px}th{text-align:left;vertical-align:top;width:14em}"
            "td{vertical-align:top;padding:4px}img{max-width:640px;border:1px solid #ccc}</style>"
            f"<h1>llm-widgets gallery</h1><p>Every view in JupyterLab Light and Dark ({time.strftime('%Y-%m-%d %H:%M')}); "
            "click a picture for full size.</p>"
            f"<table><tr><th>view</th>{''.join(f'<th>{t}, {w} px</th>' for t, w in cols)}</tr>{''.join(rows)}</table>\n")
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "gallery"), help="folder for the PNGs and index.html (default: gallery/)")
    ap.add_argument("--only", default="", help=f"comma-separated views (default: all of {', '.join(VIEWS)})")
    ap.add_argument("--widths", default=",".join(map(str, WIDTHS)), help="window widths in px (default: 1400,800)")
    args = ap.parse_args(argv)
    widths = [int(w) for w in args.widths.split(",") if w]
    names = [n for n in args.only.split(",") if n] or list(VIEWS)
    bad = [n for n in names if n not in VIEWS]
    if bad:
        ap.error(f"unknown views {bad}; choose from {list(VIEWS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    server = _start_server(Path(tempfile.mkdtemp(prefix="lw-gallery-")), "jupyterlab")
    shots: dict[tuple[str, str, int], Path] = {}
    bad: dict[tuple[str, int], list[str]] = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS, headless=True)
            t0 = time.time()
            nb = _open_notebook(browser, server, ["import llm_widgets as lw\n" + SETUP, *(VIEWS[n][0] for n in names)],
                                "gallery", "lab")
            page = nb.page
            page.set_viewport_size({"width": widths[0], "height": HEIGHT})
            page.evaluate("() => window.jupyterapp.shell.collapseLeft()")  # the notebook takes the width
            _tag_outputs(page, names, first=1)
            for n in names:
                _wait_ready(page, n)
            print(f"notebook ran in {time.time() - t0:.0f} s")
            for width in widths:
                page.set_viewport_size({"width": width, "height": HEIGHT})
                for n in names:
                    bad[(n, width)] = overflow(page, n)
                    if bad[(n, width)]:
                        print(f"OVERFLOW {n} at {width} px:", *bad[(n, width)][:8], sep="\n  ")
                for theme, (label, light) in THEMES.items():
                    _set_theme(page, label, light)
                    for n in names:
                        path = out / f"{n}-{theme}-{width}.png"
                        _shoot(page, n, path)
                        shots[(n, theme, width)] = path
                        print(f"wrote {path}")
            if nb.errors:
                print("page errors:", *nb.errors, sep="\n  ")
            browser.close()
    finally:
        _stop(server)
    index = _index(out, names, shots, widths, bad)
    over = sorted({f"{n} at {w} px" for (n, w), v in bad.items() if v})
    print(f"{len(shots)} pictures; open {index}" + (f"\noverflowing: {', '.join(over)}" if over else "\nnothing overflows"))
    return 0 if len(shots) == len(names) * len(THEMES) * len(widths) and not over else 1


if __name__ == "__main__":
    sys.exit(main())
