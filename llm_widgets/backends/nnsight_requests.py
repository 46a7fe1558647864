"""What runs inside one `with model.trace(...)` of the nnsight backend: one function per request.

Each function takes the root envoy `lm`, a list `box` (saved before the function runs; the function
appends its result, so a request that stops the forward early still returns it) and plain
arguments: tensors, numbers, strings, and lists / tuples / dicts of them. Module paths are envoy
paths (`llm_widgets.backends.nnsight_discovery.envoy_path`), listed in the order the forward reaches
them (nnsight serves locations in execution order).

This module is shipped by value to a remote server (NDIF): it imports torch and nothing from
llm_widgets, and every tensor it returns is detached (a tensor with an autograd graph cannot cross
a process boundary). Only what the function appends to `box` comes back.
"""
from __future__ import annotations

import torch


def _first(x):
    """The first output of a module (a tuple's first item, or the tensor itself)."""
    return x[0] if isinstance(x, (tuple, list)) else x


def _stop():
    """End the forward pass here: nothing after this point is computed."""
    from nnsight.intervention.interleaver import EarlyStopException

    raise EarlyStopException()


def _as_tokens(x, n_tokens: int):
    """[B, T, F] view of an activation some models flatten to [B * T, F] (OPT's MLP)."""
    return x.view(-1, n_tokens, x.shape[-1]) if x.dim() == 2 else x


def _attention_call(args, kwargs) -> dict:
    """What one attention call (transformers' attention interface) was given, batch row 0: the
    post-rotary queries and keys, the mask, scaling, soft-cap, position bias and sinks."""
    a = dict(zip(("module", "query", "key", "value", "attention_mask"), args))
    a.update(kwargs)
    q, k, mask = a["query"], a["key"], a.get("attention_mask")
    tq, tk = q.shape[2], k.shape[2]
    causal = a.get("is_causal")
    if causal is None:
        causal = getattr(a.get("module"), "is_causal", True)
    bias = a.get("position_bias")
    sinks = a.get("s_aux", a.get("sinks"))
    scaling = a.get("scaling")
    return {
        "query": q[0].detach(),
        "key": k[0].detach(),
        "mask": None if mask is None else mask[0, :, :tq, :tk].detach(),
        "is_causal": bool(causal),
        "scaling": None if scaling is None else float(scaling),
        "softcap": a.get("softcap"),
        "bias": None if bias is None else bias[0, :, :tq, :tk].detach(),
        "sinks": None if sinks is None else sinks.detach(),
    }


def trace(lm, box, attention, max_logits: int):
    """One forward: hidden states, logits (up to `max_logits` values) and, when `attention` lists
    (attention module path, source operation) per block, what each block's attention call was
    given, so that any head's weights can be computed afterwards."""
    calls = []
    for path, op in attention or ():
        args, kwargs = getattr(lm.get(path).source, op).inputs
        calls.append(_attention_call(args, kwargs))
    out = lm.output
    hidden = torch.stack([h[0] for h in out.hidden_states]).detach()
    logits = getattr(out, "logits", None)
    if logits is not None:
        logits = logits[0].detach() if logits[0].numel() <= max_logits else None
    box.append({"hidden": hidden, "logits": logits, "attention": calls if attention else None})


def first_input(lm, box, path):
    """The input of one module (e.g. the first block: the embedding-layer output), then stop."""
    box.append(lm.get(path).input.detach())
    _stop()


def inputs_of(lm, box, paths, n_tokens):
    """The inputs of several modules (e.g. every MLP output projection: the neurons), then stop."""
    box.append([_as_tokens(lm.get(p).input, n_tokens).detach() for p in paths])
    _stop()


def _readout(lm, h, norms, head, scale, softcap):
    """The model's own logits from a residual state: final norm(s), head, scaling, soft-cap."""
    for p in norms:
        h = _first(lm.get(p)(h))
    logits = _first(lm.get(head)(h))
    if scale != 1.0:
        logits = logits * scale
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return logits


