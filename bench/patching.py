"""Activation patching sweep: batched (many patched runs per forward) vs one forward per patch.

Full layer x position residual-stream sweep on a small GPT-2 built from a config (random weights,
T=32 tokens), both ways in the same run; checks the numbers are identical and prints the speed ratio.

    python bench/patching.py [--layers 4] [--tokens 32] [--batch 64]
"""
import argparse
import os
import time

import numpy as np
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import llm_widgets as lw
    from llm_widgets.compute.patching import patching
    from transformers import GPT2Config, GPT2LMHeadModel

    from llm_widgets.teaching.induction import VOCAB, letter_tokenizer

    tok = letter_tokenizer()
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=128, n_layer=args.layers, n_head=4,
                     bos_token_id=0, eos_token_id=0)
    s = lw.load((GPT2LMHeadModel(cfg), tok), device="cpu")
    g = np.random.default_rng(0)
    words = list(g.choice(VOCAB, size=args.tokens - 1))  # + <bos> = args.tokens tokens
    clean = " ".join(words)
    words[args.tokens // 2] = "A" if words[args.tokens // 2] != "A" else "B"
    corrupted = " ".join(words)
    kw = dict(sites=("resid",), heads=False, answers=("A", "B"))
    patching(s, clean, corrupted, batch_size=args.batch, **kw)  # warm-up

    t0 = time.perf_counter()
    batched = patching(s, clean, corrupted, batch_size=args.batch, **kw)
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    loop = patching(s, clean, corrupted, batch_size=1, **kw)
    t_loop = time.perf_counter() - t0

    n = batched.scores.size
    diff = float(np.abs(batched.raw - loop.raw).max())
    print(f"GPT-2 from config: {args.layers} layers, d=128, T={args.tokens}; {n} patched runs (layer x position)")
    print(f"batched (one layer per forward, <= {args.batch} copies): {t_batched:.3f} s")
    print(f"one forward per patch:                        {t_loop:.3f} s")
    print(f"max |difference| of the metric: {diff:.2e}  (identical: {diff < 1e-5})")
    print(f"speed ratio: {t_loop / t_batched:.1f}x")
    assert diff < 1e-5

if __name__ == "__main__":
    main()
