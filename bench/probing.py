"""Hidden-state extraction for probing: batched (llm_widgets.compute.probing.extract: one padded,
attention-masked forward per batch, every layer at once) against the seed-style loop (one full
forward per text per layer, as a naive probing notebook does), in the same run, same model.

    python bench/probing.py [--texts 64] [--loop-texts 8] [--batch-size 32] [--threads 1]

Prints texts/s for both and their ratio (target >= 5x), after checking both give the same features.

Peers in the same run, same texts, same features (mean over the non-special tokens of each of the
L+1 hidden states), checked against ours:
- TransformerLens 4.3 TransformerBridge (the checkpoint as BertForMaskedLM: TransformerLens bridges
  BERT with its MLM head, which is newly initialised and unused here; the encoder weights are the
  same): `run_with_cache(names_filter=resid hooks, return_type=None)` one text at a time (its usual
  probing loop) and on padded, attention-masked, length-sorted batches of --batch-size;
- nnsight 0.8 (`NNsight` over the same BertModel): one trace per length-sorted padded batch of
  --batch-size, saving the embeddings' and every layer's output.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import llm_widgets as lw  # noqa: E402
from llm_widgets.compute.activations import extract  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved, machine_line, record, timed  # noqa: E402  (bench/common.py)


def seed_loop(session, texts):
    """One forward per text per layer; mean over non-special tokens of that layer's hidden state."""
    n_layers = session.n_layers + 1
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
    out = np.zeros((session.n_layers + 1, len(texts), session.model.config.hidden_size), dtype=np.float32)
    for i, text in enumerate(texts):
        enc, _, _ = session.encode(text)
        with torch.no_grad():
            hs = torch.stack(session.model(**enc, output_hidden_states=True).hidden_states)[:, 0]
        special = torch.tensor([t in session.tokenizer.all_special_ids for t in enc["input_ids"][0].tolist()])
        out[:, i] = hs[:, ~special].mean(1).cpu().numpy()
    return out


def sorted_batches(tok, texts, batch_size: int):
    """(text indices, encoding with special_tokens_mask) per length-sorted padded batch."""
    lengths = [len(tok(t)["input_ids"]) for t in texts]
    order = sorted(range(len(texts)), key=lengths.__getitem__)
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        yield idx, tok([texts[j] for j in idx], return_tensors="pt", padding=True, return_special_tokens_mask=True)


def pool(hs: torch.Tensor, enc) -> np.ndarray:
    """[L+1, B, T, D] -> [L+1, B, D]: mean over real, non-special tokens."""
    keep = (enc["attention_mask"] * (1 - enc["special_tokens_mask"])).float()
    return ((hs * keep[None, :, :, None]).sum(2) / keep.sum(1)[None, :, None]).numpy()


def tl_bridge(session):
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoTokenizer, BertForMaskedLM

    path = session.model.config._name_or_path
    hf = BertForMaskedLM.from_pretrained(path).eval()
    bridge = TransformerBridge.boot_transformers(path, hf_model=hf, tokenizer=AutoTokenizer.from_pretrained(path),
                                                 device="cpu")
    return bridge.eval()


def tl_features(bridge, tok, texts, n_layers: int, batch_size: int | None):
    """TransformerLens: run_with_cache on the residual stream hooks; batch_size None = one text per run."""
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{l}.hook_resid_post" for l in range(n_layers)]
    wanted = set(names)
    out = None
    with torch.no_grad():
        for idx, enc in sorted_batches(tok, texts, batch_size or 1):
            _, cache = bridge.run_with_cache(enc["input_ids"], attention_mask=enc["attention_mask"],
                                             names_filter=lambda n: n in wanted, return_type=None)
            hs = torch.stack([cache[n] for n in names])
            if out is None:
                out = np.zeros((len(names), len(texts), hs.shape[-1]), np.float32)
            out[:, idx] = pool(hs, enc)
    return out


def nnsight_features(nn, tok, texts, n_layers: int, batch_size: int):
    """nnsight: one trace per padded batch, saving the embeddings' and every layer's output."""
    import nnsight

    out = None
    torch.set_grad_enabled(False)
    try:
        for idx, enc in sorted_batches(tok, texts, batch_size):
            with nn.trace(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]):
                hs = nnsight.save([])
                hs.append(nn.embeddings.output)
                for l in range(n_layers):
                    hs.append(nn.encoder.layer[l].output)
            hs = torch.stack(list(hs))
            if out is None:
                out = np.zeros((n_layers + 1, len(texts), hs.shape[-1]), np.float32)
            out[:, idx] = pool(hs, enc)
    finally:
        torch.set_grad_enabled(True)
    return out


