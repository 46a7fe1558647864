"""Attention weights on demand, without ever holding [L, H, T, T].

Two sources with one interface (`AttentionSource`): `EagerAttention` wraps the weights an eager
forward returned (the reference), `CapturedAttention` holds what the model's fast attention
(transformers' sdpa) was called with -- post-rotary queries and keys, the mask, scaling, soft-cap,
position bias, sinks -- and computes a head's weights when asked, block of query rows by block,
exactly as the eager path would (GQA: query head h reads key head h // groups).

Everything else is built on `rows(layer, head, r0, r1)`: a head's full matrix (short inputs), a
max-pooled overview of at most `size` x `size` cells, an exact tile, and the grid thumbnails plus
head statistics computed in one streaming pass per head.
"""
from __future__ import annotations

import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .errors import LLMWidgetsError, UnsupportedModelError

STAT_NAMES = ("entropy", "sink", "prev_token", "diagonal")  # per-head statistics (compute.attention)

ROW_BLOCK = 256  # query rows computed at once: [ROW_BLOCK, T] float32 at a time
OVERVIEW_BLOCK = 128  # rows per block for overviews (pooled right away, while in the cache)
VALIDATED = ("sdpa",)  # the backends whose calls we reproduce (tests compare them with eager)
SINK_NOTE = ("this model's attention has learned sinks (a logit per head that is no token): the weights "
             "shown are the model's own, not renormalised, so each row sums to 1 minus the sink's share "
             "(`sink_column`)")


