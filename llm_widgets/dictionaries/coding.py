"""The arithmetic of a sparse dictionary, torch only: encode an activation into feature activations,
decode them back, and the write ops that put a dictionary into a model's forward: `Splice` (the
site becomes the dictionary's output plus its error term, with feature edits), `FeaturePatch` (one
feature's activation taken from another batch row: feature-level patching) and `Stash` (a
transcoder's input kept, where the forward reaches it, for the write at its output site).

Like llm_widgets.execution.ops, this module imports torch and nothing else from llm_widgets but
OpError: `Splice` is an op of the execution layer, shipped by value to servers without the library
(NDIF), and its refusals are `OpError`, which the executor turns into the library's errors.
`Dictionary` (llm_widgets.dictionaries.dictionary) calls the same functions, so what a view shows
and what an edit does are computed by one piece of code.

Semantics (as SAELens computes them; sparsify, Gemma Scope and circuit-tracer are special cases):
    x' = normalize(x) - b_dec * apply_b_dec_to_input
    pre = x' @ W_enc + b_enc
    relu: relu(pre)          jumprelu: relu(pre) * (pre > threshold)   (BatchTopK at inference too)
    topk: relu of the k largest pre per token, 0 elsewhere
    gated: (x' @ W_enc + b_gate > 0) * relu(x' @ (W_enc * exp(r_mag)) + b_mag)
    decode(a) = denormalize(a @ W_dec + b_dec) (+ x @ W_skip.T for a skip connection)
normalize: 'constant_norm_rescale' scales each token to norm sqrt(d_in) (decode scales back),
'layer_norm' centres and scales by the standard deviation (decode undoes it); 'none' and
'expected_average_only_in' (folded into the weights by SAELens at load time) do nothing here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from ..execution.ops import OpError

ACTIVATIONS = ("relu", "jumprelu", "topk", "batchtopk", "gated")
NORMALIZATIONS = ("none", "expected_average_only_in", "constant_norm_rescale", "layer_norm")


def normalize_in(x: torch.Tensor, mode: str, d_in: int):
    """(normalized x, scale, shift): decode's output is `out * scale + shift` to undo it."""
    if mode == "constant_norm_rescale":
        coeff = (d_in ** 0.5) / x.norm(dim=-1, keepdim=True)
        return x * coeff, 1.0 / coeff, 0.0
    if mode == "layer_norm":
        mu = x.mean(dim=-1, keepdim=True)
        xc = x - mu
        std = xc.std(dim=-1, keepdim=True)
        return xc / (std + 1e-5), std, mu
    return x, 1.0, 0.0


def preactivation(xin: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, b_in: Optional[torch.Tensor]):
    """x' @ W_enc + b_enc, with x' = xin - b_in (b_in None: no input bias). W_enc may be a column
    slice (a chunk of features) with the matching slice of b_enc."""
    if b_in is not None:
        xin = xin - b_in
    if xin.dim() == 2:
        return torch.addmm(b_enc, xin, W_enc)  # one fused kernel (the same sum)
    return xin @ W_enc + b_enc


