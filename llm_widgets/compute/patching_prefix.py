"""Activation patching on the corrupted run's key/value cache (causal language models;
llm_widgets.compute.patching, `reuse_prefix`).

A patch at position p changes nothing before p, so the corrupted run is made once with its
key/value cache, and a forward whose runs patch nothing before s runs only the tokens [s, position]
on that cache cut at s (one copy below the lowest patched layer, the batch's copies above it). Its
tokens before `position` run first and stop once the last layer has cached their keys and values
(nothing else of the last layer reaches the output); then the token `position` alone. Runs that
patch nothing (the clean activation equals the corrupted one to the bit: every position before the
first changed token) or that cannot reach the output (a position after `position`; in the last
layer any position but `position`) take the corrupted run's numbers without running
(`unchanged_runs`). The other runs, sorted by the first position they patch, are cut into forwards
that balance a forward's fixed cost against the tokens it recomputes (`prefix_forwards`, `_plan`).
The first forward carries one unpatched copy, which must give the corrupted run's logits
(`agrees`); where it does not, or where the model does not allow it (not causal, a classifier, no
key/value cache of the usual kind, rotary scaling that depends on the input's length: `cache_arg`,
`prefix_of`), every forward runs the whole input, as with `reuse_prefix=False`.
"""
from __future__ import annotations

import copy
import inspect
from typing import Callable

import numpy as np
import torch

from ..execution.hooks import hooks
from .patching_runs import output_at

CACHE_ARGS = ("cache", "past_key_values")  # transformers 5.x's name for the key/value cache, then the older one
# fixed cost of one forward pass per layer, in units of one token's work through one layer (d_model**2): on a CPU
# about 0.4 ms, 40 tokens of a d_model=128 model; on a GPU a token's work is cheap and a call is not
FORWARD_COST = 2 ** 20
FORWARD_COST_ACCELERATOR = 2 ** 27


class _Stop(Exception):
    """Raised by the last layer's cache once it holds the new tokens' keys and values (`_Prefix.run`)."""


def cache_arg(model, ad, ex: dict) -> str | None:
    """The name of the model's key/value cache argument where the corrupted run's prefix can be
    reused: a causal LM (per-token logits) fed the usual tokenizer tensors, one sequence, no padding."""
    if not ad.causal or ad.output != "lm" or ad.shared:
        return None
    params = inspect.signature(model.forward).parameters
    arg = next((a for a in CACHE_ARGS if a in params), None)
    if arg is None or "logits_to_keep" not in params or set(ex) - {"input_ids", "attention_mask", "token_type_ids"}:
        return None
    if any(v.dim() != 2 or v.shape[0] != 1 for v in ex.values()):
        return None
    if "attention_mask" in ex and not bool(ex["attention_mask"].all()):
        return None
    return arg


