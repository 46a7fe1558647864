"""Activation patching as Programs, for any executor: every patched run is a row of one batch whose
row 0 is the clean input and row 1 the corrupted one; each site is patched from row 0 as the
forward reaches it (`ops.Patch`), and the metric and top-k are computed where the model runs
(`ops.Metric`: only numbers travel). Each run's rows are normalized by its own rows 0 and 1 (rounded
as they are), so restoring the last residual gives exactly 1.0, as in the native sweep. Runs: 1 per
`batch_size` patched runs, and, without `answers`, one more first (the clean and corrupted logits,
to pick them). The same checks, metric and result as the native sweep (compute.patching), which an
executor with the key/value-prefix capability runs instead."""
from __future__ import annotations

import numpy as np
import torch

from ..execution import Program, Write, executor_of, ops, run
from ..execution.answer_ops import AnswerMetric
from ..errors import LLMWidgetsError
from .budget import _vocab, batch_size_for
from .outputs import keeps_logits
from .patching_metric import answer_teacher, check_difference, make_metric, metric_spec

ROWS = 1024  # most rows (patched runs) per run when the memory budget allows
REMOTE_ROWS = 2048  # ... when the model runs elsewhere (a forward without gradients keeps ~1 layer of
# activations per row, and the logits are kept at one position only)


def rows_per_run(session, n_tokens: int, batch_size: int | None) -> int:
    if batch_size is not None:
        return batch_size
    if not executor_of(session).has("weights_here"):
        return REMOTE_ROWS
    return batch_size_for(session, n_tokens, cap=ROWS)


def _writes(chunk: list, layouts: dict) -> list:
    """The writes of one run: patched run j (batch row 2 + j) takes row 0's activation at chunk[j]
    (site, layer, position; or "heads", layer, head: that head's columns at every position)."""
    groups: dict = {}
    for j, (s, l, i) in enumerate(chunk):
        groups.setdefault((s, l), []).append((2 + j, i))
    writes = []
    for (s, l), items in groups.items():
        rows = [r for r, _ in items]
        if s == "heads":
            w = layouts[l][1]
            op = ops.Patch(0, cols=[(i * w, (i + 1) * w) for _, i in items])
        else:
            op = ops.Patch(0, positions=torch.tensor([i for _, i in items]))
        writes.append(Write(s, l, op, rows))
    return writes


def _teacher_sweep(session, ec, ex, several, patches, chunks, layouts, k, report) -> dict:
    """The sweep with answers of several tokens (patching_metric.answer_teacher): each copy of the
    Teacher is a run per chunk whose rows are the clean and corrupted inputs followed by that
    copy's appended answer tokens (row 0 clean, row 1 corrupted, the patched runs after), patched
    from row 0 (a head at every position, the answer's included: the clean run's with the same
    answer); its rows' share of the metric (their reads' weighted log-probs) is computed where the
    model runs (AnswerMetric) and the shares of the copies are added up (then exp for 'prob')."""
    tf, name, exp = several
    T = ex["input_ids"].shape[1]
    S = tf.length
    kept = keeps_logits(session.model)
    # every copy's inputs (prompt + its appended tokens), and the reads on it
    per_copy = []
    for r, suffix in enumerate(tf.suffixes):
        tail = torch.tensor([suffix], dtype=ex["input_ids"].dtype, device=ex["input_ids"].device)
        inputs = [{"input_ids": torch.cat([e["input_ids"], tail], 1),
                   "attention_mask": torch.ones((1, T + S), dtype=torch.long, device=tail.device)} for e in (ec, ex)]
        mine = [n for n, row in enumerate(tf.rows) if row == r]
        offs = [tf.offsets[n] for n in mine]
        reads = ops.Targets("decoder", ids=[tf.ids[n] for n in mine], output="log_prob",
                            positions=offs if kept else [T - 1 + o for o in offs],
                            weights=[tf.weights[n] for n in mine], outputs=[0] * len(mine))
        per_copy.append((inputs, AnswerMetric(reads, at=0 if kept else T - 1, k=k)))
    extra = {"logits_to_keep": S + 1} if kept else {}
    n_runs = len(chunks) * len(per_copy)
    values = np.empty(len(patches), dtype=np.float64)
    clean_at = np.empty(len(patches), dtype=np.float64)
    corr_at = np.empty(len(patches), dtype=np.float64)
    tops_p = tops_i = lc = lx = m_clean = m_corr = None
    done = 0
    for c, idx in enumerate(chunks):
        writes = _writes([patches[pi] for pi in idx], layouts)
        total = 0.0
        for r, ((ec_r, ex_r), metric_op) in enumerate(per_copy):
            if report:
                step = c * len(per_copy) + r
                report(step / n_runs, f"patching sweep: run {step + 1}/{n_runs}")
            rows = {key: torch.cat([ec_r[key], ex_r[key].expand(len(idx) + 1, -1)]) for key in ec_r}
            got = run(session, Program(rows, writes=writes, logits="all", output=metric_op, extra=extra,
                                       label="patching sweep (teacher-forced answers)")).logits
            total = total + got["values"].cpu().numpy()
            if r == 0:  # the position after the prompt is the same in every copy
                top_p, top_i, ends = got["top_p"], got["top_i"], got["ends"]
        if exp:
            total = np.exp(total)
        if lc is None:
            lc, lx = ends[0:1].float(), ends[1:2].float()
            m_clean, m_corr = float(total[0]), float(total[1])
            check_difference(name, m_clean, m_corr)
        values[idx], clean_at[idx], corr_at[idx] = total[2:], total[0], total[1]
        if tops_p is None:
            kk = top_p.shape[-1]
            tops_p, tops_i = torch.empty(len(patches), kk), torch.empty(len(patches), kk, dtype=torch.long)
        tops_p[idx] = top_p[2:].cpu()
        tops_i[idx] = top_i[2:].cpu()
        done += len(idx)
        if report:
            report((c + 1) / len(chunks), f"{done}/{len(patches)} patched runs")
    return dict(values=values, tops_p=tops_p, tops_i=tops_i, kk=min(k, int(lx.shape[-1])), lc=lc, lx=lx,
                m_clean=m_clean, m_corr=m_corr, name=name, ends=(clean_at, corr_at))


