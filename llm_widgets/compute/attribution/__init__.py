"""Token attribution: which input tokens drive an output. Classifiers, causal LMs, custom targets.

Everything works on the word-embedding layer. A target is a function f(E) of the prompt's word
embeddings E [B, T, D] returning K scalars per example ([B, K]): a class logit, the log-prob of each
generated token (teacher-forced: ONE forward over prompt + generated tokens serves all K targets,
thanks to causal masking), a contrast "A rather than B" (difference), or a user callable.

Methods (one `method=` argument, one result type):
- 'ig'            integrated gradients from a baseline (Gauss-Legendre steps, like captum's default)
- 'grad_x_input'  gradient . embedding
- 'saliency'      sum |gradient| over the embedding (unsigned)
- 'occlusion'     f(x) - f(x with token i replaced by the baseline)  (feature ablation)
- 'shapley'       Shapley value sampling over random token orders (sums to f(x) - f(baseline))
- 'lime'          captum Lime over token presence masks
- 'permutation'   f(x) - mean f(x with token i replaced by the prompt's other tokens)
- 'shap'          exact Shapley values over words (<= 12 words), else shap's Partition explainer
- 'gradcam'       layer Grad-CAM (captum's LayerGradCam) at one block's output
- 'attention_gradcam'  gradient-weighted attention rollout (Chefer et al. 2021)
- 'lrp'           AttnLRP (Achtibat et al. 2024), relevance conservation reported
(one record per method in methods.py: key, label, signed, needs gradients, default samples, run)

Special tokens ([CLS], [SEP], <s>) are never perturbed: they keep their embedding in the baseline
and get score 0. Every perturbation replaces a token's embedding by the baseline's (the pad/unk
token's embedding, or zeros) at the same position, so the length never changes. Outputs are
accumulated in float32 whatever the model dtype.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ...checks import integer
from ...errors import EmptyInputError, LLMWidgetsError, NonFiniteError
from ...execution import executor_of
from ..budget import oom_guard
from ..faithfulness import faithfulness
from .methods import ALIASES, IG_RULES, MAX_RELATIVE_DELTA, METHODS, REGISTRY, Context, Method, method_of
from .objective import Objective, build_objective, greedy_generate
from .program_objective import build_program_objective
from .requirements import check_method
from .result import AttributionResult
from .runner import BASELINES, Runner, auto_batch_size, baseline_embeddings, check_finite

__all__ = ["ALIASES", "BASELINES", "MAX_RELATIVE_DELTA", "METHODS", "REGISTRY", "AttributionResult", "Method",
           "Objective", "Runner", "attribute", "auto_batch_size", "baseline_embeddings", "build_objective",
           "greedy_generate", "groups_of_feats"]


def _n_words(groups: list[int], special: np.ndarray) -> int:
    return len({g for g, sp in zip(groups, special) if not sp})


def groups_of_feats(session, trace, special) -> list[int]:
    """Word index of every token (special tokens are their own words)."""
    return _groups(session, trace.raw_tokens, trace.word_ids, special)[0]


def _groups(session, tokens: list[str], word_ids: list, special: np.ndarray) -> tuple[list[int], list[str]]:
    groups, members, last = [], [], None
    for i, w in enumerate(word_ids if len(word_ids) == len(tokens) else [None] * len(tokens)):
        if w is None or special[i] or w != last or not members:
            members.append([i])
        else:
            members[-1].append(i)
        last = None if special[i] else w
        groups.append(len(members) - 1)
    labels = []
    for m in members:
        try:
            s = session.tokenizer.convert_tokens_to_string([tokens[i] for i in m])
        except Exception:
            s = "".join(tokens[i] for i in m)
        labels.append((s or tokens[m[0]]).replace("\n", "\u21b5").replace("\t", "\u21e5"))
    return groups, labels


def _check_reads(f, m: Method) -> None:
    """Refuse the methods that read one sequence's activations at one output position where the
    target reads several positions (a multi-token answer) or several sequences (two answers that
    differ after their first token)."""
    if m.key in ("gradcam", "attention_gradcam") and f.copies > 1:
        raise LLMWidgetsError(f"{m.label} reads the activations of one sequence, and this contrast runs "
                              f"{f.copies} (each answer teacher-forced after the prompt). Use another method "
                              "(ig, grad_x_input, occlusion, ...) or answers of one token each.")
    if m.key == "attention_gradcam" and f.multi_position:
        raise LLMWidgetsError("attention Grad-CAM follows the attention from the one position the output is "
                              "read at; a multi-token answer is read at several. Use another method, or "
                              "pass the answer's tokens as a list (one output per token).")


def attribute(session, text: str, target: Any = None, *, method: str = "ig", contrast: Any = None,
              generate: int | None = None, baseline: Any = "auto", output: str | None = None,
              steps: int = 50, max_steps: int = 400, n_samples: int | None = None, seed: int = 0,
              internal_batch_size: int | None = None, truncate: bool = False,
              compute_faithfulness: bool = True, layer: int | None = None, ig_rule: str = "uniform",
              report: Callable[[float, str], None] | None = None) -> AttributionResult:
    """Attribute a model output to the tokens of `text`.

    target: for a classifier, a class name or index (or a list of them; default: the predicted
      class); for a causal LM, a text: ONE output, the sum of its tokens' log-probs as the
      continuation, teacher-forced (target=" New York": log p(" New" | text) + log p(" York" |
      text + " New")), a token id, or a list of tokens / ids: one output per token, read along the
      continuation they form (a [k x T] matrix); or None with `generate=k` to greedily generate k
      tokens and attribute the log-prob of each; for any model, a callable taking the model output
      and returning a tensor [batch] or [batch, K]. contrast: a second class, or for a causal LM a
      second answer (a text of any number of tokens, or a token id): explain "target rather than
      contrast" (difference of logits / log-probs; of two multi-token answers, the difference of
      their teacher-forced sums, each answer run after the prompt in its own sequence where they
      differ after their first token). Layer and attention Grad-CAM refuse targets that read several
      sequences, and attention Grad-CAM targets that read several positions.
    method: one of METHODS (aliases accepted). baseline: 'auto' (pad, else unk, else zero), 'pad',
      'unk', 'mask', 'zero' or a token id
      (special tokens always keep their embedding). output (classifiers): 'logit' (default), 'prob',
      'log_prob'. steps: IG steps (doubled up to max_steps while the relative completeness delta
      exceeds 5%). ig_rule: where IG puts its points: 'uniform' (Gauss-Legendre steps, the rule above)
      or 'adaptive' (a forward sweep places them where f changes along the path, then the panels
      that do not add up are split until they do to 1%, within max_steps gradient evaluations;
      `steps` is then the first allocation, and the result's steps the gradient evaluations used;
      see ig_path). A 16-bit model's path is computed in float32 where that fits. n_samples:
      permutations (shapley, default 25), perturbations (lime, 200), or donors per token
      (permutation, 8), the shap Partition explainer's evaluations (shap on more than 12 words,
      500). layer: the block whose output layer Grad-CAM reads (default: the first;
      at the last block a classifier reads one position, so only that token has a gradient).
      method='lrp' explains the logit (AttnLRP conserves relevance of logits, not log-probs).
      report(fraction, label): progress callback. internal_batch_size: sequences per forward pass
      (IG steps, perturbed copies; each runs as two sequences with a contrast of two multi-token
      answers that differ after their first token); by default as many as the memory budget allows
      (llm_widgets.compute.budget). Running out of memory raises OutOfMemoryError saying what to lower.
    """
    m = method_of(method)
    if ig_rule not in IG_RULES:
        raise LLMWidgetsError(f"Unknown ig_rule {ig_rule!r}; use one of {IG_RULES}.")
    steps, max_steps = integer(steps, "steps", low=1), integer(max_steps, "max_steps", low=1)
    seed = integer(seed, "seed", low=0)
    n_samples = integer(n_samples, "n_samples", low=1, allow_none=True)
    internal_batch_size = integer(internal_batch_size, "internal_batch_size", low=1, allow_none=True)
    if generate is not None:
        generate = integer(generate, "generate", low=1)
    trace = session.trace(text, truncate=truncate)
    enc, _, _ = session.encode(text, truncate=truncate)
    special = np.asarray(trace.special_mask if trace.special_mask is not None
                         else np.zeros(trace.n_tokens, bool), dtype=bool)
    feats = np.flatnonzero(~special)
    if feats.size == 0:
        raise EmptyInputError("The text has only special tokens: nothing to attribute.")
    report = report or (lambda frac, label="": None)
    check_method(session, m, n_tokens=trace.n_tokens, n_targets=max(1, generate or 1), steps=steps,
                 n_samples=n_samples, n_words=_n_words(groups_of_feats(session, trace, special), special))
    report(0.0, "preparing")
    if m.key == "lrp" and session.kind == "decoder" and output is None:
        output = "logit"
    # f(E) with torch hooks where the executor has them (also what Grad-CAM and AttnLRP need), else as Programs
    build = build_objective if executor_of(session).has("module_hooks") else build_program_objective
    f = build(session, enc, target, contrast=contrast, generate=generate, output=output)
    if layer is not None:
        layer = session.adapter.check_layer(layer)
    base, base_desc = baseline_embeddings(f, special, baseline)
    T = enc["input_ids"].shape[1] + (0 if f.suffix is None else f.suffix.shape[1])
    _check_reads(f, m)
    # sequences per forward: each input runs as f.copies sequences (multi-token answers that differ)
    batch = internal_batch_size or max(1, auto_batch_size(session, T, f.num_targets, m.gradients) // f.copies)
    run = getattr(f, "runner", Runner)(f, base, feats, batch, None)  # a ProgramObjective brings its own
    guard = lambda: oom_guard(session, f"{m.label} attribution", "internal_batch_size", batch, T)  # noqa: E731
    with guard(), torch.no_grad():
        ends = f(torch.cat([f.x, base]))
    check_finite(ends, "target outputs")
    fx, fbase = ends[0].cpu().numpy(), ends[1].cpu().numpy()
    work_share = 0.8 if compute_faithfulness else 1.0
    run.report = lambda frac, label="": report(work_share * frac, label)
    groups = groups_of_feats(session, trace, special)
    ctx = Context(run=run, fx=fx, fbase=fbase, session=session, text=text, n_tokens=trace.n_tokens,
                  groups=groups, n_words=_n_words(groups, special), target=target, contrast=contrast,
                  steps=steps, max_steps=max_steps, n_samples=n_samples, seed=seed, layer=layer,
                  ig_rule=ig_rule)
    with guard():
        scores, notice = m.run(ctx)
    method, used_steps, samples = m.key, ctx.used_steps, ctx.used_samples
    scores = np.asarray(scores, np.float32)
    scores[:, special] = 0.0
    if not np.isfinite(scores).all():
        raise NonFiniteError("The attribution produced non-finite values; with float16 weights load "
                             "the model with dtype='float32'.")
    faith = None
    if compute_faithfulness:
        run.report = lambda frac, label="": report(work_share + (1 - work_share) * frac, "faithfulness")
        with guard():
            faith = faithfulness(lambda mk: run.eval_masks(mk, "faithfulness"), scores[:, feats], fx, fbase,
                                 seed=seed)
    report(1.0, "done")
    groups, words = _groups(session, trace.raw_tokens, trace.word_ids, special)
    return AttributionResult(
        raw_tokens=list(trace.raw_tokens), tokens=list(trace.tokens), scores=scores, targets=list(f.names),
        target_ids=[int(i) for i in f.ids], method=method, baseline=base_desc, output=f.output,
        steps=used_steps, n_samples=samples, faithfulness=faith, special_mask=special, groups=groups,
        words=words, generated=session.kind == "decoder" and not callable(target)
        and target is None and contrast is None, contrast=f.contrast,
        notice=" ".join(x for x in (trace.notice, notice) if x), input_ids=np.asarray(trace.input_ids),
        output_values=np.asarray(fx, np.float32), base_values=np.asarray(fbase, np.float32))
