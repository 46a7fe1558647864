"""Activation patching: run the corrupted input, restore one clean activation, measure the output.

For every (layer, position) of the residual stream, the attention output and the MLP output
(Meng et al. 2022, "ROME" figure), and for every attention head (all positions), the normalized
metric is (m_patched - m_corrupted) / (m_clean - m_corrupted): 0 = no effect, 1 = fully restored.

Batched: each forward pass runs up to `batch_size` copies of the corrupted input, copy b with its own
patch (hooks overwrite row b only: `patching_runs`), all patched at the same layer: the forward
starts with one copy and widens to the batch at that layer, so the layers below it run once. A
whole sweep costs about one forward pass per layer.

Causal language models (`reuse_prefix`) reuse the corrupted run's prefix: a patch at position p
changes nothing before p, so each forward runs only the tokens from its first patched position on,
after the corrupted run's key/value cache, and runs that cannot change anything do not run
(`patching_prefix`). Where the model does not allow it, or its check copy disagrees, every forward
runs the whole input, as with `reuse_prefix=False`; so does any exception the reuse path raises
(other than running out of memory), and the result's `prefix_fallback` says why.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..checks import integer, names
from ..errors import LLMWidgetsError
from .budget import batch_size_for, is_oom, oom_guard
from ..execution import executor_of
from ..execution.hooks import capture, hooks
from .outputs import output_names
from .patching_prefix import agrees, cache_arg, prefix_forwards, prefix_of, unchanged_runs
from .patching_metric import (METRICS, answer_ids, answer_teacher, check_difference, check_metric,  # noqa: F401
                              make_metric)
from .patching_rows import patching_rows
from .patching_runs import output_at, patch_hooks, single_run

SITES = ("resid", "attn", "mlp")  # what a sweep patches per (layer, position); the model's own: Adapter.sites



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
    # where reuse was tried and given up: why (the sweep then ran every forward over the whole input)
    prefix_fallback: str = ""

    def score(self, site: str, layer: int, position: int) -> float:
        return float(self.scores[self.sites.index(site), layer, position])

    def top(self, site: str, layer: int, position: int) -> list[tuple[str, float]]:
        """Most likely outputs of the run with that one patch (what the view shows on click)."""
        s = self.sites.index(site)
        return [(self.top_tokens[i], float(p)) for i, p in
                zip(self.top_index[s, layer, position], self.top_probs[s, layer, position])]


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


def check_arguments(session, sites, batch_size, k, position) -> tuple:
    """(sites, batch_size, k, position) of a patching sweep, checked; `sites` defaults to every site
    the model has. Shared by both sweeps (this one and patching_rows)."""
    sites = session.adapter.sites if sites is None else tuple(names(sites, "sites"))
    batch_size = integer(batch_size, "batch_size", low=1, allow_none=True)
    k = integer(k, "k", low=1)
    position = integer(position, "position")
    for s in sites:
        if s not in SITES:
            raise LLMWidgetsError(f"unknown site {s!r}; use any of {SITES}")
    return sites, batch_size, k, position


def output_position(position: int, T: int) -> int:
    """The non-negative output position the metric reads, of T tokens."""
    pos = position if position >= 0 else T + position
    if not 0 <= pos < T:
        raise LLMWidgetsError(f"position {position} is outside the {T} tokens")
    return pos


def _failed(step: str, e: Exception) -> str:
    """Why the sweep gave up the key/value prefix: the step and the exception, one line."""
    first = str(e).splitlines()[0][:200] if str(e) else ""
    return f"{step} raised {type(e).__name__}{': ' + first if first else ''}: every forward ran the whole input"


def patching(session, clean: str, corrupted: str, *, metric="logit_diff", answers=None,
             position: int = -1, sites=None, per_head: bool = True, batch_size: int | None = None, k: int = 5,
             report: Callable[[float, str], None] | None = None, reuse_prefix: bool | None = None) -> PatchingResult:
    """Patch clean activations into the corrupted run at every (site, layer, position) and, when
    `per_head`, every attention head; `batch_size` patched runs per forward pass (1 = one run per
    forward, the unbatched reference; None = as many as the memory budget allows, at most 64: see
    llm_widgets.compute.budget). `sites` defaults to every site the model has. Running out of
    memory raises OutOfMemoryError saying what to lower.

    answers: the tokens the metric reads (default: the clean and corrupted predictions). On a causal
    LM an answer may be several tokens (answers=(" New York", " Los Angeles")): it is teacher-forced
    after the text (position must be -1) and metric='logit_diff' is the difference of the answers'
    summed log-probs, 'prob' the first answer's probability (the product of its tokens'); 'logit' is
    refused. Each patched run then runs once per answer that differs from the other after its first
    token, as rows of Programs (compute.patching_rows; the key/value prefix is not reused).

    reuse_prefix: run only the tokens from each forward's first patched position on, after the
    corrupted run's key/value cache (see compute.patching_prefix). None (default): where the model
    allows it and batch_size > 1 (batch_size=1 stays the reference: every run over the whole
    input); True: where the model allows it, also with batch_size=1; False: never. The result's
    `reused_prefix` says whether it was, and `prefix_fallback` why not where it was tried: a check
    copy that disagreed, or any exception of the reuse path (the sweep then starts over without it)."""
    sites, batch_size, k, position = check_arguments(session, sites, batch_size, k, position)
    check_metric(metric)
    model = session.model
    ad = session.adapter
    ad.require("patching")
    n_layers = ad.n_layers
    ec, ex = encode_pair(session, clean, corrupted)
    T = ex["input_ids"].shape[1]
    pos = output_position(position, T)
    # the sweep as rows of Programs (any executor); also where answers are several tokens (teacher-forced:
    # each patched run reads after the text and the answers' tokens, patching_rows)
    if not executor_of(session).has("prefix_reuse") or answer_teacher(session, metric, answers) is not None:
        got = patching_rows(session, ec, ex, sites, metric, answers, pos, per_head, batch_size, k, report)
        return patching_result(session, ec, ex, pos=pos, **got)
    if batch_size is None:  # one patched copy of the corrupted input per item, one output row each
        batch_size = batch_size_for(session, T)

    wanted = [(s, l) for s in sites for l in range(n_layers)]
    # per head: the blocks with attention, each with its own heads (count, width); the others' rows are NaN
    layouts = {l: ad.head_layout(l) for l in ad.attention_blocks} if per_head else {}
    per_head = per_head and bool(layouts)
    if per_head:
        wanted += [("heads", l) for l in layouts]
    # the clean run (activations) and the corrupted run (with its key/value cache and activations
    # where the patched runs can start after its prefix)
    holder = {}
    acts = capture(model, wanted, lambda: holder.setdefault("out", single_run(session, ec, pos)))
    lc = holder.pop("out")[0].float()
    arg = cache_arg(model, ad, ex) if (reuse_prefix or (reuse_prefix is None and batch_size > 1)) else None
    lx = out_x = acts_x = None
    fallback = ""
    if arg is not None:
        try:
            acts_x = capture(model, wanted, lambda: holder.setdefault("x", single_run(session, ex, pos,
                                                                                      use_cache=True)))
            lx, out_x = holder.pop("x")
        except Exception as e:  # the model takes no cache after all
            if is_oom(e):
                raise
            holder.pop("x", None)
            arg, lx, out_x, acts_x = None, None, None, None
            fallback = _failed("the corrupted run with a key/value cache", e)
    if lx is None:
        lx, _ = single_run(session, ex, pos)
    lx = lx.float()
    fn, name = make_metric(session, metric, answers, lc[0], lx[0])
    m_clean, m_corr = float(fn(lc)[0]), float(fn(lx)[0])
    check_difference(name, m_clean, m_corr)
    prefix = None
    if arg is not None:
        try:
            prefix = prefix_of(session, ex, pos, arg, out_x)
        except Exception as e:
            if is_oom(e):
                raise
            fallback = _failed("reading the corrupted run's key/value cache", e)
    out_x = None

    patches = [(s, l, p) for s in sites for l in range(n_layers) for p in range(T)]
    H = max((n for n, _ in layouts.values()), default=0)
    if per_head:
        patches += [("heads", l, hd) for l in layouts for hd in range(layouts[l][0])]
    dh = {l: w for l, (_, w) in layouts.items()}
    values = np.empty(len(patches), dtype=np.float64)
    kk = min(k, int(lx.shape[-1]))
    tops_p = torch.empty(len(patches), kk)
    tops_i = torch.empty(len(patches), kk, dtype=torch.long)
    # with the prefix (a causal LM), the runs that are the corrupted run itself take its numbers
    skip = set()
    if prefix is not None:
        try:
            skip = unchanged_runs(acts, acts_x, patches, T, H, dh, pos, n_layers)
        except Exception as e:
            if is_oom(e):
                raise
            prefix, fallback = None, _failed("comparing the clean and corrupted activations", e)
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
        if prefix is not None:
            return prefix_forwards(prefix, patches, skip, batch_size, n_layers, ad.d_model, session.device)
        forwards = []  # one layer per forward: its copies share the unpatched layers below it
        for layer in range(n_layers):
            js = [j for j, p in enumerate(patches) if p[1] == layer]
            forwards += [(js[i:i + batch_size], None, layer, False) for i in range(0, len(js), batch_size)]
        return forwards

    try:
        forwards = plan(prefix)
    except Exception as e:
        if is_oom(e) or prefix is None:
            raise
        prefix, skip, fallback = None, set(), _failed("planning the forwards from the prefix", e)
        forwards = plan(None)
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
        edits_for = lambda lo, hi, chunk=chunk, n=n: patch_hooks(chunk, acts, lo, hi, dh, n)  # noqa: E731
        logits = None
        with oom_guard(session, "activation patching", "batch_size", batch_size, T):
            if start is not None:
                error = None
                for wide in ((True, False) if widen else (False,)):
                    try:
                        logits = prefix.run(edits_for, start, layer, n, wide, split)
                        break
                    except Exception as e:  # the model keeps batch-shaped tensors from below (ALiBi,
                        if is_oom(e):       # parallel blocks): n copies of the input, and if that fails
                            raise           # too (any exception), the cache is not read as foreseen
                        error = e
                        if wide:
                            widen = False
                if check and logits is not None and not agrees(logits[B:], lx, session.dtype):
                    logits = None
                    fallback = ("the unpatched check copy run from the key/value prefix did not give the "
                                "corrupted run's logits: every forward ran the whole input")
                if logits is None:  # start over without the prefix: every run, over the whole input
                    if error is not None:
                        fallback = _failed("a patched forward from the key/value prefix", error)
                    prefix, check, forwards, f, n_done, reused = None, False, plan(None), 0, 0, False
                    continue
                reused = True
            if logits is None and widen:
                try:
                    with hooks(model, edits_for(0, T)):
                        logits = output_at(model, ex, pos)[0]
                except Exception as e:  # the model keeps batch-shaped tensors from below (ALiBi, parallel
                    if is_oom(e):       # blocks, an attention mask checked against the batch as XGLM's):
                        raise           # run B full copies of the corrupted input
                    widen = False
            if logits is None:
                with hooks(model, edits_for(0, T)):
                    logits = output_at(model, {k: v.expand(n, *v.shape[1:]) for k, v in ex.items()}, pos)[0]
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
                           m_clean, m_corr, name, pos, reused_prefix=reused,
                           prefix_fallback="" if reused else fallback, head_layers=layouts)


def _scatter(a: np.ndarray, at: np.ndarray, n: int, fill) -> np.ndarray:
    """a [len(at), ...] placed at rows `at` of an [n, ...] array of `fill`."""
    out = np.full((n,) + a.shape[1:], fill, dtype=a.dtype)
    out[at] = a
    return out


def patching_result(session, ec, ex, sites, n_layers, H, T, per_head, values, tops_p, tops_i, kk, lc, lx,
                    m_clean, m_corr, name, pos, reused_prefix=False, prefix_fallback="",
                    head_layers: dict | None = None, ends=None) -> PatchingResult:
    """The PatchingResult of a sweep's metric values [n_patches] and top-k outputs (sites x layers x
    positions first, then the heads); shared by both sweeps. head_layers:
    {block: (heads, width)} of the heads patched, in order (None: every block, H heads each); the
    head arrays are [n_layers, H] with NaN (top outputs: index 0, probability NaN) where a block
    has no attention or fewer heads. ends: ([n_patches] clean, [n_patches] corrupted) metric of the
    batch each run was in, normalizing it (None: m_clean and m_corr for every run)."""
    clean_at, corr_at = ends if ends is not None else (m_clean, m_corr)  # per run: its own batch's ends
    norm = (values - corr_at) / (clean_at - corr_at)
    top_p, top_i = tops_p, tops_i
    clean_p = torch.softmax(lc[0], -1).topk(kk)
    corr_p = torch.softmax(lx[0], -1).topk(kk)
    vocab_ids = sorted(set(top_i.flatten().tolist()) | set(clean_p.indices.tolist()) | set(corr_p.indices.tolist()))
    where = {v: j for j, v in enumerate(vocab_ids)}
    vocab = output_names(session, vocab_ids)
    top_index = np.vectorize(where.__getitem__, otypes=[np.int32])(top_i.numpy()) if top_i.numel() else top_i.numpy()
    n_site = len(sites) * n_layers * T
    shape = (len(sites), n_layers, T)
    if per_head and head_layers is not None:  # scatter the heads patched into [n_layers, H], NaN elsewhere
        cells = [(l, h) for l, (n, _) in head_layers.items() for h in range(n)]
        at = np.array([l * H + h for l, h in cells], dtype=np.int64)
        full = lambda a, fill: np.concatenate([a[:n_site], _scatter(a[n_site:], at, n_layers * H, fill)])  # noqa: E731
        norm, values = full(norm, np.nan), full(values, np.nan)
        top_index = full(top_index, 0)
        top_p = torch.from_numpy(full(top_p.numpy(), np.nan))
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
        prefix_fallback=prefix_fallback,
    )
