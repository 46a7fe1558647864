"""What running compute as the execution layer's generic Programs costs against the native
executor's specialised paths, on the same model in the same run: activation patching (the
key/value-prefix sweep vs one batch row per patched run, what the nnsight executor runs) and
integrated gradients (the hook-based objective with the two-stage head backward vs f(E) and its
gradients as Programs), plus the time of the Program-only computations (logit lens, neurons,
ablation, direct logit attribution). Values are checked equal; times are medians.

    python bench/executors.py --model gpt2-small --tokens 64      # a random GPT-2-small-shaped model
    python bench/executors.py --model tiny --tokens 16 --repeat 1  # a smoke run
Prints one JSON line per measurement (and appends it to bench/out/results.jsonl unless --no-save).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import llm_widgets as lw  # noqa: E402
from llm_widgets import execution  # noqa: E402
from llm_widgets.compute.ablation import ablation_effect  # noqa: E402
from llm_widgets.compute.attribution import attribute  # noqa: E402
from llm_widgets.compute.direct_logit import direct_logit_attribution  # noqa: E402
from llm_widgets.compute.logit_lens import logit_lens  # noqa: E402
from llm_widgets.compute.neurons import neuron_activations  # noqa: E402
from llm_widgets.compute.patching import patching  # noqa: E402
from llm_widgets.execution.native import Native  # noqa: E402
from llm_widgets.testing import ProgramsOnly  # noqa: E402

SHAPES = {  # (layers, d_model, heads, d_mlp, vocab)
    "tiny": (2, 64, 4, 256, 1000),
    "gpt2-small": (12, 768, 12, 3072, 50257),
    "gpt2-medium": (24, 1024, 16, 4096, 50257),
}



class WordTokenizer:
    """Whitespace tokenizer over ids 0..V-1 (a random model needs no real vocabulary)."""

    def __init__(self, vocab: int):
        from transformers import PreTrainedTokenizerFast
        from tokenizers import Tokenizer, models, pre_tokenizers

        words = {f"w{i}": i for i in range(vocab - 1)}
        words["[UNK]"] = vocab - 1
        tk = Tokenizer(models.WordLevel(words, unk_token="[UNK]"))
        tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        self.tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[UNK]")


def build(shape: str, device: str, dtype):
    from transformers import GPT2Config, GPT2LMHeadModel

    L, d, H, m, V = SHAPES[shape]
    cfg = GPT2Config(n_layer=L, n_embd=d, n_head=H, n_inner=m, vocab_size=V, n_positions=1024, bos_token_id=0,
                     eos_token_id=0, attn_implementation="eager")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(cfg).eval()
    return lw.load((model, WordTokenizer(V).tok), device=device, dtype=dtype)


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_time(fn, repeat, device):
    times, out = [], None
    for _ in range(repeat):
        sync(device)
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return out, float(np.median(times))


def both(s, fn, repeat, device):
    """fn on the native executor's specialised paths, then on the generic Programs (same session)."""
    fn()  # warm-up
    a, ta = median_time(fn, repeat, device)
    execution.NATIVE = ProgramsOnly()
    try:
        fn()
        b, tb = median_time(fn, repeat, device)
    finally:
        execution.NATIVE = Native()
    return a, ta, b, tb


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="gpt2-small", choices=sorted(SHAPES))
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    s = build(args.model, args.device, args.dtype)
    T = args.tokens
    text = " ".join(f"w{(7 * i) % 997}" for i in range(T))
    corrupt = " ".join(f"w{(7 * i) % 997}" if i != T // 3 else "w5" for i in range(T))
    device_name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    rows = []

    def record(what, **kw):
        row = {"bench": "executors", "what": what, "model": args.model, "tokens": T, "device": device_name,
               "dtype": args.dtype, **kw}
        rows.append(row)
        print(json.dumps(row), flush=True)

    # activation patching: the native KV-prefix sweep vs one batch row per patched run
    a, ta, b, tb = both(s, lambda: patching(s, text, corrupt, answers=("w5", f"w{(7 * (T // 3)) % 997}")),
                        args.repeat, args.device)
    record("patching", native_s=ta, programs_s=tb, ratio_programs_over_native=tb / ta,
           runs=int(a.raw.size + a.head_scores.size), max_abs_diff=float(np.nanmax(np.abs(a.raw - b.raw))),
           reused_prefix=a.reused_prefix)
    # integrated gradients (64 steps), one target and four generated ones
    for gen in (None, 4):
        kw = dict(method="ig", steps=64, max_steps=64, compute_faithfulness=False)
        fn = (lambda: attribute(s, text, "w3", **kw)) if gen is None else (lambda: attribute(s, text, generate=gen,
                                                                                             **kw))
        a, ta, b, tb = both(s, fn, args.repeat, args.device)
        scale = float(np.abs(a.scores).max())
        record(f"ig, {1 if gen is None else gen} target(s)", native_s=ta, programs_s=tb,
               ratio_programs_over_native=tb / ta,
               max_rel_diff=float(np.abs(a.scores - b.scores).max() / scale))
    # Programs only (one path): their time
    for what, fn in [("logit lens k=5", lambda: logit_lens(s, text)),
                     ("neurons", lambda: neuron_activations(s, text)),
                     ("ablation_effect (2 heads, 2 neurons)",
                      lambda: ablation_effect(s, text, heads=[(0, 1), (1, 2)], neurons=[(0, 3), (1, 4)])),
                     ("direct logit attribution (last position)", lambda: direct_logit_attribution(s, text,
                                                                                                   target="w3"))]:
        fn()
        _, t = median_time(fn, args.repeat, args.device)
        record(what, programs_s=t)
    if not args.no_save:
        out = ROOT / "bench" / "out"
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "results.jsonl", "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
