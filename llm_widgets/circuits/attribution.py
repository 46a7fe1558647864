"""Attribution graphs (Ameisen et al. 2025, "Circuit Tracing"; circuit-tracer is the reference):
the direct effects between active transcoder features, error terms, token embeddings and output
logits, read from the replacement model (llm_widgets.circuits.replacement) on one input.

    g = lw.attribution_graph(s, "The capital of France is", transcoders)
    g.into(g.logit_nodes()[0])      # the direct effects into the top logit: they add up to it

Method. One forward of the model records every value; one forward of the frozen replacement model
(MLP outputs replaced by sources holding the transcoder reconstruction plus its error, attention
patterns and norm scales frozen) is run with the input repeated in the batch; then each backward
pass seeds one target per batch row (a logit: the demeaned unembedding direction; a feature: its
encoder row at its layer and position) and reads the gradient at every source: the embedding output
and every MLP output. A source's direct effect on the target is that gradient times what the source
writes: a feature a * W_dec[f] (a cross-layer feature: into every MLP output it writes, summed), an
error node its error vector, an embedding node the embedding output at its position.

Values and constant terms. A logit node's value is the demeaned logit (the logit minus the mean
logit over the vocabulary, as circuit-tracer), before any soft-capping (Gemma 2's tanh is not
linear; info['softcap'] says when it was skipped); a feature target's value is its pre-activation.
Everything constant (attention and norm biases, the transcoders' decoder and encoder biases, the
head's bias, all through the frozen model) is measured with one more forward of the frozen model in
which every source is zero, and goes into one shared "bias" node with one edge into each target.
Then for every target the incoming edges add up to its value; this is checked on every target
(1e-4 of the summed magnitudes in float32, a few roundings in 16 bits) and a graph that does not
add up is refused, naming the earliest layer where it fails (a nonlinearity that was not frozen:
gated attention, a mixer).

Budget. Backward passes are batched (batch_size, or the budget module's estimate for the device);
the edge rows (one per target, over every active feature, float32, in host memory) and the dense
pruning matrices are sized to `budget` bytes: where all active features do not fit (or
`max_feature_nodes` is smaller), the features with the largest estimated influence are kept, as
circuit-tracer chooses them, and the writes of those left out are folded into the error node at
their layer and position (so the sums still hold; info['features'] says how many were left out).
"""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch

from ..checks import fraction, integer, one_token
from ..compute.budget import available_bytes, batch_size_for, oom_guard
from ..compute.capabilities import graph_why_not
from ..compute.direct_logit import _tolerance
from ..compute.progress import no_progress
from ..errors import DoesNotApplyError, LLMWidgetsError, OutOfMemoryError
from ..execution import executor_of
from .graph import EMBED_LAYER, Graph
from .prune import partial_influence, prune
from .replacement import Observed, Transcoders, frozen_forward, observe, transcoders_of

CHUNK = 1 << 24  # elements of a [targets, positions, features] product per step
HOST_CHUNK = 1 << 22  # elements of the host-side edge rows copied at a time (checks, folding)
UPDATE = 4  # batches of feature targets between two rankings by estimated influence (max_feature_nodes)