class _Prefix:
    """The corrupted run's key/value cache of tokens [0, T), for patched forwards over the tokens
    [start, pos] on that cache cut at `start`.

    split: run the tokens [start, pos) first, stopped as soon as the last layer has cached their keys
    and values (nothing else of the last layer reaches the output at `pos`), then the token `pos`
    alone; else all of [start, pos] in one forward (a model dispatched by accelerate, whose hooks
    must see every forward to its end)."""

    def __init__(self, model, ex: dict, pos: int, cache, arg: str, split: bool):
        self.model, self.ex, self.pos, self.cache, self.arg, self.split = model, ex, pos, cache, arg, split

    @staticmethod
    def usable(cache, n_layers: int, T: int) -> bool:
        """A transformers cache of plain growing layers (full attention, or sliding windows not yet
        full), one per block, each holding all T tokens of the one corrupted sequence."""
        try:
            from transformers.cache_utils import Cache, DynamicLayer, DynamicSlidingWindowLayer
        except ImportError:
            return False
        layers = getattr(cache, "layers", None)
        if not isinstance(cache, Cache) or getattr(cache, "offloading", False) or not isinstance(layers, list) \
                or len(layers) != n_layers:
            return False
        for lay in layers:
            if type(lay) not in (DynamicLayer, DynamicSlidingWindowLayer):
                return False
            k, v = getattr(lay, "keys", None), getattr(lay, "values", None)
            if not (isinstance(k, torch.Tensor) and isinstance(v, torch.Tensor) and k.dim() == 4 and v.dim() == 4
                    and k.shape[0] == 1 and v.shape[0] == 1 and k.shape[-2] == T and v.shape[-2] == T):
                return False
            if type(lay) is DynamicSlidingWindowLayer and getattr(lay, "cumulative_length", None) != T:
                return False
        return True

    def _cut(self, start: int, layer: int, batch: int, widen: bool):
        """A copy of the cache holding tokens [0, start): one copy of them up to `layer` and `batch`
        copies above it (widen), or `batch` copies everywhere. Views: the cache's update concatenates
        new tensors, it never writes into these."""
        cache = copy.copy(self.cache)
        cache.layers = []
        for i, lay in enumerate(self.cache.layers):
            new = copy.copy(lay)
            k, v = lay.keys[..., :start, :], lay.values[..., :start, :]
            n = batch if (i > layer or not widen) else 1
            if n > 1:
                k, v = k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1)
            new.keys, new.values = k, v
            if hasattr(lay, "cumulative_length"):  # a sliding-window layer counts the tokens it has seen
                new.cumulative_length = start
            cache.layers.append(new)
        return cache

    def _inputs(self, lo: int, hi: int, cache, batch: int, widen: bool) -> dict:
        out = {k: v[:, lo:hi] for k, v in self.ex.items() if k != "attention_mask"}
        if "attention_mask" in self.ex:  # the cached tokens and the new ones
            out["attention_mask"] = self.ex["attention_mask"][:, :hi]
        n = 1 if widen else batch
        out = {k: v.expand(n, -1) for k, v in out.items()}
        out[self.arg] = cache
        out["use_cache"] = True
        return out

    def run(self, edits_for: Callable[[int, int], list], start: int, layer: int, batch: int, widen: bool,
            split: bool) -> torch.Tensor:
        """Logits [batch, V] at `pos` of `batch` patched runs that patch nothing before `start`, the
        first of them at `layer`; edits_for(lo, hi): the hooks for a forward over tokens [lo, hi).
        split: two forwards (see the class), where `split` allows it."""
        cache = self._cut(start, layer, batch, widen)
        lo = start
        if split and self.split and start < self.pos:
            last = cache.layers[-1]
            update = last.update

            def then_stop(*args, **kwargs):
                got = update(*args, **kwargs)
                if args and isinstance(args[0], torch.Tensor) and args[0].shape[-2] == self.pos - start:
                    raise _Stop
                return got
            last.update = then_stop
            try:
                with hooks(self.model, edits_for(start, self.pos)), torch.no_grad():
                    self.model(**self._inputs(start, self.pos, cache, batch, widen), output_attentions=False,
                               output_hidden_states=False, return_dict=True, logits_to_keep=1)
            except _Stop:
                pass
            finally:
                del last.update
            if any(lay.keys.shape[-2] != self.pos or lay.values.shape[-2] != self.pos for lay in cache.layers):
                raise RuntimeError("the model did not cache every layer's keys and values in order")
            lo = self.pos
        with hooks(self.model, edits_for(lo, self.pos + 1)):
            return output_at(self.model, self._inputs(lo, self.pos + 1, cache, batch, widen), self.pos - lo)[0]


def prefix_of(session, ex: dict, pos: int, arg: str, out) -> _Prefix | None:
    """The corrupted run's cache where the model gave one that can be cut (`_Prefix.usable`) and
    its position embeddings do not depend on the length of the input (rotary scaling by length)."""
    ad = session.adapter
    T = ex["input_ids"].shape[1]
    cache = next((c for c in (getattr(out, a, None) for a in CACHE_ARGS) if c is not None), None)
    if pos < 1 or not _Prefix.usable(cache, ad.n_layers, T):
        return None
    config = getattr(session.model, "config", None)
    for key in ("rope_scaling", "rope_parameters"):
        rope = getattr(config, key, None)
        for r in (rope.values() if isinstance(rope, dict) and not ({"rope_type", "type"} & set(rope)) else [rope]):
            if isinstance(r, dict) and str(r.get("rope_type", r.get("type", ""))) in ("dynamic", "longrope"):
                return None
    return _Prefix(session.model, ex, pos, cache, arg, split=not session.dispatched)


def agrees(got: torch.Tensor, want: torch.Tensor, dtype) -> bool:
    """The unpatched copy of a forward from the prefix gives the corrupted run's logits (within the
    model's precision)."""
    got = got.float().to(want.device)
    tol = 1e-4 if dtype == torch.float32 else 2e-2
    return got.shape == want.shape and bool((got - want).abs().max() <= tol * max(1.0, float(want.abs().max())))


