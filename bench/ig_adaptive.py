"""Adaptive integrated gradients (ig_rule='adaptive') against captum's LayerIntegratedGradients at
equal gradient evaluations, on models where uniform steps miss where the output flips.

Models: the saturated keyword classifier (llm_widgets.teaching.classifier.saturated_keyword_classifier,
seed 0; class logit of the true label) on held-out sentences whose keyword moves the output
(|f(x) - f([PAD])| > 0.5), and a tiny random Llama with weights at std 0.4 (log-prob of its greedy
next token). For every input: ours (adaptive, at most 400 gradient evaluations; G = the number it
used) vs captum LayerIntegratedGradients at the embedding layer with n_steps=G (its default
Gauss-Legendre rule, the same baseline: [PAD] at every non-special position) and with n_steps=400.
Each input's three runs are timed in turn, `--repeat` times (median). Prints, per model, the
median relative completeness delta |sum(scores) - (f(x) - f(x'))| /
|f(x) - f(x')| of each, how many inputs each gets within 5%, and median wall time (ratio = captum /
ours).

Run: .venv/bin/python bench/ig_adaptive.py [--sentences 12] [--repeat 3]
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
import torch  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import interleaved, machine_line, record  # noqa: E402  (bench/common.py)


def captum_ig(model, layer, forward, ids: torch.Tensor, base: torch.Tensor, steps: int) -> tuple[float, float]:
    """(relative completeness delta, seconds) of captum LayerIntegratedGradients."""
    from captum.attr import LayerIntegratedGradients

    t0 = time.perf_counter()
    lig = LayerIntegratedGradients(forward, layer)
    attr, delta = lig.attribute(ids, baselines=base, n_steps=steps, return_convergence_delta=True,
                                internal_batch_size=64)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        span = float(forward(ids) - forward(base))
    return abs(float(delta[0])) / abs(span), seconds


def ours(session, text: str, target) -> tuple[float, float, int]:
    from llm_widgets.compute.attribution import attribute

    t0 = time.perf_counter()
    r = attribute(session, text, target=target, ig_rule="adaptive", compute_faithfulness=False)
    seconds = time.perf_counter() - t0
    span = float(r.output_values[0] - r.base_values[0])
    return abs(float(r.scores.sum()) - span) / abs(span), seconds, r.steps


def pad_baseline(session, text: str) -> tuple[torch.Tensor, torch.Tensor]:
    tok = session.tokenizer
    ids = tok(text, return_tensors="pt")["input_ids"]
    special = torch.tensor(session.trace(text).special_mask)
    return ids, torch.where(special, ids, torch.full_like(ids, tok.pad_token_id))


def classifier_cases(n: int):
    from llm_widgets.compute.attribution import attribute
    from llm_widgets.teaching.classifier import KEYWORD_LABELS, keyword_dataset, saturated_keyword_classifier

    s = saturated_keyword_classifier(0)
    for text, label, _ in zip(*keyword_dataset(n, seed=123)):
        probe = attribute(s, text, target=KEYWORD_LABELS[label], method="occlusion", compute_faithfulness=False)
        if abs(float(probe.output_values[0] - probe.base_values[0])) < 0.5:
            continue

        def forward(input_ids, label=label):
            return s.model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                           token_type_ids=torch.zeros_like(input_ids)).logits[:, label]

        yield s, text, KEYWORD_LABELS[label], s.model.bert.embeddings, forward


def llama_cases():
    import llm_widgets as lw
    from llm_widgets.compute.attribution import attribute
    from llm_widgets.testing.families import build

    tok = lw.load().tokenizer
    model = build("llama", vocab_size=tok.vocab_size, seed=1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.mul_(2.0)
    s = lw.load((model, tok), device="cpu")
    for text in ("that scene this night is great", "a the a dreadful night", "show saw wonderful then"):
        target = attribute(s, text, generate=1, method="occlusion", compute_faithfulness=False).target_ids[0]

        def forward(input_ids, target=target):
            out = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).logits[:, -1]
            return torch.log_softmax(out.float(), -1)[:, target]

        yield s, text, [target], model.model.embed_tokens, forward


def run(name: str, cases, repeat: int) -> None:
    rows = []
    for s, text, target, layer, forward in cases:
        ids, base = pad_baseline(s, text)
        g = ours(s, text, target)[2]  # the gradient evaluations adaptive IG uses here
        res = interleaved({"ours": lambda: ours(s, text, target),
                           "equal": lambda: captum_ig(s.model, layer, forward, ids, base, g),
                           "400": lambda: captum_ig(s.model, layer, forward, ids, base, 400)}, repeat)
        (d_ours, _, _), t_ours = res["ours"]
        (d_eq, _), t_eq = res["equal"]
        (d_400, _), t_400 = res["400"]
        rows.append((d_ours, t_ours, g, d_eq, t_eq, d_400, t_400))
        print(f"  {text[:40]:40s} grads {g:3d}  delta ours {d_ours:7.2%}  captum@{g} {d_eq:8.2%}  "
              f"captum@400 {d_400:8.2%}  time {t_ours:.2f}s / {t_eq:.2f}s / {t_400:.2f}s")
    if not rows:
        print(f"{name}: no inputs")
        return
    col = list(zip(*rows))
    med = [statistics.median(c) for c in col]
    ok = [sum(d <= 0.05 for d in col[i]) for i in (0, 3, 5)]
    print(f"{name}: {len(rows)} inputs; median gradient evaluations {med[2]:.0f}; within 5%: ours {ok[0]}, "
          f"captum at equal evaluations {ok[1]}, captum at 400 steps {ok[2]}; median delta ours {med[0]:.2%}, "
          f"captum {med[3]:.2%} (equal) / {med[5]:.2%} (400); median time ours {med[1]:.2f}s, captum "
          f"{med[4]:.2f}s (equal, ratio {med[4] / med[1]:.2f}) / {med[6]:.2f}s (400, ratio {med[6] / med[1]:.2f})")
    record("ig_adaptive", f"captum LayerIntegratedGradients, equal gradient evaluations ({name})", med[1], med[4],
           f"within 5%: ours {ok[0]}/{len(rows)}, captum {ok[1]}/{len(rows)}; median delta {med[0]:.2%} vs "
           f"{med[3]:.2%}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sentences", type=int, default=12)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(2)
    print(machine_line())
    print("saturated keyword classifier (seed 0), class logit:")
    run("saturated keyword classifier", classifier_cases(args.sentences), args.repeat)
    print("tiny Llama, weights std 0.4, log-prob of the greedy next token:")
    run("tiny Llama std 0.4", llama_cases(), args.repeat)


if __name__ == "__main__":
    main()