def attribution_graph(session, text: str, transcoders, *, target=None, contrast=None, max_logits: int = 10,
                      logit_probability: float = 0.95, max_feature_nodes=None, node_threshold: float = 0.8,
                      edge_threshold: float = 0.98, batch_size=None, budget=None, report=None) -> Graph:
    """The attribution graph of `text` through `transcoders` (a list with one per-layer transcoder
    per block, or a CrossLayerTranscoder), pruned at `node_threshold` / `edge_threshold` (1.0 and
    1.0: nothing is cut). Targets: the logits at the last position in order of probability, up to
    `max_logits`, until their probabilities add up to `logit_probability`; or `target`: a token (a
    string of exactly one token, or an id) or a list of them. `contrast` (a token, with one `target`
    token), as attribution and patching take it: the graph has one logit node, the logit difference
    "target rather than contrast" (the difference of the two demeaned logits; its edges are the
    differences of the two logits' edges), weighted by the target's probability, and
    info['contrast'] names both tokens. `max_feature_nodes` caps the feature
    nodes (by estimated influence); `batch_size` targets per backward pass (default: the budget
    module's estimate for the session's device); `budget` bytes of host memory for the edge rows and
    the pruning matrices (default: a quarter of the available RAM); `report(fraction, label)` is
    called as the work proceeds (raising from it cancels). See the module docstring for what every
    number means."""
    if not isinstance(text, str):
        raise LLMWidgetsError(f"text must be a str, got {type(text).__name__}")
    ex = executor_of(session)
    ex.require("gradients", "An attribution graph")
    ex.require("module_hooks", "An attribution graph (it freezes norms and attention with hooks)")
    ad = session.adapter
    why = graph_why_not(session)  # the rule lw.capabilities reports
    if why:
        raise DoesNotApplyError(why)
    max_logits = integer(max_logits, "max_logits", low=1)
    p = fraction(logit_probability, "logit_probability", open_low=True)
    fraction(node_threshold, "node_threshold")
    fraction(edge_threshold, "edge_threshold")
    cap = integer(max_feature_nodes, "max_feature_nodes", low=0, allow_none=True)
    batch_size = integer(batch_size, "batch_size", low=1, allow_none=True)
    budget = integer(budget, "budget", low=1, allow_none=True)
    host = available_bytes("cpu") // 4 if budget is None else budget
    report = report or no_progress
    t0 = time.perf_counter()

    tc = transcoders_of(session, transcoders)
    enc, truncated, _ = session.encode(text)
    ids = enc["input_ids"][0].cpu()
    T, L = len(ids), ad.n_layers
    report(0.0, "attribution graph: the model's own forward")
    obs = observe(session, enc, tc)
    tgt_ids, tgt_probs = _targets(session, obs, target, max_logits, p)
    neg = _contrast(session, obs, target, contrast, tgt_ids)
    dev = obs.emb.device
    tc = tc.to(dev)
    feats = _active(tc, obs, dev)
    errors = _errors(tc, obs, feats, dev)
    n_act, n_log = len(feats["layer"]), len(tgt_ids)
    rest = L * T + T + 1
    keep = min(n_act, cap if cap is not None else n_act)
    fit = _fit(keep, n_act, rest, n_log, host)
    cut_why = None
    if fit < keep:
        cut_why = (f"the edge rows of {keep} features ({keep} x {n_act + rest} float32) and the pruning matrices did "
                   f"not fit in {host} bytes of host memory")
        keep = fit
    elif keep < n_act:
        cut_why = f"max_feature_nodes={cap}"

    B = batch_size or batch_size_for(session, T, grad=True)
    B = max(1, min(B, n_log + keep))
    with oom_guard(session, "an attribution graph", "batch_size", B, T):
        report(0.02, "attribution graph: the frozen replacement model")
        fz = frozen_forward(session, obs, tc, batch=B)
        _check_same(session, fz.head[0].detach().to(dev), obs.head)
        zero = frozen_forward(session, obs, tc, batch=1, zero=True, grad=False)
        bias_logit = (zero.head[0] - zero.head[0].mean()).to(dev)[tgt_ids.to(dev)].float()
        if neg is not None:
            bias_logit = bias_logit - (zero.head[0] - zero.head[0].mean()).to(dev)[neg].float()
        x0 = [sum(t[0].to(dev) for t in xs).float() for xs in zero.x]
        rows, row_nodes, values, biases = _attribute(tc, obs, fz, feats, errors, tgt_ids, tgt_probs, x0, keep, B,
                                                     bias_logit, report, neg)
        del fz, zero  # the batch's autograd graph: freed before the graph is built
    _verify(rows, values, biases, row_nodes, feats, n_act, L, _tolerance(session.dtype))
    g = _graph(session, ids, tc, feats, errors, rows, row_nodes, biases, values, tgt_ids, tgt_probs, obs, T, L)
    if neg is not None:  # the logit node shown as "target - contrast"
        g = replace(g, target_tokens=[f"{g.target_tokens[0]} \u2212 {_token(session, neg)}"])
    g.info.update({
        "model": session.name, "transcoders": tc.name, "cross_layer": tc.cross_layer, "n_tokens": T,
        "truncated": bool(truncated), "batch_size": B, "host_budget": int(host), "seconds": time.perf_counter() - t0,
        "logit_value": "logit - mean logit over the vocabulary (circuit-tracer's demeaned logit), at the last position",
        "softcap": (f"the model soft-caps its logits (tanh, cap {ad.softcap}); logit nodes are the logits before it"
                    if ad.softcap else None),
        "bias": "one 'bias' node: the constant terms into each target (the frozen model with every source at zero)",
        "norms_frozen": [n.path for n in obs.norms], "attention_calls_frozen": len(obs.qk),
        "contrast": None if neg is None else {
            "target": _token(session, tgt_ids[0]), "target_id": int(tgt_ids[0]), "contrast": _token(session, neg),
            "contrast_id": int(neg), "contrast_prob": float(torch.softmax(obs.logits.double(), -1)[neg]),
            "value": "target logit - contrast logit (the mean over the vocabulary cancels)"},
        "features": {"active": n_act, "kept": int(keep), "left_out": int(n_act - keep), "why": cut_why,
                     "left_out_into": "the error node at the feature's layer and position" if keep < n_act else None}})
    report(0.97, "attribution graph: pruning")
    out = prune(g, node_threshold, edge_threshold)
    report(1.0, "attribution graph: done")
    return out


