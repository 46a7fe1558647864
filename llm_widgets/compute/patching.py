"""Activation patching: run the corrupted input, restore one clean activation, measure the output.

For every (layer, position) of the residual stream, the attention output and the MLP output
(Meng et al. 2022, "ROME" figure), and for every attention head (all positions), the normalized
metric is (m_patched - m_corrupted) / (m_clean - m_corrupted): 0 = no effect, 1 = fully restored.

Batched: each forward pass runs up to `batch_size` copies of the corrupted input, copy b with its own
patch (hooks overwrite row b only), all patched at the same layer: the forward starts with one copy
and widens to the batch at that layer, so the layers below it run once. A whole sweep costs about
one forward pass per layer.

Causal language models (`reuse_prefix`) reuse the corrupted run's prefix: a patch at position p
changes nothing before p, so the corrupted run is made once with its key/value cache, and a
forward whose runs patch nothing before s runs only the tokens [s, position] on that cache cut
at s (one copy below the lowest patched layer, the batch's copies above it). Its tokens before
`position` run first and stop once the last layer has cached their keys and values (nothing else
of the last layer reaches the output); then the token `position` alone. Runs that patch nothing
(the clean activation equals the corrupted one to the bit: every position before the first changed
token) or that cannot reach the output (a position after `position`; in the last layer any position
but `position`) take the corrupted run's numbers without running. The other runs, sorted by the
first position they patch, are cut into forwards that balance a forward's fixed cost against the
tokens it recomputes (`_plan`). The first forward carries one unpatched copy, which must give the
corrupted run's logits; where it does not, or where the model does not allow it (not causal, a
classifier, no key/value cache of the usual kind, rotary scaling that depends on the input's
length), every forward runs the whole input, as with `reuse_prefix=False`.
"""
from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..checks import integer, names, one_token
from ..errors import LLMWidgetsError, OutOfMemoryError
from .budget import batch_size_for, is_oom, oom_guard
from .hooks import SITES, available_sites, capture, final_logits, hooks, output_names

METRICS = ("logit_diff", "logit", "prob")


@dataclass
class PatchingResult:
    tokens: list[str]  # corrupted-run tokens as read (the heatmap columns)
    clean_tokens: list[str]
    sites: tuple[str, ...]
    scores: np.ndarray  # [len(sites), L, T] normalized metric
    head_scores: np.ndarray | None  # [L, H] normalized metric, each head patched at all positions
    raw: np.ndarray  # [len(sites), L, T] metric values before normalization
    clean_metric: float
    corrupted_metric: float
    metric: str  # e.g. "logit_diff( Mary,  John)"
    position: int  # the output position the metric reads (non-negative)
    changed: list[int]  # positions where clean and corrupted tokens differ
    top_tokens: list[str] = field(default_factory=list)  # the output tokens the top_index arrays point into
    top_index: np.ndarray | None = None  # [len(sites), L, T, k] index into top_tokens, patched runs
    top_probs: np.ndarray | None = None  # [len(sites), L, T, k] their probabilities
    head_top_index: np.ndarray | None = None  # [L, H, k]
    head_top_probs: np.ndarray | None = None
    clean_top: list[tuple[str, float]] = field(default_factory=list)
    corrupted_top: list[tuple[str, float]] = field(default_factory=list)
    reused_prefix: bool = False  # the patched runs started from the corrupted run's key/value cache

    def score(self, site: str, layer: int, position: int) -> float:
        return float(self.scores[self.sites.index(site), layer, position])

    def top(self, site: str, layer: int, position: int) -> list[tuple[str, float]]:
        """Most likely outputs of the run with that one patch (what the view shows on click)."""
        s = self.sites.index(site)
        return [(self.top_tokens[i], float(p)) for i, p in
                zip(self.top_index[s, layer, position], self.top_probs[s, layer, position])]


