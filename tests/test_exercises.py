"""The exercise checkers accept a correct implementation and catch broken ones with a message that
says what is wrong (llm_widgets/exercises.py)."""
import numpy as np
import pytest
import torch

from llm_widgets import exercises as ex


def run(check, fn, capsys):
    ok = check(fn, seed=0)
    return ok, capsys.readouterr().out


def assert_caught(check, fn, capsys, *words):
    ok, out = run(check, fn, capsys)
    assert ok is False, out
    assert out.startswith("✘"), out
    for w in words:
        assert w in out, (w, out)


# --- previous-token score ------------------------------------------------------------------------

def prev_ok(pattern):
    return np.diagonal(pattern, offset=-1, axis1=-2, axis2=-1).mean(-1)


def prev_loop(pattern):  # a loop version, on torch: also right
    p = torch.as_tensor(pattern)
    T = p.shape[-1]
    return sum(p[..., i, i - 1] for i in range(1, T)) / (T - 1)


@pytest.mark.parametrize("fn", [prev_ok, prev_loop])
def test_previous_token_score_accepts_correct(fn, capsys):
    ok, out = run(ex.check_previous_token_score, fn, capsys)
    assert ok is True and out.startswith("✔"), out


@pytest.mark.parametrize("fn, words", [
    (lambda p: np.diagonal(p, offset=1, axis1=-2, axis2=-1).mean(-1), ["next", "offset=-1"]),
    (lambda p: np.diagonal(p, axis1=-2, axis2=-1).mean(-1), ["itself"]),
    (lambda p: np.diagonal(p, offset=-1, axis1=-2, axis2=-1).sum(-1) / p.shape[-1], ["T - 1", "first token"]),
    (lambda p: np.diagonal(p, offset=-1, axis1=-2, axis2=-1), ["wrong shape", "average over the query positions"]),
    (lambda p: np.diagonal(p, offset=-1, axis1=-2, axis2=-1).sum(-1), ["summed"]),
    (lambda p: np.diagonal(p, offset=-1, axis1=-2, axis2=-1).mean(-1).T, ["wrong shape"]),
])
def test_previous_token_score_catches_mistakes(fn, words, capsys):
    assert_caught(ex.check_previous_token_score, fn, capsys, *words)


def test_unfinished_exercise_says_so_and_does_not_raise(capsys):
    def todo(pattern):
        raise NotImplementedError
    assert_caught(ex.check_previous_token_score, todo, capsys, "not implemented yet")
    assert_caught(ex.check_ablation_hook, lambda *a: 1 / 0, capsys, "ZeroDivisionError")


# --- integrated gradients -------------------------------------------------------------------------

def ig_ok(f, x, baseline, steps):
    alphas = ((torch.arange(steps) + 0.5) / steps).reshape(-1, *[1] * x.dim()).to(x.dtype)
    path = (baseline + alphas * (x - baseline)).requires_grad_(True)
    grads = torch.autograd.grad(f(path).sum(), path)[0]
    return (x - baseline) * grads.mean(0)


def ig_linspace(f, x, baseline, steps):  # a left/right-inclusive grid: a coarser but valid approximation
    alphas = torch.linspace(0, 1, steps, dtype=x.dtype).reshape(-1, *[1] * x.dim())
    path = (baseline + alphas * (x - baseline)).requires_grad_(True)
    return (x - baseline) * torch.autograd.grad(f(path).sum(), path)[0].mean(0)


def ig_loop(f, x, baseline, steps):  # one gradient per step, in a loop
    total = torch.zeros_like(x)
    for k in range(1, steps + 1):
        point = (baseline + k / steps * (x - baseline)).detach().requires_grad_(True)
        total += torch.autograd.grad(f(point[None]).sum(), point)[0]
    return (x - baseline) * total / steps


@pytest.mark.parametrize("fn", [ig_ok, ig_linspace, ig_loop])
def test_integrated_gradients_accepts_correct(fn, capsys):
    ok, out = run(ex.check_integrated_gradients, fn, capsys)
    assert ok is True and out.startswith("✔"), out


def grad_at(f, point):
    point = point.detach().clone().requires_grad_(True)
    return torch.autograd.grad(f(point[None]).sum(), point)[0]


@pytest.mark.parametrize("fn, words", [
    (lambda f, x, b, n: -ig_ok(f, x, b, n), ["sign is flipped"]),
    (lambda f, x, b, n: ig_ok(f, x, b, n) / (x - b), ["without multiplying it by (x - baseline)"]),
    (lambda f, x, b, n: ig_ok(f, x, b, n) / (x - b) * x, ["off by the baseline", "instead of (x - baseline)"]),
    (lambda f, x, b, n: ig_ok(f, x, b, n) * n, ["summed the gradients", "divide by steps"]),
    (lambda f, x, b, n: (x - b) * grad_at(f, x), ["gradient x input", "averaged along the path"]),
    (lambda f, x, b, n: x * grad_at(f, x), ["gradient x input"]),
    (lambda f, x, b, n: ig_ok(f, x, b, n).sum(), ["wrong shape", "one score per input element"]),
    (lambda f, x, b, n: ig_ok(f, x, b, n) + 0.3, ["completeness", "f(x) - f(baseline)"]),
])
def test_integrated_gradients_catches_mistakes(fn, words, capsys):
    assert_caught(ex.check_integrated_gradients, fn, capsys, *words)