def activate(pre: torch.Tensor, activation: str, threshold: Optional[torch.Tensor] = None,
             gate: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Feature activations from pre-activations: relu / jumprelu (threshold, [F] or scalar; computed
    in place, so `pre` is consumed) / gated (`gate`, the gate pre-activations). TopK is
    `topk_activate` (it needs every feature)."""
    if activation == "relu":
        return torch.relu(pre)
    if activation in ("jumprelu", "batchtopk"):  # relu(pre) * (pre > threshold), in place (pre is consumed)
        mask = pre > threshold
        return torch.relu_(pre).mul_(mask)
    if activation == "gated":
        return torch.relu(pre) * (gate > 0)
    raise OpError(f"activation {activation!r} is not elementwise")


def topk_activate(pre: torch.Tensor, k: int) -> torch.Tensor:
    """SAELens's TopK: the k largest pre-activations per token, through relu; 0 elsewhere."""
    top = torch.topk(pre, k=min(int(k), pre.shape[-1]), dim=-1)
    return torch.zeros_like(pre).scatter_(-1, top.indices, torch.relu(top.values))


@dataclass(frozen=True)
class Weights:
    """A dictionary's tensors and settings in the form the ops use (torch only, picklable)."""

    W_enc: torch.Tensor  # [d_in, F]
    b_enc: torch.Tensor  # [F]
    W_dec: torch.Tensor  # [F, d_out]
    b_dec: torch.Tensor  # [d_out]
    activation: str = "relu"
    k: Optional[int] = None
    threshold: Optional[torch.Tensor] = None  # [F] (jumprelu, batchtopk)
    b_gate: Optional[torch.Tensor] = None  # gated: the gate's bias; b_enc holds b_mag
    r_mag: Optional[torch.Tensor] = None  # gated: magnitude scale (log) per feature
    b_in: Optional[torch.Tensor] = None  # subtracted from the input before encoding (b_dec, or None)
    normalize: str = "none"
    W_skip: Optional[torch.Tensor] = None  # [d_out, d_in] skip connection (x @ W_skip.T added)

    def encode(self, x: torch.Tensor, start: int = 0, stop: Optional[int] = None) -> torch.Tensor:
        """Feature activations [..., F] (or features start:stop of an elementwise activation) of x
        [..., d_in] (already normalized: `normalize_in`)."""
        stop = self.W_enc.shape[1] if stop is None else stop
        W, b = self.W_enc[:, start:stop], self.b_enc[start:stop]
        if self.activation == "gated":
            xin = x - self.b_in if self.b_in is not None else x
            gate = xin @ W + self.b_gate[start:stop]
            pre = xin @ (W * torch.exp(self.r_mag[start:stop])) + b
            return activate(pre, "gated", gate=gate)
        pre = preactivation(x, W, b, self.b_in)
        if self.activation == "topk":
            if (start, stop) != (0, self.W_enc.shape[1]):
                raise OpError("TopK activations need every feature at once (use Dictionary.top_features)")
            return topk_activate(pre, self.k)
        th = None if self.threshold is None else self.threshold[start:stop]
        return activate(pre, self.activation, threshold=th)


def _index(v, n: int, device) -> torch.Tensor:
    return torch.as_tensor(v, dtype=torch.long, device=device).reshape(-1) if v is not None else \
        torch.zeros(0, dtype=torch.long, device=device)


ALL = -2  # FeaturePatch: every feature of the row (the whole reconstruction) taken from the source row
NONE = -1  # FeaturePatch: no feature (with error=True: the error term alone)


def stash_of(ctx) -> dict:
    """The dictionary of values ops keep on `ctx` for later ops of the same forward (created once)."""
    box = getattr(ctx, "stash", None)
    if box is None:
        box = {}
        ctx.stash = box
    return box


@dataclass(frozen=True)
class Stash:
    """Changes nothing: keeps the activation on `ctx` under `key`, for a later write of the same
    forward (a transcoder reads the MLP input and writes the MLP output: `Splice.inputs`)."""

    key: str

    def __call__(self, x: torch.Tensor, rows, ctx) -> torch.Tensor:
        stash_of(ctx)[self.key] = x
        return x


def _input(x: torch.Tensor, keys, ctx, w: Weights) -> torch.Tensor:
    """The dictionary's input: the site's own activation x, or the sum of the stashed values `keys`
    (a transcoder's input, read earlier in this forward; taken off the stash, so a stale value from
    another forward is never used)."""
    if keys:
        box = stash_of(ctx)
        missing = [k for k in keys if k not in box]
        if missing:
            raise OpError(f"the transcoder's input was not read before its output in this forward ({missing}): "
                          f"its input site must come before its output site")
        xin = box.pop(keys[0])
        for k in keys[1:]:
            xin = xin + box.pop(k)
        if xin.shape[:-1] != x.shape[:-1]:
            raise OpError(f"the transcoder's input is {list(xin.shape)}, its output site {list(x.shape)}")
        xin = xin.to(x.device)  # its input read on another device (a model dispatched over devices)
    else:
        xin = x
    if xin.shape[-1] != w.W_enc.shape[0]:
        raise OpError(f"the dictionary reads {w.W_enc.shape[0]} features per token, the site has {xin.shape[-1]}")
    if x.shape[-1] != w.W_dec.shape[1]:
        raise OpError(f"the dictionary writes {w.W_dec.shape[1]} features per token, the site has {x.shape[-1]}")
    return xin


def _reconstruction(w: Weights, a: torch.Tensor, xin: torch.Tensor, scale, shift) -> torch.Tensor:
    """decode(a): (a @ W_dec + b_dec) * scale + shift, plus the skip connection of the input xin."""
    rec = (a @ w.W_dec + w.b_dec) * scale + shift
    return rec + xin @ w.W_skip.T if w.W_skip is not None else rec


@dataclass(frozen=True)
class Splice:
    """The site's activation x replaced by the dictionary's output plus its error term:
    decode(a') + (x - decode(a)), where a = encode(x) and a' is a with the features `ablate` set to
    0, `clamp_ids` set to `clamp_values` and `add_values` added to `add_ids`, at `positions` (None:
    every position) of the rows. Computed as x + (decode(a') - decode(a)), the same number without
    the rounding of subtracting and adding the reconstruction, so with no edit the activation is
    x exactly. `keep_error=False`: the site becomes decode(a) alone (the dictionary's reconstruction,
    for "loss recovered"). `inputs`: the `Stash` keys whose sum is the dictionary's input (a
    transcoder: its input site is read earlier in the forward; x is then its output site); empty:
    x itself (an SAE)."""

    weights: Weights
    ablate: Any = None
    clamp_ids: Any = None
    clamp_values: Any = None
    add_ids: Any = None
    add_values: Any = None
    positions: Any = None
    keep_error: bool = True
    inputs: tuple = ()

    def __call__(self, x: torch.Tensor, rows, ctx) -> torch.Tensor:
        w = self.weights
        dt = w.W_enc.dtype
        xin = _input(x, self.inputs, ctx, w).to(dt)
        xn, scale, shift = normalize_in(xin, w.normalize, w.W_enc.shape[0])
        a = w.encode(xn)
        r = torch.arange(x.shape[0], device=x.device) if rows is None else \
            torch.as_tensor(rows, dtype=torch.long, device=x.device)
        if not self.keep_error:
            rec = _reconstruction(w, a, xin, scale, shift)
            new = x.clone()
            new[r] = rec[r].to(x.dtype)
            return new
        edited = a.clone()
        pos = slice(None)
        if self.positions is not None:
            pos = torch.as_tensor(self.positions, dtype=torch.long, device=x.device).reshape(-1)
            if bool(((pos < -x.shape[1]) | (pos >= x.shape[1])).any()):
                raise OpError(f"position(s) {pos.tolist()} are outside the {x.shape[1]} tokens of this input")
            pos = pos % x.shape[1]
        sel = edited[r][:, pos]
        ab = _index(self.ablate, a.shape[-1], x.device)
        if len(ab):
            sel[..., ab] = 0
        cl = _index(self.clamp_ids, a.shape[-1], x.device)
        if len(cl):
            sel[..., cl] = torch.as_tensor(self.clamp_values, dtype=dt, device=x.device)
        ad = _index(self.add_ids, a.shape[-1], x.device)
        if len(ad):
            sel[..., ad] = sel[..., ad] + torch.as_tensor(self.add_values, dtype=dt, device=x.device)
        edited[r.reshape(-1, 1), torch.arange(x.shape[1], device=x.device)[pos].reshape(1, -1)] = sel
        delta = ((edited - a) @ w.W_dec) * scale
        return (x.to(dt) + delta).to(x.dtype)


@dataclass(frozen=True)
class FeaturePatch:
    """Feature-level patching: row `rows[j]` takes row `source`'s activation of feature
    `features[j]` (ALL: every feature; NONE: none) at position `positions[j]`, its own error term
    kept, or also taken from row `source` where `error[j]`; the site moves by the decoded
    difference, (a_source[f] - a_row[f]) * W_dec[f] (times the row's own decode scale of a
    normalizing dictionary). Every feature and the error term together give row `source`'s
    activation itself (activation patching of the site). `inputs`: as `Splice` (a transcoder).
    Encodes only the patched tokens: [2 * rows, F]."""

    weights: Weights
    features: Any  # [n] long, one per row
    positions: Any  # [n] long, one per row
    error: Any = None  # [n] bool (None: no row takes the error term)
    source: int = 0
    inputs: tuple = ()

    def __call__(self, x: torch.Tensor, rows, ctx) -> torch.Tensor:
        w = self.weights
        dt = w.W_enc.dtype
        xin = _input(x, self.inputs, ctx, w)
        T = x.shape[1]
        r = torch.as_tensor(rows, dtype=torch.long, device=x.device).reshape(-1)
        f = torch.as_tensor(self.features, dtype=torch.long, device=x.device).reshape(-1)
        p = torch.as_tensor(self.positions, dtype=torch.long, device=x.device).reshape(-1)
        if not len(r) == len(f) == len(p):
            raise OpError(f"feature patching takes one feature and one position per row: {len(r)} rows, {len(f)} "
                          f"features, {len(p)} positions")
        if bool(((p < -T) | (p >= T)).any()):
            raise OpError(f"position(s) {p.tolist()} are outside the {T} tokens of this input")
        if bool(((f < ALL) | (f >= w.W_enc.shape[1])).any()):
            raise OpError(f"feature ids must be in 0..{w.W_enc.shape[1] - 1} (or ALL / NONE), got {f.tolist()}")
        p = p % T
        n = len(r)
        both = torch.cat([xin[self.source, p], xin[r, p]]).to(dt)  # [2n, d_in]: the source's, then the row's
        xn, scale, shift = normalize_in(both, w.normalize, w.W_enc.shape[0])
        a = w.encode(xn)
        diff = torch.zeros_like(a[n:])
        one = torch.nonzero(f >= 0).reshape(-1)
        diff[one, f[one]] = a[one, f[one]] - a[n + one, f[one]]
        every = torch.nonzero(f == ALL).reshape(-1)
        diff[every] = a[every] - a[n + every]
        own_scale = scale[n:] if torch.is_tensor(scale) else scale
        delta = (diff @ w.W_dec) * own_scale
        if self.error is not None:
            err = torch.as_tensor(self.error, dtype=torch.bool, device=x.device).reshape(-1)
            if bool(err.any()):
                y = torch.cat([x[self.source, p], x[r, p]]).to(dt)
                e = y - _reconstruction(w, a, both, scale, shift)  # the error terms, source's then the row's
                delta = delta + (e[:n] - e[n:]) * err[:, None].to(dt)
        new = x.clone()
        new[r, p] = (x[r, p].to(dt) + delta).to(x.dtype)
        return new