def _answer_id(session, answer) -> int:
    if isinstance(answer, (int, np.integer)) and not isinstance(answer, bool):
        return int(answer)
    classes = session.class_labels
    if classes is not None:
        if answer not in classes:
            raise LLMWidgetsError(f"answer {answer!r} is not a class of this model; classes: {classes}")
        return classes.index(answer)
    if not isinstance(answer, str):
        raise LLMWidgetsError(f"answers must be tokens (str) or token ids, got {answer!r}")
    return one_token(session, answer, "answer")


def make_metric(session, metric, answers, clean_logits: torch.Tensor, corrupted_logits: torch.Tensor):
    """Returns (fn: logits [B, V] -> [B], display name)."""
    if callable(metric):
        return metric, getattr(metric, "__name__", "custom metric")
    if metric not in METRICS:
        raise LLMWidgetsError(f"metric must be one of {METRICS} or a function of the logits [B, V] -> [B]; "
                              f"got {metric!r}")
    if answers is None:  # the clean prediction against the corrupted one
        a, b = int(clean_logits.argmax()), int(corrupted_logits.argmax())
        ids = [a, b] if a != b else [a]
        if metric == "logit_diff" and a == b:
            metric = "prob"
    else:
        answers = [answers] if isinstance(answers, (str, int)) else list(answers)
        ids = [_answer_id(session, x) for x in answers]
    n_out = clean_logits.shape[-1]
    if any(not 0 <= i < n_out for i in ids):
        raise LLMWidgetsError(f"answer ids {ids} out of range for {n_out} outputs")
    if metric == "logit_diff" and len(ids) != 2:
        raise LLMWidgetsError("metric='logit_diff' needs answers=(correct, wrong): two outputs")
    names = ", ".join(output_names(session, ids))
    if metric == "logit_diff":
        return (lambda lg: lg[:, ids[0]] - lg[:, ids[1]]), f"logit_diff({names})"
    if metric == "logit":
        return (lambda lg: lg[:, ids[0]]), f"logit({names.split(', ')[0]})"
    return (lambda lg: torch.softmax(lg.float(), -1)[:, ids[0]]), f"prob({names.split(', ')[0]})"


def encode_pair(session, clean: str, corrupted: str):
    ec, _, _ = session.encode(clean)
    ex, _, _ = session.encode(corrupted)
    tc, tx = ec["input_ids"].shape[1], ex["input_ids"].shape[1]
    if tc != tx:
        lc = session.readable_tokens(session.tokenizer.convert_ids_to_tokens(ec["input_ids"][0].tolist()))
        lx = session.readable_tokens(session.tokenizer.convert_ids_to_tokens(ex["input_ids"][0].tolist()))
        raise LLMWidgetsError(
            f"clean and corrupted must have the same number of tokens, so that position i of one "
            f"lines up with position i of the other; clean has {tc} {lc}, corrupted has {tx} {lx}. "
            f"Change words for words of the same token length (e.g. one name for another)."
        )
    return ec, ex


def _patch_fn(rows: torch.Tensor, mask: torch.Tensor, clean: torch.Tensor, batch: int):
    """Overwrite x[rows] where mask ([n, T, D] bool) with the clean activation [1, T, D]. The
    forward starts with one copy of the corrupted input; the first patch site reached widens it to
    `batch` copies, so the layers below it run once for the whole chunk."""
    def fn(x):
        x = x.expand(batch, *x.shape[1:]).clone() if x.shape[0] == 1 else x.clone()
        r = rows.to(x.device)  # a dispatched model: the clean activation may be on another device
        sub = x[r]
        x[r] = torch.where(mask.to(x.device), clean.to(x.device, x.dtype).expand_as(sub), sub)
        return x
    return fn


def _edits(chunk, acts: dict, lo: int, hi: int, dh: int, batch: int) -> list:
    """The hooks of one forward over tokens [lo, hi) with `batch` copies: copy b gets patch chunk[b]
    (site, layer, position or head), copies past the chunk none; a position outside [lo, hi) is not
    patched in this forward (another forward of the same runs takes it, or it cannot reach the output)."""
    groups: dict = {}
    for b, (s, l, i) in enumerate(chunk):
        groups.setdefault((s, l), []).append((b, i))
    edits = []
    for (s, l), items in groups.items():
        clean_act = acts[(s, l)][:, lo:hi]
        mask = torch.zeros((len(items),) + tuple(clean_act.shape[1:]), dtype=torch.bool)
        for j, (_, i) in enumerate(items):
            if s == "heads":
                mask[j, :, i * dh:(i + 1) * dh] = True
            elif lo <= i < hi:
                mask[j, i - lo] = True
        rows = torch.tensor([b for b, _ in items], device=clean_act.device)
        edits.append((s, l, _patch_fn(rows, mask, clean_act, batch)))
    return edits


