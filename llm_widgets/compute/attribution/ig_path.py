"""Integrated gradients with the integration points placed where the output changes.

IG integrates the gradient along the straight path E(a) = x' + a (x - x') from the baseline x' (a=0)
to the input x (a=1). Summed over the tokens, the integrand is dF/da with F(a) = f(E(a)), so the
integral over any stretch [a, b] of the path must equal F(b) - F(a), which forward passes alone
give. On a saturated model F is flat for most of the path and flips in a narrow stretch of a:
uniform (or Gauss-Legendre) steps then put few or no points there and the scores do not add up to
f(x) - f(x').

`adaptive_ig` therefore
1. sweeps F over a uniform grid of a (forward passes only, batched; cheap);
2. cuts [0, 1] into panels of equal mass under the density "half uniform, half |dF|" from the
   sweep, so the stretch where F moves gets most panels and flat stretches still get some (one
   token's integrand can move where the sum does not);
3. integrates each panel with a few Gauss-Legendre points (gradients) and compares the panel's
   integral with F(b) - F(a): that difference is the panel's exact share of the completeness delta;
4. splits the panels with the largest differences in two until the sum of |differences| is under
   the tolerance (relative to f(x) - f(x')) or the gradient budget is spent.

The numbers of gradient and forward evaluations are counted and reported.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from ...guards import model_lock
from ..budget import available_bytes
from .runner import Runner, chunks

SWEEP = 64  # intervals of the forward sweep over a
ORDER = 4  # Gauss-Legendre points per panel
UNIFORM_SHARE = 0.5  # share of the panel density that is uniform over a (the rest follows |dF|)
MIN_WIDTH = 1e-7  # panels are not split below this width of a


@dataclass
class IGPath:
    """The result of `adaptive_ig`: scores and how they were obtained."""

    scores: np.ndarray  # [K, T] float32 attribution of each target to each token
    alphas: np.ndarray  # [N] the gradient points used, in [0, 1]
    weights: np.ndarray  # [N] their quadrature weights (sum to 1)
    grad_evals: int  # gradient evaluations (points on the path), = N
    forward_evals: int  # forward-only evaluations (the sweep, panel ends)
    panel_error: np.ndarray  # [K] sum over panels of |quadrature - (F(b) - F(a))|, relative to |f(x) - f(x')|
    converged: bool  # panel_error <= tolerance for every target
    dtype: str  # the dtype the path was computed in ('float32', 'bfloat16', ...)


def _scale(fx: np.ndarray, fbase: np.ndarray) -> np.ndarray:
    """|f(x) - f(x')| per target, 1 where that is ~0 (then errors are absolute)."""
    d = np.abs(np.asarray(fx, np.float64) - np.asarray(fbase, np.float64))
    return np.where(d > 1e-6, d, 1.0)


def _density_cuts(grid: np.ndarray, F: np.ndarray, n_panels: int, scale: np.ndarray) -> np.ndarray:
    """Panel ends (n_panels + 1, from 0 to 1) that split equal mass of the density
    UNIFORM_SHARE + (1 - UNIFORM_SHARE) |dF| / total variation, piecewise constant on the sweep grid
    (F [S + 1, K], targets weighted by 1 / scale)."""
    moves = (np.abs(np.diff(F, axis=0)) / scale).sum(-1)  # [S]
    tv = moves.sum()
    width = np.diff(grid)
    mass = UNIFORM_SHARE * width + ((1 - UNIFORM_SHARE) * moves / tv if tv > 0 else (1 - UNIFORM_SHARE) * width)
    cum = np.concatenate([[0.0], np.cumsum(mass)])
    cum /= cum[-1]
    cuts = np.interp(np.linspace(0.0, 1.0, n_panels + 1), cum, grid)
    cuts[0], cuts[-1] = 0.0, 1.0
    return np.unique(cuts)


def _nodes(a: float, b: float, order: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.legendre.leggauss(order)
    return a + (b - a) * 0.5 * (1 + x), (b - a) * 0.5 * w


SWEEP_SHARE = 0.1  # of the progress bar: the forward sweep, then the gradients (monotone throughout)


class _Path:
    """F and per-point attributions along E(a) = base + a * diff, batched through a Runner."""

    def __init__(self, run: Runner):
        self.run = run
        self.base = run.base.float()
        self.diff = run.x.float() - self.base
        self.forwards = 0
        self.grads = 0

    def embeds(self, alphas: np.ndarray) -> torch.Tensor:
        a = torch.as_tensor(alphas, dtype=torch.float32, device=self.base.device)[:, None, None]
        return self.base + a * self.diff

    def values(self, alphas: np.ndarray, label: str = "") -> np.ndarray:
        """F at `alphas` [N] -> [N, K] float64 (forward passes only; progress under `label`)."""
        if len(alphas) == 0:
            return np.zeros((0, self.run.f.num_targets))
        self.forwards += len(alphas)
        report = self.run.report
        self.run.report = lambda frac, text="": report(SWEEP_SHARE * frac, text)  # the sweep: the first share
        try:
            return self.run.eval_embeds(self.embeds(np.asarray(alphas)), label).astype(np.float64)
        finally:
            self.run.report = report

    def contributions(self, alphas: np.ndarray, done: int, budget: int) -> np.ndarray:
        """Per-point attributions diff . grad F(E(a)) for `alphas` [N] -> [N, K, T] float64."""
        out = []
        for sl in chunks(len(alphas), self.run.batch):
            g = self.run.grads(self.embeds(alphas[sl]))  # [K, b, T, D]
            out.append((g * self.diff[0]).sum(-1).transpose(0, 1).double().cpu().numpy())
            self.grads += sl.stop - sl.start
            self.run.report(SWEEP_SHARE + (1 - SWEEP_SHARE) * min(1.0, (done + sl.stop) / budget),
                            f"integrated gradients (adaptive): {done + sl.stop} gradient evaluations")
        return np.concatenate(out) if out else np.zeros((0, self.run.f.num_targets, self.diff.shape[1]))


@dataclass
class _Panel:
    a: float
    b: float
    Fa: np.ndarray  # [K]
    Fb: np.ndarray  # [K]
    nodes: np.ndarray
    weights: np.ndarray
    area: np.ndarray  # [K, T] sum of weight x contribution over the panel's nodes

    def error(self, scale: np.ndarray) -> float:
        """|quadrature - (F(b) - F(a))| relative to scale, worst target."""
        return float(np.max(np.abs(self.area.sum(-1) - (self.Fb - self.Fa)) / scale))


def _integrate(path: _Path, spans: list[tuple[float, float, np.ndarray, np.ndarray]], order: int,
               budget: int) -> list[_Panel]:
    """Gauss-Legendre panels over the spans (a, b, F(a), F(b)), all their gradients in one batch."""
    nodes = [_nodes(a, b, order) for a, b, _, _ in spans]
    alphas = np.concatenate([n for n, _ in nodes]) if nodes else np.zeros(0)
    contrib = path.contributions(alphas, path.grads, budget)
    panels = []
    for i, ((a, b, Fa, Fb), (x, w)) in enumerate(zip(spans, nodes)):
        c = contrib[i * order:(i + 1) * order]  # [order, K, T]
        panels.append(_Panel(a, b, Fa, Fb, x, w, np.einsum("n,nkt->kt", w, c)))
    return panels


def adaptive_ig(run: Runner, *, steps: int, max_steps: int, tolerance: float, sweep: int = SWEEP,
                order: int = ORDER) -> IGPath:
    """Integrated gradients of run.f from run.base to run.x with points placed where F changes.

    `steps` gradient evaluations go into the first panels (placed by a forward sweep of `sweep`
    intervals); panels are then split, worst first, until the sum over panels of |quadrature -
    (F(b) - F(a))| is at most `tolerance` x |f(x) - f(x')| for every target, or `max_steps`
    gradient evaluations are spent. F(0) = f(x') and F(1) = f(x) are part of the sweep, computed
    the way the path is (in float32 inside `float32_path`)."""
    order = max(1, min(order, steps, max_steps))
    path = _Path(run)
    budget = max(steps, max_steps)
    grid = np.linspace(0.0, 1.0, sweep + 1)
    F = path.values(grid, "integrated gradients (adaptive): forward sweep over the path")
    fbase, fx = F[0], F[-1]
    scale = _scale(fx, fbase)
    cuts = _density_cuts(grid, F, max(1, steps // order), scale)
    Fc = np.concatenate([fbase[None], path.values(cuts[1:-1]), fx[None]])
    spans = [(cuts[i], cuts[i + 1], Fc[i], Fc[i + 1]) for i in range(len(cuts) - 1)]
    panels = _integrate(path, spans, order, budget)
    tol = tolerance
    while True:
        errors = np.array([p.error(scale) for p in panels])
        if errors.sum() <= tol:
            break
        room = (max_steps - path.grads) // (2 * order)  # panels we can still split
        worst = [i for i in np.argsort(-errors)
                 if errors[i] > 0 and panels[i].b - panels[i].a > 2 * MIN_WIDTH][:max(0, room)]
        # split every panel holding a large share of the error, at most a batch's worth at once
        worst = [i for i in worst if errors[i] >= 0.25 * errors[worst[0]]][:max(1, run.batch // (2 * order))] \
            if worst else []
        if not worst:
            break
        mids = np.array([(panels[i].a + panels[i].b) / 2 for i in worst])
        Fm = path.values(mids)
        new = []
        for j, i in enumerate(worst):
            p = panels[i]
            new += [(p.a, mids[j], p.Fa, Fm[j]), (mids[j], p.b, Fm[j], p.Fb)]
        keep = [p for i, p in enumerate(panels) if i not in set(worst)]
        panels = sorted(keep + _integrate(path, new, order, budget), key=lambda p: p.a)
    errors = np.stack([np.abs(p.area.sum(-1) - (p.Fb - p.Fa)) for p in panels]).sum(0) / scale
    scores = np.sum([p.area for p in panels], axis=0)
    return IGPath(scores=scores.astype(np.float32), alphas=np.concatenate([p.nodes for p in panels]),
                  weights=np.concatenate([p.weights for p in panels]), grad_evals=path.grads,
                  forward_evals=path.forwards, panel_error=errors.astype(np.float32),
                  converged=bool((errors <= tol).all()), dtype=str(run.f.dtype).replace("torch.", ""))


def _is_half(dtype: torch.dtype) -> bool:
    return dtype in (torch.float16, torch.bfloat16)


def _half_tensors(model: torch.nn.Module) -> list[tuple[dict, str]]:
    """(owner's parameter or buffer dict, name) of every 16-bit floating tensor of the model."""
    out = []
    for mod in model.modules():
        for table in (mod._parameters, mod._buffers):
            for name, t in table.items():
                if t is not None and _is_half(t.dtype):
                    out.append((table, name))
    return out


def _cast(entries: list[tuple[dict, str]], dtypes: list[torch.dtype]) -> None:
    for (table, name), dtype in zip(entries, dtypes):
        t = table[name]
        if isinstance(t, torch.nn.Parameter):
            t.data = t.data.to(dtype)
        else:
            table[name] = t.to(dtype)


@contextmanager
def float32_path(run: Runner):
    """While inside, run.f's model computes in float32: its bfloat16 / float16 parameters and
    buffers are cast up in place, and back to their own dtype after (16-bit -> float32 -> 16-bit is
    exact; tensors that were float32 are not touched), when the float32 copy of those tensors (with
    room to spare) fits in memory. Yields the dtype the path runs in. The model's lock is held
    throughout, so no other thread runs the model meanwhile."""
    f = run.f
    model = getattr(f, "model", None)
    dtype = f.dtype
    entries = _half_tensors(model) if _is_half(dtype) and isinstance(model, torch.nn.Module) else []
    size = sum(table[name].numel() for table, name in entries)
    device = entries[0][0][entries[0][1]].device if entries else torch.device("cpu")
    if not entries or device.type == "meta" or available_bytes(device) < 3 * 4 * size:  # meta: weights elsewhere
        yield str(dtype).replace("torch.", "")
        return
    dtypes = [table[name].dtype for table, name in entries]
    batch, suffix = run.batch, getattr(f, "suffix", None)
    with model_lock(model):
        try:
            _cast(entries, [torch.float32] * len(entries))
            f.dtype = torch.float32
            f.suffix = None if suffix is None else suffix.float()
            run.batch = max(1, batch // 2)  # float32 activations take twice the memory
            yield "float32"
        finally:
            _cast(entries, dtypes)
            f.dtype, f.suffix, run.batch = dtype, suffix, batch
