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


def interleaved(fns: dict, repeat: int) -> dict:
    """{name: (last result, median seconds)}, the functions called in turn `repeat` times (round
    robin), so a change of load on a shared machine falls on all of them alike."""
    outs, times = {}, {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            outs[k] = fn()
            times[k].append(time.perf_counter() - t0)
    return {k: (outs[k], statistics.median(times[k])) for k in fns}


def offline_context(browser, serve_cdn: bool = False, extra: dict | None = None):
    """A browser context where only file:/blob:/data: load (and, with serve_cdn, bertviz's CDN
    libraries from local copies; `extra` maps more full URLs to local files); every other request
    is refused."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    extra = extra or {}

    def route(r):
        url = r.request.url
        name = url.rsplit("/", 1)[-1]
        if url.startswith(("file:", "blob:", "data:")):
            r.continue_()
        elif url in extra:
            r.fulfill(path=str(extra[url]), content_type="application/javascript",
                      headers={"Access-Control-Allow-Origin": "*"})  # an ES module import is a CORS request
        elif serve_cdn and name in CDN_LOCAL:
            r.fulfill(path=str(CDN_LOCAL[name]), content_type="application/javascript")
        else:
            r.abort()

    ctx.route("**/*", route)
    return ctx


# -- results shared by every bench: one JSON line per (bench, peer), rendered by bench/summary.py --
OUT = ROOT / "bench" / "out"
RESULTS = OUT / "results.jsonl"
VENVS = ROOT / "bench" / ".venvs"
TORCH_PIN = "torch==2.13.0"  # the local CPU wheel: an unpinned torch pulls multi-GB CUDA builds


def record(bench: str, peer: str, ours_s: float | None, peer_s: float | None, agreement: str,
           target: float | None = None, unit: str = "s", note: str = "", higher_is_better: bool = False) -> dict:
    """Append one comparison to bench/out/results.jsonl. ratio = peer / ours (how many times ours is
    faster; for higher_is_better quantities, ours / peer); None where either side did not run."""
    import json
    import os

    ratio = None
    if ours_s and peer_s:
        ratio = ours_s / peer_s if higher_is_better else peer_s / ours_s
    row = dict(bench=bench, peer=peer, ours=ours_s, peer_value=peer_s, unit=unit, ratio=ratio,
               agreement=agreement, target=target, met=None if ratio is None or target is None else ratio >= target,
               note=note, load=round(os.getloadavg()[0], 2), time=time.strftime("%Y-%m-%d %H:%M:%S"))
    OUT.mkdir(parents=True, exist_ok=True)
    with open(RESULTS, "a") as f:
        f.write(json.dumps(row) + "\n")
    return row


def machine_line() -> str:
    import os
    import platform

    import torch

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"load average {os.getloadavg()[0]:.2f} at start")
