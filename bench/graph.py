"""Attribution graphs: time and peak memory vs prompt length.

Here (default): a tiny Llama-shaped model (random weights, 2 layers, d=64, MiniLM's vocabulary of
30,522) with random ReLU transcoders of 512 features per layer, on CPU (2 threads), T = 16..256,
at most --max-feature-nodes feature nodes (the rest folded into the error nodes, as
`max_feature_nodes` does). Each length runs in a fresh process; peak memory is the resident set's
growth over the run (sampled every 5 ms).

--gpu: the same on Gemma-2-2B's shapes (26 layers, d=2304, 8 heads of 256 with 4 key heads, MLP
9,216, vocabulary 256,000, soft-capped attention and logits; random weights, float32) with random
TopK transcoders of 16,384 features (k=64) per layer, on CUDA, T = 64..1024; peak memory is
torch.cuda.max_memory_allocated. Run it where a GPU is lent (it needs about 30 GB).

    python bench/graph.py [--lengths 16 32 64 128 256] [--max-feature-nodes 512]
    python bench/graph.py --gpu [--lengths 64 128 256 512 1024] [--max-feature-nodes 8192]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import text_with_tokens  # noqa: E402

FEATURES_CPU, FEATURES_GPU, TOPK = 512, 16384, 64


def transcoders(s, F: int, seed: int = 0, topk: int | None = None) -> list:
    import torch

    from llm_widgets.dictionaries import Dictionary
    from llm_widgets.dictionaries.coding import Weights
    from llm_widgets.dictionaries.sites import Site

    d, dev = s.adapter.d_model, s.device
    out = []
    for l in range(s.adapter.n_layers):
        g = torch.Generator(device=dev).manual_seed(seed + l)
        w = Weights(W_enc=torch.randn(d, F, generator=g, device=dev) / d ** 0.5,
                    b_enc=torch.full((F,), -0.5 if topk is None else 0.0, device=dev),
                    W_dec=torch.randn(F, d, generator=g, device=dev) * 0.3 / F ** 0.5,
                    b_dec=torch.zeros(d, device=dev), activation="relu" if topk is None else "topk", k=topk)
        out.append(Dictionary(w, site=Site("mlp_in", l), out_site=Site("mlp", l), name=f"random {F}"))
    return out


def build_cpu(n: int):
    import torch

    import llm_widgets as lw
    from llm_widgets.testing import build

    torch.set_num_threads(2)
    tok = lw.load().tokenizer
    tok.model_max_length = n + 8
    s = lw.load((build("llama", positions=n + 8), tok), device="cpu")
    return s, text_with_tokens(tok, n), transcoders(s, FEATURES_CPU)


def build_gpu(n: int):
    import torch
    from transformers import Gemma2Config, Gemma2ForCausalLM

    import llm_widgets as lw

    tok = lw.load().tokenizer
    tok.model_max_length = n + 8
    cfg = Gemma2Config(vocab_size=256000, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
                       num_attention_heads=8, num_key_value_heads=4, head_dim=256, max_position_embeddings=n + 8,
                       final_logit_softcapping=30.0, attn_logit_softcapping=50.0, query_pre_attn_scalar=256,
                       sliding_window=4096, attn_implementation="eager")
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = Gemma2ForCausalLM(cfg).eval()
    s = lw.load((model, tok), device="cuda")
    return s, text_with_tokens(tok, n), transcoders(s, FEATURES_GPU, topk=TOPK)


class PeakRSS:
    """The resident set's peak growth while inside (sampled on a thread)."""

    def __enter__(self):
        import psutil

        self.proc = psutil.Process()
        self.base = self.peak = self.proc.memory_info().rss
        self.done = False
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while not self.done:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc):
        self.done = True
        self.thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def grew(self) -> int:
        return self.peak - self.base


def run(n: int, gpu: bool, cap: int) -> dict:
    import torch

    import llm_widgets as lw

    s, text, tcs = build_gpu(n) if gpu else build_cpu(n)
    if gpu:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    with PeakRSS() as rss:
        t0 = time.perf_counter()
        g = lw.attribution_graph(s, text, tcs, max_feature_nodes=cap)
        if gpu:
            torch.cuda.synchronize()
        t = time.perf_counter() - t0
    f = g.info["features"]
    return dict(n=n, seconds=t, peak=(torch.cuda.max_memory_allocated() - base) if gpu else rss.grew,
                active=f["active"], kept=f["kept"], batch=g.info["batch_size"], nodes=g.info["pruning"]["nodes_before"],
                pruned_nodes=g.n_nodes, edges=g.info["pruning"]["edges_before"], pruned_edges=g.n_edges,
                replacement=g.replacement_score, completeness=g.completeness_score)


def child(n: int, gpu: bool, cap: int) -> dict:
    cmd = [sys.executable, __file__, "--child", "--n", str(n), "--max-feature-nodes", str(cap)] + (["--gpu"] if gpu else [])
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    if out.returncode != 0:
        return {"n": n, "error": (out.stderr or out.stdout).strip().splitlines()[-1][:300]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpu", action="store_true")
    ap.add_argument("--lengths", type=int, nargs="+")
    ap.add_argument("--max-feature-nodes", type=int)
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--n", type=int)
    args = ap.parse_args()
    cap = args.max_feature_nodes or (8192 if args.gpu else 512)
    if args.child:
        print(json.dumps(run(args.n, args.gpu, cap)))
        return
    lengths = args.lengths or ([64, 128, 256, 512, 1024] if args.gpu else [16, 32, 64, 128, 256])
    where = (f"Gemma-2-2B-shaped random model, float32, CUDA; random TopK transcoders {FEATURES_GPU} features (k={TOPK})"
             if args.gpu else f"tiny Llama-shaped model (2 layers, d=64), CPU 2 threads; random ReLU transcoders "
                              f"{FEATURES_CPU} features")
    print(f"attribution_graph: {where}; max_feature_nodes={cap}; default thresholds (0.8 / 0.98)")
    print(f"{'T':>6} {'seconds':>8} {'peak MB':>8} {'active':>8} {'kept':>6} {'batch':>6} {'nodes':>7} {'edges':>9} "
          f"{'pruned nodes':>13} {'pruned edges':>13} {'replacement':>12} {'completeness':>13}")
    for n in lengths:
        r = child(n, args.gpu, cap)
        if "error" in r:
            print(f"{n:>6} failed: {r['error']}")
            continue
        print(f"{n:>6} {r['seconds']:>8.2f} {r['peak'] / 2**20:>8.0f} {r['active']:>8} {r['kept']:>6} {r['batch']:>6} "
              f"{r['nodes']:>7} {r['edges']:>9} {r['pruned_nodes']:>13} {r['pruned_edges']:>13} "
              f"{r['replacement']:>12.3f} {r['completeness']:>13.3f}")


if __name__ == "__main__":
    main()