def logit_lens(lm, box, blocks, norms, head, scale, softcap, ids, k, full):
    """Each residual (the first block's input, then every block's output) read out through the
    model's own final norm and head, on the server: the top-k outputs and the probability of the
    next input token per (row, position), or (full) every logit."""
    resid = [lm.get(blocks[0]).input[0]]
    for p in blocks:
        resid.append(_first(lm.get(p).output)[0])
    logits = torch.stack([_readout(lm, r[None], norms, head, scale, softcap)[0] for r in resid]).float()
    if full:
        box.append(logits.detach())
        _stop()
    probs = torch.softmax(logits, -1)
    top_p, top_i = probs.topk(min(k, probs.shape[-1]), dim=-1)
    nxt = torch.zeros(probs.shape[:2])
    ids = ids.to(probs.device)
    nxt[:, :-1] = probs[:, torch.arange(len(ids) - 1, device=probs.device), ids[1:]].cpu()
    box.append({"top_p": top_p.detach(), "top_i": top_i.detach(), "next": nxt})
    _stop()


def hidden_states(lm, box, base, how, select):
    """Hidden states of every layer from the base model (heads skipped: the forward stops there),
    reduced on the server: how='pool' (select: [B, T] weights, the weighted mean per row), 'rows'
    (select: (batch indices, token indices)) or 'all' ([L+1, B, T, D])."""
    out = lm.get(base).output if base else lm.output
    hs = torch.stack([h for h in out.hidden_states]).float()
    if how == "pool":
        mask = select.to(hs.device, hs.dtype)
        got = (hs * mask[None, :, :, None]).sum(2) / mask.sum(1)[None, :, None]
    elif how == "rows":
        got = hs[:, select[0].to(hs.device), select[1].to(hs.device)]
    else:
        got = hs
    box.append(got.detach())
    _stop()


def _logits_at(out, position, kept):
    logits = out.logits
    if kept:
        return logits[:, 0]
    return logits[:, position] if logits.dim() == 3 else logits


def _metric(lg, metric):
    """metric: ('logit_diff', a, b), ('logit', a) or ('prob', a) on float logits [B, V]."""
    if metric[0] == "logit_diff":
        return lg[:, metric[1]] - lg[:, metric[2]]
    if metric[0] == "logit":
        return lg[:, metric[1]]
    return torch.softmax(lg.float(), -1)[:, metric[1]]


def output_logits(lm, box, position, kept):
    """[B, V] float logits at one position (or [B, C] for classifiers)."""
    box.append(_logits_at(lm.output, position, kept).float().detach())


def patch(lm, box, plan, position, kept, metric, k, n_tokens, ends):
    """Activation patching, every patched run a row of one batch. Row 0 is the clean input, the
    other rows the corrupted one (row 1 left unpatched when `ends`). `plan` lists, in the order the
    forward reaches them, (module path, 'in' or 'out', rows, positions or None, column ranges or
    None): at each, the rows get row 0's (clean) activation at those positions (all features) or
    in those column ranges (all positions: attention heads). Returns the metric per row (or the
    logits when `metric` is None: a custom metric computed by the caller), the top-k output
    probabilities per row and, when `ends`, the clean and corrupted logits."""
    for path, where, rows, positions, cols in plan:
        env = lm.get(path)
        x = env.input if where == "in" else env.output
        first = _first(x)
        act = _as_tokens(first, n_tokens)
        new = act.clone()
        rows = rows.to(new.device)
        if positions is not None:
            positions = positions.to(new.device)
            new[rows, positions] = new[0, positions]
        else:
            for r, (a, b) in zip(rows.tolist(), cols):
                new[r, :, a:b] = new[0, :, a:b]
        new = new.reshape(first.shape)
        if where == "in":
            env.input = new
        elif isinstance(x, tuple):
            env.output = (new,) + tuple(x[1:])
        else:
            env.output = new
    lg = _logits_at(lm.output, position, kept).float()
    tp, ti = torch.softmax(lg, -1).topk(min(k, lg.shape[-1]), dim=-1)
    got = {"top_p": tp.detach(), "top_i": ti.detach(),
           "values": (_metric(lg, metric) if metric is not None else lg).double().detach()}
    if ends:
        got["ends"] = lg[:2].detach()
    box.append(got)


def ablation(lm, box, edits, position, kept):
    """Row 0 as it is, row 1 with heads / neurons ablated: edits lists, in forward order, (module
    path, column indices, mode 'zero' or 'mean') on the module's input, or (path, columns, 'set',
    values [1, T, columns]) for resample ablation. Returns [2, V] logits at `position`."""
    for edit in edits:
        path, cols, mode = edit[:3]
        env = lm.get(path)
        x = env.input
        new = x.clone()
        cols = cols.to(new.device)
        if mode == "zero":
            new[1:, ..., cols] = 0
        elif mode == "set":
            new[1:, ..., cols] = edit[3].to(new.device, new.dtype)
        else:
            sel = new[1:, ..., cols]
            new[1:, ..., cols] = sel.reshape(-1, sel.shape[-1]).mean(0).expand_as(sel)
        env.input = new
    box.append(_logits_at(lm.output, position, kept).float().detach())


