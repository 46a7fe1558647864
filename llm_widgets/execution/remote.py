"""A Program inside one nnsight trace: the body the nnsight executor runs, here or on a server.

Shipped by value (a server such as NDIF has no llm_widgets): imports torch and the ops module only,
takes plain arguments (tensors, numbers, strings, the ops' records) and appends one dict to `box`.
`visits` lists the sites in the order the forward reaches them (nnsight serves them in that order):
(module path, where, writes [(op, rows)], reads [(key, reduce)]) with where 'in' (the module's
first input), 'out' (its first output) or 'hidden_in' (a block's hidden-states input, positional
or keyword: the embedding output).
"""
from __future__ import annotations

import torch

from .ops import detached, first, gradients, kept


class _Ctx:
    """What ops see of the model inside the trace: its modules, called where the model runs."""

    def __init__(self, lm):
        self.lm = lm
        self.leaf = None  # set by a write whose value gradients are taken with respect to (ops.Replace)

    def call(self, path: str, x):
        return self.lm.get(path)(x)


def _stop():
    """End the forward pass here: nothing after this point is computed."""
    from nnsight.intervention.interleaver import EarlyStopException

    raise EarlyStopException()


def _get(env, where):
    if where == "in":
        return env.input
    if where == "hidden_in":
        args, kwargs = env.inputs
        return args[0] if args else kwargs["hidden_states"]
    return first(env.output)


def _set(env, where, new, old_output=None):
    if where == "in":
        env.input = new
    elif where == "hidden_in":
        args, kwargs = env.inputs
        if args:
            env.inputs = ((new,) + tuple(args[1:]), kwargs)
        else:
            env.inputs = (args, {**kwargs, "hidden_states": new})
    elif isinstance(old_output, tuple):
        env.output = (new,) + tuple(old_output[1:])
    else:
        env.output = new


def _visit(lm, ctx, n_tokens, visit, got, grad) -> None:
    """One site: its writes applied (the model goes on with the result), then its reads saved."""
    path, where, writes, reads = visit
    env = lm.get(path)
    old = env.output if where == "out" else None
    raw = first(old) if where == "out" else _get(env, where)
    x = raw.view(-1, n_tokens, raw.shape[-1]) if raw.dim() == 2 else raw  # [B * T, F] blocks (OPT's MLP)
    for op, rows in writes:
        x = op(x, rows, ctx)
    if writes:
        _set(env, where, x.reshape(raw.shape), old)
    for key, reduce in reads:
        val = reduce(x, ctx) if reduce is not None else x
        got[key] = kept(val, x, grad)


def execute(lm, box, visits, n_tokens, logits, output, hidden, hidden_reduce, base, stop, grad, grads):
    """Run the visits, then read what the program wants from the output (see Program)."""
    ctx = _Ctx(lm)
    got = {}
    for visit in visits:
        _visit(lm, ctx, n_tokens, visit, got, grad)
    result = {"reads": got, "logits": None, "hidden": None}
    if hidden:
        out = lm.get(base).output if base else lm.output
        hs = out.hidden_states
        hs = torch.stack([hidden_reduce(h, ctx) if hidden_reduce is not None else h for h in hs])
        result["hidden"] = hs if grad else detached(hs)
    if logits is not None:
        lg = lm.output if logits == "model_output" else lm.output.logits
        if not isinstance(logits, str) and lg.dim() == 3:
            lg = lg[:, torch.as_tensor(logits, device=lg.device, dtype=torch.long)]
        val = output(lg, ctx) if output is not None else lg
        if grads:  # taken here: a tensor with a graph does not travel
            result["grads"] = gradients(val, ctx.leaf).detach()
        result["logits"] = detached(val)
    box.append(result)
    if logits is None and (stop or hidden):
        _stop()


# -- Session.trace: one forward, with what each attention call was given ----------------------------
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


def trace(lm, box, attention, max_logits: int, visits, n_blocks: int, n_tokens: int, embeddings_key):
    """One forward: hidden states, logits (up to `max_logits` values) and, when `attention` lists
    (attention module path, source operation) per block, what each block's attention call was given,
    so that any head's weights can be computed afterwards. `visits` [(block, visit)]: the standing
    writes (and the read of the embedding output under `embeddings_key`, where the model's hidden
    states omit it: sent back as 'embeddings'), applied in forward order around the attention calls."""
    ctx = _Ctx(lm)
    got = {}
    by = {}
    for block, visit in visits:
        by.setdefault(block, []).append(visit)
    for visit in by.get(-1, []):
        _visit(lm, ctx, n_tokens, visit, got, False)
    calls = []
    for b in range(n_blocks):
        if attention:
            path, op = attention[b]
            args, kwargs = getattr(lm.get(path).source, op).inputs
            calls.append(_attention_call(args, kwargs))
        for visit in by.get(b, []):
            _visit(lm, ctx, n_tokens, visit, got, False)
    out = lm.output
    hidden = torch.stack([h[0] for h in out.hidden_states]).detach()
    embeddings = got.pop(embeddings_key)[0].detach() if embeddings_key is not None else None
    logits = getattr(out, "logits", None)
    if logits is not None:
        logits = logits[0].detach() if logits[0].numel() <= max_logits else None
    box.append({"hidden": hidden, "embeddings": embeddings, "logits": logits,
                "attention": calls if attention else None})