# --- patching metric ------------------------------------------------------------------------------

def ld(logits, correct, wrong):
    last = logits[:, -1]
    return last.gather(-1, correct[:, None])[:, 0] - last.gather(-1, wrong[:, None])[:, 0]


def metric_ok(logits, correct, wrong, clean_logits, corrupted_logits):
    lx = ld(corrupted_logits, correct, wrong)
    return (ld(logits, correct, wrong) - lx) / (ld(clean_logits, correct, wrong) - lx)


def metric_log_softmax(logits, correct, wrong, clean_logits, corrupted_logits):  # log-probs: same difference
    return metric_ok(*(t.log_softmax(-1) for t in (logits,)), correct, wrong,
                     clean_logits.log_softmax(-1), corrupted_logits.log_softmax(-1))


@pytest.mark.parametrize("fn", [metric_ok, metric_log_softmax])
def test_patching_metric_accepts_correct(fn, capsys):
    ok, out = run(ex.check_patching_metric, fn, capsys)
    assert ok is True and out.startswith("✔"), out


@pytest.mark.parametrize("fn, words", [
    (lambda lg, c, w, cl, co: metric_ok(lg, w, c, cl, co) * 0 - metric_ok(lg, c, w, cl, co), ["sign is flipped"]),
    (lambda lg, c, w, cl, co: ld(lg, c, w), ["not normalised"]),
    (lambda lg, c, w, cl, co: ld(lg, c, w) / ld(cl, c, w), ["off by the baseline"]),
    (lambda lg, c, w, cl, co: (ld(lg, c, w) - ld(co, c, w)) / ld(cl, c, w), ["off by the baseline", "denominator"]),
    (lambda lg, c, w, cl, co: metric_ok(lg, c, w, co, cl), ["reversed"]),
    (lambda lg, c, w, cl, co: metric_ok(lg[:, :1], c, w, cl[:, :1], co[:, :1]), ["first position", "logits[:, -1]"]),
    (lambda lg, c, w, cl, co: metric_ok(lg, c, w, cl, co).mean(), ["averaged over the batch"]),
])
def test_patching_metric_catches_mistakes(fn, words, capsys):
    assert_caught(ex.check_patching_metric, fn, capsys, *words)


# --- ablation hook --------------------------------------------------------------------------------

def hook_ok(x, head, d_head, mode):
    cols = slice(head * d_head, (head + 1) * d_head)
    x = x.clone()
    x[..., cols] = 0 if mode == "zero" else x[..., cols].mean((0, 1))
    return x


def hook_in_place(x, head, d_head, mode):  # edits in place and returns nothing, as a forward hook may
    cols = slice(head * d_head, (head + 1) * d_head)
    x[..., cols] = 0 if mode == "zero" else x[..., cols].mean((0, 1)).clone()


@pytest.mark.parametrize("fn", [hook_ok, hook_in_place])
def test_ablation_hook_accepts_correct(fn, capsys):
    ok, out = run(ex.check_ablation_hook, fn, capsys)
    assert ok is True and out.startswith("✔"), out


def mean_over(dims):
    def fn(x, head, d_head, mode):
        cols = slice(head * d_head, (head + 1) * d_head)
        x = x.clone()
        x[..., cols] = 0 if mode == "zero" else x[..., cols].mean(dims, keepdim=True).expand_as(x[..., cols])
        return x
    return fn


@pytest.mark.parametrize("fn, words", [
    (lambda x, h, d, m: hook_ok(x, h + 1, d, m) if (h + 2) * d <= x.shape[-1] else hook_ok(x, h - 1, d, m), ["off by one head"]),
    (lambda x, h, d, m: hook_ok(x, h, d, "zero"), ["mean over the batch and the positions"]),
    (mean_over(1), ["positions of each sequence only"]),
    (mean_over(0), ["batch only"]),
    (mean_over((0, 1, 2)), ["features of the head too"]),
    (lambda x, h, d, m: x[..., h * d:(h + 1) * d] * 0, ["wrong shape", "only the head's slice"]),
    (lambda x, h, d, m: x.clone(), ["nothing changed"]),
    (lambda x, h, d, m: hook_ok(hook_ok(x, h, d, m), (h + 1) % (x.shape[-1] // d), d, "zero"), ["outside head"]),
])
def test_ablation_hook_catches_mistakes(fn, words, capsys):
    assert_caught(ex.check_ablation_hook, fn, capsys, *words)


def test_fresh_inputs_each_call(capsys):
    """Without a seed every call draws new inputs, so a function fitted to one draw does not pass."""
    seen = []
    ex.check_previous_token_score(lambda p: seen.append(p.copy()) or prev_ok(p))
    ex.check_previous_token_score(lambda p: seen.append(p.copy()) or prev_ok(p))
    capsys.readouterr()
    assert not np.allclose(seen[0], seen[3])