def _output_at(model, inputs: dict, pos: int, *, every: bool = False, **extra):
    """(logits [B, V] at `pos`, or [B, C] for classifiers; the model's output), with no attentions or
    hidden states kept and, where the model allows it and not `every`, the unembedding computed at
    that position only."""
    kwargs = dict(extra)
    if not every and "logits_to_keep" in inspect.signature(model.forward).parameters:
        # on the CPU for a model dispatched over devices: a CPU index works on the last block's device
        dev = "cpu" if getattr(model, "hf_device_map", None) else inputs["input_ids"].device
        kwargs["logits_to_keep"] = torch.tensor([pos], device=dev)
    with torch.no_grad():
        out = model(**inputs, output_attentions=False, output_hidden_states=False, return_dict=True, **kwargs)
    if getattr(out, "logits", None) is None:
        raise LLMWidgetsError("Patching measures the model's output, but this model has no output head "
                              "(no logits). Load a causal LM or a classifier (task='causal-lm' / 'classification').")
    return (out.logits[:, 0] if "logits_to_keep" in kwargs else final_logits(out, pos)), out


def _single_run(session, inputs: dict, pos: int, **extra):
    """_output_at for the clean or corrupted input, with the unembedding at every position: the
    clean and corrupted metrics are those of the views' forward pass to the bit, and so is a patched
    run that restores the last residual (an unembedding of one or a few rows alone can round
    differently from a batch's). Running out of memory says what to change."""
    try:
        return _output_at(session.model, inputs, pos, every=True, **extra)
    except Exception as e:
        if not is_oom(e):
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise OutOfMemoryError(
            f"Out of memory on {session.device} running {inputs['input_ids'].shape[-1]} tokens through "
            f"{session.name}. Use a shorter text, dtype='bfloat16', or device_map='auto' (spread the model over "
            f"devices). Cause: {str(e).splitlines()[0][:200]}") from e


# -- reusing the corrupted run's prefix (causal LMs) ---------------------------------------------------
CACHE_ARGS = ("cache", "past_key_values")  # transformers 5.x's name for the key/value cache, then the older one
# fixed cost of one forward pass per layer, in units of one token's work through one layer (d_model**2): on a CPU
# about 0.4 ms, 40 tokens of a d_model=128 model; on a GPU a token's work is cheap and a call is not
FORWARD_COST = 2 ** 20
FORWARD_COST_ACCELERATOR = 2 ** 27


class _Stop(Exception):
    """Raised by the last layer's cache once it holds the new tokens' keys and values (`_Prefix.run`)."""


def _cache_arg(model, ad, ex: dict) -> str | None:
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
            return _output_at(self.model, self._inputs(lo, self.pos + 1, cache, batch, widen), self.pos - lo)[0]


def _prefix(session, ex: dict, pos: int, arg: str, out) -> _Prefix | None:
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


def _agrees(got: torch.Tensor, want: torch.Tensor, dtype) -> bool:
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


