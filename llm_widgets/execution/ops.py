"""What a program does to an activation where it is: the writes (ablate, patch, add, set) and the
reductions of what it reads (positions, pooling, readout through the model's head), as small
picklable records, each with one `__call__`.

Both executors call these same objects: the native one inside torch hooks, the nnsight one inside
its trace, here or on a server (NDIF). So this module imports torch and, from llm_widgets, only
the torch-only readout rule (llm_widgets.adapter.readout, which Adapter.readout also uses): both
are shipped by value to a server that does not have llm_widgets. Its errors are
`OpError`, turned into the library's errors by the executor that runs them.

Every op sees an activation as [batch, tokens, features] (the executors reshape the [batch *
tokens, features] some models use inside a block) and `ctx`, the executor's view of the model:
`ctx.call(path, x)` runs one module of the model (for readouts). A write's `rows` (None: every
row) are the batch rows it changes; a write returns a new tensor and never edits its input.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch

from ..adapter import readout


class OpError(ValueError):
    """An op cannot apply to the activation it was given (a donor of another shape, ...)."""


def first(x):
    """The first output of a module (a tuple's first item, or the tensor itself)."""
    return x[0] if isinstance(x, (tuple, list)) else x


def detached(v):
    """A read's value without its autograd graph: a tensor, or a dict of them (an op's several outputs)."""
    if isinstance(v, torch.Tensor):
        return v.detach()
    if isinstance(v, dict):
        return {k: detached(x) for k, x in v.items()}
    return v


def kept(v, site: torch.Tensor, grad: bool):
    """A read's value as it is now, safe from the model's later in-place edits of the site's tensor
    (Falcon adds the attention output into the MLP's output in place, after the "mlp" site): detached
    and copied where it shares the site's storage. With `grad` the value is returned as it is (the
    tensor the model goes on with, so gradients can be taken at it)."""
    if grad:
        return v
    if isinstance(v, dict):
        return {k: kept(x, site, grad) for k, x in v.items()}
    if not isinstance(v, torch.Tensor):
        return v
    v = v.detach()
    return v.clone() if v.untyped_storage().data_ptr() == site.untyped_storage().data_ptr() else v


def _rows(x: torch.Tensor, rows) -> torch.Tensor:
    if rows is None:
        return torch.arange(x.shape[0], device=x.device)
    return torch.as_tensor(rows, device=x.device, dtype=torch.long)


# -- writes -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Columns:
    """Feature columns `cols` (a head's slice, neurons) set to 0 ('zero'), to their mean over the
    rows' positions ('mean') or to `values` ([B, T, len(cols)] or broadcastable: 'set', resample
    ablation) in the rows."""

    cols: Any  # 1-d long tensor
    mode: str = "zero"
    values: Optional[torch.Tensor] = None

    def __call__(self, x: torch.Tensor, rows, ctx) -> torch.Tensor:
        new = x.clone()
        r = _rows(x, rows)
        c = torch.as_tensor(self.cols, device=x.device, dtype=torch.long)
        sel = new[r][..., c]
        if self.mode == "zero":
            sel = torch.zeros_like(sel)
        elif self.mode == "mean":
            sel = sel.reshape(-1, sel.shape[-1]).mean(0).expand_as(sel)
        elif self.mode == "set":
            v = self.values
            if v.shape[-1] != len(c):
                v = v[..., c.to(v.device)]
            if v.shape[0] not in (1, len(r)) or v.shape[1] != x.shape[1]:
                raise OpError(f"resample ablation: the donor is [batch, tokens] = {list(v.shape[:2])}, this "
                              f"run's input is {[len(r), x.shape[1]]}; give a donor with the same shape as the input.")
            sel = v.to(x.device, x.dtype).expand_as(sel)
        else:
            raise OpError(f"unknown mode {self.mode!r}")
        idx = r[:, None, None], torch.arange(x.shape[1], device=x.device)[None, :, None], c[None, None, :]
        new[idx] = sel
        return new


@dataclass(frozen=True)
class Patch:
    """The rows take row `source`'s activation: at `positions` (all features), or in the column
    ranges `cols` ([(start, stop)] per row, all positions: attention heads)."""

    source: int = 0
    positions: Any = None  # 1-d long tensor, one position per row
    cols: Optional[Sequence[tuple[int, int]]] = None

    def __call__(self, x: torch.Tensor, rows, ctx) -> torch.Tensor:
        new = x.clone()
        r = _rows(x, rows)
        if self.cols is None:
            p = torch.as_tensor(self.positions, device=x.device, dtype=torch.long)
            new[r, p] = x[self.source, p]
        else:
            for row, (a, b) in zip(r.tolist(), self.cols):
                new[row, :, a:b] = x[self.source, :, a:b]
        return new


@dataclass(frozen=True)
class Add:
    """`scale` x `vector` ([features]) added at `positions` (None: every position) of the rows."""

    vector: torch.Tensor
    scale: float = 1.0
    positions: Any = None

    def __call__(self, x: torch.Tensor, rows, ctx) -> torch.Tensor:
        new = x.clone()
        r = _rows(x, rows)
        v = self.vector.to(x.device, x.dtype) * self.scale
        if self.positions is None:
            new[r] = new[r] + v
        else:
            p = torch.as_tensor(self.positions, device=x.device, dtype=torch.long)
            p = p % x.shape[1]
            new[r[:, None], p[None, :]] = new[r[:, None], p[None, :]] + v
        return new


@dataclass(frozen=True)
class Replace:
    """The rows' activation replaced by `value` ([B, T, F], or broadcastable), followed along the
    tokens by `suffix` ([1, S, F]: the embeddings of generated tokens) where given: an input given
    as embeddings (attribution feeds the first block its inputs along a path). `leaf`: the value
    is the tensor gradients are taken with respect to (a fresh leaf where the model runs, `ctx.leaf`)."""

    value: torch.Tensor
    suffix: Optional[torch.Tensor] = None
    leaf: bool = False

    def __call__(self, x: torch.Tensor, rows, ctx) -> torch.Tensor:
        v = self.value.to(x.device, x.dtype)
        if self.leaf:
            v = v.detach().clone().requires_grad_(True)
            ctx.leaf = v
        if self.suffix is not None:
            v = torch.cat([v, self.suffix.to(v.device, v.dtype).expand(v.shape[0], -1, -1)], dim=1)
        if rows is None and v.shape == x.shape:
            return v
        new = x.clone()
        new[_rows(x, rows)] = v
        return new


# -- reductions of what is read --------------------------------------------------------------------
@dataclass(frozen=True)
class Positions:
    """[B, P, F]: the activation at `positions` only."""

    positions: Any

    def __call__(self, x: torch.Tensor, ctx) -> torch.Tensor:
        return x[:, torch.as_tensor(self.positions, device=x.device, dtype=torch.long)]


@dataclass(frozen=True)
class Pool:
    """[B, F]: the mean over positions weighted by `mask` ([B, T], e.g. the non-padding tokens)."""

    mask: torch.Tensor

    def __call__(self, x: torch.Tensor, ctx) -> torch.Tensor:
        m = self.mask.to(x.device, torch.float32)
        return (x.float() * m[:, :, None]).sum(1) / m.sum(1)[:, None]


@dataclass(frozen=True)
class Pick:
    """[N, F]: the rows (batch index, token index) listed."""

    batch: Any
    tokens: Any

    def __call__(self, x: torch.Tensor, ctx) -> torch.Tensor:
        return x[torch.as_tensor(self.batch, device=x.device), torch.as_tensor(self.tokens, device=x.device)]


@dataclass(frozen=True)
class Readout:
    """The model's own logits from a residual-stream state: its final norm(s), head, logit scale and
    soft-capping, run on the model where it is (`ctx.call`). Then, with `k`, the top-k
    probabilities and indices and the probability of each next input token (`ids`, [T]) instead of
    every logit: [B, T, k], [B, T, k], [B, T] (the last position's next probability is 0)."""

    norms: tuple
    head: str
    scale: float = 1.0
    softcap: Optional[float] = None
    k: Optional[int] = None
    ids: Optional[torch.Tensor] = None

    def logits(self, h: torch.Tensor, ctx) -> torch.Tensor:
        return readout.logits(h, ctx.call, self.norms, self.head, self.scale, self.softcap, torch.float32)

    def __call__(self, x: torch.Tensor, ctx):
        lg = self.logits(x, ctx)
        return lg if self.k is None else top_and_next(lg, self.k, self.ids)


def top_and_next(lg: torch.Tensor, k: int, ids: Optional[torch.Tensor] = None) -> dict:
    """Of logits [B, T, V]: the top-k probabilities and indices [B, T, k] and the probability of
    each next token of `ids` ([T]; [B, T], 0 at the last position)."""
    probs = torch.softmax(lg.float(), -1)
    top_p, top_i = probs.topk(min(k, probs.shape[-1]), dim=-1)
    nxt = torch.zeros(probs.shape[:2], device=probs.device)
    if ids is not None and probs.shape[1] > 1:
        ids = ids.to(probs.device)
        nxt[:, :-1] = probs[:, torch.arange(len(ids) - 1, device=probs.device), ids[1:]]
    return {"top_p": top_p, "top_i": top_i, "next": nxt}


@dataclass(frozen=True)
class Metric:
    """Of logits [B, V] (or [B, 1, V]: one position): ('logit_diff', a, b), ('logit', a) or ('prob', a) per row,
    with the top-k probabilities and indices: {'values', 'top_p', 'top_i'}. None: the logits
    themselves as 'values' (a metric the caller computes)."""

    metric: Optional[tuple] = None
    k: int = 10
    ends: bool = False  # also the first two rows' logits, as 'ends' (a sweep's clean and corrupted runs)

    def __call__(self, lg: torch.Tensor, ctx) -> dict:
        lg = lg.float()
        if lg.dim() == 3:  # one position kept
            lg = lg[:, 0]
        tp, ti = torch.softmax(lg, -1).topk(min(self.k, lg.shape[-1]), dim=-1)
        m = self.metric
        if m is None:
            vals = lg
        elif m[0] == "logit_diff":
            vals = lg[:, m[1]] - lg[:, m[2]]
        elif m[0] == "logit":
            vals = lg[:, m[1]]
        else:
            vals = torch.softmax(lg, -1)[:, m[1]]
        got = {"values": vals.double(), "top_p": tp, "top_i": ti}
        if self.ends:
            got["ends"] = lg[:2]
        return got


@dataclass(frozen=True)
class Targets:
    """[B, K] float32 target outputs of attribution from the model output (`out`: the whole output
    object, or its logits): kind 'decoder', 'classes' (class logits / probabilities /
    log-probabilities of classes `ids`; `other`: minus that class's value, a contrast) or 'custom'
    (fn(output)).

    'decoder' reads the log-prob (or the logit) of token `ids[n]` at position `positions[n]` (an
    index into the logits kept) of copy `rows[n]` of each input, times `weights[n]`, added to output
    `outputs[n]` (defaults: copy 0, weight 1, output n). The logits hold `copies` copies of each of
    the B inputs, copy-major (copy r of input b is row r * B + b): the prompt with different
    teacher-forced answers appended (llm_widgets.compute.answers). So one output can be the sum of a
    multi-token answer's log-probs, or the difference of two such sums."""

    kind: str
    ids: Any = None
    output: str = "logit"
    other: Optional[int] = None
    positions: Any = None
    fn: Any = None
    rows: Any = None
    weights: Any = None
    outputs: Any = None
    copies: int = 1

    def reads(self, logits: torch.Tensor) -> torch.Tensor:
        """[B, K] the decoder reads of logits [copies * B, P, V], weighted and summed per output."""
        dev = logits.device
        ids = torch.as_tensor(self.ids, device=dev, dtype=torch.long)
        n = len(ids)
        pos = torch.as_tensor(self.positions, device=dev, dtype=torch.long)
        rows = torch.zeros(n, dtype=torch.long, device=dev) if self.rows is None else \
            torch.as_tensor(self.rows, device=dev, dtype=torch.long)
        if logits.shape[0] % self.copies:
            raise OpError(f"{logits.shape[0]} rows of logits are not {self.copies} copies of the inputs")
        b = logits.shape[0] // self.copies
        lg = logits.reshape(self.copies, b, *logits.shape[1:])[rows, :, pos].float()  # [n, B, V]
        lp = torch.log_softmax(lg, dim=-1) if self.output == "log_prob" else lg
        vals = lp.gather(-1, ids[:, None, None].expand(n, b, 1))[..., 0]  # [n, B]
        w = torch.ones(n, device=dev) if self.weights is None else \
            torch.as_tensor(self.weights, device=dev, dtype=torch.float32)
        outs = torch.arange(n, device=dev) if self.outputs is None else \
            torch.as_tensor(self.outputs, device=dev, dtype=torch.long)
        k = n if self.outputs is None else int(max(self.outputs)) + 1
        return torch.zeros(b, k, device=dev).index_add(1, outs, (vals * w[:, None]).transpose(0, 1))

    def __call__(self, out, ctx) -> torch.Tensor:
        if self.kind == "custom":
            vals = self.fn(out)
        elif self.kind == "decoder":
            vals = self.reads(getattr(out, "logits", out))
        else:
            logits = out.logits.float()
            if self.output == "prob":
                logits = torch.softmax(logits, -1)
            elif self.output == "log_prob":
                logits = torch.log_softmax(logits, -1)
            vals = logits[:, list(self.ids)]
            if self.other is not None:
                vals = vals - logits[:, self.other][:, None]
        if vals.dim() == 1:
            vals = vals[:, None]
        return vals.float()


def gradients(out: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
    """[K, B, ...] float32 gradient of each of the K outputs `out` [B, K] with respect to `leaf`
    (row b of out depends on row b of leaf only): one backward per output, batched with vmap where
    every op has a batching rule, else one after the other."""
    k = out.shape[1]
    grad = torch.autograd.grad
    if k == 1:
        return grad(out[:, 0].sum(), leaf)[0].float()[None]
    try:
        eye = torch.eye(k, device=out.device, dtype=out.dtype)[:, None, :].expand(k, out.shape[0], k)
        g = grad(out, leaf, grad_outputs=eye, is_grads_batched=True, retain_graph=True)[0]
    except RuntimeError:  # an op without a batching rule: one backward per target
        g = torch.stack([grad(out[:, j].sum(), leaf, retain_graph=j < k - 1)[0] for j in range(k)])
    return g.float()
