"""The nnsight backend: round trips and bytes returned per view, and local-nnsight vs native time, in one run.

Each view runs twice on copies of one seeded random GPT-2 (default 4 layers, d=256, 8 heads, eager
attention, MiniLM's WordPiece tokenizer, T = 32 tokens): once on the native torch-hook path
(`lw.load(...)`, the reference) and once through nnsight traces executing here
(`lw.load(..., backend="nnsight")`). For the nnsight side it counts requests (one trace each: one
round trip when remote=True), batch rows, and the bytes of tensors sent and returned -- what would
cross the network to NDIF -- and checks the numbers against the native ones. With --simulate it
also runs each view through nnsight's local simulation of a remote run (remote="local": every
request serialized and deserialized with llm_widgets hidden, as a server sees it) and times it.

Views: trace (hidden states, logits, post-rotary queries/keys for attention on demand), the
attention summaries of every head, neuron activations, ablation_effect, the full patching sweep
(resid/attn/mlp x layer x position plus every head; answers given: 1 trace, answers picked from the
clean / corrupted predictions: 2), logit lens, probing activations (64 texts, batches of 32) and
attribution (IG over 2 generated tokens, 50 steps; occlusion).

Prints a table; appends one JSON line per view to bench/out/results.jsonl (bench/common.py `record`:
ours = nnsight here, peer = native; ratio = native / nnsight time).

    python bench/nnsight_backend.py [--layers 4] [--d-model 256] [--heads 8] [--tokens 32] [--repeat 3] [--simulate]
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import WORDS, interleaved, machine_line, record, text_with_tokens  # noqa: E402


def model(layers: int, d: int, heads: int, vocab: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=vocab, n_positions=256, n_embd=d, n_layer=layers, n_head=heads,
                     attn_implementation="eager")
    m = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():  # effects well above float noise (tests/families.py)
        for p in m.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.2)
    return m


def mx(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max()) / max(1.0, float(np.abs(a).max()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--simulate", action="store_true", help="also time nnsight's local simulation of remote runs")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")

    import nnsight

    import llm_widgets as lw
    from llm_widgets.compute.ablation import ablation_effect
    from llm_widgets.compute.activations import extract
    from llm_widgets.compute.attention import attention_result
    from llm_widgets.compute.attribution import attribute
    from llm_widgets.compute.logit_lens import logit_lens
    from llm_widgets.compute.neurons import neuron_activations
    from llm_widgets.compute.patching import patching
    from llm_widgets.trace import build_trace

    tok = lw.load().tokenizer
    m = model(args.layers, args.d_model, args.heads, tok.vocab_size)
    copies = [copy.deepcopy(m) for _ in range(2)]
    native = lw.load((m, tok), device="cpu")
    here = lw.load((copies[0], tok), device="cpu", backend="nnsight")
    sim = lw.load((copies[1], tok), device="cpu", backend="nnsight", remote="local") if args.simulate else None
    T = args.tokens
    text = text_with_tokens(tok, T)
    words = text.split()
    corrupt = " ".join(words[:T // 2] + ["dog" if words[T // 2] != "dog" else "cat"] + words[T // 2 + 1:])
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(4, 20)))) for _ in range(64)]
    labels = [int(i % 2) for i in range(64)]
    answers = tuple(tok.convert_ids_to_tokens(tok(w, add_special_tokens=False)["input_ids"])[0] for w in ("dog", "cat"))
    views = {
        # build_trace: Session.trace without its cache (a trace per call)
        "trace (hidden states, logits, q/k)": (lambda s: build_trace(s, text),
                                               lambda a, b: mx(a.hidden_states, b.hidden_states)),
        "attention: trace + every head's summary": (
            lambda s: attention_result(build_trace(s, text), summarise_up_to=None), lambda a, b: mx(a.stats, b.stats)),
        "neuron activations": (lambda s: neuron_activations(s, text), lambda a, b: mx(a.activations, b.activations)),
        "ablation_effect": (lambda s: ablation_effect(s, text, heads=[(0, 1), (1, 2)], neurons=[(0, 5)]),
                            lambda a, b: mx(sorted(a.after), sorted(b.after))),
        f"patching sweep T={T}, answers given": (lambda s: patching(s, text, corrupt, answers=answers),
                                                lambda a, b: mx(a.raw, b.raw)),
        f"patching sweep T={T}, answers picked": (lambda s: patching(s, text, corrupt),
                                                 lambda a, b: mx(a.raw, b.raw)),
        "logit lens": (lambda s: logit_lens(s, text), lambda a, b: mx(a.top_probs, b.top_probs)),
        "probing activations (64 texts)": (lambda s: extract(s, texts, labels, batch_size=32),
                                           lambda a, b: mx(a.states, b.states)),
        "attribution IG (2 targets, 50 steps)": (
            lambda s: attribute(s, text, method="ig", generate=2, compute_faithfulness=False),
            lambda a, b: mx(a.scores, b.scores)),
        "attribution occlusion": (lambda s: attribute(s, text, method="occlusion", compute_faithfulness=False),
                                  lambda a, b: mx(a.scores, b.scores)),
    }
    print(f"# nnsight backend: requests, bytes and time per view ({machine_line()}; nnsight {nnsight.__version__})")
    print(f"# GPT-2 shaped, {args.layers} layers, d={args.d_model}, {args.heads} heads, T={T}, "
          f"{sum(p.numel() for p in m.parameters()) / 1e6:.1f}M parameters, {args.threads} threads")
    head = f"{'view':42s} {'req':>4s} {'rows':>6s} {'sent':>10s} {'returned':>10s} {'native s':>9s} {'nnsight s':>9s}"
    head += f" {'sim s':>8s}" if sim else ""
    print(head + "  max rel diff")
    for name, (run, diff) in views.items():
        runs = {"native": lambda run=run: run(native), "nnsight": lambda run=run: run(here)}
        n0 = len(here.backend.log)
        got = interleaved(runs, args.repeat)
        log = here.backend.log[n0:]
        per = max(1, args.repeat)
        reqs = len(log) / per
        rows = sum(r.rows for r in log) / per
        sent = sum(r.bytes_sent for r in log) / per
        back = sum(r.bytes_returned for r in log) / per
        sim_s = None
        if sim is not None:
            t0 = time.perf_counter()
            run(sim)
            sim_s = time.perf_counter() - t0
        d = diff(got["native"][0], got["nnsight"][0])
        t_nat, t_nn = got["native"][1], got["nnsight"][1]
        line = (f"{name:42s} {reqs:4.0f} {rows:6.0f} {sent / 2 ** 10:8.1f}KB {back / 2 ** 10:8.1f}KB "
                f"{t_nat:9.3f} {t_nn:9.3f}")
        line += f" {sim_s:8.3f}" if sim else ""
        print(line + f"  {d:.1e}")
        note = (f"{reqs:.0f} request(s) (traces; round trips when remote), {rows:.0f} rows, "
                f"{back / 2 ** 10:.1f} KiB returned, {sent / 2 ** 10:.1f} KiB sent"
                + (f"; remote='local' simulation {sim_s:.3f} s" if sim_s is not None else "")
                + f"; GPT-2 {args.layers}x{args.d_model}, T={T}")
        record(f"nnsight backend: {name}", "native torch hooks (same model)", t_nn, t_nat,
               f"max relative difference {d:.1e}", note=note)


if __name__ == "__main__":
    main()