def patching(session, clean: str, corrupted: str, *, metric="logit_diff", answers=None,
             position: int = -1, sites=None, per_head: bool = True, batch_size: int | None = None, k: int = 5,
             report: Callable[[float, str], None] | None = None, reuse_prefix: bool | None = None) -> PatchingResult:
    """Patch clean activations into the corrupted run at every (site, layer, position) and, when
    `per_head`, every attention head; `batch_size` patched runs per forward pass (1 = one run per
    forward, the unbatched reference; None = as many as the memory budget allows, at most 64: see
    llm_widgets.compute.budget). `sites` defaults to every site the model has. Running out of
    memory raises OutOfMemoryError saying what to lower.

    reuse_prefix: run only the tokens from each forward's first patched position on, after the
    corrupted run's key/value cache (see the module docstring). None (default): where the model
    allows it and batch_size > 1 (batch_size=1 stays the reference: every run over the whole
    input); True: where the model allows it, also with batch_size=1; False: never. The result's
    `reused_prefix` says whether it was."""
    if getattr(session, "backend", None) is not None:  # nnsight traces (llm_widgets.backends)
        from ..backends import nnsight_views

        return nnsight_views.patching(session, clean, corrupted, metric=metric, answers=answers, position=position,
                                      sites=sites, per_head=per_head, batch_size=batch_size, k=k, report=report)
    sites = available_sites(session.model) if sites is None else tuple(names(sites, "sites"))
    batch_size = integer(batch_size, "batch_size", low=1, allow_none=True)
    k = integer(k, "k", low=1)
    position = integer(position, "position")
    for s in sites:
        if s not in SITES:
            raise LLMWidgetsError(f"unknown site {s!r}; use any of {SITES}")
    model = session.model
    ad = session.adapter
    ad.require("patching")
    n_layers = ad.n_layers
    ec, ex = encode_pair(session, clean, corrupted)
    T = ex["input_ids"].shape[1]
    pos = position if position >= 0 else T + position
    if not 0 <= pos < T:
        raise LLMWidgetsError(f"position {position} is outside the {T} tokens")
    if batch_size is None:  # one patched copy of the corrupted input per item, one output row each
        batch_size = batch_size_for(session, T)

    wanted = [(s, l) for s in sites for l in range(n_layers)]
    if per_head:
        wanted += [("heads", l) for l in range(n_layers)]
    # the clean run (activations) and the corrupted run (with its key/value cache and activations
    # where the patched runs can start after its prefix)
    holder = {}
    acts = capture(model, wanted, lambda: holder.setdefault("out", _single_run(session, ec, pos)))
    lc = holder.pop("out")[0].float()
    arg = _cache_arg(model, ad, ex) if (reuse_prefix or (reuse_prefix is None and batch_size > 1)) else None
    lx = out_x = acts_x = None
    if arg is not None:
        try:
            acts_x = capture(model, wanted, lambda: holder.setdefault("x", _single_run(session, ex, pos,
                                                                                       use_cache=True)))
            lx, out_x = holder.pop("x")
        except (TypeError, ValueError, RuntimeError) as e:  # the model takes no cache after all
            if is_oom(e):
                raise
            arg = None
    if lx is None:
        lx, _ = _single_run(session, ex, pos)
    lx = lx.float()
    fn, name = make_metric(session, metric, answers, lc[0], lx[0])
    m_clean, m_corr = float(fn(lc)[0]), float(fn(lx)[0])
    if abs(m_clean - m_corr) < 1e-6:
        raise LLMWidgetsError(f"{name} is the same on clean ({m_clean:.4g}) and corrupted ({m_corr:.4g}) inputs: "
                              f"there is no difference for patching to restore. Pick inputs or answers "
                              f"that the model treats differently.")
    prefix = _prefix(session, ex, pos, arg, out_x) if arg is not None else None
    out_x = None

    patches = [(s, l, p) for s in sites for l in range(n_layers) for p in range(T)]
    H = ad.n_heads
    if per_head:
        patches += [("heads", l, hd) for l in range(n_layers) for hd in range(H)]
    dh = ad.head_dim if per_head else 0
    values = np.empty(len(patches), dtype=np.float64)
    kk = min(k, int(lx.shape[-1]))
    tops_p = torch.empty(len(patches), kk)
    tops_i = torch.empty(len(patches), kk, dtype=torch.long)
    # with the prefix (a causal LM), a run that patches nothing (the clean activation is the corrupted
    # one to the bit: every position before the first changed token) or whose patch cannot reach the
    # output (a position after `pos`; in the last layer any position but `pos`) is the corrupted run
    # itself: it takes the corrupted run's numbers instead of running again
    skip: set = set()
    if prefix is not None:
        same = {}
        for key, a in acts.items():
            eq = (a == acts_x[key].to(a.device))[0]  # [T, D]
            same[key] = (eq.view(T, H, dh).all(-1).all(0) if key[0] == "heads" else eq.all(-1)).tolist()
        for j, (s, l, i) in enumerate(patches):
            if same[(s, l)][i] or (s != "heads" and (i > pos or (l == n_layers - 1 and i != pos))):
                skip.add(j)
        if skip:
            at = sorted(skip)
            values[at] = m_corr
            tp, ti = torch.softmax(lx, -1).topk(kk, dim=-1)
            tops_p[at] = tp.cpu()
            tops_i[at] = ti.cpu()
    acts_x = None
    n_done = len(skip)

    def plan(prefix) -> list:
        """[(patch indices, first token or None for the whole input, the lowest patched layer, split)]"""
        forwards = []
        if prefix is None:  # one layer per forward: its copies share the unpatched layers below it
            for layer in range(n_layers):
                js = [j for j, p in enumerate(patches) if p[1] == layer]
                forwards += [(js[i:i + batch_size], None, layer, False) for i in range(0, len(js), batch_size)]
            return forwards
        # with the prefix, each run starts at the first position it patches: a head everywhere, a
        # position after `pos` or any but `pos` in the last layer at `pos` (nothing reads it later:
        # its run is the corrupted one). A layer's runs sorted by it, alternately up and down, so that
        # a forward can take in the end of one layer and the start of the next; then cut into forwards
        # (`_plan`), each from the first position of its runs
        def first(j):
            s, l, i = patches[j]
            return pos if l == n_layers - 1 else 0 if s == "heads" else min(i, pos)
        order = []
        for layer in range(n_layers):
            order += sorted((j for j, p in enumerate(patches) if p[1] == layer and j not in skip), key=first,
                            reverse=layer % 2 == 1)
        starts = [first(j) for j in order]
        layers = [patches[j][1] for j in order]
        per = FORWARD_COST_ACCELERATOR if torch.device(session.device).type != "cpu" else FORWARD_COST
        overhead = n_layers * max(1.0, per / max(1, ad.d_model) ** 2)
        for a, b, split in _plan(starts, layers, batch_size, pos + 1, n_layers, overhead, prefix.split):
            forwards.append((order[a:b], min(starts[a:b]), layers[a], split))
        # the first forward from a cut cache carries one unpatched copy more, which must give the
        # corrupted run's logits (else the model reads its cache in a way not foreseen: no prefix)
        i = next((i for want in (lambda f: f[1] > 0 and f[3], lambda f: f[3], lambda f: f[1] > 0)
                  for i, f in enumerate(forwards) if want(f)), 0)
        return [forwards[i]] + forwards[:i] + forwards[i + 1:]

    forwards = plan(prefix)
    check = prefix is not None
    widen = True  # start each chunk with one copy, widened at the patched layer
    reused = False
    f = 0
    while f < len(forwards):
        where_in, start, layer, split = forwards[f]
        f += 1
        if check and len(where_in) + 1 > batch_size:  # the check's copy counts: the last run waits
            forwards.insert(f, (where_in[-1:], start, layer, split))
            where_in = where_in[:-1]
        chunk = [patches[j] for j in where_in]
        B = len(chunk)
        n = B + check  # the copies in the forward
        if prefix is None:
            start = None
        edits_for = lambda lo, hi, chunk=chunk, n=n: _edits(chunk, acts, lo, hi, dh, n)  # noqa: E731
        logits = None
        with oom_guard(session, "activation patching", "batch_size", batch_size, T):
            if start is not None:
                for wide in ((True, False) if widen else (False,)):
                    try:
                        logits = prefix.run(edits_for, start, layer, n, wide, split)
                        break
                    except RuntimeError as e:  # the model keeps batch-shaped tensors from below (ALiBi,
                        if is_oom(e):          # parallel blocks): n copies of the input, and if that fails
                            raise              # too, the cache is not read as foreseen: the whole input
                        widen = False
                if check and logits is not None and not _agrees(logits[B:], lx, session.dtype):
                    logits = None
                if logits is None:  # start over without the prefix
                    prefix, check, forwards, f, n_done = None, False, plan(None), 0, 0
                    continue
                reused = True
            if logits is None and widen:
                try:
                    with hooks(model, edits_for(0, T)):
                        logits = _output_at(model, ex, pos)[0]
                except RuntimeError as e:  # the model keeps batch-shaped tensors from below (ALiBi,
                    if is_oom(e):          # parallel blocks): run B full copies of the corrupted input
                        raise
                    widen = False
            if logits is None:
                with hooks(model, edits_for(0, T)):
                    logits = _output_at(model, {k: v.expand(n, *v.shape[1:]) for k, v in ex.items()}, pos)[0]
        check = False
        logits = logits[:B].float()
        values[where_in] = fn(logits).double().cpu().numpy()
        tp, ti = torch.softmax(logits, -1).topk(min(k, logits.shape[-1]), dim=-1)
        tops_p[where_in] = tp.cpu()
        tops_i[where_in] = ti.cpu()
        n_done += B
        if report:
            report(n_done / len(patches), f"{n_done}/{len(patches)} patched runs")

    return patching_result(session, ec, ex, sites, n_layers, H, T, per_head, values, tops_p, tops_i, kk, lc, lx,
                           m_clean, m_corr, name, pos, reused_prefix=reused)