def _contrast(session, obs: Observed, target, contrast, tgt_ids: torch.Tensor):
    """The contrast token's id (None without one): it needs exactly one target token, not itself."""
    if contrast is None:
        return None
    if target is None or len(tgt_ids) != 1:
        raise LLMWidgetsError("contrast= compares one target token with another: pass target= one token (a string "
                              "of one token, or an id) with it")
    ids = _targets(session, obs, contrast, 1, 1.0)[0].tolist()
    if len(ids) != 1:
        raise LLMWidgetsError(f"contrast is one token (a string of one token, or an id), got {contrast!r}")
    c = ids[0]
    if c == int(tgt_ids[0]):
        raise LLMWidgetsError(f"contrast {contrast!r} is the target itself: a logit difference with itself is 0")
    return c


def _token(session, i: int) -> str:
    return session.readable_tokens(session.tokenizer.convert_ids_to_tokens([int(i)]))[0]


def _targets(session, obs: Observed, target, max_logits: int, p: float):
    """(token ids [K] long, probabilities [K] float32) of the logit nodes."""
    probs = torch.softmax(obs.logits.double(), -1).float().cpu()
    V = len(probs)
    if target is None:
        top_p, top_i = torch.topk(probs, min(max_logits, V))
        k = int(torch.searchsorted(torch.cumsum(top_p, 0), torch.tensor(p))) + 1
        return top_i[:k], top_p[:k]
    items = [target] if isinstance(target, (str, int, np.integer)) and not isinstance(target, bool) else target
    try:
        items = list(items)
    except TypeError:
        raise LLMWidgetsError(f"target must be a token (a string of one token, or an id) or a list of them, got "
                              f"{target!r}") from None
    if not items:
        raise LLMWidgetsError("target is empty: give at least one token")
    out = []
    for t in items:
        if isinstance(t, str):
            out.append(one_token(session, t, "target"))
        elif isinstance(t, (int, np.integer)) and not isinstance(t, bool) and 0 <= int(t) < V:
            out.append(int(t))
        else:
            raise LLMWidgetsError(f"target {t!r} is neither a token string nor a token id in 0..{V - 1}")
    if len(set(out)) != len(out):
        raise LLMWidgetsError(f"target names a token twice: {items}")
    ids = torch.tensor(out, dtype=torch.long)
    return ids, probs[ids]


