"""A toy model of superposition (Elhage et al. 2022) and an SAE that finds its planted features.

n sparse features (each present with probability `density`, uniform in [0, 1] when present) are
squeezed into d < n dimensions by a linear map W [d, n] and read back by relu(W.T h + b); trained
to reconstruct them, the model stores the features as n directions in d dimensions (the columns of
W: the planted directions). An SAE trained on h recovers those directions as its decoder rows.

    toy = lw.teaching.superposition_model()          # trained in seconds, cached
    toy.recovered(0.9)                         # fraction of planted directions an SAE row matches
"""
from __future__ import annotations

from dataclasses import dataclass, asdict

import hashlib
import json

import torch

from ..dictionaries.dictionary import Dictionary
from ..dictionaries.train import train_sae
from .train import cache_dir, one_thread


@dataclass(frozen=True)
class Settings:
    n_features: int = 12
    d: int = 6
    density: float = 0.04
    steps: int = 4000
    sae_features: int = 24
    sae_kind: str = "topk"
    sae_k: int = 2
    sae_l1: float = 3e-2
    sae_steps: int = 2500
    seed: int = 0

    def key(self) -> str:
        return hashlib.sha256(json.dumps({"v": 1, **asdict(self)}, sort_keys=True).encode()).hexdigest()[:16]


def sample(n: int, st: Settings, g: torch.Generator) -> torch.Tensor:
    """[n, n_features] sparse feature values: each present with probability density, U[0, 1]."""
    on = torch.rand(n, st.n_features, generator=g) < st.density
    return on * torch.rand(n, st.n_features, generator=g)


@dataclass
class Superposition:
    """The trained toy model (W [d, n], b [n]), sampled hidden states `h` [N, d] with the features
    `x` [N, n] that made them, and the SAE trained on h."""

    W: torch.Tensor
    b: torch.Tensor
    x: torch.Tensor
    h: torch.Tensor
    sae: Dictionary
    settings: Settings

    @property
    def directions(self) -> torch.Tensor:
        """[n, d] the planted directions (W's columns), unit norm."""
        cols = self.W.T
        return cols / cols.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def cosines(self) -> torch.Tensor:
        """[n] for each planted direction, its best cosine with an SAE decoder row."""
        rows = self.sae.weights.W_dec
        rows = rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return (self.directions @ rows.T).max(dim=1).values

    def recovered(self, cosine: float = 0.9) -> float:
        """Fraction of planted directions some SAE decoder row matches with cosine >= `cosine`."""
        return float((self.cosines() >= cosine).float().mean())


def _toy(st: Settings):
    g = torch.Generator().manual_seed(st.seed)
    W = torch.nn.Parameter(torch.randn(st.d, st.n_features, generator=g) * 0.3)
    b = torch.nn.Parameter(torch.zeros(st.n_features))
    opt = torch.optim.Adam([W, b], lr=1e-2)
    with torch.enable_grad():
        for _ in range(st.steps):
            x = sample(512, st, g)
            out = torch.relu((x @ W.T) @ W + b)
            loss = (out - x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return W.detach(), b.detach()


def superposition_model(settings: Settings | None = None, *, load: bool = True) -> Superposition:
    """The toy model of superposition and its SAE, trained here (a few seconds on a CPU) and cached
    under lw.teaching.cache_dir() keyed by the settings."""
    st = settings or Settings()
    path = cache_dir() / f"superposition-{st.key()}.pt"
    if load and path.exists():
        W, b, sae_w = torch.load(path, weights_only=False)
        sae = Dictionary(sae_w, name=f"toy SAE ({st.sae_kind})")
    else:
        with one_thread():
            W, b = _toy(st)
            g = torch.Generator().manual_seed(st.seed + 1)
            h = sample(20000, st, g) @ W.T
            sae = train_sae(h, st.sae_features, kind=st.sae_kind, k=st.sae_k, l1=st.sae_l1, steps=st.sae_steps,
                            seed=st.seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save((W, b, sae.weights), path)
    g = torch.Generator().manual_seed(st.seed + 2)
    x = sample(4000, st, g)
    return Superposition(W=W, b=b, x=x, h=x @ W.T, sae=sae, settings=st)