# -- attribution: f(E), the target outputs of the first block's input E --------------------------
def _targets(out, spec):
    """[B, K] float32 target outputs from the model output (see Objective): spec['kind'] is
    'decoder' (log-prob or logit of K tokens at the last positions), 'classes' (class logits /
    probabilities / log-probabilities) or 'custom' (spec['fn'](output))."""
    kind = spec["kind"]
    if kind == "custom":
        vals = spec["fn"](out)
    elif kind == "decoder":
        logits = out.logits if spec["kept"] else out.logits[:, spec["positions"].to(out.logits.device)]
        lp = torch.log_softmax(logits.float(), dim=-1) if spec["output"] == "log_prob" else logits.float()
        ids = spec["ids"].to(lp.device)
        vals = lp[:, torch.arange(len(ids), device=lp.device), ids]
        if spec["other"] is not None:
            vals = vals - lp[:, 0, spec["other"]][:, None]
    else:
        logits = out.logits.float()
        if spec["output"] == "prob":
            logits = torch.softmax(logits, -1)
        elif spec["output"] == "log_prob":
            logits = torch.log_softmax(logits, -1)
        vals = logits[:, spec["ids"]]
        if spec["other"] is not None:
            vals = vals - logits[:, spec["other"]][:, None]
    if vals.dim() == 1:
        vals = vals[:, None]
    return vals.float()


def _set_input(env, E):
    """Replace a block's hidden-states input (first positional, else the keyword) by E."""
    args, kwargs = env.inputs
    if args:
        env.inputs = ((E,) + tuple(args[1:]), kwargs)
    else:
        env.inputs = (args, {**kwargs, "hidden_states": E})


def targets(lm, box, block, E, suffix, spec):
    """f(E) [B, K]: E (with the generated tokens' embeddings `suffix` appended) as the first
    block's input."""
    if suffix is not None:
        E = torch.cat([E, suffix.expand(E.shape[0], -1, -1)], dim=1)
    _set_input(lm.get(block), E)
    box.append(_targets(lm.output, spec).detach())


def gradients(lm, box, block, E, suffix, spec, head):
    """[K, b, T, D] float32 gradient of each of the K targets with respect to E [b, T, D] (the
    first block's input), and f(E) [b, K], as compute.attribution.runner.Runner.grads takes them:
    one backward per target batched with vmap; for a causal LM's head (`head`: its path and each
    target's position) one backward through the head first, then the K through the blocks."""
    leaf = E.detach().clone().requires_grad_(True)
    full = leaf if suffix is None else torch.cat([leaf, suffix.expand(leaf.shape[0], -1, -1)], dim=1)
    _set_input(lm.get(block), full)
    if head is not None:
        env = lm.get(head[0])
        h = env.input
        cut = h.detach().requires_grad_(True)
        env.input = cut
    out = _targets(lm.output, spec)
    k = out.shape[1]
    grad = torch.autograd.grad
    if head is not None and k > 1:
        g_head = grad(out.sum(), cut)[0]
        pos = torch.as_tensor(head[1], device=h.device)
        go = torch.zeros((k,) + tuple(h.shape), dtype=h.dtype, device=h.device)
        go[torch.arange(k, device=h.device), :, pos] = g_head[:, pos].transpose(0, 1)
        try:
            g = grad(h, leaf, grad_outputs=go, is_grads_batched=True, retain_graph=True)[0]
        except RuntimeError:  # an op without a batching rule: one backward per target
            g = torch.stack([grad(h, leaf, grad_outputs=go[j], retain_graph=j < k - 1)[0] for j in range(k)])
    elif k == 1:
        g = grad(out[:, 0].sum(), leaf)[0][None]
    else:
        try:
            eye = torch.eye(k, device=out.device, dtype=out.dtype)[:, None, :].expand(k, out.shape[0], k)
            g = grad(out, leaf, grad_outputs=eye, is_grads_batched=True, retain_graph=True)[0]
        except RuntimeError:
            g = torch.stack([grad(out[:, j].sum(), leaf, retain_graph=j < k - 1)[0] for j in range(k)])
    box.append({"grads": g.float().detach(), "values": out.detach()})


def first_output(lm, box, path):
    """The output of one module (e.g. the word embeddings), then stop."""
    box.append(_first(lm.get(path).output).detach())
    _stop()