# -- the nodes ------------------------------------------------------------------------------------
def _active(tc: Transcoders, obs: Observed, dev) -> dict:
    """The active features: layer, position, feature, activation (flat, in (layer, position,
    feature) order) and, per layer, their slice."""
    out = {"layer": [], "pos": [], "feat": [], "act": [], "acts": []}
    for l, d in enumerate(tc.encoders):
        with torch.no_grad():
            a = d.weights.encode(obs.x[l].to(dev))
        pos, f = torch.nonzero(a > 0, as_tuple=True)
        out["layer"].append(torch.full_like(pos, l))
        out["pos"].append(pos)
        out["feat"].append(f)
        out["act"].append(a[pos, f])
        out["acts"].append(a)
    for k in ("layer", "pos", "feat", "act"):
        out[k] = torch.cat(out[k])
    return out


def _errors(tc: Transcoders, obs: Observed, feats: dict, dev) -> list:
    """[L] error vectors [T, D]: the model's MLP output minus the transcoders' reconstruction (and
    the skip connection)."""
    out = []
    for l in range(tc.n_layers):
        rec = tc.b_dec[l].expand_as(obs.mlp[l]).float().clone()
        for i in range(l + 1):
            dec = tc.decoders[i]
            if l - i < dec.shape[1]:
                rec = rec + feats["acts"][i] @ dec[:, l - i]
        if tc.skip[l] is not None:
            rec = rec + obs.x[l] @ tc.skip[l].T
        out.append(obs.mlp[l].float() - rec)
    return out


def _fit(keep: int, n_act: int, rest: int, n_log: int, budget: int) -> int:
    """The most feature nodes (<= keep) whose edge rows ([rows, every column], float32) and pruning
    matrices ([nodes, nodes], float64, six alive) fit in `budget` bytes."""
    def need(k):
        return 4 * (k + n_log) * (n_act + rest + n_log) + 48 * (k + rest + n_log) ** 2
    if need(0) > budget:
        raise OutOfMemoryError(f"an attribution graph of {rest} error/embedding nodes and {n_act} active features does "
                               f"not fit in {budget} bytes even without feature nodes: use a shorter text or pass a "
                               f"larger budget=")
    lo, hi = 0, keep
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if need(mid) <= budget else (lo, mid - 1)
    return lo


