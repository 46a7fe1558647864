"""Surrogates and the word-substitution attack on the keyword classifier, in one run.

    python bench/surrogate.py [--texts 400] [--attack-texts 100] [--repeat 3]

1. Fitting every surrogate of SurrogateView (L1 logistic regression, decision trees, students of 1,
   2 and 4 layers distilled on CPU, nothing cached): seconds to fit each, fidelity on held-out texts,
   size and ms per text; the distillation of each student against training the teacher itself from
   scratch with its own recipe (same texts, gold labels).
2. The audit's attack (words ranked by occlusion attribution, TextFooler-style greedy search) against
   the same search in random word order, same texts, same budget: success rates and queries per
   success; ratio = random / ours (how many times fewer queries ours needs per flipped text).
Prints a table and appends JSON lines to bench/out/results.jsonl (bench/common.py's record()).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import llm_widgets as lw  # noqa: E402
from llm_widgets.compute.audit import Scorer  # noqa: E402
from llm_widgets.compute.audit.attack import run_attack  # noqa: E402
from llm_widgets.compute.surrogate import fit_surrogates  # noqa: E402
from llm_widgets.teaching.classifier import KEYWORD_LABELS, keyword_dataset, train_classifier  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line, record  # noqa: E402  (bench/common.py)


def surrogates(session, n: int, repeat: int) -> None:
    texts, labels, _ = keyword_dataset(n, seed=1)
    t0 = time.perf_counter()
    res = fit_surrogates(session, texts, labels, tree_depths=(2, 5), student_layers=(1, 2, 4), cache=False)
    total = time.perf_counter() - t0
    print(f"\n1. surrogates of {session.name}: {len(res.train_texts)} fitting texts, {len(res.test_texts)} held out; "
          f"all fitted in {total:.1f} s")
    print(f"{'surrogate':24s} {'fit s':>7s} {'fidelity [95% CI]':>22s} {'size':>9s} {'unit':>17s} {'ms/text':>8s}")
    t = res.teacher
    print(f"{'(the model)':24s} {'':>7s} {'1 (itself)':>22s} {t['size']:>9d} {'parameters':>17s} {t['ms_per_text']:8.3f}")
    for s in res.surrogates:
        fit = s.fit_seconds if s.kind != "student" else s.model.train_seconds
        ci = f"{s.fidelity:.3f} [{s.fidelity_ci[0]:.3f}, {s.fidelity_ci[1]:.3f}]"
        print(f"{s.name:24s} {fit:7.3f} {ci:>22s} {s.size:>9d} {s.size_unit:>17s} {s.ms_per_text:8.3f}")
    # the teacher's own training, same texts as the students' (gold labels), nothing cached
    fit_labels = [labels[texts.index(x)] for x in res.train_texts]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        train_classifier(res.train_texts, fit_labels, label_names=list(KEYWORD_LABELS), cache=False)
        times.append(time.perf_counter() - t0)
    teacher_s = statistics.median(times)
    print(f"training the teacher's recipe from scratch on the same {len(res.train_texts)} texts: {teacher_s:.2f} s "
          f"(median of {repeat}, 3 epochs, 2 layers)")
    for s in res.surrogates:
        fit = s.fit_seconds if s.kind != "student" else s.model.train_seconds
        peer = ("training the 2-layer teacher (its recipe, gold labels)" if s.kind == "student"
                else "time only (no peer)")
        record(f"surrogate fit: {s.name}, {len(res.train_texts)} texts", peer, fit,
               teacher_s if s.kind == "student" else None,
               f"fidelity {s.fidelity:.3f} [{s.fidelity_ci[0]:.3f}, {s.fidelity_ci[1]:.3f}], {s.size} {s.size_unit}")


def attack(session, n: int) -> None:
    texts, _, positions = keyword_dataset(n, seed=3)
    t0 = time.perf_counter()
    res = run_attack(Scorer(session), texts, {"max_texts": n})
    dt = time.perf_counter() - t0
    ours, rnd = res.summary
    keyword_first = sum(res.main.ranked[i][0] == positions[i] for i in range(len(texts))) / len(texts)
    print(f"\n2. word-substitution attack on {len(texts)} texts (budget {res.budget['max_words']} words, "
          f"{res.budget['max_queries']} queries), both orders in {dt:.1f} s; keyword ranked first in "
          f"{100 * keyword_first:.0f}% of texts")
    print(f"{'word order':12s} {'flipped':>9s} {'success [95% CI]':>22s} {'words':>6s} {'queries/success':>16s}")
    for r in res.summary:
        ci = f"{r['success_rate']:.3f} [{r['success_rate_lo']:.3f}, {r['success_rate_hi']:.3f}]"
        print(f"{r['order']:12s} {r['successes']:>4d}/{r['texts']:<4d} {ci:>22s} {r['mean_words_changed']:6.2f} "
              f"{r['queries_per_success']:16.1f}")
    ratio = rnd["queries_per_success"] / ours["queries_per_success"]
    print(f"queries per success, random / ours: {ratio:.2f}x; success rate ours {ours['success_rate']:.2f} vs "
          f"random {rnd['success_rate']:.2f}")
    record(f"attack queries per success, keyword classifier, {len(texts)} texts", "same greedy search, random word order",
           ours["queries_per_success"], rnd["queries_per_success"],
           f"success {ours['successes']}/{ours['texts']} vs {rnd['successes']}/{rnd['texts']}", unit="queries",
           note="ours ranks words by occlusion attribution (queries counted)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=400, help="texts for the surrogates (30%% held out)")
    ap.add_argument("--attack-texts", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3, help="teacher trainings timed (median)")
    a = ap.parse_args()
    print(machine_line())
    session = lw.teaching.keyword_classifier()
    surrogates(session, a.texts, a.repeat)
    attack(session, a.attack_texts)


if __name__ == "__main__":
    main()
