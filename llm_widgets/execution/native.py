"""The native executor: a Program run as one forward of the model here, with torch hooks at its
sites (llm_widgets.execution.hooks), under the model lock."""
from __future__ import annotations

import contextlib
from contextlib import contextmanager

import torch

from ..adapter import get_module
from ..errors import LLMWidgetsError
from .base import Executor
from .hooks import hooks
from . import ops
from .ops import OpError
from .program import Program, Result


class _Stop(Exception):
    """Raised from the hook of a program's last read when nothing after it is needed."""


class _Here:
    """What ops see of the model (`ctx`): its modules, called here."""

    def __init__(self, model):
        self.model = model
        self.leaf = None  # set by a write whose value gradients are taken with respect to (ops.Replace)

    def call(self, path: str, x):
        return get_module(self.model, path)(x)


class Native(Executor):
    """Torch hooks on the model in this process: the reference every other executor is compared with."""

    name = "native"
    capabilities = frozenset({"gradients", "graphs", "module_hooks", "prefix_reuse", "module_calls", "eager_attention",
                              "weights_here", "standing_writes", "generate"})

    def run(self, session, program: Program, report=None) -> Result:
        model = session.model
        ctx = _Here(model)
        got: dict = {}
        n_reads = len(program.reads)
        stop_early = program.stop and program.logits is None and not program.hidden  # nothing after is needed
        sites: dict = {}
        for w in program.writes:
            sites.setdefault((w.site, w.layer), ([], []))[0].append(w)
        for r in program.reads:
            sites.setdefault((r.site, r.layer), ([], []))[1].append(r)

        def at(writes, reads):
            def fn(x):
                for w in writes:
                    x = _checked(w.op, x, w.rows, ctx)
                for r in reads:
                    v = r.reduce(x, ctx) if r.reduce is not None else x
                    got[r.key] = ops.kept(v, x, program.grad)
                if stop_early and len(got) == n_reads:
                    raise _Stop()
                return x if writes else None
            return fn

        edits = [(site, layer, at(ws, rs)) for (site, layer), (ws, rs) in sites.items()]
        out = None
        grad = program.grad or program.gradients
        with hooks(model, edits), torch.enable_grad() if grad else contextlib.nullcontext():
            try:
                out = session.forward(attentions=False, hidden=program.hidden, grad=grad, base_only=program.base_only,
                                      **program.inputs, **program.extra)
            except _Stop:
                pass
        res = _result(session, program, got, out, ctx)
        if program.gradients:
            res.grads = ops.gradients(res.logits, ctx.leaf)
            res.logits = res.logits.detach()
        return res

    def standing(self, session, writes):
        return standing(session, writes)


def _checked(op, x, rows, ctx):
    try:
        return op(x, rows, ctx)
    except OpError as e:
        raise LLMWidgetsError(str(e)) from None


def _result(session, program: Program, got: dict, out, ctx) -> Result:
    logits = hidden = None
    if out is not None and program.logits is not None:
        lg = out if program.logits == "model_output" else out.logits
        if program.logits not in ("all", "model_output") and lg.dim() == 3:
            lg = lg[:, torch.as_tensor(program.logits, device=lg.device, dtype=torch.long)]
        logits = program.output(lg, ctx) if program.output is not None else lg
        logits = logits if program.grad or program.gradients else ops.detached(logits)
    if out is not None and program.hidden:
        hs = session.adapter.hidden_states(out.hidden_states, program.inputs.get("input_ids"))  # embeddings first
        dev = hs[0].device
        hs = torch.stack([h.to(dev) for h in hs])
        if program.hidden_reduce is not None:
            hs = torch.stack([program.hidden_reduce(h, ctx) for h in hs])
        hidden = hs
    if program.stop and out is None and len(got) < len(program.reads):
        raise LLMWidgetsError(f"{program.label}: the forward ended before every site was read")
    return Result(reads=got, logits=logits, hidden=hidden, output=out)


@contextmanager
def standing(session, writes):
    """Writes that act on every forward of this thread while inside (`intervene`): thread-scoped
    hooks (llm_widgets.guards), so background views keep computing on the unedited model."""
    ctx = _Here(session.model)

    def at(ws):
        def fn(x):
            for w in ws:
                x = _checked(w.op, x, w.rows, ctx)
            return x
        return fn

    by: dict = {}
    for w in writes:
        by.setdefault((w.site, w.layer), []).append(w)
    with hooks(session.model, [(s, l, at(ws)) for (s, l), ws in by.items()], thread=True):
        yield
