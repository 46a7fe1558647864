"""Hidden-state extraction for probing: batched (llm_widgets.compute.probing.extract: one padded,
attention-masked forward per batch, every layer at once) against the seed-style loop (one full
forward per text per layer, as a naive probing notebook does), in the same run, same model.

    python bench/probing.py [--texts 64] [--loop-texts 8] [--batch-size 32] [--threads 1]

Prints texts/s for both and their ratio (target >= 5x), after checking both give the same features.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import llm_widgets as lw  # noqa: E402
from llm_widgets.compute.activations import extract  # noqa: E402


def seed_loop(session, texts):
    """One forward per text per layer; mean over non-special tokens of that layer's hidden state."""
    n_layers = session.num_layers + 1
    out = np.zeros((n_layers, len(texts), session.model.config.hidden_size), dtype=np.float32)
    for i, text in enumerate(texts):
        for layer in range(n_layers):
            enc, _, _ = session.encode(text)
            with torch.no_grad():  # hidden states only (no attentions): a fair baseline
                hs = session.model(**enc, output_hidden_states=True).hidden_states[layer][0]
            special = torch.tensor([t in session.tokenizer.all_special_ids for t in enc["input_ids"][0].tolist()])
            out[layer, i] = hs[~special].mean(0).cpu().numpy()
    return out


def per_text(session, texts):
    """One forward per text, every layer from it (no batching): isolates what batching alone buys."""
    out = np.zeros((session.num_layers + 1, len(texts), session.model.config.hidden_size), dtype=np.float32)
    for i, text in enumerate(texts):
        enc, _, _ = session.encode(text)
        with torch.no_grad():
            hs = torch.stack(session.model(**enc, output_hidden_states=True).hidden_states)[:, 0]
        special = torch.tensor([t in session.tokenizer.all_special_ids for t in enc["input_ids"][0].tolist()])
        out[:, i] = hs[:, ~special].mean(1).cpu().numpy()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=64)
    ap.add_argument("--loop-texts", type=int, default=8, help="texts for the (slow) loop")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a shared, loaded machine)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    s = lw.load()
    texts = lw.datasets.tense(max(a.texts, a.loop_texts), seed=1).texts
    # warm up both paths once
    extract(s, texts[:4])
    seed_loop(s, texts[:1])

    t0 = time.perf_counter()
    batched = extract(s, texts[:a.texts], batch_size=a.batch_size)
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    looped = seed_loop(s, texts[:a.loop_texts])
    t_loop = time.perf_counter() - t0

    t0 = time.perf_counter()
    single = per_text(s, texts[:a.texts])
    t_single = time.perf_counter() - t0

    err = max(float(np.abs(batched.states - single).max()), float(np.abs(batched.states[:, :a.loop_texts] - looped).max()))
    assert err < 1e-3, f"batched and looped features differ by {err}"
    rate_b, rate_l, rate_s = a.texts / t_batched, a.loop_texts / t_loop, a.texts / t_single
    print(f"model {s.name}: {s.num_layers + 1} hidden states, device {s.device}, threads {a.threads}")
    print(f"batched extract  : {a.texts:4d} texts in {t_batched:6.2f} s = {rate_b:8.1f} texts/s "
          f"(batch {a.batch_size})")
    print(f"seed-style loop  : {a.loop_texts:4d} texts in {t_loop:6.2f} s = {rate_l:8.1f} texts/s "
          f"(one forward per text per layer)")
    print(f"one pass per text: {a.texts:4d} texts in {t_single:6.2f} s = {rate_s:8.1f} texts/s "
          f"(all layers, unbatched: {rate_b / rate_s:.1f}x slower than batched)")
    print(f"max |difference| : {err:.2e}")
    print(f"speed-up         : {rate_b / rate_l:.1f}x (target >= 5x)")


if __name__ == "__main__":
    main()