def patching_rows(session, ec, ex, sites, metric, answers, pos, per_head, batch_size, k, report):
    """The sweep (see the module docstring); returns patching_result's arguments."""
    ad = session.adapter
    L = ad.n_layers
    T = ex["input_ids"].shape[1]
    layouts = {l: ad.head_layout(l) for l in ad.attention_blocks} if per_head else {}
    per_head = per_head and bool(layouts)
    H = max((n for n, _ in layouts.values()), default=0)
    kept = keeps_logits(session.model)
    extra = {"logits_to_keep": torch.tensor([pos], device=ex["input_ids"].device)} if kept else {}
    at = [0] if kept else [pos]

    def rows_of(n):  # row 0 clean, then n corrupted
        return {key: torch.cat([ec[key], ex[key].expand(n, *ex[key].shape[1:])]) for key in ec}

    patches = [(s, l, p) for s in sites for l in range(L) for p in range(T)]
    if per_head:
        patches += [("heads", l, hd) for l in layouts for hd in range(layouts[l][0])]
    per = rows_per_run(session, T, batch_size)
    chunks = [list(range(i, min(i + per, len(patches)))) for i in range(0, len(patches), per)]
    several = answer_teacher(session, metric, answers)
    if several is not None:  # answers of several tokens, teacher-forced after the text
        if pos != T - 1:
            raise LLMWidgetsError(f"answers of several tokens are read after the whole text (teacher-forced): "
                                  f"position must be the last (-1), got {pos} of {T} tokens.")
        got = _teacher_sweep(session, ec, ex, several, patches, chunks, layouts, k, report)
        return dict(sites=sites, n_layers=L, H=H, T=T, per_head=per_head, head_layers=layouts, **got)
    first_run = answers is None and not callable(metric)
    n_runs = len(chunks) + first_run
    lc, lx, step = None, None, 0
    if first_run:  # the answers are the clean and corrupted predictions
        if report:
            report(0.0, f"patching: clean and corrupted (run 1/{n_runs})")
        res = run(session, Program(rows_of(1), logits=at, extra=extra, label="patching: clean and corrupted"))
        ends = res.logits.float()
        ends = ends[:, 0] if ends.dim() == 3 else ends
        lc, lx, step = ends[0:1], ends[1:2], 1
    spec = metric_spec(session, metric, answers, None if lc is None else lc[0], None if lx is None else lx[0],
                       _vocab(session))  # answers: checked before any run
    fn = name = m_clean = m_corr = None
    if lc is not None:
        fn, name = make_metric(session, metric, answers, lc[0], lx[0])
        m_clean, m_corr = float(fn(lc)[0]), float(fn(lx)[0])
        check_difference(name, m_clean, m_corr)

    values = np.empty(len(patches), dtype=np.float64)
    clean_at = np.empty(len(patches), dtype=np.float64)  # each run's own clean and corrupted metric: the
    corr_at = np.empty(len(patches), dtype=np.float64)   # rows 0 and 1 of its batch (rounded alike)
    tops_p = tops_i = None
    done = 0
    for c, idx in enumerate(chunks):
        writes = _writes([patches[pi] for pi in idx], layouts)
        if report:
            report((step + c) / n_runs, f"patching sweep: run {step + c + 1}/{n_runs}")
        got = run(session, Program(rows_of(len(idx) + 1), writes=writes, logits=at,
                                   output=ops.Metric(spec, k, ends=lc is None), extra=extra,
                                   label="patching sweep")).logits
        if lc is None:  # the clean and corrupted logits come with the first run
            lc, lx = got["ends"][0:1], got["ends"][1:2]
            fn, name = make_metric(session, metric, answers, lc[0], lx[0])
            m_clean, m_corr = float(fn(lc)[0]), float(fn(lx)[0])
            check_difference(name, m_clean, m_corr)
        vals = got["values"]
        if spec is None:  # a custom metric, on the returned logits
            vals = fn(vals.float()).double()
        vals = vals.cpu().numpy()
        values[idx], clean_at[idx], corr_at[idx] = vals[2:], vals[0], vals[1]
        if tops_p is None:
            kk = got["top_p"].shape[-1]
            tops_p, tops_i = torch.empty(len(patches), kk), torch.empty(len(patches), kk, dtype=torch.long)
        tops_p[idx] = got["top_p"][2:].cpu()
        tops_i[idx] = got["top_i"][2:].cpu()
        done += len(idx)
        if report:
            report((step + c + 1) / n_runs, f"{done}/{len(patches)} patched runs")
    kk = min(k, int(lx.shape[-1]))
    return dict(sites=sites, n_layers=L, H=H, T=T, per_head=per_head, values=values, tops_p=tops_p, tops_i=tops_i,
                kk=kk, lc=lc, lx=lx, m_clean=m_clean, m_corr=m_corr, name=name, head_layers=layouts,
                ends=(clean_at, corr_at))