def _plan(starts, layers, cap: int, end: int, n_layers: int, overhead: float,
          split: bool) -> list[tuple[int, int, bool]]:
    """Cut the patched runs, in the order given (`starts`: the first position each patches; `layers`:
    its layer, not decreasing), into forwards (a, b, split) over the runs [a, b), at most `cap` of
    them, that minimise an estimate of the work (dynamic programming). A forward from token
    s = min(starts[a:b]) widened at layer l = layers[a] costs `overhead` per model call and its
    tokens [s, end): once through the layers up to l, once per run through the rest of l and the
    layers above; split (where allowed): two calls, the last layer only caching keys and values of
    all but the last token."""
    n = len(starts)
    if n == 0:
        return []
    st = np.asarray(starts, dtype=np.float64)
    lay = np.asarray(layers, dtype=np.float64)
    W = min(cap, n)
    b = np.arange(1, n + 1)[:, None]
    w = np.arange(1, W + 1)[None, :]  # runs in the forward [b - w, b)
    a = np.clip(b - w, 0, None)
    s = np.empty((n, W))  # min(starts[b - w:b])
    s[:, 0] = st
    for k in range(1, W):
        s[:, k] = np.minimum(s[:, k - 1], st[np.clip(np.arange(n) - k, 0, None)])
    q = end - s
    l = lay[a]
    below = l + 1
    above = np.maximum(n_layers - 1 - l, 0) + 0.5  # the rest of layer l and the layers above it
    cost = overhead + q * (below + w * above)
    two = np.full_like(cost, np.inf)
    if split:
        last = np.where(l < n_layers - 1, 0.75, 0.0)  # the last layer: keys and values only
        two = np.where(q > 1, 2 * overhead + q * (below + w * (above - last)) + w * last, np.inf)
    use_two = two < cost
    cost = np.where(use_two, two, cost)
    cost[(b - w) < 0] = np.inf
    best = np.zeros(n + 1)
    back = np.zeros(n + 1, dtype=np.int64)
    for j in range(1, n + 1):
        m = min(W, j)
        c = best[j - m:j][::-1] + cost[j - 1, :m]  # c[k]: the last forward holds runs [j - k - 1, j)
        k = m - 1 - int(np.argmin(c[::-1]))  # ties: the most runs in the last forward
        best[j], back[j] = c[k], k
    cuts, j = [], n
    while j > 0:
        k = int(back[j])
        cuts.append((j - k - 1, j, bool(use_two[j - 1, k])))
        j -= k + 1
    return cuts[::-1]


def unchanged_runs(acts: dict, acts_x: dict, patches: list, T: int, H: int, dh: int, pos: int,
                   n_layers: int) -> set:
    """The patched runs (indices into `patches`) that are the corrupted run itself: the clean
    activation is the corrupted one to the bit (`acts` / `acts_x`: the clean / corrupted run's, by
    (site, layer)), or the patch cannot reach the output (a position after `pos`; in the last layer
    any position but `pos`). They take the corrupted run's numbers instead of running again."""
    same = {}
    for key, a in acts.items():
        eq = (a == acts_x[key].to(a.device))[0]  # [T, D]
        w = dh[key[1]] if isinstance(dh, dict) else dh  # per block: its own head width
        same[key] = (eq.view(T, -1, w).all(-1).all(0) if key[0] == "heads" else eq.all(-1)).tolist()
    return {j for j, (s, l, i) in enumerate(patches)
            if same[(s, l)][i] or (s != "heads" and (i > pos or (l == n_layers - 1 and i != pos)))}


def prefix_forwards(prefix: _Prefix, patches: list, skip: set, cap: int, n_layers: int, d_model: int,
                    device) -> list:
    """[(patch indices, first token, the lowest patched layer, split)]: the runs not in `skip`, at
    most `cap` per forward. Each run starts at the first position it patches: a head everywhere, a
    position after `pos` or any but `pos` in the last layer at `pos` (nothing reads it later: its run
    is the corrupted one). A layer's runs sorted by it, alternately up and down, so that a forward
    can take in the end of one layer and the start of the next; then cut into forwards (`_plan`),
    each from the first position of its runs. The first forward from a cut cache comes first: it
    carries one unpatched copy more, which must give the corrupted run's logits (`agrees`; else the
    model reads its cache in a way not foreseen: no prefix)."""
    pos = prefix.pos

    def first(j):
        s, l, i = patches[j]
        return pos if l == n_layers - 1 else 0 if s == "heads" else min(i, pos)
    order = []
    for layer in range(n_layers):
        order += sorted((j for j, p in enumerate(patches) if p[1] == layer and j not in skip), key=first,
                        reverse=layer % 2 == 1)
    starts = [first(j) for j in order]
    layers = [patches[j][1] for j in order]
    per = FORWARD_COST_ACCELERATOR if torch.device(device).type != "cpu" else FORWARD_COST
    overhead = n_layers * max(1.0, per / max(1, d_model) ** 2)
    forwards = []
    for a, b, split in _plan(starts, layers, cap, pos + 1, n_layers, overhead, prefix.split):
        forwards.append((order[a:b], min(starts[a:b]), layers[a], split))
    i = next((i for want in (lambda f: f[1] > 0 and f[3], lambda f: f[3], lambda f: f[1] > 0)
              for i, f in enumerate(forwards) if want(f)), 0)
    return [forwards[i]] + forwards[:i] + forwards[i + 1:]
