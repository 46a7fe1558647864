"""The attribution methods: one record each (key, label, signed, needs gradients, default sample
count, run), which `attribute`, the view's method menu and the docs read.

Each `run(ctx)` returns (scores [K, T] float32 numpy, notice); `ctx.samples`/`ctx.steps` record what
it used. Perturbation methods score the perturbable tokens `ctx.run.feats` and are spread over [K, T]
by `on_tokens`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ...errors import LLMWidgetsError
from ..direct_logit import _tolerance
from ..faithfulness import completeness
from ..gradcam import attention_gradcam, layer_gradcam
from ..lrp import attn_lrp_rules
from ..shap_values import MAX_EXACT_WORDS, exact_shap, partition_shap
from .ig_path import adaptive_ig, float32_path
from .runner import Runner, chunks

MAX_RELATIVE_DELTA = 0.05  # IG steps are doubled until |delta| / |f(x) - f(x')| is below this
IG_RULES = ("uniform", "adaptive")  # where IG puts its points: Gauss-Legendre steps, or where f changes
ADAPTIVE_TOLERANCE = 0.01  # adaptive IG refines until the panels' |delta|s sum to under this share


@dataclass
class Context:
    """What a method may use: the runner (f, x, baseline, perturbable tokens), f(x) and f(baseline)
    [K], the words, the user's arguments, and where to record the steps / samples it used."""

    run: Runner
    fx: np.ndarray
    fbase: np.ndarray
    session: object
    text: str
    n_tokens: int
    groups: list[int]  # word index of every token
    n_words: int
    target: object = None
    contrast: object = None
    steps: int = 50
    max_steps: int = 400
    n_samples: int | None = None
    seed: int = 0
    layer: int | None = None
    ig_rule: str = "uniform"
    used_steps: int = 0
    used_samples: int = 0

    def on_tokens(self, per_feature: np.ndarray) -> np.ndarray:
        out = np.zeros((per_feature.shape[0], self.n_tokens), np.float32)
        out[:, self.run.feats] = per_feature
        return out

    def samples(self, default: int) -> int:
        self.used_samples = self.n_samples or default
        return self.used_samples


@dataclass(frozen=True)
class Method:
    key: str
    label: str
    signed: bool  # scores can be negative (coloured red/blue) or not
    gradients: bool  # takes backward passes (batch sizes are smaller)
    default_samples: int | None  # samples / permutations / evaluations when n_samples is not given
    run: Callable[[Context], tuple[np.ndarray, str]]


