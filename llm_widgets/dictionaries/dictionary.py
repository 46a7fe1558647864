"""A sparse dictionary (an SAE, or a transcoder): its weights, activation, normalization and sites,
with exact encoding and a chunked top-k encoder for dictionaries of a million features.

    d = lw.load_dictionary("path/to/sae", session=s)
    acts = d.encode(x)                     # [..., F] exact (dense: for small inputs)
    ids, vals = d.top_features(x, k=16)    # [T, 16]: chunks of features and tokens under a budget
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

import torch

from ..checks import integer
from ..compute.budget import CPU_BUDGET
from ..errors import LLMWidgetsError
from .coding import ACTIVATIONS, NORMALIZATIONS, Weights, normalize_in
from .edit import feature_id
from .feature import Feature
from .sites import Site, as_site, width

_COPIES = 3  # float32 [tokens, features] buffers alive per chunk: pre-activations, activations, top-k merge


@dataclass
class Dictionary:
    """Sparse dictionary weights: `weights` (llm_widgets.dictionaries.coding.Weights: W_enc
    [d_in, F], b_enc [F], W_dec [F, d_out], b_dec [d_out], the activation and its threshold / k),
    `site` (where it reads) and `out_site` (where a transcoder writes; None for an SAE, which
    writes where it reads), `name` (what it was loaded from), `dtype` (of the stored weights;
    computation runs in float32, or float64 for float64 weights)."""

    weights: Weights
    site: Optional[Site] = None
    out_site: Optional[Site] = None
    name: str = ""
    dtype: torch.dtype = torch.float32
    info: dict = field(default_factory=dict)  # the source's own config, as read

    def __post_init__(self):
        self.site = None if self.site is None else as_site(self.site)
        self.out_site = None if self.out_site is None else as_site(self.out_site)
        w = self.weights
        if w.activation not in ACTIVATIONS:
            raise LLMWidgetsError(f"unknown activation {w.activation!r}; known: {ACTIVATIONS}")
        if w.normalize not in NORMALIZATIONS:
            raise LLMWidgetsError(f"unknown normalize_activations {w.normalize!r}; known: {NORMALIZATIONS}")
        if w.W_enc.dim() != 2 or w.W_dec.dim() != 2 or w.W_enc.shape[1] != w.W_dec.shape[0]:
            raise LLMWidgetsError(f"W_enc must be [d_in, F] and W_dec [F, d_out], got {list(w.W_enc.shape)} and "
                                  f"{list(w.W_dec.shape)}")
        F = w.W_enc.shape[1]
        for name, v, n in (("b_enc", w.b_enc, F), ("b_dec", w.b_dec, w.W_dec.shape[1])):
            if v.shape != (n,):
                raise LLMWidgetsError(f"{name} must have shape [{n}], got {list(v.shape)}")
        if w.activation in ("topk",) and not (w.k and 0 < w.k <= F):
            raise LLMWidgetsError(f"a TopK dictionary needs k in 1..{F}, got {w.k!r}")
        if w.activation in ("jumprelu", "batchtopk") and w.threshold is None:
            raise LLMWidgetsError(f"a {w.activation} dictionary needs a threshold (per feature, or one for all)")
        if w.activation == "gated" and (w.b_gate is None or w.r_mag is None):
            raise LLMWidgetsError("a gated dictionary needs b_gate and r_mag")

    # -- shape ------------------------------------------------------------------------------
    @property
    def d_in(self) -> int:
        return int(self.weights.W_enc.shape[0])

    @property
    def d_out(self) -> int:
        return int(self.weights.W_dec.shape[1])

    @property
    def n_features(self) -> int:
        return int(self.weights.W_enc.shape[1])

    @property
    def transcoder(self) -> bool:
        """Reads one site and writes another (a transcoder replacing an MLP)."""
        return self.out_site is not None and self.out_site != self.site

    def __repr__(self) -> str:
        w = self.weights
        extra = f", k={w.k}" if w.activation == "topk" else ""
        where = f"{self.site}" + (f" -> {self.out_site}" if self.transcoder else "")
        return (f"Dictionary({self.name or 'in memory'}: {self.n_features} features, {w.activation}{extra}, "
                f"{self.d_in} -> {self.d_out}, at {where or 'no site'})")

    # -- the model --------------------------------------------------------------------------
    def check(self, session) -> "Dictionary":
        """Raise a clear error unless this dictionary fits the session's model: its site exists
        there, and its widths equal the activations' at its sites. Returns self."""
        if self.site is None:
            raise LLMWidgetsError(f"{self!r} names no site; pass site=('resid', layer) (or a hook name such as "
                                  f"'blocks.3.hook_resid_post') to lw.load_dictionary")
        for what, site, n in (("reads", self.site, self.d_in), ("writes", self.out_site, self.d_out)):
            if site is None:
                continue
            have = width(session, site)
            if have != n:
                raise LLMWidgetsError(f"the dictionary {what} {n} features per token at {site}, but "
                                      f"{session.name} has {have} there: it was trained on another model or site "
                                      f"(pass site=... if the site was misread)")
        if not self.transcoder and self.d_in != self.d_out:
            raise LLMWidgetsError(f"an SAE's input and output widths must agree, got {self.d_in} and {self.d_out}")
        return self

    def feature(self, index) -> "Feature":
        """Feature `index` as an object (llm_widgets.dictionaries.feature.Feature): pass it to
        `lw.steer(s, d.feature(7), layer=..., strength=...)` to add its decoder direction."""
        return Feature(self, feature_id(index, self.n_features, "feature"))

    def at(self, site) -> "Dictionary":
        """The same dictionary read at another site (a Site, hook name or (site, layer))."""
        return replace(self, site=as_site(site))

    # -- encoding ---------------------------------------------------------------------------
    def _compute_dtype(self) -> torch.dtype:
        return torch.float64 if self.weights.W_enc.dtype == torch.float64 else torch.float32

    def _in(self, x: torch.Tensor):
        if x.shape[-1] != self.d_in:
            raise LLMWidgetsError(f"the dictionary reads {self.d_in} features per token, got {x.shape[-1]}")
        x = x.to(self.weights.W_enc.device, self._compute_dtype())
        return normalize_in(x, self.weights.normalize, self.d_in)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Feature activations [..., F] of activations x [..., d_in] (dense: use `top_features` for
        long inputs or wide dictionaries)."""
        with torch.no_grad():
            xn, _, _ = self._in(torch.as_tensor(x))
            return self.weights.encode(xn)

    def decode(self, acts: torch.Tensor, x: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The reconstruction [..., d_out] from feature activations; `x` (the input) is needed to undo
        a run-time normalization and for a skip connection."""
        w = self.weights
        with torch.no_grad():
            out = acts.to(w.W_dec.dtype) @ w.W_dec + w.b_dec
            needs_x = w.normalize in ("constant_norm_rescale", "layer_norm") or w.W_skip is not None
            if needs_x and x is None:
                raise LLMWidgetsError("this dictionary's output depends on its input (normalization or skip "
                                      "connection): pass x= to decode")
            if x is not None:
                xn, scale, shift = self._in(torch.as_tensor(x))
                out = out * scale + shift
                if w.W_skip is not None:
                    out = out + x.to(out.dtype) @ w.W_skip.T
            return out

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """decode(encode(x)) [..., d_out]."""
        return self.decode(self.encode(x), x)

    def plan(self, n_tokens: int, budget: Optional[int] = None) -> tuple[int, int]:
        """(tokens, features) per chunk of `top_features` under `budget` bytes (default
        llm_widgets.compute.budget.CPU_BUDGET; views pass `memory_budget(session)`):
        _COPIES float32 [tokens, features] buffers fit in it. TopK dictionaries chunk tokens only (their
        activation needs every feature of a token)."""
        budget = CPU_BUDGET if budget is None else int(budget)
        F, s = self.n_features, torch.empty((), dtype=self._compute_dtype()).element_size()
        per = _COPIES * s
        if self.weights.activation == "topk":
            return max(1, min(n_tokens, budget // (per * F))), F
        tokens = max(1, min(n_tokens, 256))
        feats = max(1, min(F, budget // (per * tokens)))
        if feats == F:
            tokens = max(1, min(n_tokens, budget // (per * F)))
        return tokens, feats

    def top_features(self, x: torch.Tensor, k: int, budget: Optional[int] = None):
        """(indices [T, k] int64, values [T, k]) of each token's k most active features of x
        [T, d_in], largest first, exact; computed in chunks of tokens and features (`plan`) so no
        [T, F] array beyond `budget` bytes is ever held. Fewer than k active features: the rest are
        zeros (with valid, arbitrary indices)."""
        k = integer(k, "k", low=1)
        x = torch.as_tensor(x)
        if x.dim() != 2:
            raise LLMWidgetsError(f"top_features takes activations [tokens, d_in], got shape {list(x.shape)}")
        T, F = x.shape[0], self.n_features
        k = min(k, F)
        tc, fc = self.plan(T, budget)
        self.last_plan = (tc, fc)
        ids = torch.zeros(T, k, dtype=torch.long)
        vals = torch.zeros(T, k, dtype=self._compute_dtype())
        w = self.weights
        with torch.no_grad():
            for t0 in range(0, T, tc):
                xn, _, _ = self._in(x[t0:t0 + tc])
                best_v = torch.full((xn.shape[0], k), -1.0, dtype=vals.dtype, device=xn.device)
                best_i = torch.zeros((xn.shape[0], k), dtype=torch.long, device=xn.device)
                for f0 in range(0, F, fc):
                    a = w.encode(xn, f0, min(F, f0 + fc))
                    v, i = a.topk(min(k, a.shape[1]), dim=-1)
                    best_v, pick = torch.cat([best_v, v], 1).topk(k, dim=-1)
                    best_i = torch.cat([best_i, i + f0], 1).gather(1, pick)
                    del a, v, i
                ids[t0:t0 + tc], vals[t0:t0 + tc] = best_i.cpu(), best_v.clamp_min(0).cpu()
        return ids, vals