def peers(s, texts, batched, t_batched, a):
    """TransformerLens and nnsight on the same texts; prints and records."""
    warnings.filterwarnings("ignore")
    from nnsight import NNsight

    tok, L = s.tokenizer, s.n_layers
    bridge = tl_bridge(s)
    nn = NNsight(s.model)
    fns = {
        "ours": lambda t: extract(s, t, batch_size=a.batch_size).states,
        "TransformerLens run_with_cache, one text per run": lambda t: tl_features(bridge, tok, t, L, None),
        f"TransformerLens run_with_cache, padded batches of {a.batch_size}":
            lambda t: tl_features(bridge, tok, t, L, a.batch_size),
        f"nnsight trace, padded batches of {a.batch_size}": lambda t: nnsight_features(nn, tok, t, L, a.batch_size),
    }
    for fn in fns.values():
        fn(texts[:4])  # warm-up
    res = interleaved({k: (lambda fn=fn: fn(texts)) for k, fn in fns.items()}, a.repeat)
    t_batched = res.pop("ours")[1]  # ours again, interleaved with the peers (the load on a shared machine varies)
    rows = [(name, dt, float(np.abs(feats - batched.states).max())) for name, (feats, dt) in res.items()]
    print(f"\npeers, same {len(texts)} texts, same features ({L + 1} hidden states, mean over non-special tokens):")
    print(f"{'':58}{'seconds':>9}{'texts/s':>10}{'ours faster':>13}{'max |d|':>10}")
    print(f"{'llm_widgets extract (batched), timed in turn with the peers':58}{t_batched:9.2f}{len(texts) / t_batched:10.1f}{'':>13}{'':>10}")
    for name, dt, err in rows:
        print(f"{name:58}{dt:9.2f}{len(texts) / dt:10.1f}{dt / t_batched:12.1f}x{err:10.1e}")
        if not a.no_record:
            record(f"probing extraction, {len(texts)} texts, {L + 1} layers", name, t_batched, dt, f"max |d| {err:.1e}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=64)
    ap.add_argument("--loop-texts", type=int, default=8, help="texts for the (slow) loop")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a shared, loaded machine)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of the batched paths (median)")
    ap.add_argument("--no-peers", action="store_true", help="skip TransformerLens and nnsight")
    ap.add_argument("--no-record", action="store_true", help="do not append to bench/out/results.jsonl")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    s = lw.load()
    texts = lw.datasets.tense(max(a.texts, a.loop_texts), seed=1).texts
    # warm up both paths once
    extract(s, texts[:4])
    seed_loop(s, texts[:1])

    batched, t_batched = timed(lambda: extract(s, texts[:a.texts], batch_size=a.batch_size), a.repeat)
    t0 = time.perf_counter()
    looped = seed_loop(s, texts[:a.loop_texts])
    t_loop = time.perf_counter() - t0

    t0 = time.perf_counter()
    single = per_text(s, texts[:a.texts])
    t_single = time.perf_counter() - t0

    err = max(float(np.abs(batched.states - single).max()), float(np.abs(batched.states[:, :a.loop_texts] - looped).max()))
    assert err < 1e-3, f"batched and looped features differ by {err}"
    rate_b, rate_l, rate_s = a.texts / t_batched, a.loop_texts / t_loop, a.texts / t_single
    print(f"model {s.name}: {s.n_layers + 1} hidden states, device {s.device}, threads {a.threads}")
    print(f"batched extract  : {a.texts:4d} texts in {t_batched:6.2f} s = {rate_b:8.1f} texts/s "
          f"(batch {a.batch_size}, median of {a.repeat})")
    print(f"seed-style loop  : {a.loop_texts:4d} texts in {t_loop:6.2f} s = {rate_l:8.1f} texts/s "
          f"(one forward per text per layer)")
    print(f"one pass per text: {a.texts:4d} texts in {t_single:6.2f} s = {rate_s:8.1f} texts/s "
          f"(all layers, unbatched: {rate_b / rate_s:.1f}x slower than batched)")
    print(f"max |difference| : {err:.2e}")
    print(f"speed-up         : {rate_b / rate_l:.1f}x (target >= 5x)")
    print(machine_line())
    if not a.no_record:
        bench = f"probing extraction, {a.texts} texts, {s.n_layers + 1} layers"
        record(bench, "seed-style loop (one forward per text per layer)", 1 / rate_b, 1 / rate_l,
               f"max |d| {err:.1e}", target=5.0, unit="s/text")
        record(bench, "one forward per text, all layers (HF, unbatched)", t_batched, t_single, f"max |d| {err:.1e}")
    if not a.no_peers:
        peers(s, texts[:a.texts], batched, t_batched, a)


if __name__ == "__main__":
    main()
