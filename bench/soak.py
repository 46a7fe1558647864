"""Soak: hundreds of random view constructions, selection changes and overlapping background runs
on two models (the keyword classifier and a small GPT-2), every result checked against a
single-threaded reference computed first. Reports wrong results (must be 0), errors by type
(bad input is thrown in on purpose: those must be our errors), and RSS growth.

    python bench/soak.py [--iterations 300] [--seed 0]
"""
import argparse
import collections
import gc
import os
import random
import time

import numpy as np
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TEXTS = ["the film was terrible and the acting was slow", "a wonderful story with a great cast",
         "When Mary and John went to the store, John gave a drink to", "the keys to the cabinet are on the table"]
CLEAN = "When Mary and John went to the store, John gave a drink to"
CORRUPT = "When Mary and John went to the store, Mary gave a drink to"


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(2)
    import traitlets as t
    from transformers import GPT2Config, GPT2LMHeadModel

    import llm_widgets as lw
    from llm_widgets.compute.attribution import attribute
    from llm_widgets.compute.patching import patching

    clf = lw.teaching.keyword_classifier()
    tok = lw.load().tokenizer
    torch.manual_seed(0)
    gpt = lw.load((GPT2LMHeadModel(GPT2Config(vocab_size=tok.vocab_size, n_positions=64, n_embd=64, n_layer=3,
                                              n_head=4)), tok), device="cpu")
    # references, one thread, nothing else running
    ref = {
        "attention": {(id(s), x): s.trace(x).attentions.copy() for s in (clf, gpt) for x in TEXTS},
        "occlusion": {x: attribute(clf, x, method="occlusion", compute_faithfulness=False).scores for x in TEXTS},
        "neurons": {x: lw.NeuronView(gpt, x).result.activations for x in TEXTS},
        "lens": {x: lw.LogitLensView(gpt, x).result.top_probs for x in TEXTS},
        "patching": patching(gpt, CLEAN, CORRUPT, answers=("mary", "john")).scores,
    }
    rng = random.Random(args.seed)
    wrong, errors, unexpected = 0, collections.Counter(), collections.Counter()
    pending = []  # (view, check) of background runs still to verify

    def verify(view, check):
        nonlocal wrong
        view.wait(300)
        if view.error:
            kind = view.error.split(":")[0]
            (errors if kind in ("LLMWidgetsError", "Cancelled") else unexpected)[kind] += 1
        elif not check(view):
            wrong += 1
        view.close()

    def close(a, b, tol=1e-4):
        return np.allclose(a, b, atol=tol)

    def attention(x):
        s = rng.choice((clf, gpt))
        return lw.AttentionView(s, x), lambda v: close(v.result.attentions, ref["attention"][(id(s), x)])

    ops = {
        "attention": attention,
        "attribution": lambda x: (lw.AttributionView(clf, x, method="occlusion", compute_faithfulness=False,
                                                     background=rng.random() < 0.7),
                                  lambda v: close(v.result.scores, ref["occlusion"][x])),
        "neurons": lambda x: (lw.NeuronView(gpt, x, selected_layer=rng.randrange(3)),
                              lambda v: close(v.result.activations, ref["neurons"][x])),
        "lens": lambda x: (lw.LogitLensView(gpt, x), lambda v: close(v.result.top_probs, ref["lens"][x])),
        "patching": lambda x: (lw.PatchingView(gpt, CLEAN, CORRUPT, answers=("mary", "john"),
                                               background=rng.random() < 0.7),
                               lambda v: close(v.result.scores, ref["patching"])),
    }
    gc.collect()
    start_rss, t0 = rss_mb(), time.perf_counter()
    for _ in range(args.iterations):
        op = rng.choice(list(ops))
        x = rng.choice(TEXTS)
        try:
            if rng.random() < 0.1:  # bad input on purpose
                rng.choice([lambda: lw.NeuronView(gpt, x, selected_layer=99), lambda: lw.AttentionView(clf, ""),
                            lambda: lw.AttributionView(clf, x, methd="ig"),
                            lambda: lw.PatchingView(gpt, CLEAN, "short", answers=("mary", "john"))])()
                continue
            view, check = ops[op](x)
            for name in [n for n in view.trait_names() if n.startswith("selected_")][:2]:
                try:
                    setattr(view, name, rng.choice([-1, 0, 1, 2, 99, True]))
                except (t.TraitError, TypeError, lw.LLMWidgetsError) as e:
                    errors[type(e).__name__] += 1
            pending.append((view, check))
            if len(pending) > 3 or rng.random() < 0.3:  # let a few overlap, then check them
                for v, c in pending:
                    verify(v, c)
                pending = []
        except (lw.LLMWidgetsError, TypeError, t.TraitError) as e:
            errors[type(e).__name__] += 1
        except Exception as e:  # noqa: BLE001
            unexpected[f"{type(e).__name__}: {str(e)[:80]}"] += 1
    for v, c in pending:
        verify(v, c)
    gc.collect()
    end_rss = rss_mb()
    print(f"soak: {args.iterations} iterations in {time.perf_counter() - t0:.1f} s on two models")
    print(f"wrong results: {wrong} (must be 0)")
    print(f"expected errors (bad input on purpose): {dict(errors)}")
    print(f"unexpected errors: {dict(unexpected) or 0}")
    print(f"RSS: {start_rss:.0f} MB -> {end_rss:.0f} MB ({end_rss - start_rss:+.0f} MB)")
    if wrong or unexpected:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
