"""One table of every comparison the benches appended to bench/out/results.jsonl, written to
bench/out/summary.md (and printed). `make bench` clears results.jsonl first, so the table is one run.

    python bench/summary.py [--results bench/out/results.jsonl] [--out bench/out/summary.md]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine_line  # noqa: E402


def fmt(v, unit: str) -> str:
    if v is None:
        return "—"
    if unit == "s":
        return f"{v:.3f} s" if v < 10 else f"{v:.1f} s"
    if unit == "s/text":
        return f"{v * 1e3:.1f} ms/text"
    if unit == "ms":
        return f"{v:,.0f} ms" if v >= 100 else f"{v:.1f} ms"
    return f"{v:,.0f} {unit}"


def render(rows: list[dict]) -> str:
    out = ["| bench | peer | ours | peer | ratio (peer / ours) | target | agreement | note |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.1f}x"
        if r["target"] is not None and r["ratio"] is not None:
            ratio += " ✓" if r["met"] else " ✗ (missed)"
        target = "" if r["target"] is None else f">= {r['target']:g}x"
        cell = lambda v: str(v or "").replace("|", "\\|")  # noqa: E731  (a pipe would split the cell)
        out.append(f"| {cell(r['bench'])} | {cell(r['peer'])} | {fmt(r['ours'], r['unit'])} "
                   f"| {fmt(r['peer_value'], r['unit'])} | {ratio} | {target} | {cell(r['agreement'])} "
                   f"| {cell(r.get('note'))} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--out", type=Path, default=RESULTS.parent / "summary.md")
    a = ap.parse_args()
    rows = [json.loads(line) for line in a.results.read_text().splitlines() if line.strip()]
    if not rows:
        sys.exit(f"no results in {a.results}")
    times = sorted(r["time"] for r in rows)
    loads = [r["load"] for r in rows]
    text = (f"# Benchmarks: llm-widgets against the tools people would pick instead\n\n"
            f"The benches of `make bench`, recorded {times[0]} to {times[-1]}; {machine_line().split(', load')[0]}; "
            f"1-minute load average while recording: {min(loads):.1f} to {max(loads):.1f} "
            f"(a shared machine: times are medians, fast variants timed in turn with their peers).\n"
            f"ratio = peer / ours: how many times ours is faster (for MB: how many times less memory ours "
            f"needs). The per-bench outputs next to this file (bench/out/*.txt) have every variant.\n\n"
            + render(rows) + "\n")
    a.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
