"""Path patching (Wang et al. 2022, "Interpretability in the Wild", section 3.1): how much of the
clean-to-corrupted change in a logit difference flows along the path from one sender head's output
to a set of receiver heads (or straight to the output), and along no other path.

    r = path_patching(s, clean, corrupted, answers=(" Mary", " John"), receivers=[(3, 0), (3, 2)])
    r.scores            # [n_layers, n_heads]: each sender head's share of the change (NaN: not a sender)

For each sender head, three steps, each a Program run by the session's executor (native hooks, or the
session's backend), every sender a row of one batch:

1. the clean and the corrupted inputs, reading every head's output (the input of the attention output
   projection) and every MLP's output;
2. the clean input with the sender's output taken from the corrupted run and every other head's
   output (and, unless `through_mlps`, every MLP's output) frozen at its clean value, so the only
   change that reaches a later layer is the sender's, along the direct path through the residual
   stream; the receivers' outputs are left free and read (they see the changed residual in their
   queries, keys and values). Receivers in several layers: one such run per receiver layer, the
   receivers of the other layers frozen at their clean value too;
3. the clean input with only the receivers' outputs set to what step 2 read; the metric is read.

Without receivers, step 2 reads the metric at the output (the sender's direct effect on the logits)
and there is no step 3. The score is (patched - clean) / (corrupted - clean): 1 where the path carries
the whole change, 0 where it carries none, negative where it pushes the other way.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..checks import integer
from ..errors import LLMWidgetsError
from ..execution import Program, Read, Write, ops, run
from .patching import encode_pair, output_position
from .patching_metric import check_difference, make_metric
from .patching_rows import rows_per_run
from .progress import Report, no_progress


@dataclass
class PathPatchingResult:
    """`scores` [n_layers, n_heads]: each sender head's (patched - clean) / (corrupted - clean)
    (NaN where the head is not a sender); `patched` the metric of each path-patched run; `clean` and
    `corrupted` the metric on the two inputs; `receivers` the heads the paths end in ([]: the output);
    `metric` its display name; `tokens` the clean input's."""

    scores: np.ndarray
    patched: np.ndarray
    clean: float
    corrupted: float
    receivers: list
    metric: str
    through_mlps: bool
    tokens: list = field(default_factory=list)

    def top(self, k: int = 5) -> list[tuple[tuple[int, int], float]]:
        """The k senders with the largest |score|: ((layer, head), score), largest first."""
        s = np.nan_to_num(self.scores, nan=0.0)
        order = np.argsort(-np.abs(s), axis=None, kind="stable")[:k]
        return [((int(i // s.shape[1]), int(i % s.shape[1])), float(s.flat[i])) for i in order]


def _heads(session, heads, what: str) -> list[tuple[int, int]]:
    ad = session.adapter
    out = []
    for item in heads:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise LLMWidgetsError(f"{what} are (layer, head) pairs, got {item!r}")
        layer = ad.check_layer(integer(item[0], f"{what} layer"))
        head = integer(item[1], f"{what} head", low=0)
        if head >= ad.n_heads:
            raise LLMWidgetsError(f"{what}: head {head} of layer {layer} does not exist (the model has {ad.n_heads} "
                                  f"heads per layer)")
        out.append((layer, head))
    if len(set(out)) != len(out):
        raise LLMWidgetsError(f"{what} name a head twice: {out}")
    return out


def path_patching(session, clean: str, corrupted: str, *, answers, receivers=None, senders=None,
                  position: int = -1, through_mlps: bool = False, batch_size: int | None = None,
                  report: Report = no_progress) -> PathPatchingResult:
    """Path patching of every sender head (default: every head before the first receiver's layer) to
    `receivers` ((layer, head) pairs; None: the output logits), measured by the logit difference of
    `answers` = (correct, wrong), one token each, at `position`. clean and corrupted must have the
    same number of tokens. `through_mlps`: let the MLPs recompute (the paths through them count too);
    default False, the direct path only. `batch_size`: sender rows per run (default: as many as the
    memory budget allows). See the module docstring for the three steps."""
    ad = session.adapter
    ad.require("interventions")
    if not ad.output:
        raise LLMWidgetsError(f"{session.name} has no output head: path patching reads a logit difference; load a "
                              "causal LM or a classifier.")
    why = ad.uniform_heads()
    if why:
        raise LLMWidgetsError(f"path patching works on (layer, head) of one head layout, and {why}.")
    if not isinstance(through_mlps, bool):
        raise LLMWidgetsError(f"through_mlps is True or False, got {through_mlps!r}")
    if not through_mlps and any(ad.mlp[l] is None for l in range(ad.n_layers)):
        raise LLMWidgetsError("a block without an MLP cannot be frozen at its MLP: pass through_mlps=True.")
    position = integer(position, "position")
    batch_size = integer(batch_size, "batch_size", low=1, allow_none=True)
    recv = _heads(session, receivers, "receivers") if receivers is not None else []
    if receivers is not None and not recv:
        raise LLMWidgetsError("receivers is empty: pass (layer, head) pairs, or None for the output logits")
    first = min((l for l, _ in recv), default=ad.n_layers)
    if senders is None:
        send = [(l, h) for l in range(first) for h in range(ad.n_heads)]
    else:
        send = _heads(session, senders, "senders")
        late = [s for s in send if s[0] >= first]
        if late:
            raise LLMWidgetsError(f"senders {late} are not before the first receiver's layer ({first}): a head "
                                  "reaches a receiver only from an earlier layer.")
    if not send:
        raise LLMWidgetsError("no sender heads: the receivers are in layer 0, and senders must be before them")

    ec, ex = encode_pair(session, clean, corrupted)
    T = ec["input_ids"].shape[1]
    pos = output_position(position, T)
    L, H, dh = ad.n_layers, ad.n_heads, ad.head_dim
    both = {k: torch.cat([ec[k], ex[k]]) for k in ec}
    report(0.0, "path patching: clean and corrupted runs")
    base = run(session, Program(both, reads=[Read("heads", l) for l in range(L)]
                                + [Read("mlp", l) for l in range(L) if not through_mlps],
                                logits=[pos], label="path patching: clean and corrupted"))
    fn, name = make_metric(session, "logit_diff", answers, base.logits[0, -1], base.logits[1, -1])

    def _metric(logits: torch.Tensor) -> np.ndarray:
        return fn(logits.float().reshape(logits.shape[0], -1)).cpu().numpy().astype(np.float64)

    m_clean, m_corr = (float(x) for x in _metric(base.logits))
    check_difference(name, m_clean, m_corr)
    z = {l: base.reads[("heads", l)].detach() for l in range(L)}  # [2, T, H * dh]
    mlp = {l: base.reads[("mlp", l)].detach() for l in range(L) if not through_mlps}

    def cols(heads) -> torch.Tensor:
        return torch.tensor([h * dh + i for h in heads for i in range(dh)], dtype=torch.long)

    def rows_of(n: int) -> dict:
        return {k: v.expand(n, *v.shape[1:]) for k, v in ec.items()}

    def frozen(chunk, upto: int, free: dict) -> list:
        """Every head's output in layers < upto (and `free`'s layers) at its clean value except the
        senders' (corrupted, one per row) and the heads in `free` {layer: heads} (left as computed)."""
        n, writes = len(chunk), []
        for l in range(upto + 1 if free else upto):
            value = z[l][0:1].expand(n, -1, -1).clone()
            for r, (sl, sh) in enumerate(chunk):
                if sl == l:
                    value[r, :, sh * dh:(sh + 1) * dh] = z[l][1, :, sh * dh:(sh + 1) * dh]
            keep = cols([h for h in range(H) if h not in free.get(l, ())])
            if len(keep):
                writes.append(Write("heads", l, ops.Columns(keep, "set", value[..., keep])))
            if not through_mlps and l < upto:
                writes.append(Write("mlp", l, ops.Replace(mlp[l][0:1].expand(n, -1, -1))))
        return writes

    layers = sorted({l for l, _ in recv})
    chunk_rows = rows_per_run(session, T, batch_size)
    chunks = [send[i:i + chunk_rows] for i in range(0, len(send), chunk_rows)]
    steps, done, patched = len(chunks) * (len(layers) + 1 if recv else 1), 0, []
    for chunk in chunks:
        n = len(chunk)
        if not recv:
            report(done / steps, f"path patching: {len(patched)}/{len(send)} senders")
            res = run(session, Program(rows_of(n), writes=frozen(chunk, L, {}), logits=[pos],
                                       label="path patching: senders to the output"))
            patched.extend(_metric(res.logits))
            done += 1
            continue
        final = []
        for R in layers:
            report(done / steps, f"path patching: {len(patched)}/{len(send)} senders, receivers of layer {R}")
            mine = [h for l, h in recv if l == R]
            # the receivers of earlier layers are frozen with every other head: their paths are not this one
            got = run(session, Program(rows_of(n), writes=frozen(chunk, R, {R: mine}), reads=[Read("heads", R)],
                                       stop=True, label="path patching: receivers' inputs")).reads[("heads", R)]
            c = cols(mine)
            final.append(Write("heads", R, ops.Columns(c, "set", got[..., c.to(got.device)].detach())))
            done += 1
        report(done / steps, f"path patching: {len(patched)}/{len(send)} senders, receivers set")
        res = run(session, Program(rows_of(n), writes=final, logits=[pos], label="path patching: receivers set"))
        patched.extend(_metric(res.logits))
        done += 1
    scores = np.full((L, H), np.nan)
    for (l, h), m in zip(send, patched):
        scores[l, h] = (m - m_clean) / (m_corr - m_clean)
    report(1.0, "path patching: done")
    tokens = session.readable_tokens(session.tokenizer.convert_ids_to_tokens(ec["input_ids"][0].tolist()))
    return PathPatchingResult(scores=scores, patched=np.asarray(patched), clean=m_clean, corrupted=m_corr,
                              receivers=recv, metric=name, through_mlps=through_mlps, tokens=tokens)