def patching_result(session, ec, ex, sites, n_layers, H, T, per_head, values, tops_p, tops_i, kk, lc, lx,
                    m_clean, m_corr, name, pos, reused_prefix=False) -> PatchingResult:
    """The PatchingResult of a sweep's metric values [n_patches] and top-k outputs (sites x layers x
    positions first, then the heads); shared by the native sweep and the nnsight one."""
    norm = (values - m_corr) / (m_clean - m_corr)
    top_p, top_i = tops_p, tops_i
    clean_p = torch.softmax(lc[0], -1).topk(kk)
    corr_p = torch.softmax(lx[0], -1).topk(kk)
    vocab_ids = sorted(set(top_i.flatten().tolist()) | set(clean_p.indices.tolist()) | set(corr_p.indices.tolist()))
    where = {v: j for j, v in enumerate(vocab_ids)}
    vocab = output_names(session, vocab_ids)
    top_index = np.vectorize(where.__getitem__, otypes=[np.int32])(top_i.numpy()) if top_i.numel() else top_i.numpy()
    n_site = len(sites) * n_layers * T
    shape = (len(sites), n_layers, T)
    ids_c = ec["input_ids"][0].tolist()
    ids_x = ex["input_ids"][0].tolist()
    lab = lambda ids: session.readable_tokens(session.tokenizer.convert_ids_to_tokens(ids))  # noqa: E731
    pair = lambda tk: [(vocab[where[int(i)]], float(p)) for p, i in zip(tk.values, tk.indices)]  # noqa: E731
    return PatchingResult(
        tokens=lab(ids_x), clean_tokens=lab(ids_c), sites=sites,
        scores=norm[:n_site].reshape(shape).astype(np.float32),
        head_scores=norm[n_site:].reshape(n_layers, H).astype(np.float32) if per_head else None,
        raw=values[:n_site].reshape(shape).astype(np.float32),
        clean_metric=m_clean, corrupted_metric=m_corr, metric=name, position=pos,
        changed=[i for i, (a, b) in enumerate(zip(ids_c, ids_x)) if a != b],
        top_tokens=vocab,
        top_index=top_index[:n_site].reshape(shape + (kk,)),
        top_probs=top_p[:n_site].numpy().reshape(shape + (kk,)),
        head_top_index=top_index[n_site:].reshape(n_layers, H, kk) if per_head else None,
        head_top_probs=top_p[n_site:].numpy().reshape(n_layers, H, kk) if per_head else None,
        clean_top=pair(clean_p), corrupted_top=pair(corr_p), reused_prefix=reused_prefix,
    )
