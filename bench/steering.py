"""Steering grids: a 6 layers x 5 strengths grid of 32-token greedy continuations, one batched
`generate` per layer (every strength a row with its own strength: steering_ops.RowAdd) against one
`generate` per cell (the `steer` context around each), on a tiny random 6-block GPT-2 (hidden 64,
MiniLM's tokenizer), same prompts, same run. Checks both give the same continuations, prints the
medians and their ratio and records it in bench/out/results.jsonl.

    python bench/steering.py [--prompts 2] [--tokens 32] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import llm_widgets as lw  # noqa: E402
from llm_widgets.compute.steering import steer  # noqa: E402
from llm_widgets.compute.steering_grid import generate_rows  # noqa: E402
from llm_widgets.compute.steering_ops import RowAdd  # noqa: E402
from llm_widgets.execution import Write  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line, record, timed  # noqa: E402

PROMPTS = ["the weather today is", "my favourite film was", "in the morning we", "she said that the"]
STRENGTHS = [-8.0, -4.0, 0.0, 4.0, 8.0]


def model_session():
    from transformers import GPT2Config, GPT2LMHeadModel

    from llm_widgets.loading import default_model_path
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(default_model_path()))
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=tok.vocab_size, n_positions=128, n_embd=64, n_layer=6, n_head=4,
                     bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id)
    return lw.load((GPT2LMHeadModel(cfg).eval(), tok), device="cpu")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    s = model_session()
    prompts = PROMPTS[:args.prompts]
    ids = [s.tokenizer(p)["input_ids"] for p in prompts]
    vec = torch.randn(s.adapter.d_model, generator=torch.Generator().manual_seed(1))
    P, S = len(prompts), len(STRENGTHS)
    scales = torch.tensor([x for x in STRENGTHS for _ in range(P)])

    def batched():
        return [generate_rows(s, ids * S, args.tokens, [Write("resid", layer, RowAdd(vec, scales))])
                for layer in range(6)]

    def per_cell():
        out = []
        for layer in range(6):
            rows = []
            for st in STRENGTHS:
                with steer(s, vec, layer=layer, strength=st):
                    rows.append(generate_rows(s, ids, args.tokens))
            out.append(torch.cat(rows))
        return out

    print(machine_line())
    a, t_batched = timed(batched, args.repeat)
    b, t_cells = timed(per_cell, args.repeat)
    same = all(torch.equal(x, y) for x, y in zip(a, b))
    agree = float(np.mean([(x == y).float().mean().item() for x, y in zip(a, b)]))
    print(f"6 layers x {S} strengths x {P} prompts, {args.tokens} new tokens: one batched generate per layer "
          f"{t_batched:.2f} s, one generate per cell {t_cells:.2f} s (medians of {args.repeat}); "
          f"ratio {t_cells / t_batched:.2f}x; identical continuations: {same} ({agree:.4f} of tokens)")
    record("steering grid (6x5, 32 tokens)", "one generate per cell", t_batched, t_cells,
           f"identical continuations: {same} ({agree:.4f} of tokens)",
           note=f"tiny random GPT-2, 6 blocks, {P} prompts, 1 thread")


if __name__ == "__main__":
    main()
