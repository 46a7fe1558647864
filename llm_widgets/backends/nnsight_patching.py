"""Activation patching on the nnsight backend (compute.patching.patching through nnsight traces):
1 request when `answers` are given, else 2 (the clean / corrupted logits first, to pick the
answers), as long as the sweep fits one batch (`batch_size` rows: the clean run is row 0, every
patched run a row, patched from row 0 as the forward reaches each site). The same checks, metric
and result as the native sweep (llm_widgets.compute.patching)."""
from __future__ import annotations

import numpy as np
import torch

from ..errors import DoesNotApplyError
from . import nnsight_requests as rq
from .cost import Cost
from .nnsight_views import _backend, _keeps_logits, _path


PATCH_ROWS = 1024  # most rows (patched runs) per request when the memory budget allows
REMOTE_PATCH_ROWS = 2048  # ... when it runs elsewhere (unmeasured here; a forward without gradients keeps ~1
# layer of activations per row, and the logits are kept at one position only)


def patch_rows(session, n_tokens: int, batch_size: int | None) -> int:
    from ..compute.budget import batch_size_for

    if batch_size is not None:
        return batch_size
    if not _backend(session).weights_here:
        return REMOTE_PATCH_ROWS
    return batch_size_for(session, n_tokens, cap=PATCH_ROWS)


def patching(session, clean: str, corrupted: str, *, metric="logit_diff", answers=None, position: int = -1,
             sites=None, per_head: bool = True, batch_size: int | None = None, k: int = 5, report=None):
    """compute.patching.patching through nnsight: every patched run is a row of one batch whose row 0
    is the clean input; each site is patched from row 0 as the forward reaches it. The metric and
    top-k are computed on the server (a callable metric gets the logits back)."""
    from ..compute.budget import _vocab
    from ..compute.patching import (answer_ids, check_arguments, check_difference, check_metric, encode_pair,
                                    make_metric, output_position, patching_result)

    sites, batch_size, k, position = check_arguments(session, sites, batch_size, k, position)
    check_metric(metric)
    be = _backend(session)
    ad = session.adapter
    ad.require("patching")
    L, H, dh = ad.n_layers, ad.n_heads, ad.head_dim
    why = ad.uniform_heads() if per_head else ""
    if why:  # this sweep slices every block's heads alike
        raise DoesNotApplyError(f"per-head patching through nnsight: {why}. Pass per_head=False, or run it "
                                f"without the nnsight backend (per block heads).")
    ec, ex = encode_pair(session, clean, corrupted)
    T = ex["input_ids"].shape[1]
    pos = output_position(position, T)
    kept = _keeps_logits(session)
    extra = {"logits_to_keep": torch.tensor([pos], device=ex["input_ids"].device)} if kept else {}

    def rows_of(n):  # row 0 clean, then n corrupted
        return {key: torch.cat([ec[key], ex[key].expand(n, *ex[key].shape[1:])]) for key in ec}

    patches = [(s, l, p) for s in sites for l in range(L) for p in range(T)]
    if per_head:
        patches += [("heads", l, hd) for l in range(L) for hd in range(H)]
    per = patch_rows(session, T, batch_size)
    chunks = [list(range(i, min(i + per, len(patches)))) for i in range(0, len(patches), per)]
    n_req = len(chunks) + (answers is None and not callable(metric))
    spec, lc, lx, step = None, None, None, 0
    if answers is None and not callable(metric):  # the answers are the clean and corrupted predictions
        ends = be.request("patching: clean and corrupted", rq.output_logits, {**rows_of(1), **extra}, pos, kept,
                          report=report, step=(0, n_req))
        lc, lx, step = ends[0:1], ends[1:2], 1
    if not callable(metric):
        if answers is None:
            a, b = int(lc[0].argmax()), int(lx[0].argmax())
            ids = [a, b] if a != b else [a]
            kind = "prob" if metric == "logit_diff" and a == b else metric
        else:  # checked as the native sweep checks them, before any request
            ids, kind = answer_ids(session, metric, answers, _vocab(session)), metric
        spec = (kind, *ids[:2]) if kind == "logit_diff" else (kind, ids[0])

    if lc is not None:
        fn, name = make_metric(session, metric, answers, lc[0], lx[0])
        m_clean, m_corr = float(fn(lc)[0]), float(fn(lx)[0])
        check_difference(name, m_clean, m_corr)

    order = be.order
    values = np.empty(len(patches), dtype=np.float64)
    tops_p, tops_i = None, None
    done = 0
    for c, idx in enumerate(chunks):
        ends = lc is None and c == 0  # row 1: the corrupted run, unpatched
        first = 2 if ends else 1
        groups: dict = {}
        for j, pi in enumerate(idx):
            s, l, i = patches[pi]
            groups.setdefault((s, l), []).append((first + j, i))
        plan = []
        for (s, l), items in sorted(groups.items(), key=lambda kv: (kv[0][1], order.get(kv[0][0], 0))):
            rows = torch.tensor([r for r, _ in items])
            where = "in" if s == "heads" else "out"
            if s == "heads":
                plan.append((_path(ad.site(s, l)), where, rows, None, [(i * dh, (i + 1) * dh) for _, i in items]))
            else:
                plan.append((_path(ad.site(s, l)), where, rows, torch.tensor([i for _, i in items]), None))
        n_rows = len(idx) + first - 1
        got = be.request("patching sweep", rq.patch, {**rows_of(n_rows), **extra}, plan, pos, kept, spec, k, T,
                         ends, report=report, step=(step + c, n_req))
        if ends:
            lc, lx = got["ends"][0:1], got["ends"][1:2]
            fn, name = make_metric(session, metric, answers, lc[0], lx[0])
            m_clean, m_corr = float(fn(lc)[0]), float(fn(lx)[0])
            check_difference(name, m_clean, m_corr)
        vals = got["values"][first:]
        if spec is None:  # a custom metric, on the returned logits
            vals = fn(vals.float()).double()
        values[idx] = vals.cpu().numpy()
        if tops_p is None:
            kk = got["top_p"].shape[-1]
            tops_p, tops_i = torch.empty(len(patches), kk), torch.empty(len(patches), kk, dtype=torch.long)
        tops_p[idx] = got["top_p"][first:].cpu()
        tops_i[idx] = got["top_i"][first:].cpu()
        done += len(idx)

    kk = min(k, int(lx.shape[-1]))
    return patching_result(session, ec, ex, sites, L, H, T, per_head, values, tops_p, tops_i, kk, lc, lx,
                           m_clean, m_corr, name, pos)


def patching_cost(session, n_tokens: int, *, sites=None, per_head=True, batch_size=None, answers=True, k=5) -> Cost:
    """Requests, rows and bytes returned of a patching sweep (before running it)."""
    ad = session.adapter
    n_sites = len(ad.sites if sites is None else tuple(sites))
    n = n_sites * ad.n_layers * n_tokens + (ad.n_layers * ad.n_heads if per_head else 0)
    per = patch_rows(session, n_tokens, batch_size)
    req = -(-n // per) + (0 if answers else 1)
    rows = n + -(-n // per) + 1
    return Cost(requests=req, forward_rows=rows, tokens=n_tokens, bytes_returned=rows * (8 + 12 * k),
                parameters=_backend(session).parameters())