class AttentionSource:
    """A model's attention weights for one input, by (layer, head) and query rows. `layer` is the
    block index; in a hybrid stack the blocks without softmax attention (linear attention,
    state-space or convolution mixers) are in `missing` (block -> why) and asking for their weights
    raises, saying so: they are never renumbered. `sink_column` ([L, H, T] or None): the weight each
    query row gives a learned attention sink (gpt-oss), which is no token: the rows of the weights
    are the model's own, not renormalised, and sum to 1 - sink_column; `note` says so."""

    n_layers: int
    n_heads: int
    n_tokens: int
    missing: dict = {}  # block -> why it has no softmax attention weights
    rows_of: dict | None = None  # block -> index into the per-block data, where some blocks are missing
    sink_column: np.ndarray | None = None
    note: str = ""

    def _row(self, layer: int) -> int:
        """The index of block `layer` in the data this source holds (its own where none is missing)."""
        why = self.missing.get(layer)
        if why:
            raise LLMWidgetsError(f"block {layer} has no softmax attention weights: {why}. Blocks with "
                                  f"attention: {self.attention_blocks}")
        return layer if self.rows_of is None else self.rows_of[layer]

    @property
    def attention_blocks(self) -> list[int]:
        """The blocks whose attention weights this source gives."""
        return [b for b in range(self.n_layers) if b not in self.missing]

    def rows_t(self, layer: int, head: int, r0: int, r1: int, upto: int | None = None) -> torch.Tensor:
        """[r1 - r0, upto or T] float32 tensor (on the model's device): query rows r0..r1-1 of one
        head, keys 0..upto-1 (upto must cover every key these rows can see: see `seen_upto`)."""
        raise NotImplementedError

    def seen_upto(self, r1: int) -> int:
        """How many keys rows < r1 can attend to (all of them, unless causal)."""
        return self.n_tokens

    def rows(self, layer: int, head: int, r0: int, r1: int) -> np.ndarray:
        """[r1 - r0, T] float32: attention of query rows r0..r1-1 of one head."""
        return self.rows_t(layer, head, r0, r1).cpu().numpy()

    def nbytes(self) -> int:
        raise NotImplementedError

    def _check(self, layer: int, head: int) -> None:
        if not 0 <= layer < self.n_layers or not 0 <= head < self.n_heads:
            raise LLMWidgetsError(f"(layer, head) must be in 0..{self.n_layers - 1} x 0..{self.n_heads - 1}, "
                                  f"got ({layer}, {head})")

    def _blocks(self, r0: int = 0, r1: int | None = None, block: int = ROW_BLOCK):
        r1 = self.n_tokens if r1 is None else r1
        for a in range(r0, r1, block):
            yield a, min(a + block, r1)

    def head(self, layer: int, head: int) -> np.ndarray:
        """[T, T] float32, the whole matrix of one head."""
        self._check(layer, head)
        return np.concatenate([self.rows(layer, head, a, b) for a, b in self._blocks()])

    def mean_rows_t(self, layer: int, r0: int, r1: int, upto: int | None = None) -> torch.Tensor:
        return sum(self.rows_t(layer, h, r0, r1, upto) for h in range(self.n_heads)) / self.n_heads

    def mean_rows(self, layer: int, r0: int, r1: int) -> np.ndarray:
        """[r1 - r0, T]: query rows averaged over the heads of a layer."""
        return self.mean_rows_t(layer, r0, r1).cpu().numpy()

    def tile(self, layer: int, head: int | None, r0: int, c0: int, rows: int, cols: int) -> np.ndarray:
        """[rows, cols] exact weights of a window (head None: the mean over heads)."""
        t = self.n_tokens
        if not (0 <= r0 < t and 0 <= c0 < t and rows >= 1 and cols >= 1):
            raise LLMWidgetsError(f"tile ({r0}, {c0}, {rows}x{cols}) is outside the {t} x {t} matrix")
        r1, c1 = min(r0 + rows, t), min(c0 + cols, t)
        block = self.rows(layer, head, r0, r1) if head is not None else self.mean_rows(layer, r0, r1)
        return block[:, c0:c1]

    def overview(self, layer: int, head: int | None, size: int = 512) -> tuple[np.ndarray, int]:
        """(matrix, step): the [ceil(T/step)]^2 max-pooled view of one head (head None: the mean
        over heads), step = tokens per cell (1: the exact matrix when T <= size)."""
        t = self.n_tokens
        step = max(1, math.ceil(t / size))
        n = math.ceil(t / step)
        out = np.zeros((n, n), np.float32)
        block = step * max(1, OVERVIEW_BLOCK // step)  # small blocks stay in the CPU cache
        with torch.no_grad():
            for a, b in self._blocks(block=block):
                upto = min(t, math.ceil(self.seen_upto(b) / step) * step)
                p = self.rows_t(layer, head, a, b, upto) if head is not None else self.mean_rows_t(layer, a, b, upto)
                if step > 1:
                    p = torch.nn.functional.pad(p, (0, (-p.shape[1]) % step, 0, (-p.shape[0]) % step))
                    p = p.view(p.shape[0] // step, step, p.shape[1] // step, step).amax(dim=(1, 3))
                out[a // step: a // step + p.shape[0], : p.shape[1]] = p.cpu().numpy()
        return out, step

    def summaries(self, size: int, report: Callable[[float, str], None] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
        """(thumbnails [L, H, S, S] block means, statistics [len(STAT_NAMES), L, H]) in one streaming
        pass per head; the same numbers as compute.attention.thumbnails / head_statistics."""
        t, L, H = self.n_tokens, self.n_layers, self.n_heads
        s = min(t, size)
        edges = np.linspace(0, t, s + 1).round().astype(int)
        bin_of = np.repeat(np.arange(s), np.diff(edges))
        area = np.outer(np.diff(edges), np.diff(edges)).astype(np.float64)
        thumbs = np.zeros((L, H, s, s), np.float32)
        stats = np.zeros((len(STAT_NAMES), L, H), np.float32)
        for layer in range(L):
            if layer in self.missing:  # no softmax attention: an empty thumbnail, no statistics
                stats[:, layer] = np.nan
                continue
            for head in range(H):
                acc = np.zeros((s, s), np.float64)
                ent = sink = prev = diag = 0.0
                for a, b in self._blocks():
                    p = self.rows(layer, head, a, b)
                    np.add.at(acc, bin_of[a:b], np.add.reduceat(p, edges[:-1], axis=1))
                    with np.errstate(divide="ignore", invalid="ignore"):
                        ent += float(-np.where(p > 0, p * np.log(p), 0.0).sum())
                    sink += float(p[:, 0].sum())
                    i = np.arange(a, b)
                    diag += float(p[i - a, i].sum())
                    j = i[i >= 1]
                    prev += float(p[j - a, j - 1].sum())
                thumbs[layer, head] = acc / area
                stats[:, layer, head] = [ent / t, sink / t, prev / (t - 1) if t > 1 else np.nan, diag / t]
            if report:
                report((layer + 1) / L, f"attention summaries: layer {layer + 1}/{L}")
        return thumbs, stats


class EagerAttention(AttentionSource):
    """The weights an eager forward returned: [L, H, T, T] (`weights`); or, for a hybrid stack,
    [A, H, T, T] of the A blocks with attention (`blocks`: their indices, of `n_blocks`; `missing`:
    the others and why), when `weights` is None."""

    def __init__(self, attentions: np.ndarray, *, blocks: list[int] | None = None, n_blocks: int | None = None,
                 missing: dict | None = None, sink_column: np.ndarray | None = None, note: str = ""):
        self.n_heads, self.n_tokens = attentions.shape[1], attentions.shape[-1]
        self.sink_column, self.note = sink_column, note
        if blocks is None:
            self.weights, self._data = attentions, attentions
            self.n_layers = attentions.shape[0]
        else:
            self.weights, self._data = None, attentions
            self.n_layers = n_blocks
            self.rows_of = {b: i for i, b in enumerate(blocks)}
            self.missing = dict(missing or {})

    def rows_t(self, layer, head, r0, r1, upto=None):
        self._check(layer, head)
        return torch.from_numpy(self._data[self._row(layer), head, r0:r1, :upto].astype(np.float32))

    def nbytes(self) -> int:
        return int(self._data.nbytes)


@dataclass
class _Call:
    """What one attention call was given (batch of one; tensors stay where the model put them)."""

    query: torch.Tensor  # [H, T, d] post-rotary
    key: torch.Tensor  # [H_kv, T, d]
    mask: torch.Tensor | None  # [1 or H, T, T] bool (True = attend) or additive float, or None
    causal: bool  # no mask: causal when the call was (sdpa's own rule)
    scaling: float
    softcap: float | None
    bias: torch.Tensor | None  # [H, T, T] additive position bias (T5-style), or None
    sinks: torch.Tensor | None  # [H] attention-sink logits (gpt-oss style), or None


class CapturedAttention(AttentionSource):
    """Attention computed on demand from the captured calls, one per block."""

    def __init__(self, calls: list[_Call], *, blocks: list[int] | None = None, n_blocks: int | None = None,
                 missing: dict | None = None):
        self.calls = calls
        self.n_layers = len(calls) if blocks is None else n_blocks
        self.n_heads = calls[0].query.shape[0]
        self.n_tokens = calls[0].query.shape[1]
        if blocks is not None:
            self.rows_of = {b: i for i, b in enumerate(blocks)}
            self.missing = dict(missing or {})
        sinks = [c for c in calls if c.sinks is not None]
        if sinks:
            self.note = SINK_NOTE

    def seen_upto(self, r1: int) -> int:
        return r1 if all(c.causal and c.mask is None and c.bias is None for c in self.calls) else self.n_tokens

    def rows_t(self, layer, head, r0, r1, upto=None):
        self._check(layer, head)
        c = self.calls[self._row(layer)]
        groups = c.query.shape[0] // c.key.shape[0]
        t = c.key.shape[1] if upto is None else upto
        # causal without a mask tensor: keys after the last row are never seen, so only keys < r1
        # are scored (half the work on average) and the rest of each row is 0
        kv = min(r1, t) if (c.causal and c.mask is None and c.bias is None) else t
        with torch.no_grad():
            q = c.query[head, r0:r1].float() * c.scaling
            k = c.key[head // groups, :kv].float()
            s = q @ k.T
            if c.softcap:
                s = torch.tanh(s / c.softcap) * c.softcap
            if c.bias is not None:
                s = s + c.bias[head if c.bias.shape[0] > 1 else 0, r0:r1].float()
            if c.mask is not None:
                m = c.mask[head if c.mask.shape[0] > 1 else 0, r0:r1, :t]
                s = s.masked_fill(~m, float("-inf")) if m.dtype == torch.bool else s + m.float()
            elif c.causal:  # keys from r0 on: row i sees keys up to r0 + i
                above = torch.ones(r1 - r0, kv - r0, dtype=torch.bool, device=s.device).triu(1)
                s[:, r0:] = s[:, r0:].masked_fill(above, float("-inf"))
            if c.sinks is not None:
                s = torch.cat([s, c.sinks[head].float().expand(s.shape[0], 1)], dim=-1)
                p = torch.softmax(s, -1)[:, :-1]
            else:
                p = torch.softmax(s, -1)
            return torch.nn.functional.pad(p, (0, t - kv)) if kv < t else p

    def nbytes(self) -> int:
        seen, total = set(), 0
        for c in self.calls:
            for x in (c.query, c.key, c.mask, c.bias):
                if x is not None and x.data_ptr() not in seen:
                    seen.add(x.data_ptr())
                    total += x.numel() * x.element_size()
        return total


# -- capture -------------------------------------------------------------------------------------
_local = threading.local()


def _install() -> None:
    """Wrap transformers' registered attention functions once: a wrapped function records its
    arguments when the calling thread is capturing, and otherwise only calls through."""
    from transformers.modeling_utils import AttentionInterface

    mapping = AttentionInterface._global_mapping  # shared by every model file's instance
    for name in VALIDATED:
        fn = mapping.get(name)
        if fn is not None and not getattr(fn, "_lw_wrapped", False):
            mapping[name] = _recording(fn)


def _recording(fn):
    import inspect

    sig = inspect.signature(fn)

    def wrapped(module, query, key, value, attention_mask, *args, **kwargs):
        rec = getattr(_local, "recorder", None)
        if rec is not None:
            bound = sig.bind(module, query, key, value, attention_mask, *args, **kwargs)
            bound.apply_defaults()
            rec(module, bound.arguments)
        return fn(module, query, key, value, attention_mask, *args, **kwargs)

    wrapped._lw_wrapped = True
    return wrapped


def _call_of(module, a: dict) -> _Call:
    q, k, mask = a["query"], a["key"], a["attention_mask"]
    extra = a.get("kwargs") or {}
    if q.shape[0] != 1:
        raise LLMWidgetsError("attention capture takes a batch of one input")
    if q.shape[1] % k.shape[1]:
        raise UnsupportedModelError(f"{q.shape[1]} query heads cannot share {k.shape[1]} key heads evenly")
    t_q, t_k = q.shape[2], k.shape[2]
    is_causal = a.get("is_causal")
    is_causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    causal = bool(is_causal) and mask is None and t_q > 1
    if mask is not None:
        mask = mask[0, :, :t_q, :t_k]
    bias = a.get("position_bias")
    if bias is not None:
        bias = bias[0, :, :t_q, :t_k]
    scaling = a.get("scaling")
    sinks = extra.get("s_aux", extra.get("sinks"))
    return _Call(query=q[0].detach(), key=k[0].detach(), mask=mask, causal=causal,
                 scaling=float(scaling) if scaling is not None else q.shape[-1] ** -0.5,
                 softcap=extra.get("softcap"), bias=bias, sinks=sinks)


@contextmanager
def capture_attention(model, blocks: list):
    """While inside, the model runs its fast attention (sdpa; an eager model is switched to sdpa
    and back) and every block's attention call is recorded. Yields a holder whose `.source()` is
    the CapturedAttention of the forward run inside. Hold the model lock around it."""
    _install()
    impl = getattr(model.config, "_attn_implementation", None)
    switched = impl not in VALIDATED
    if switched:
        if not hasattr(model, "set_attn_implementation"):
            raise UnsupportedModelError(f"attention on demand needs {VALIDATED} attention; this model uses {impl!r}")
        try:
            model.set_attn_implementation("sdpa")
        except Exception as e:
            raise UnsupportedModelError(f"this model has no sdpa attention path ({e}); attention on demand "
                                        "needs one (or use eager attention on shorter inputs)") from e
    owner = {}
    for i, b in enumerate(blocks):
        for m in b.module.modules():
            owner.setdefault(id(m), i)
    per_block: dict[int, list] = {}

    def record(module, arguments):
        i = owner.get(id(module))
        if i is not None:
            per_block.setdefault(i, []).append(_call_of(module, arguments))

    holder = _Holder(per_block, len(blocks), blocks)
    _local.recorder = record
    try:
        yield holder
    finally:
        _local.recorder = None
        if switched:
            model.set_attn_implementation(impl)


class _Holder:
    def __init__(self, per_block, n, blocks):
        self.per_block, self.n, self.blocks = per_block, n, blocks

    def source(self) -> CapturedAttention:
        if not self.blocks:
            raise UnsupportedModelError("attention on demand needs the model's blocks, which were not found "
                                        "(encoder-decoder models): use eager attention")
        if not self.per_block:
            raise UnsupportedModelError(
                "this model's attention does not go through transformers' attention functions (ALiBi "
                "models such as BLOOM or Falcon, DeBERTa, custom code), so it cannot be read on demand: "
                "load it with attn_implementation='eager' and use inputs short enough for eager weights")
        shared = all(b.module is self.blocks[0].module for b in self.blocks)
        if shared:  # one block module called n times (ALBERT): its calls in order are the layers
            calls = self.per_block.get(0, [])
        else:
            # a block with no call may be a linear-attention mixer or softmax attention computed another
            # way: refused (short inputs take the eager weights, checked block by block)
            bad = [i for i in range(self.n) if len(self.per_block.get(i, [])) != 1]
            if bad:
                raise UnsupportedModelError(
                    f"attention on demand expects one self-attention call per block; block {bad[0]} made "
                    f"{len(self.per_block.get(bad[0], []))} (cross-attention or a non-standard layer): load "
                    "the model with attn_implementation='eager' to read its weights")
            calls = [self.per_block[i][0] for i in range(self.n)]
        if len(calls) != self.n:
            raise UnsupportedModelError(f"captured {len(calls)} attention calls for {self.n} blocks")
        return CapturedAttention(calls)


# -- eager weights, block by block ---------------------------------------------------------------
@contextmanager
def attention_owners(model, blocks: list, shared: bool = False):
    """While inside, `owners` maps id(tensor) -> (block index, tensor) for every 4-D tensor a module
    inside a block returns after its first output (attention weights, and whatever else a mixer
    returns there): which block returned each entry of the model's `attentions`. A shared block
    (ALBERT) records nothing: its calls in order are the layers."""
    owners: dict = {}
    handles = []
    if not shared:
        for i, b in enumerate(blocks):
            for m in b.module.modules():
                def hook(mod, args, out, i=i):
                    if isinstance(out, (tuple, list)):
                        for x in out[1:]:
                            if isinstance(x, torch.Tensor) and x.dim() == 4:
                                owners[id(x)] = (i, x)
                handles.append(m.register_forward_hook(hook))
    try:
        yield owners
    finally:
        for h in handles:
            h.remove()


def attention_by_block(attn, owners: dict, blocks: list, n_tokens: int, causal: bool, sinks: list | None = None):
    """Check the attention weights an eager forward returned, every one of them, and say which block
    each belongs to. Returns (weights [A, H, T, T] tensor or None, block of each row, missing:
    block -> why it has no softmax weights, sink_column [A, H, T] or None, note).

    An entry is softmax weights when it is [1, H, T, T] with rows summing to 1 (or to less where
    the block's attention passes learned sinks to its attention function, `sinks[block]` as the adapter
    observed it: the rest is the sink's), nothing above the diagonal
    where the model is causal; anything else (a linear-attention state K^T V, T != head_dim or not)
    is not drawn as attention: its block goes to `missing` with the reason. A note explains an
    entry that cannot be placed; then the weights are None."""
    n = len(blocks)
    got = [a for a in attn if a is not None]
    placed = []
    for a in got:
        hit = owners.get(id(a))
        placed.append(hit[0] if hit is not None and hit[1] is a else None)
    if any(p is None for p in placed):
        if len(got) != n:
            return None, [], {}, None, (
                f"the model returned {len(got)} attention tensors for {n} blocks and not every one could be "
                f"traced to the block that returned it, so they cannot be drawn under their blocks")
        placed = list(range(n))  # one per block, in order (a shared block, or copies of the weights)
    has_sinks = list(sinks) if sinks else [False] * n
    rows, keep, missing, sinks = [], [], {}, []
    any_sink = False
    for a, b in zip(got, placed):
        if b in keep or b in missing:
            return None, [], {}, None, (f"block {b} returned more than one attention tensor (cross-attention "
                                        f"or a non-standard layer): load it with a Layout, or read them yourself")
        w = a[0].float()
        if w.dim() != 3 or w.shape[-1] != n_tokens or w.shape[-2] != n_tokens:
            missing[b] = (f"the tensor it returns as attention is {tuple(a.shape)}, not [1, heads, {n_tokens}, "
                          f"{n_tokens}] weights over the tokens (a linear-attention or state-space mixer's state)")
            continue
        total = w.sum(-1)
        ok = bool(torch.allclose(total, torch.ones_like(total), atol=1e-2))
        sink = None
        if not ok and bool((w >= -1e-6).all()) and bool((total <= 1 + 1e-2).all()) and \
                has_sinks[b]:
            ok, sink, any_sink = True, (1.0 - total).clamp_min(0.0), True
        if not ok:
            missing[b] = (f"the weights it returns do not sum to 1 over the keys (row sums "
                          f"{float(total.min()):.3g}..{float(total.max()):.3g}): they are not softmax weights "
                          f"(a linear-attention or state-space mixer)")
            continue
        if causal and float(torch.triu(w, 1).abs().max()) > 1e-6:
            return None, [], {}, None, (
                f"The model is causal but block {b}'s returned attention weights attend to later tokens: "
                f"they are not the weights it computes with. Load it with attn_implementation='eager'.")
        rows.append(w)
        keep.append(b)
        sinks.append(sink if sink is not None else torch.zeros_like(total))
    for b in range(n):
        if b not in keep and b not in missing:
            missing[b] = "it returned no attention weights (its mixer is not softmax attention)"
    if not keep:
        return None, [], missing, None, ("no block returns softmax attention weights: "
                                         + "; ".join(f"block {b}: {why}" for b, why in sorted(missing.items())))
    order = sorted(range(len(keep)), key=keep.__getitem__)
    weights = torch.stack([rows[i] for i in order])
    sink_column = torch.stack([sinks[i] for i in order]) if any_sink else None
    note = SINK_NOTE if any_sink else ""
    if missing:
        note = (note + "; " if note else "") + ("blocks without softmax attention: " + ", ".join(
            str(b) for b in sorted(missing)) + f" (block {min(missing)}: {missing[min(missing)]})")
    return weights, sorted(keep), missing, sink_column, note
