"""Training a sparse autoencoder here, in seconds, on activations you have: L1 (ReLU with an L1
penalty on activations weighted by decoder norms, as in Anthropic's April 2024 update) or TopK
(Gao et al. 2024: the k largest pre-activations, no penalty). A transcoder trains the same way,
encoding one site's activations and decoding another's (an MLP's input and output).

    sae = train_sae(x, n_features=64, kind="topk", k=4)     # x [N, d] -> a Dictionary
    tc = train_transcoder(x, y, 64, kind="l1", site=("mlp_in", 0), out_site=("mlp", 0))
"""
from __future__ import annotations

import torch

from ..checks import integer, number
from ..errors import LLMWidgetsError
from .coding import Weights, topk_activate
from .dictionary import Dictionary

KINDS = ("l1", "topk")


def train_sae(x: torch.Tensor, n_features: int, *, kind: str = "topk", k: int = 4, l1: float = 1e-3,
              steps: int = 3000, batch: int = 256, lr: float = 3e-3, seed: int = 0, site=None) -> Dictionary:
    """An SAE with `n_features` features trained on activations x [N, d] (float) by Adam for
    `steps` steps of `batch` rows drawn at random (seeded). kind 'topk' keeps the `k` largest
    pre-activations per row; 'l1' is a ReLU SAE with penalty `l1` * sum(a_f * ||W_dec[f]||).
    Decoder rows start at unit norm, the encoder as their transpose, b_dec at the data's mean.
    Returns a Dictionary (apply_b_dec_to_input, as SAELens) reading at `site` (optional)."""
    x = _rows(x, "x")
    w = _fit(x, x, n_features, kind=kind, k=k, l1=l1, steps=steps, batch=batch, lr=lr, seed=seed, sae=True)
    return Dictionary(w, site=site, name=f"trained {kind} SAE ({w.W_dec.shape[0]} features)")


def train_transcoder(x: torch.Tensor, y: torch.Tensor, n_features: int, *, kind: str = "l1", k: int = 4,
                     l1: float = 1e-3, steps: int = 3000, batch: int = 256, lr: float = 3e-3, seed: int = 0,
                     site=None, out_site=None) -> Dictionary:
    """A transcoder with `n_features` features trained to predict y [N, d_out] (an MLP's output)
    from x [N, d_in] (the same tokens' MLP input), as `train_sae` trains an SAE (same kinds,
    penalty and seeded sampling), with no input bias (b_in None: the encoder reads x itself, as
    circuit-tracer's transcoders do). Decoder rows start at unit norm, the encoder as their transpose
    when the widths agree (random unit columns otherwise), b_dec at y's mean. Returns a Dictionary
    reading at `site` and writing at `out_site` (e.g. ("mlp_in", l) and ("mlp", l))."""
    x, y = _rows(x, "x"), _rows(y, "y")
    if x.shape[0] != y.shape[0]:
        raise LLMWidgetsError(f"x and y must hold the same tokens: {x.shape[0]} rows and {y.shape[0]} rows")
    w = _fit(x, y, n_features, kind=kind, k=k, l1=l1, steps=steps, batch=batch, lr=lr, seed=seed, sae=False)
    return Dictionary(w, site=site, out_site=out_site, name=f"trained {kind} transcoder ({w.W_dec.shape[0]} features)")


def _rows(x, name: str) -> torch.Tensor:
    x = torch.as_tensor(x, dtype=torch.float32)
    if x.dim() != 2 or x.shape[0] < 2:
        raise LLMWidgetsError(f"{name} must be activations [N >= 2, d], got shape {list(x.shape)}")
    return x


def _fit(x: torch.Tensor, y: torch.Tensor, n_features: int, *, kind: str, k: int, l1: float, steps: int,
         batch: int, lr: float, seed: int, sae: bool) -> Weights:
    """The training loop of both: encode x, decode to y (y is x for an SAE, whose input is centred by
    b_dec); returns the trained Weights."""
    if kind not in KINDS:
        raise LLMWidgetsError(f"kind must be one of {KINDS}, got {kind!r}")
    F = integer(n_features, "n_features", low=1)
    k = integer(k, "k", low=1)
    steps, batch = integer(steps, "steps", low=1), integer(batch, "batch", low=1)
    l1, lr = number(l1, "l1", low=0.0), number(lr, "lr", low=0.0)
    N, d_in = x.shape
    g = torch.Generator().manual_seed(seed)
    W_dec = torch.randn(F, y.shape[1], generator=g)
    W_dec = torch.nn.Parameter(W_dec / W_dec.norm(dim=1, keepdim=True))
    if d_in == y.shape[1]:
        W_enc = torch.nn.Parameter(W_dec.detach().T.clone())
    else:
        W_enc = torch.randn(d_in, F, generator=g)
        W_enc = torch.nn.Parameter(W_enc / W_enc.norm(dim=0, keepdim=True))
    b_enc = torch.nn.Parameter(torch.zeros(F))
    b_dec = torch.nn.Parameter(y.mean(0).clone())
    opt = torch.optim.Adam([W_enc, b_enc, W_dec, b_dec], lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            rows = torch.randint(0, N, (batch,), generator=g)
            xb, yb = x[rows], y[rows]
            pre = ((xb - b_dec) if sae else xb) @ W_enc + b_enc
            acts = topk_activate(pre, k) if kind == "topk" else torch.relu(pre)
            rec = acts @ W_dec + b_dec
            loss = (rec - yb).pow(2).sum(-1).mean()
            if kind == "l1":
                loss = loss + l1 * (acts * W_dec.norm(dim=1)).sum(-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if kind == "topk":  # unit-norm decoder rows (the L1 penalty already weighs by the norm)
                with torch.no_grad():
                    W_dec /= W_dec.norm(dim=1, keepdim=True)
    return Weights(W_enc=W_enc.detach().clone(), b_enc=b_enc.detach().clone(), W_dec=W_dec.detach().clone(),
                   b_dec=b_dec.detach().clone(), activation="topk" if kind == "topk" else "relu",
                   k=k if kind == "topk" else None, b_in=b_dec.detach().clone() if sae else None)