# -- the edges ------------------------------------------------------------------------------------
def _attribute(tc, obs, fz, feats, errors, tgt_ids, tgt_probs, x0, keep, B, bias_logit, report, neg=None):
    """Every target's row of direct effects over the columns [active features, errors (layer-major),
    embeddings]: logits first, then the features (all, or the `keep` of largest estimated influence,
    chosen as circuit-tracer does). Returns (rows [R, C] float32, row_nodes [R] (a feature's index
    among the active ones, or n_act + i for logit i), values [R], biases [R]). With `neg` (a contrast
    token id) the one logit row is the target's minus the contrast's."""
    n_act, n_log = len(feats["layer"]), len(tgt_ids)
    T, L = obs.emb.shape[0], tc.n_layers
    C = n_act + L * T + T
    V = obs.head.shape[0]
    rows = np.zeros((n_log + keep, C), np.float32)
    row_nodes = np.zeros(n_log + keep, np.int64)
    values = np.zeros(n_log + keep, np.float64)
    biases = np.zeros(n_log + keep, np.float64)
    head_val = obs.head - obs.head.mean()
    total = n_log + keep
    done = 0
    for s in range(0, n_log, B):
        idx = tgt_ids[s:s + B]
        rows[s:s + len(idx)] = _rows(tc, obs, fz, feats, errors, logits=idx, V=V, B=B, neg=neg)
        row_nodes[s:s + len(idx)] = n_act + np.arange(s, s + len(idx))
        values[s:s + len(idx)] = head_val[idx.to(head_val.device)].double().cpu().numpy()
        if neg is not None:
            values[s:s + len(idx)] -= float(head_val[neg])
        biases[s:s + len(idx)] = bias_logit[s:s + len(idx)].double().cpu().numpy()
        done += len(idx)
        report(0.05 + 0.9 * done / total, f"attribution graph: {done} of {total} targets")
    probs = np.asarray(tgt_probs, np.float64)
    visited = np.zeros(n_act, bool)
    queue = np.zeros(0, np.int64)
    r = n_log
    while r < n_log + keep:
        if keep == n_act:
            batch = np.arange(r - n_log, min(r - n_log + B, n_act))
        else:
            if not len(queue):  # re-ranked every UPDATE batches, as circuit-tracer does
                nodes = np.where(row_nodes[:r] < n_act, row_nodes[:r], C + row_nodes[:r] - n_act)
                inf = partial_influence(rows[:r], nodes, np.concatenate([np.zeros(C), probs]),
                                        HOST_CHUNK)[:n_act]
                order = np.argsort(-inf, kind="stable")
                queue = order[~visited[order]][:min(UPDATE * B, n_log + keep - r)]
            batch, queue = queue[:B], queue[B:]
        visited[batch] = True
        bt = torch.as_tensor(batch, device=obs.emb.device)
        rows[r:r + len(batch)] = _rows(tc, obs, fz, feats, errors, features=bt, B=B)
        row_nodes[r:r + len(batch)] = batch
        lay, pos, f = feats["layer"][bt], feats["pos"][bt], feats["feat"][bt]
        values[r:r + len(batch)] = _pre(tc, obs.x, lay, pos, f).double().cpu().numpy()
        biases[r:r + len(batch)] = _pre(tc, x0, lay, pos, f).double().cpu().numpy()
        r += len(batch)
        done += len(batch)
        report(0.05 + 0.9 * done / total, f"attribution graph: {done} of {total} targets")
    return rows, row_nodes, values, biases


def _pre(tc: Transcoders, xs: list, lay, pos, f) -> torch.Tensor:
    """Pre-activations of features (lay, pos, f) from the transcoder inputs xs[l] [T, d_in]."""
    out = torch.zeros(len(lay), dtype=torch.float32, device=lay.device)
    for l in torch.unique(lay).tolist():
        m = lay == l
        w = tc.encoders[l].weights
        x = xs[l][pos[m]].float()
        xin = x - w.b_in if w.b_in is not None else x
        out[m] = (xin * w.W_enc[:, f[m]].T).sum(-1) + w.b_enc[f[m]]
    return out


def _rows(tc, obs, fz, feats, errors, *, logits=None, features=None, V=0, B=1, neg=None) -> np.ndarray:
    """One backward pass: the rows of direct effects into up to B targets (logit ids, or indices
    of active features), [k, C]; `neg`: a contrast token id whose logit each logit target subtracts."""
    k = len(logits) if logits is not None else len(features)
    dev = obs.emb.device
    outputs, seeds = [], []
    if logits is not None:
        seed = torch.zeros(B, V, device=dev)
        seed[:k] -= 1.0 / V
        seed[torch.arange(k, device=dev), logits.to(dev)] += 1.0
        if neg is not None:  # the logit difference: the means cancel
            seed[:k] += 1.0 / V
            seed[:k, neg] -= 1.0
        outputs.append(fz.head)
        seeds.append(seed.to(fz.head.device, fz.head.dtype))
    else:
        lay, pos, f = feats["layer"][features], feats["pos"][features], feats["feat"][features]
        for l in torch.unique(lay).tolist():
            m = torch.nonzero(lay == l).reshape(-1)
            W = tc.encoders[l].weights.W_enc
            xs = fz.x[l]
            seed = torch.zeros(B, *xs[0].shape[1:], device=dev)
            seed[m, pos[m]] = W[:, f[m]].T
            for x in xs:
                outputs.append(x)
                seeds.append(seed.to(x.device, x.dtype))
    inputs = [fz.emb] + list(fz.mlp)
    grads = torch.autograd.grad(outputs, inputs, seeds, retain_graph=True, allow_unused=True)
    g_emb = grads[0][:k].float() if grads[0] is not None else torch.zeros_like(obs.emb)[None].expand(k, -1, -1)
    g_mlp = [g[:k].float() if g is not None else None for g in grads[1:]]
    T, L = obs.emb.shape[0], tc.n_layers
    n_act = len(feats["layer"])
    out = torch.zeros(k, n_act + L * T + T, device=dev)
    for l in range(L):
        if g_mlp[l] is not None:
            out[:, n_act + l * T:n_act + (l + 1) * T] = (g_mlp[l] * errors[l]).sum(-1)
    out[:, n_act + L * T:] = (g_emb * obs.emb.float()).sum(-1)
    start = 0
    for i in range(L):
        n = int((feats["layer"] == i).sum())
        if n:
            out[:, start:start + n] = _feature_cols(tc, feats, i, start, n, g_mlp, k)
        start += n
    return out.cpu().numpy()


