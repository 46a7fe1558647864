"""Checkers for the workshop's write-it-yourself exercises (ARENA-style): each runs your function
against ours on fresh random inputs and says in plain words what is wrong.

    from llm_widgets.exercises import check_previous_token_score

    def previous_token_score(pattern):   # [layers, heads, T, T] -> [layers, heads]
        ...

    check_previous_token_score(previous_token_score)   # prints what is wrong, or that it passed

Every checker returns True when your function agrees with ours on every test input, False otherwise
(it prints the reason and never raises, so an unfinished exercise does not stop the notebook):

- `check_previous_token_score(fn)`: fn(pattern) -> mean attention from each token to the one before it
  (notebook 01).
- `check_integrated_gradients(fn)`: fn(f, x, baseline, steps) -> integrated gradients of f at x
  (notebook 02).
- `check_patching_metric(fn)`: fn(logits, correct, wrong, clean_logits, corrupted_logits) -> the
  normalised logit difference, 0 = corrupted run, 1 = clean run (notebook 03).
- `check_ablation_hook(fn)`: fn(x, head, d_head, mode) -> the heads' activation with one head zeroed
  or mean-ablated (notebook 03).
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["check_previous_token_score", "check_integrated_gradients", "check_patching_metric",
           "check_ablation_hook"]


def _fail(name: str, why: str) -> bool:
    print(f"✘ {name}: {why}")
    return False


def _passed(name: str, what: str) -> bool:
    print(f"✔ {name} passed: {what}")
    return True


def _call(name: str, fn, *args):
    """(value, None) or (None, the message saying why fn failed)."""
    try:
        return fn(*args), None
    except NotImplementedError:
        return None, "not implemented yet: replace `raise NotImplementedError` with your code."
    except Exception as e:  # noqa: BLE001 - any error of the participant's code is reported, not raised
        return None, f"your function raised {type(e).__name__}: {e}"


def _array(value) -> np.ndarray | None:
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().double().numpy()
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def _close(a: np.ndarray, b: np.ndarray, tol: float) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=tol, atol=tol))


def _first_match(got: np.ndarray, mistakes: dict, tol: float) -> str | None:
    for why, value in mistakes.items():
        value = _array(value)
        if value is not None and _close(got, value, tol):
            return why
    return None


# --- notebook 01: previous-token score -------------------------------------------------------------

def _random_pattern(rng: np.random.Generator, layers: int, heads: int, t: int, causal: bool) -> np.ndarray:
    logits = rng.normal(size=(layers, heads, t, t)) * 2
    if causal:
        logits = np.where(np.tril(np.ones((t, t), dtype=bool)), logits, -np.inf)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)).astype(np.float32)


def _previous_token_score(pattern: np.ndarray) -> np.ndarray:
    """Ours: mean over the queries i >= 1 of pattern[..., i, i - 1]."""
    return np.diagonal(pattern, offset=-1, axis1=-2, axis2=-1).mean(-1)


def check_previous_token_score(fn, *, seed: int | None = None) -> bool:
    """fn(pattern) -> [layers, heads]: for each head, the mean attention from each token to the token
    just before it (pattern is a numpy array [layers, heads, T, T], rows = the attending token (query),
    columns = the attended token (key), each row sums to 1; the first token has no previous token)."""
    name = "previous-token score"
    rng = np.random.default_rng(seed)
    cases = [(2, 3, 7, True), (3, 2, 10, False), (1, 4, 5, True)]
    for layers, heads, t, causal in cases:
        pattern = _random_pattern(rng, layers, heads, t, causal)
        got, error = _call(name, fn, pattern.copy())
        if error:
            return _fail(name, error)
        got = _array(got)
        want = _previous_token_score(pattern)
        if got is None:
            return _fail(name, f"return a numpy array or tensor of shape {list(want.shape)}, got {type(got).__name__}.")
        if got.shape != want.shape:
            if got.shape in ((layers, heads, t), (layers, heads, t - 1)):
                why = "one value per position: average over the query positions (the last axis you kept)."
            elif got.shape == (heads, layers):
                why = "layers and heads swapped: return [layers, heads]."
            elif got.shape == ():
                why = "a single number: return one score per head, [layers, heads]."
            else:
                why = "return one score per head."
            return _fail(name, f"wrong shape: expected [layers, heads] = {list(want.shape)}, "
                         f"got {list(got.shape)}; {why}")
        if _close(got, want, 1e-4):
            continue
        sub = np.diagonal(pattern, offset=-1, axis1=-2, axis2=-1)
        why = _first_match(got, {
            "you read the diagonal above the main one: attention from token i to token i + 1, the *next* token. "
            "Rows are queries and columns keys: the previous token of row i is column i - 1 "
            "(np.diagonal(..., offset=-1, axis1=-2, axis2=-1)).":
                np.diagonal(pattern, offset=1, axis1=-2, axis2=-1).mean(-1),
            "you read the main diagonal: each token's attention to itself, not to the previous token.":
                np.diagonal(pattern, axis1=-2, axis2=-1).mean(-1),
            "you averaged over all T positions, counting the first token, which has no previous token, as 0: "
            "divide by the T - 1 positions that have one.": sub.sum(-1) / t,
            "you summed over the positions instead of averaging them.": sub.sum(-1),
            "you averaged the attention *to* each token from the next one, column-wise, over the wrong axis "
            "(pattern[..., :, i] rather than pattern[..., i, :]).": np.diagonal(pattern.swapaxes(-1, -2), offset=-1,
                                                                                 axis1=-2, axis2=-1).mean(-1),
            "you took the maximum over positions, not the mean.": sub.max(-1),
        }, 1e-4)
        return _fail(name, why or f"the values differ from ours (on a random [{layers}, {heads}, {t}, {t}] pattern "
                     f"your first head gives {got.flat[0]:.4f}, ours {want.flat[0]:.4f}). The score is the mean over "
                     "the queries i = 1 .. T-1 of pattern[..., i, i - 1].")
    return _passed(name, f"agrees with ours on {len(cases)} random attention patterns (causal and not).")


# --- notebook 02: integrated gradients -------------------------------------------------------------

def _random_function(g: torch.Generator, shape: tuple[int, ...]):
    """A smooth non-linear f: [batch, *shape] -> [batch] (a tiny random MLP with a saturating unit)."""
    d = int(np.prod(shape))
    w1 = torch.randn(d, 16, generator=g, dtype=torch.float64) / d ** 0.5 * 2
    b1 = torch.randn(16, generator=g, dtype=torch.float64) * 0.5
    w2 = torch.randn(16, generator=g, dtype=torch.float64)

    def f(z: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(z.reshape(z.shape[0], -1).to(torch.float64) @ w1 + b1)
        return 3 * torch.tanh(h @ w2 / 2)
    return f


def _grads(f, points: torch.Tensor) -> torch.Tensor:
    points = points.detach().clone().requires_grad_(True)
    return torch.autograd.grad(f(points).sum(), points)[0]


def _integrated_gradients(f, x: torch.Tensor, baseline: torch.Tensor, steps: int) -> torch.Tensor:
    """Ours: (x - baseline) times the mean gradient at `steps` midpoints of the straight path."""
    alphas = ((torch.arange(steps, dtype=x.dtype) + 0.5) / steps).reshape(-1, *[1] * x.dim())
    return (x - baseline) * _grads(f, baseline + alphas * (x - baseline)).mean(0)


def check_integrated_gradients(fn, *, seed: int | None = None) -> bool:
    """fn(f, x, baseline, steps) -> a tensor shaped like x: the integrated gradients of f at x.

    f maps a batch of inputs [batch, *x.shape] to one output per input [batch] (differentiable, torch);
    x and baseline are float tensors of the same shape (no batch axis); steps is the number of points
    on the straight path from baseline to x. The scores must sum to about f(x) - f(baseline)."""
    name = "integrated gradients"
    g = torch.Generator().manual_seed(int(np.random.default_rng(seed).integers(2 ** 31)))
    cases = [((5,), 64), ((3, 4), 128), ((6,), 256)]
    for shape, steps in cases:
        f = _random_function(g, shape)
        x = torch.randn(*shape, generator=g, dtype=torch.float64)
        baseline = 0.5 * torch.randn(*shape, generator=g, dtype=torch.float64)   # not zero: "x" is not "x - baseline"
        got, error = _call(name, fn, f, x.clone(), baseline.clone(), steps)
        if error:
            return _fail(name, error)
        got = _array(got)
        want = _integrated_gradients(f, x, baseline, 2048).numpy()   # the integral, converged
        if got is None:
            return _fail(name, f"return a tensor shaped like x {list(x.shape)}, got {type(got).__name__}.")
        if got.shape != want.shape:
            why = ""
            if got.shape == (steps, *shape):
                why = " You returned one row per step: average the gradients over the steps."
            elif got.shape in ((), (1,)):
                why = " You returned one number: IG gives one score per input element."
            return _fail(name, f"wrong shape: expected {list(want.shape)} (the shape of x), "
                         f"got {list(got.shape)}.{why}")
        with torch.no_grad():
            total = float(f(x[None])[0] - f(baseline[None])[0])
        tol = 0.02 * float(np.abs(want).max()) + 1e-6
        if np.allclose(got, want, atol=tol, rtol=0.02):
            continue
        # the usual Riemann sums with the participant's number of steps are right too (Sundararajan et al.
        # use the right sum, k / steps for k = 1..steps), although coarser than the converged integral
        grids = {"midpoint": (torch.arange(steps, dtype=x.dtype) + 0.5) / steps,
                 "right": torch.arange(1, steps + 1, dtype=x.dtype) / steps,
                 "left": torch.arange(steps, dtype=x.dtype) / steps,
                 "linspace": torch.linspace(0, 1, steps, dtype=x.dtype)}
        riemann = {k: (x - baseline) * _grads(f, baseline + a.reshape(-1, *[1] * x.dim()) * (x - baseline)).mean(0)
                   for k, a in grids.items()}
        if any(np.allclose(got, r.numpy(), atol=1e-3 * float(np.abs(want).max()) + 1e-8, rtol=1e-3)
               for r in riemann.values()):
            continue
        mean_grad = riemann["midpoint"] / (x - baseline)
        why = _first_match(got, {
            "the sign is flipped: integrate from the baseline to x, (x - baseline) * mean gradient.": -want,
            "you returned the mean gradient along the path without multiplying it by (x - baseline).": mean_grad,
            "off by the baseline: you multiplied the mean gradient by x instead of (x - baseline).": x * mean_grad,
            "you summed the gradients over the steps instead of averaging them (divide by steps).": want * steps,
            "that is gradient x input at x, (x - baseline) * grad f(x): the gradient must be averaged along the "
            "path from the baseline to x, not taken at x only.": (x - baseline) * _grads(f, x[None])[0],
            "that is gradient x input at x, x * grad f(x): average the gradient along the path from the baseline, "
            "and multiply by (x - baseline).": x * _grads(f, x[None])[0],
            "you took the gradient at the baseline only: evaluate it at points baseline + alpha * (x - baseline) for "
            "alpha between 0 and 1.": (x - baseline) * _grads(f, baseline[None])[0],
        }, tol)
        if why is None:
            why = (f"the scores differ from ours; they sum to {got.sum():.4f}, and integrated gradients must "
                   f"sum to about f(x) - f(baseline) = {total:.4f} (completeness). Check the path: "
                   "baseline + alpha * (x - baseline), alpha from 0 to 1.")
        return _fail(name, why)
    return _passed(name, f"agrees with ours on {len(cases)} random smooth functions, with a non-zero baseline, "
                   "and sums to f(x) - f(baseline).")


# --- notebook 03: patching metric --------------------------------------------------------------------

def _logit_diff(logits: torch.Tensor, correct: torch.Tensor, wrong: torch.Tensor) -> torch.Tensor:
    last = logits[:, -1]
    return last.gather(-1, correct[:, None])[:, 0] - last.gather(-1, wrong[:, None])[:, 0]


def _patching_metric(logits, correct, wrong, clean_logits, corrupted_logits) -> torch.Tensor:
    """Ours: (LD(patched) - LD(corrupted)) / (LD(clean) - LD(corrupted)), at the last position."""
    ld = lambda lg: _logit_diff(lg, correct, wrong)  # noqa: E731
    return (ld(logits) - ld(corrupted_logits)) / (ld(clean_logits) - ld(corrupted_logits))


def check_patching_metric(fn, *, seed: int | None = None) -> bool:
    """fn(logits, correct, wrong, clean_logits, corrupted_logits) -> [batch].

    Every *logits is a tensor [batch, tokens, vocab] (the patched run, the clean run and the corrupted
    run); correct and wrong are token ids [batch]: the clean answer and the corrupted one. Return, per
    prompt, the logit difference correct - wrong at the **last** position, normalised so that the
    corrupted run scores 0 and the clean run 1."""
    name = "patching metric"
    g = torch.Generator().manual_seed(int(np.random.default_rng(seed).integers(2 ** 31)))
    for b, t, v in ((4, 6, 11), (3, 9, 17)):
        clean = torch.randn(b, t, v, generator=g)
        corrupted = torch.randn(b, t, v, generator=g)
        correct = torch.randint(v, (b,), generator=g)
        wrong = (correct + 1 + torch.randint(v - 1, (b,), generator=g)) % v
        clean[torch.arange(b), -1, correct] += 4            # the clean run prefers the right answer
        corrupted[torch.arange(b), -1, wrong] += 4          # the corrupted run the wrong one
        mix = torch.rand(b, 1, 1, generator=g)
        patched = corrupted + mix * (clean - corrupted) + 0.3 * torch.randn(b, t, v, generator=g)
        args = lambda lg: (lg.clone(), correct.clone(), wrong.clone(), clean.clone(), corrupted.clone())  # noqa: E731
        got, error = _call(name, fn, *args(patched))
        if error:
            return _fail(name, error)
        got = _array(got)
        want = _patching_metric(patched, correct, wrong, clean, corrupted).numpy()
        if got is None:
            return _fail(name, f"return a tensor [batch] = [{b}], got {type(got).__name__}.")
        if got.shape != want.shape:
            if got.size == 1 and np.isclose(float(got.reshape(-1)[0]), want.mean(), atol=1e-4):
                why = "you averaged over the batch: return one score per prompt."
            elif got.shape == (b, t):
                why = "one value per position: use the logits at the last position only, logits[:, -1]."
            else:
                why = "return one score per prompt."
            return _fail(name, f"wrong shape: expected [batch] = [{b}], got {list(got.shape)}; {why}")
        if _close(got, want, 1e-4):
            ends = [_array(_call(name, fn, *args(lg))[0]) for lg in (clean, corrupted)]
            if any(e is None or e.shape != want.shape for e in ends):
                return _fail(name, "your function fails when the patched run is the clean or the corrupted run.")
            continue
        ld = lambda lg: _logit_diff(lg, correct, wrong)  # noqa: E731
        ld_first = lambda lg: lg[:, 0].gather(-1, correct[:, None])[:, 0] - lg[:, 0].gather(-1, wrong[:, None])[:, 0]  # noqa: E731
        ld_mean = lambda lg: (lg.gather(-1, correct[:, None, None].expand(b, t, 1))  # noqa: E731
                              - lg.gather(-1, wrong[:, None, None].expand(b, t, 1)))[..., 0].mean(1)
        lp, lc, lx = ld(patched), ld(clean), ld(corrupted)
        why = _first_match(got, {
            "the sign is flipped: take the correct answer's logit minus the wrong answer's.": -want,
            "the direction is reversed: the corrupted run must score 0 and the clean run 1, not the other way round.":
                (lp - lc) / (lx - lc),
            "not normalised: you returned the raw logit difference; subtract the corrupted run's logit difference and "
            "divide by (clean - corrupted).": lp,
            "off by the baseline: you divided by the clean logit difference without subtracting the corrupted one; "
            "0 must mean 'as in the corrupted run': (LD - LD_corrupted) / (LD_clean - LD_corrupted).": lp / lc,
            "off by the baseline: subtract the corrupted run's logit difference in the denominator too, "
            "(LD - LD_corrupted) / (LD_clean - LD_corrupted).": (lp - lx) / lc,
            "you subtracted the clean logit difference instead of the corrupted one: with that, the clean run "
            "scores 0.":
                (lp - lc) / (lc - lx),
            "you read the logits at the first position: the answer is predicted at the last one, logits[:, -1].":
                (ld_first(patched) - ld_first(corrupted)) / (ld_first(clean) - ld_first(corrupted)),
            "you averaged the logit difference over all positions: use the last position only, logits[:, -1].":
                (ld_mean(patched) - ld_mean(corrupted)) / (ld_mean(clean) - ld_mean(corrupted)),
        }, 1e-4)
        return _fail(name, why or f"the values differ from ours (yours {np.round(got, 3).tolist()}, ours "
                     f"{np.round(want, 3).tolist()}). Check that the clean run gives 1 and the corrupted run 0.")
    return _passed(name, "agrees with ours on random logits; the clean run scores 1 and the corrupted run 0.")


# --- notebook 03: ablation hook ----------------------------------------------------------------------

def _ablation_hook(x: torch.Tensor, head: int, d_head: int, mode: str) -> torch.Tensor:
    """Ours: head's columns [head * d_head, (head + 1) * d_head) set to 0 ('zero') or to their mean over
    the batch and the positions ('mean')."""
    x = x.clone()
    cols = slice(head * d_head, (head + 1) * d_head)
    x[..., cols] = 0 if mode == "zero" else x[..., cols].mean((0, 1), keepdim=True).expand_as(x[..., cols])
    return x


def check_ablation_hook(fn, *, seed: int | None = None) -> bool:
    """fn(x, head, d_head, mode) -> x with one head ablated.

    x is a heads activation [batch, tokens, n_heads * d_head] (the input of the attention output
    projection: head h owns the columns h * d_head .. (h + 1) * d_head - 1); mode 'zero' sets that
    head's columns to 0, 'mean' replaces them with their mean over the batch and the positions. Every
    other column stays as it was. Return the edited tensor (editing x in place and returning it, or
    None, is fine too: that is what a forward hook may do)."""
    name = "ablation hook"
    g = torch.Generator().manual_seed(int(np.random.default_rng(seed).integers(2 ** 31)))
    cases = [(3, 5, 4, 8, 1, "zero"), (2, 7, 4, 8, 3, "mean"), (4, 3, 6, 5, 0, "mean"), (2, 4, 3, 6, 2, "zero")]
    for b, t, n_heads, d_head, head, mode in cases:
        x = torch.randn(b, t, n_heads * d_head, generator=g) + torch.arange(n_heads * d_head) / 4
        mine = x.clone()
        got, error = _call(name, fn, mine, head, d_head, mode)
        if error:
            return _fail(name, error)
        got = _array(mine if got is None else got)
        want = _ablation_hook(x, head, d_head, mode).numpy()
        where = f"[batch, tokens, n_heads * d_head] = {list(x.shape)}, head {head}, d_head {d_head}, mode {mode!r}"
        if got is None:
            return _fail(name, f"return a tensor shaped like x, got {type(got).__name__}.")
        if got.shape != want.shape:
            why = (" You returned only the head's slice: return the whole activation with that slice replaced."
                   if got.shape[-1] == d_head else "")
            return _fail(name, f"wrong shape on {where}: expected {list(want.shape)} (the shape of x), got "
                         f"{list(got.shape)}.{why}")
        if _close(got, want, 1e-5):
            continue
        cols = slice(head * d_head, (head + 1) * d_head)
        changed = np.flatnonzero(~np.isclose(got, x.numpy(), atol=1e-6).all((0, 1)))
        sel = x[..., cols]
        wrong = {"nothing changed: the head's columns must be replaced (did you edit a copy and return the "
                 "original?)": x}
        if mode == "mean":
            wrong.update({
                "you set the head to 0: mode 'mean' replaces it with its mean over the batch and the positions.":
                    _ablation_hook(x, head, d_head, "zero"),
                "you averaged over the positions of each sequence only: the mean is over the batch *and* the "
                "positions, dims (0, 1).": _replace(x, cols, sel.mean(1, keepdim=True).expand_as(sel)),
                "you averaged over the batch only: the mean is over the batch *and* the positions, dims (0, 1).":
                    _replace(x, cols, sel.mean(0, keepdim=True).expand_as(sel)),
                "you averaged over the features of the head too: keep one mean per column (mean over dims (0, 1) "
                "only).":
                    _replace(x, cols, sel.mean().expand_as(sel)),
                "you averaged over the features only (one number per token): the mean is over the batch and the "
                "positions, per column.": _replace(x, cols, sel.mean(-1, keepdim=True).expand_as(sel)),
            })
        wrong.update({
            "you ablated every head: only the given head's columns change.": torch.zeros_like(x) if mode == "zero" else
            x.mean((0, 1), keepdim=True).expand_as(x),
            "you ablated column `head`, not the head's d_head columns.":
                _replace(x, slice(head, head + 1), torch.zeros(b, t, 1)) if mode == "zero" else None,
            "off by one head: you ablated the next head's columns.": _ablation_hook(x, head + 1, d_head, mode)
            if head + 1 < n_heads else None,
            "off by one head: you ablated the previous head's columns.": _ablation_hook(x, head - 1, d_head, mode)
            if head >= 1 else None,
        })
        why = None
        for text, value in wrong.items():
            if value is None:
                continue
            if _close(got, _array(value), 1e-5):
                why = text
                break
        if why is None:
            outside = [c for c in changed.tolist() if not head * d_head <= c < (head + 1) * d_head]
            if outside:
                why = (f"you changed columns outside head {head}: {outside[:12]} (head {head} owns columns "
                       f"{head * d_head} to {(head + 1) * d_head - 1}, x[..., head * d_head:(head + 1) * d_head]).")
            else:
                must = "they must be 0." if mode == "zero" else "each must be its mean over batch and positions."
                why = f"the head's columns are not what mode {mode!r} gives: {must}"
        return _fail(name, f"on {where}: {why}")
    return _passed(name, f"agrees with ours on {len(cases)} random activations, zero and mean modes.")


def _replace(x: torch.Tensor, cols: slice, value: torch.Tensor) -> torch.Tensor:
    out = x.clone()
    out[..., cols] = value
    return out
