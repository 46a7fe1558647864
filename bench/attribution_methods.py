"""AttnLRP against integrated gradients (cost), and our exact Shapley values against the `shap`
library's Exact explainer on the same coalition game (speed and agreement), in one run.

AttnLRP needs one forward and one backward pass; IG needs `steps` of each. Exact SHAP: both sides
evaluate the same value function v(S) (words left out replaced by the baseline embedding); ours
batches all 2^n coalitions, shap's Exact explainer asks for them through its masker.

    python bench/attribution_methods.py [--repeat 5] [--steps 50]
"""
import argparse
import os

import numpy as np
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
from common import record, timed  # noqa: E402  (bench/common.py)

SHORT = ["the film was terrible and the acting was slow", "a wonderful story with a great cast and music",
         "the plot was dull but the ending was fine", "what a lovely film this was"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--no-record", action="store_true", help="do not append to bench/out/results.jsonl")
    args = ap.parse_args()
    torch.set_num_threads(2)
    import shap

    import llm_widgets as lw
    from llm_widgets.compute import attribution as A
    from llm_widgets.compute.shap_values import exact_shap, word_features
    from llm_widgets.testing import build

    clf = lw.teaching.keyword_classifier()
    llama = lw.load((build("llama"), lw.load().tokenizer), device="cpu")
    print("AttnLRP vs integrated gradients (same input, same target, median of", args.repeat, "runs)")
    print(f"{'model':<22}{'T':>4}{'AttnLRP s':>12}{'IG s (batched)':>16}{'ratio':>8}{'IG s (1 per pass)':>19}{'ratio':>8}")
    for name, s, text, kw in [("keyword classifier", clf, SHORT[0], {"target": "NEGATIVE"}),
                              ("llama (tiny, random)", llama, " ".join([SHORT[1]] * 6), {"generate": 1})]:
        _, t_lrp = timed(lambda: A.attribute(s, text, method="lrp", compute_faithfulness=False, **kw),
                               args.repeat)
        _, t_ig = timed(lambda: A.attribute(s, text, method="ig", steps=args.steps, max_steps=args.steps,
                                                  compute_faithfulness=False, **kw), args.repeat)
        _, t_ig1 = timed(lambda: A.attribute(s, text, method="ig", steps=args.steps, max_steps=args.steps,
                                                   internal_batch_size=1, compute_faithfulness=False, **kw),
                               args.repeat)
        n = len(s.encode(text)[0]["input_ids"][0])
        print(f"{name:<22}{n:>4}{t_lrp:>12.3f}{t_ig:>16.3f}{t_ig / t_lrp:>7.1f}x{t_ig1:>19.3f}{t_ig1 / t_lrp:>7.1f}x")
    print(f"(AttnLRP: 1 forward + 1 backward; IG: {args.steps} of each, batched or one at a time)")

    print("\nExact SHAP over words: ours (all coalitions batched) vs shap.explainers.Exact, same game")
    print(f"{'words':>6}{'ours s':>10}{'shap s':>10}{'shap / ours':>13}{'max |diff|':>12}")
    for text in SHORT:
        trace = clf.trace(text)
        enc = clf.encode(text)[0]
        special = np.asarray(trace.special_mask, bool)
        feats = np.flatnonzero(~special)
        f = A.build_objective(clf, enc, "NEGATIVE")
        base, _ = A.baseline_embeddings(f, special, "auto")
        run = A.Runner(f, base, feats, 64, None)
        groups = A.groups_of_feats(clf, trace, special)
        words = word_features(groups, feats)
        ours, t_ours = timed(lambda: exact_shap(run, groups), args.repeat)

        def game(X):  # rows of word presence (1) / absence (0) -> v(S)
            masks = np.zeros((len(X), len(feats)), bool)
            for w, pos in enumerate(words):
                masks[:, pos] = X[:, w:w + 1] > 0.5
            return run.eval_masks(masks)[:, 0]

        n = len(words)
        explainer = shap.explainers.Exact(game, shap.maskers.Independent(np.zeros((1, n)), max_samples=1))
        theirs, t_shap = timed(lambda: explainer(np.ones((1, n))).values[0], args.repeat)
        per_word = np.array([ours[0, pos].sum() for pos in words])
        print(f"{n:>6}{t_ours:>10.3f}{t_shap:>10.3f}{t_shap / t_ours:>12.1f}x{np.abs(per_word - theirs).max():>12.2e}")
        if not args.no_record:
            record(f"exact SHAP, keyword classifier, text {SHORT.index(text) + 1} ({n} words)", "shap Exact explainer, same game", t_ours, t_shap,
                   f"max |d| {np.abs(per_word - theirs).max():.1e}")


if __name__ == "__main__":
    main()