def _feature_cols(tc, feats, i: int, start: int, n: int, g_mlp: list, k: int) -> torch.Tensor:
    """[k, n]: the direct effects of layer i's n active features (from flat index `start`) into the
    k targets: a * sum over the MLP outputs j it writes of W_dec[f, j] . gradient at (j, position).
    Computed as the gradients times every decoder row ([k, positions, F], a chunk of positions at
    a time), then the active (position, feature) pairs picked."""
    dec = tc.decoders[i]
    F = dec.shape[0]
    pos, f, a = (feats[key][start:start + n] for key in ("pos", "feat", "act"))
    out = torch.zeros(k, n, device=pos.device)
    T = g_mlp[i].shape[1] if g_mlp[i] is not None else 0
    step = max(1, CHUNK // max(1, k * F))
    for j in range(dec.shape[1]):
        g = g_mlp[i + j]
        if g is None:
            continue
        Wt = dec[:, j].T  # [D, F]
        for t0 in range(0, T, step):
            m = (pos >= t0) & (pos < t0 + step)
            if bool(m.any()):
                full = g[:, t0:t0 + step] @ Wt  # [k, positions, F]
                out[:, m] += full[:, pos[m] - t0, f[m]]
    return out * a[None]


def _check_same(session, got: torch.Tensor, want: torch.Tensor) -> None:
    """The frozen replacement model's logits must equal the model's own (it only moves what the
    gradients see, not the values)."""
    err = float((got.float() - want.float()).abs().max())
    scale = float(want.abs().max()) + 1.0
    if not err <= _tolerance(session.dtype) * scale:
        raise DoesNotApplyError(
            f"the frozen replacement model's logits differ from the model's own by {err:.3g} (of {scale:.3g}): some "
            f"part of {session.name} was not frozen faithfully (normalisation, attention), so no graph is drawn")


def _verify(rows, values, biases, row_nodes, feats, n_act: int, L: int, tol: float) -> None:
    """Every target's incoming effects plus its constant term must add up to its value, within
    `tol` of the summed magnitudes (1e-4 in float32; a few roundings of a 16-bit dtype)."""
    total, mag = np.zeros(len(rows)), np.zeros(len(rows))
    step = max(1, HOST_CHUNK // max(1, rows.shape[1]))
    for s in range(0, len(rows), step):  # in float64, a chunk of rows at a time
        chunk = rows[s:s + step].astype(np.float64)
        total[s:s + step], mag[s:s + step] = chunk.sum(1), np.abs(chunk).sum(1)
    total += biases
    mag += np.abs(biases) + np.abs(values)
    bad = np.abs(total - values) > tol * np.maximum(mag, 1e-6)
    if not bad.any():
        return
    layers = [int(feats["layer"][n]) if n < n_act else L for n in row_nodes[bad]]
    first = min(layers)
    i = int(np.flatnonzero(bad)[int(np.argmin(layers))])
    where = f"block {first - 1}" if first == 1 else (f"blocks 0..{first - 1}" if first > 0 else "the embeddings")
    raise DoesNotApplyError(
        f"the frozen replacement model is not linear in its sources: the effects into a target at layer {first} add "
        f"up to {total[i]:.6g}, its value is {values[i]:.6g}. Something in {where} is nonlinear and was not frozen "
        f"(gated attention, a mixer, a normalisation that is not a module); no graph is returned")


# -- the record -----------------------------------------------------------------------------------
def _graph(session, ids, tc, feats, errors, rows, row_nodes, biases, values, tgt_ids, tgt_probs, obs, T, L) -> Graph:
    """The Graph: nodes [kept features (layer, position, feature order), errors, embeddings, bias,
    logits]; columns of features left out folded into their error nodes."""
    n_act, n_log = len(feats["layer"]), len(tgt_ids)
    fr = row_nodes < n_act
    kept = np.sort(row_nodes[fr])
    lay, pos = feats["layer"].cpu().numpy(), feats["pos"].cpu().numpy()
    cols = rows  # edited in place: the rows are not used after this
    left = np.setdiff1d(np.arange(n_act), kept)
    step = max(1, HOST_CHUNK // max(1, len(rows)))
    for c in range(0, len(left), step):  # folded into the error node at their own layer and position
        sl = left[c:c + step]
        np.add.at(cols, (slice(None), n_act + lay[sl] * T + pos[sl]), cols[:, sl])
    K = len(kept)
    N = K + L * T + T + 1 + n_log
    src_of_col = np.full(n_act + L * T + T, -1, np.int64)
    src_of_col[kept] = np.arange(K)
    src_of_col[n_act:] = K + np.arange(L * T + T)
    bias_row = K + L * T + T
    tgt_of_row = np.empty(len(row_nodes), np.int64)
    tgt_of_row[fr] = np.searchsorted(kept, row_nodes[fr])
    tgt_of_row[~fr] = bias_row + 1 + row_nodes[~fr] - n_act
    use = src_of_col >= 0
    sub = cols[:, use]
    r, c = np.nonzero(sub)
    src = src_of_col[use][c]
    tgt = tgt_of_row[r]
    w = sub[r, c]
    nb = np.flatnonzero(biases != 0)
    source = np.concatenate([src, np.full(len(nb), bias_row)])
    target = np.concatenate([tgt, tgt_of_row[nb]])
    weight = np.concatenate([w.astype(np.float64), biases[nb]]).astype(np.float32)
    kind = np.array(["feature"] * K + ["error"] * (L * T) + ["embedding"] * T + ["bias"] + ["logit"] * n_log)
    layer = np.concatenate([lay[kept], np.repeat(np.arange(L), T), np.full(T, EMBED_LAYER), np.full(1 + n_log, L)])
    position = np.concatenate([pos[kept], np.tile(np.arange(T), L), np.arange(T), np.full(1 + n_log, T - 1)])
    feature = np.concatenate([feats["feat"].cpu().numpy()[kept], np.full(L * T, -1), ids.numpy(), [-1],
                              tgt_ids.numpy()])
    act = np.zeros(N, np.float32)
    act[:K] = feats["act"].cpu().numpy()[kept]
    act[bias_row + 1:] = values[:n_log]
    tok = session.tokenizer
    tokens = session.readable_tokens(tok.convert_ids_to_tokens(ids.tolist()))
    return Graph(tokens=tokens, token_ids=ids.numpy().astype(np.int64), kind=kind, layer=layer.astype(np.int64),
                 position=position.astype(np.int64), feature=feature.astype(np.int64), activation=act,
                 influence=np.zeros(N, np.float32), source=source.astype(np.int64), target=target.astype(np.int64),
                 weight=weight, n_layers=L,
                 target_tokens=session.readable_tokens(tok.convert_ids_to_tokens(tgt_ids.tolist())),
                 target_ids=tgt_ids.numpy().astype(np.int64), target_probs=np.asarray(tgt_probs, np.float32),
                 info={})