def gauss_legendre(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """IG interpolation points in [0, 1] and their weights (captum's 'gausslegendre')."""
    x, w = np.polynomial.legendre.leggauss(steps)
    return 0.5 * (1 + x), 0.5 * w


def _ig(run: Runner, steps: int) -> torch.Tensor:
    alphas, weights = gauss_legendre(steps)
    x, base = run.x.float(), run.base.float()
    diff = x - base
    acc = torch.zeros((run.f.num_targets,) + tuple(x.shape[1:]), dtype=torch.float32, device=x.device)
    for sl in chunks(steps, run.batch):
        a = torch.as_tensor(alphas[sl], dtype=torch.float32, device=x.device)[:, None, None]
        w = torch.as_tensor(weights[sl], dtype=torch.float32, device=x.device)[None, :, None, None]
        g = run.grads(base + a * diff)  # run.f casts to the dtype it computes in
        acc += (g * w).sum(dim=1)
        run.report(sl.stop / steps, f"integrated gradients: {sl.stop}/{steps} steps")
    return (diff[0] * acc).sum(-1)


def _grad_methods(run: Runner, method: str) -> torch.Tensor:
    g = run.grads(run.x)[:, 0]  # [K, T, D]
    if method == "saliency":
        return g.abs().sum(-1)
    return (g * run.x.float()[0]).sum(-1)


def _occlusion(run: Runner, fx: np.ndarray) -> np.ndarray:
    n = len(run.feats)
    masks = ~np.eye(n, dtype=bool)
    out = run.eval_masks(masks, "occlusion")
    return (fx[None, :] - out).T  # [K, n]


def _shapley(run: Runner, n_samples: int, seed: int) -> np.ndarray:
    n = len(run.feats)
    rng = np.random.default_rng(seed)
    perms = np.stack([rng.permutation(n) for _ in range(n_samples)])  # [S, n]
    masks = np.zeros((n_samples, n + 1, n), dtype=bool)
    for s in range(n_samples):
        for j in range(n):
            masks[s, j + 1:, perms[s, j]] = True
    vals = run.eval_masks(masks.reshape(-1, n), "Shapley sampling").reshape(n_samples, n + 1, -1)
    marg = np.diff(vals, axis=1)  # [S, n, K]: gain from adding perms[s, j]
    attr = np.zeros((vals.shape[-1], n), dtype=np.float64)
    for s in range(n_samples):
        attr[:, perms[s]] += marg[s].T
    return (attr / n_samples).astype(np.float32)


def _lime(run: Runner, n_samples: int, seed: int) -> np.ndarray:
    from captum._utils.models.linear_model import SkLearnRidge
    from captum.attr import Lime

    n = len(run.feats)
    k = run.f.num_targets

    def forward(mask):  # [B, n] float in {0, 1}
        return torch.as_tensor(run.eval_masks(mask.detach().cpu().numpy() > 0.5))  # no per-call progress

    out = np.zeros((k, n), dtype=np.float32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for j in range(k):
            lime = Lime(forward, interpretable_model=SkLearnRidge(alpha=1e-3))
            a = lime.attribute(torch.ones((1, n)), baselines=0.0, target=j, n_samples=n_samples,
                               perturbations_per_eval=run.batch)
            out[j] = a[0].detach().float().numpy()
            run.report((j + 1) / k, f"LIME: target {j + 1}/{k}")
    return out


def _permutation(run: Runner, fx: np.ndarray, n_samples: int, seed: int) -> np.ndarray:
    n = len(run.feats)
    if n < 2:
        return np.zeros((run.f.num_targets, n), np.float32)
    rng = np.random.default_rng(seed)
    r = min(n_samples, n - 1)
    feats = torch.as_tensor(run.feats, device=run.x.device)
    src = []
    for i in range(n):
        others = np.delete(np.arange(n), i)
        src.append(rng.choice(others, size=r, replace=False))
    src = np.stack(src)  # [n, r] donor feature per (feature, sample)
    E = run.x.expand(n * r, -1, -1).clone()
    rows = torch.arange(n * r, device=E.device)
    tgt_pos = feats.repeat_interleave(r)
    E[rows, tgt_pos] = run.x[0, feats[torch.as_tensor(src.reshape(-1), device=E.device)]]
    out = run.eval_embeds(E, "permutation importance").reshape(n, r, -1)
    return (fx[None, :] - out.mean(axis=1)).T  # [K, n]


def _run_uniform_ig(c: Context) -> tuple[np.ndarray, str]:
    """Gauss-Legendre steps, doubled up to max_steps while the completeness delta exceeds 5%."""
    steps, notice = c.steps, ""
    while True:
        s = _ig(c.run, steps).cpu().numpy()
        delta, rel = completeness(s, c.fx, c.fbase)
        rel = np.where(np.abs(delta) <= _resolution(c), 0.0, np.nan_to_num(rel, nan=0.0)).max()
        if rel <= MAX_RELATIVE_DELTA or steps >= c.max_steps:
            break
        steps = min(c.max_steps, steps * 2)
    if steps != c.steps:
        notice = f"IG steps raised from {c.steps} to {steps} to bring the completeness delta under 5%."
    if rel > MAX_RELATIVE_DELTA:
        notice = (f"IG completeness delta is still {rel:.0%} of f(x) \u2212 f(baseline) at {steps} "
                  "steps: read these scores with care (try ig_rule='adaptive', or another baseline).")
    c.used_steps = steps
    return s, notice


def _run_adaptive_ig(c: Context) -> tuple[np.ndarray, str]:
    """Points placed where f changes along the path (ig_path.adaptive_ig), refined to 1%."""
    p = adaptive_ig(c.run, steps=c.steps, max_steps=max(c.steps, c.max_steps), tolerance=ADAPTIVE_TOLERANCE)
    c.used_steps = p.grad_evals
    head = (f"Adaptive IG: {p.grad_evals} gradient evaluations placed where f changes along the path "
            f"({p.forward_evals} forward evaluations to place and check them)")
    if p.converged:
        return p.scores, head + f"; panel deltas sum to {p.panel_error.max():.2%} of f(x) \u2212 f(baseline)."
    return p.scores, (head + f"; the panel deltas still sum to {p.panel_error.max():.0%} of f(x) \u2212 "
                      f"f(baseline) after the budget of max_steps={c.max_steps}: raise max_steps, or read "
                      "these scores with care.")


def _resolution(c: Context) -> np.ndarray:
    """[K] how far f(x) - f(baseline) is resolved by the model's dtype (the check tolerance of
    direct_logit, relative to |f(x)| + |f(baseline)|): 16-bit models round f that coarsely."""
    return _tolerance(c.run.x.dtype) * (np.abs(c.fx) + np.abs(c.fbase))


def _run_ig(c: Context):
    dtype = str(c.run.x.dtype).replace("torch.", "")  # the model's (run.x is never cast)
    with float32_path(c.run) as used:
        s, notice = (_run_adaptive_ig if c.ig_rule == "adaptive" else _run_uniform_ig)(c)
    notes = [notice] if notice else []
    if used != dtype:
        notes.append(f"The path was computed in {used} (the model is {dtype}).")
    elif dtype in ("bfloat16", "float16"):
        notes.append(f"The path was computed in {dtype}: a float32 copy of the model's weights does not fit "
                     "in memory here (or its weights are not on this machine).")
    delta, _ = completeness(s, c.fx, c.fbase)
    res = _resolution(c)
    if dtype in ("bfloat16", "float16") and (np.abs(delta) <= res).any():
        k = int(np.argmax(np.abs(delta) <= res))
        notes.append(f"The completeness delta ({delta[k]:.3g}) is within the {dtype} resolution of "
                     f"f(x) \u2212 f(baseline) (\u00b1{res[k]:.3g}): the model's dtype does not resolve a "
                     "smaller gap; load it with dtype='float32' to check further.")
    return s, " ".join(notes)


def _run_gradcam(c: Context):
    layer = 0 if c.layer is None else c.layer
    scores = layer_gradcam(c.run.f, c.run.x, layer).cpu().numpy()
    notice = f"Grad-CAM at the output of block {layer}."
    if np.abs(scores).max() < 1e-3 * max(1.0, float(np.abs(c.fx).max())):
        notice += (" It is ~0 here: a LayerNorm after this block makes its gradient mean-free over the "
                   "features, so mean gradient x summed activation vanishes. Try attention_gradcam or lrp.")
    return scores, notice


def _run_lrp(c: Context):
    run = c.run
    with attn_lrp_rules(c.session.model):
        g = run.grads(run.x)[:, 0]  # [K, T, D] relevance per unit of input
    scores = (g * run.x.float()[0]).sum(-1).cpu().numpy()
    total = scores.sum(-1)
    gap = np.abs(total - c.fx) / np.maximum(np.abs(c.fx), 1e-6)
    return scores, ("AttnLRP conservation: input relevance sums to "
                    + ", ".join(f"{a:.3g} of {b:.3g}" for a, b in zip(total, c.fx))
                    + f" ({gap.max():.1%} apart; biases and the epsilon absorb the rest).")


def _run_shap(c: Context):
    if c.n_words <= MAX_EXACT_WORDS:
        return (c.on_tokens(exact_shap(c.run, c.groups)),
                "Exact Shapley values over words (every coalition evaluated).")
    s = c.session
    if s.class_labels is None or callable(c.target) or c.contrast is not None:
        raise LLMWidgetsError(f"SHAP on more than {MAX_EXACT_WORDS} words uses the shap library's Partition "
                              "explainer, which explains class logits of a classifier here; for this target "
                              "use method='shapley' (sampling).")
    scores, _ = partition_shap(s, c.text, list(c.run.f.ids), c.samples(500), c.seed, c.run.report)
    if scores.shape[1] != c.n_tokens:
        raise LLMWidgetsError("The shap text masker split the text into other tokens than the model's "
                              f"({scores.shape[1]} vs {c.n_tokens}); use method='shapley'.")
    return scores, "SHAP values from the shap library's Partition explainer (masking with the mask token)."


_METHODS = [
    Method("ig", "integrated gradients", True, True, None, _run_ig),
    Method("grad_x_input", "gradient \u00d7 input", True, True, None,
           lambda c: (_grad_methods(c.run, "grad_x_input").cpu().numpy(), "")),
    Method("saliency", "saliency |gradient|", False, True, None,
           lambda c: (_grad_methods(c.run, "saliency").cpu().numpy(), "")),
    Method("occlusion", "occlusion (feature ablation)", True, False, None,
           lambda c: (c.on_tokens(_occlusion(c.run, c.fx)), "")),
    Method("shapley", "Shapley value sampling", True, False, 25,
           lambda c: (c.on_tokens(_shapley(c.run, c.samples(25), c.seed)), "")),
    Method("lime", "LIME", True, False, 200, lambda c: (c.on_tokens(_lime(c.run, c.samples(200), c.seed)), "")),
    Method("permutation", "permutation importance", True, False, 8,
           lambda c: (c.on_tokens(_permutation(c.run, c.fx, c.samples(8), c.seed)), "")),
    Method("shap", "SHAP (exact over words; shap Partition when long)", True, False, 500, _run_shap),
    Method("gradcam", "layer Grad-CAM", True, True, None, _run_gradcam),
    Method("attention_gradcam", "attention Grad-CAM (Chefer et al.)", False, True, None,
           lambda c: (attention_gradcam(c.run.f, c.run.x).cpu().numpy(), "")),
    Method("lrp", "AttnLRP (layer-wise relevance)", True, True, None, _run_lrp),
]
REGISTRY = {m.key: m for m in _METHODS}
METHODS = {m.key: m.label for m in _METHODS}  # key -> label (the view's menu)
ALIASES = {"integrated_gradients": "ig", "gradient_x_input": "grad_x_input", "gxi": "grad_x_input",
           "input_x_gradient": "grad_x_input", "feature_ablation": "occlusion", "ablation": "occlusion",
           "shapley_sampling": "shapley", "gradient": "saliency", "grad_cam": "gradcam",
           "layer_gradcam": "gradcam", "chefer": "attention_gradcam", "attnlrp": "lrp", "attn_lrp": "lrp",
           "kernel_shap": "shap", "partition_shap": "shap"}


def method_of(name) -> Method:
    key = ALIASES.get(name, name) if isinstance(name, str) else name
    if key not in REGISTRY:
        raise LLMWidgetsError(f"Unknown method {name!r}; use one of {sorted(REGISTRY)}.")
    return REGISTRY[key]
