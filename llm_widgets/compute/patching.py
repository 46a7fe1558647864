"""Activation patching: run the corrupted input, restore one clean activation, measure the output.

For every (layer, position) of the residual stream, the attention output and the MLP output
(Meng et al. 2022, "ROME" figure), and for every attention head (all positions), the normalized
metric is (m_patched - m_corrupted) / (m_clean - m_corrupted): 0 = no effect, 1 = fully restored.

Batched: each forward pass runs up to `batch_size` copies of the corrupted input, copy b with its own
patch (hooks overwrite row b only), all patched at the same layer: the forward starts with one copy
and widens to the batch at that layer, so the layers below it run once. A whole sweep costs about
one forward pass per layer.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..checks import integer, names, one_token
from ..errors import LLMWidgetsError
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


def _output_at(model, inputs: dict, pos: int) -> torch.Tensor:
    """[B, V] output logits at `pos` (or [B, C] for classifiers), with no attentions or hidden
    states kept and, where the model allows it, the unembedding computed at that position only."""
    kwargs = {}
    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        # on the CPU for a model dispatched over devices: a CPU index works on the last block's device
        dev = "cpu" if getattr(model, "hf_device_map", None) else inputs["input_ids"].device
        kwargs["logits_to_keep"] = torch.tensor([pos], device=dev)
    with torch.no_grad():
        out = model(**inputs, output_attentions=False, output_hidden_states=False, return_dict=True, **kwargs)
    return out.logits[:, 0] if kwargs else final_logits(out, pos)


def patching(session, clean: str, corrupted: str, *, metric="logit_diff", answers=None,
             position: int = -1, sites=None, per_head: bool = True, batch_size: int | None = None, k: int = 5,
             report: Callable[[float, str], None] | None = None) -> PatchingResult:
    """Patch clean activations into the corrupted run at every (site, layer, position) and, when
    `per_head`, every attention head; `batch_size` patched runs per forward pass (1 = one run per
    forward, the unbatched reference; None = as many as the memory budget allows, at most 64: see
    llm_widgets.compute.budget). `sites` defaults to every site the model has. Running out of
    memory raises OutOfMemoryError saying what to lower."""
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
    holder = {}
    acts = capture(model, wanted, lambda: holder.setdefault("out", session.forward(**ec)))
    out_clean = holder["out"]
    if getattr(out_clean, "logits", None) is None:
        raise LLMWidgetsError("Patching measures the model's output, but this model has no output head "
                              "(no logits). Load a causal LM or a classifier (task='causal-lm' / 'classification').")
    lc = final_logits(out_clean, pos).float()
    lx = final_logits(session.forward(**ex), pos).float()
    fn, name = make_metric(session, metric, answers, lc[0], lx[0])
    m_clean, m_corr = float(fn(lc)[0]), float(fn(lx)[0])
    if abs(m_clean - m_corr) < 1e-6:
        raise LLMWidgetsError(f"{name} is the same on clean ({m_clean:.4g}) and corrupted ({m_corr:.4g}) inputs: "
                              f"there is no difference for patching to restore. Pick inputs or answers "
                              f"that the model treats differently.")

    patches = [(s, l, p) for s in sites for l in range(n_layers) for p in range(T)]
    H = ad.n_heads
    if per_head:
        patches += [("heads", l, hd) for l in range(n_layers) for hd in range(H)]
    dh = ad.head_dim if per_head else 0
    values = np.empty(len(patches), dtype=np.float64)
    kk = min(k, int(lx.shape[-1]))
    tops_p = torch.empty(len(patches), kk)
    tops_i = torch.empty(len(patches), kk, dtype=torch.long)
    n_done = 0
    # one layer per chunk: its copies share the unpatched layers below it, which run once
    chunks = []
    for layer in range(n_layers):
        js = [j for j, p in enumerate(patches) if p[1] == layer]
        chunks += [js[i:i + batch_size] for i in range(0, len(js), batch_size)]
    widen = True  # start each chunk with one copy, widened at the patched layer
    for where_in in chunks:
        chunk = [patches[j] for j in where_in]
        B = len(chunk)
        groups: dict = {}
        for b, (s, l, i) in enumerate(chunk):
            groups.setdefault((s, l), []).append((b, i))
        edits = []
        for (s, l), items in groups.items():
            clean_act = acts[(s, l)]
            mask = torch.zeros((len(items),) + tuple(clean_act.shape[1:]), dtype=torch.bool)
            for j, (_, i) in enumerate(items):
                if s == "heads":
                    mask[j, :, i * dh:(i + 1) * dh] = True
                else:
                    mask[j, i] = True
            rows = torch.tensor([b for b, _ in items], device=clean_act.device)
            edits.append((s, l, _patch_fn(rows, mask, clean_act, B)))
        logits = None
        with oom_guard(session, "activation patching", "batch_size", batch_size, T):
            if widen:
                try:
                    with hooks(model, edits):
                        logits = _output_at(model, ex, pos).float()
                except RuntimeError as e:  # the model keeps batch-shaped tensors from below (ALiBi,
                    if is_oom(e):          # parallel blocks): run B full copies of the corrupted input
                        raise
                    widen = False
            if logits is None:
                with hooks(model, edits):
                    logits = _output_at(model, {k: v.expand(B, *v.shape[1:]) for k, v in ex.items()}, pos).float()
        values[where_in] = fn(logits).double().cpu().numpy()
        tp, ti = torch.softmax(logits, -1).topk(min(k, logits.shape[-1]), dim=-1)
        tops_p[where_in] = tp.cpu()
        tops_i[where_in] = ti.cpu()
        n_done += B
        if report:
            report(n_done / len(patches), f"{n_done}/{len(patches)} patched runs")

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
        clean_top=pair(clean_p), corrupted_top=pair(corr_p),
    )
