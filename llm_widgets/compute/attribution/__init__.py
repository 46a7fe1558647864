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
from ...errors import EmptyInputError, NonFiniteError
from ..budget import oom_guard
from ..faithfulness import faithfulness
from .methods import ALIASES, MAX_RELATIVE_DELTA, METHODS, REGISTRY, Context, Method, method_of
from .objective import Objective, build_objective, greedy_generate
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


def attribute(session, text: str, target: Any = None, *, method: str = "ig", contrast: Any = None,
              generate: int | None = None, baseline: Any = "auto", output: str | None = None,
              steps: int = 50, max_steps: int = 400, n_samples: int | None = None, seed: int = 0,
              internal_batch_size: int | None = None, truncate: bool = False,
              compute_faithfulness: bool = True, layer: int | None = None,
              report: Callable[[float, str], None] | None = None) -> AttributionResult:
    """Attribute a model output to the tokens of `text`.

    target: for a classifier, a class name or index (or a list of them; default: the predicted
      class); for a causal LM, a string / token id(s) to score as the continuation, or None with
      `generate=k` to greedily generate k tokens and attribute the log-prob of each (a [k x T]
      matrix); for any model, a callable taking the model output and returning a tensor [batch] or
      [batch, K]. contrast: a second class / token: explain "target rather than contrast"
      (difference of logits / log-probs).
    method: one of METHODS (aliases accepted). baseline: 'auto' (pad, else unk, else zero), 'pad',
      'unk', 'mask', 'zero' or a token id
      (special tokens always keep their embedding). output (classifiers): 'logit' (default), 'prob',
      'log_prob'. steps: IG steps (doubled up to max_steps while the relative completeness delta
      exceeds 5%). n_samples: permutations (shapley, default 25), perturbations (lime, 200), or
      donors per token (permutation, 8), the shap Partition explainer's evaluations (shap on more
      than 12 words, 500). layer: the block whose output layer Grad-CAM reads (default: the first;
      at the last block a classifier reads one position, so only that token has a gradient).
      method='lrp' explains the logit (AttnLRP conserves relevance of logits, not log-probs).
      report(fraction, label): progress callback. internal_batch_size: sequences per forward pass
      (IG steps, perturbed copies); by default as many as the memory budget allows
      (llm_widgets.compute.budget). Running out of memory raises OutOfMemoryError saying what to lower.
    """
    m = method_of(method)
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
    if getattr(session, "backend", None) is not None:  # the backend: what it can run, and at what cost remotely
        session.backend.check_method(session, m, n_tokens=trace.n_tokens, n_targets=max(1, generate or 1),
                                     steps=steps, n_samples=n_samples,
                                     n_words=_n_words(groups_of_feats(session, trace, special), special))
    report(0.0, "preparing")
    if m.key == "lrp" and session.kind == "decoder" and output is None:
        output = "logit"
    f = build_objective(session, enc, target, contrast=contrast, generate=generate, output=output)
    if layer is not None:
        layer = session.adapter.check_layer(layer)
    base, base_desc = baseline_embeddings(f, special, baseline)
    T = enc["input_ids"].shape[1] + (0 if f.suffix is None else f.suffix.shape[1])
    batch = internal_batch_size or auto_batch_size(session, T, f.num_targets, m.gradients)
    run = getattr(f, "runner", Runner)(f, base, feats, batch, None)  # a backend's Objective brings its own
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
                  steps=steps, max_steps=max_steps, n_samples=n_samples, seed=seed, layer=layer)
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
