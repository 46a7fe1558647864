"""The training loop of the small seeded models (teaching classifiers, canary GPT-2, induction
transformer, distilled students), and where their weights are cached.

Every one of them trains the same way: AdamW (no weight decay) over the parameters that require
gradients, on minibatches of seeded shuffles (`fit_epochs`) or of freshly generated data
(`fit_steps`); `one_thread()` pins torch to one CPU thread while it runs (tiny matrices: one thread
is faster, and far faster on a busy CPU). The order of operations is part of the contract: the
models are seeded and cached, and tests and notebooks quote numbers measured on them.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path

import torch


def cache_dir() -> Path:
    """Where trained teaching models are kept: $LLM_WIDGETS_CACHE or ~/.cache/llm_widgets."""
    return Path(os.environ.get("LLM_WIDGETS_CACHE", Path.home() / ".cache" / "llm_widgets"))


def save_weights(model, path: Path) -> None:
    """Write `model`'s state dict to `path` atomically: parallel runs never read a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)


def load_weights(model, path: Path):
    """Load a state dict written by `save_weights` into `model` (on the CPU); returns the model."""
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model


def cached_training(model, path: Path, train, *, load: bool = True, save: bool = True, verbose: bool = False):
    """`model` with the weights cached at `path` when they are there (and `load`); otherwise
    train(model) -> the trained model, saved to `path` when `save`. Returns (model, seconds spent
    training, or None when loaded from the cache)."""
    if load and path.exists():
        return load_weights(model, path), None
    t0 = time.perf_counter()
    model = train(model)
    seconds = time.perf_counter() - t0
    if save:
        save_weights(model, path)
    if verbose:
        print(f"trained in {seconds:.1f} s" + (f"; cached at {path}" if save else ""))
    return model, seconds


def small_gpt2(vocab_size: int, n_positions: int, d_model: int, layers: int, heads: int, seed: int,
               fixed_ids: list, fixed_std: float):
    """A fresh GPT-2 (no dropout, eager attention, token 0 pads, token 1 begins and ends), seeded with
    `seed`, whose embeddings of the tokens `fixed_ids` are random codes of scale `fixed_std` (the
    teaching models keep them frozen: names and people that only their position in a prompt defines)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(vocab_size=vocab_size, n_positions=n_positions, n_embd=d_model, n_layer=layers, n_head=heads,
                     bos_token_id=1, eos_token_id=1, pad_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0,
                     attn_pdrop=0.0, attn_implementation="eager")
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(cfg)
    with torch.no_grad():
        model.transformer.wte.weight[fixed_ids] = torch.randn(len(fixed_ids), d_model) * fixed_std
    return model


@contextmanager
def one_thread(enabled: bool = True):
    """One torch thread inside the block (when `enabled`); torch's process-wide count is restored."""
    threads = torch.get_num_threads()
    if enabled:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if enabled:
            torch.set_num_threads(threads)


@contextmanager
def frozen(param):
    """`param` takes no gradient inside the block (so the optimiser leaves it alone), then does again."""
    param.requires_grad_(False)
    try:
        yield param
    finally:
        param.requires_grad_(True)


def _optimiser(model, lr: float):
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)


def _step(opt, loss) -> None:
    opt.zero_grad()
    loss.backward()
    opt.step()


def fit_epochs(model, loss_fn, n: int, *, epochs: int, batch: int, lr: float, seed: int, log=None,
               progress=None):
    """Train `model` for `epochs` passes over examples 0..n-1, each pass in a fresh order drawn from
    torch.randperm(n) with a generator seeded by `seed`, `batch` examples a step.

    loss_fn(idx) -> the loss of the examples `idx` (a LongTensor), or a pair (loss to minimise,
    loss to report) when the objective adds a penalty. log(line) gets the mean reported loss after
    each epoch; progress(fraction) the fraction of steps done after each step. The model is in
    train mode during the loop and in eval mode after it (also on an error)."""
    g = torch.Generator().manual_seed(seed)
    opt = _optimiser(model, lr)
    steps, done = epochs * -(-n // batch), 0
    model.train()
    try:
        for epoch in range(epochs):
            order = torch.randperm(n, generator=g)
            total = 0.0
            for i in range(0, n, batch):
                idx = order[i:i + batch]
                out = loss_fn(idx)
                loss, shown = out if isinstance(out, tuple) else (out, out)
                _step(opt, loss)
                done += 1
                if log:
                    total += shown.item() * len(idx)
                if progress:
                    progress(done / steps)
            if log:
                log(f"epoch {epoch}: loss {total / n:.4f}")
    finally:
        model.eval()
    return model


def fit_steps(model, loss_fn, steps: int, *, lr: float, log=None, log_every: int = 50, what: str = "loss",
              grad_hooks=()):
    """Train `model` for `steps` steps of loss_fn(step) (each step draws its own data), logging
    "step k: <what> <loss>" every `log_every` steps and at the last. `grad_hooks`: (parameter,
    fn(grad) -> grad) pairs in force while training (a tied embedding's rows kept fixed or moved
    together). Eval mode after."""
    opt = _optimiser(model, lr)
    handles = [p.register_hook(fn) for p, fn in grad_hooks]
    model.train()
    try:
        for step in range(steps):
            loss = loss_fn(step)
            _step(opt, loss)
            if log and (step % log_every == 0 or step == steps - 1):
                log(f"step {step}: {what} {loss.item():.3f}")
    finally:
        model.eval()
        for h in handles:
            h.remove()
    return model


__all__ = ["cache_dir", "cached_training", "fit_epochs", "fit_steps", "frozen", "load_weights", "one_thread",
           "save_weights"]
