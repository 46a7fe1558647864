"""The nnsight executor: a Program run as one nnsight trace (one request; remotely one round trip)
through the session's nnsight backend (llm_widgets.backends.nnsight_backend, which wraps the model,
opens every trace and logs it). The body of the trace is `remote.execute`, shipped by value with
the ops it runs. Standing writes (`intervene`: ablate(), steer(), ...) are kept per thread and
added to every Program this thread runs while they stand."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import replace

import torch

from ..errors import LLMWidgetsError
from ..guards import suspended, thread_scoped
from ..layers import EMBEDDINGS
from . import remote
from .base import Executor
from .ops import OpError
from .program import Program, Read, Result, is_input_site

_EMB = "embedding output"  # the key of the extra read of the embedding output

_STANDING = threading.local()


class Nnsight(Executor):
    """Programs as nnsight traces over the backend's model: here, in nnsight's local simulation of a
    remote run, or on a server."""

    name = "nnsight"

    def __init__(self, backend):
        self.backend = backend

    @property
    def capabilities(self) -> frozenset:
        caps = {"gradients", "standing_writes"}
        if self.backend.weights_here:
            caps |= {"module_calls", "weights_here"}
        return frozenset(caps)

    def visits(self, session, reads, writes) -> list:
        """[(block index, or -1 for the embedding output; visit)] in the order the forward reaches the
        sites (`remote.execute` takes the visits: module path, where, writes, reads)."""
        ad = session.adapter
        order = self.backend.order
        by: dict = {}
        for w in writes:
            by.setdefault((w.site, w.layer), ([], []))[0].append((w.op, None if w.rows is None else list(w.rows)))
        for r in reads:
            by.setdefault((r.site, r.layer), ([], []))[1].append((r.key, r.reduce))

        def rank(key):
            site, layer = key
            return (-1, 0) if layer == EMBEDDINGS else (layer, order.get(site, 0))

        out = []
        for site, layer in sorted(by, key=rank):
            ws, rs = by[(site, layer)]
            if layer == EMBEDDINGS:
                path, where = ad.blocks[0].path, "hidden_in"
            else:
                path, where = ad.site(site, layer).path, "in" if is_input_site(site) else "out"
            out.append((-1 if layer == EMBEDDINGS else layer, (envoy_path(path), where, ws, rs)))
        return out

    def run(self, session, program: Program, report=None) -> Result:
        writes = standing_writes() + list(program.writes)
        missing = program.hidden and not session.adapter.embeddings_in_hidden_states
        if missing:  # the model's hidden states omit the embedding output: read it at the first block's input
            program = replace(program, reads=list(program.reads) + [Read("resid", EMBEDDINGS, program.hidden_reduce,
                                                                         name=_EMB)])
        if program.grad:  # a graph does not come back from a trace: the gradients are taken in it
            raise self.lacks("graphs", program.label)
        inputs = dict(program.inputs)
        inputs.update(program.extra)
        if program.hidden:
            inputs["output_hidden_states"] = True
        first = program.inputs.get("input_ids", program.inputs.get("inputs_embeds"))
        T = first.shape[1]
        if self.backend.remote:  # every op's module ships by value with the request: the server has no llm_widgets
            self.backend.ship([w.op for w in writes] + [r.reduce for r in program.reads]
                              + [program.output, program.hidden_reduce])
        base = _base_path(session) if program.base_only else ""
        try:
            visits = [v for _, v in self.visits(session, program.reads, writes)]
            got = self.backend.request(program.label, remote.execute, inputs, visits, T,
                                       program.logits, program.output, program.hidden, program.hidden_reduce, base,
                                       program.stop, program.grad, program.gradients,
                                       grad=program.grad or program.gradients, report=report)
        except OpError as e:  # an op's refusal (ops ship without llm_widgets: they raise OpError)
            raise LLMWidgetsError(str(e)) from None
        hidden = got["hidden"]
        if missing:  # the one convention: the embedding output first
            hidden = torch.stack(session.adapter.hidden_states(hidden, embeddings=got["reads"].pop(_EMB)))
        return Result(reads=got["reads"], logits=got["logits"], hidden=hidden, grads=got.get("grads"))

    def trace(self, session, inputs: dict, max_logits: int) -> dict:
        """One forward for Session.trace: hidden states (the embedding output first), logits (up to
        `max_logits` values) and what each attention call was given, under this thread's standing
        writes. One request."""
        reads = []
        if not session.adapter.embeddings_in_hidden_states:
            reads.append(Read("resid", EMBEDDINGS, name=_EMB))
        visits = self.visits(session, reads, standing_writes())
        if self.backend.remote:
            self.backend.ship([op for _, (_, _, ws, _) in visits for op, _ in ws])
        T = inputs["input_ids"].shape[1]
        return self.backend.request("trace", remote.trace, {**inputs, "output_hidden_states": True},
                                    self.backend.attention, max_logits, visits, session.adapter.n_layers, T,
                                    _EMB if reads else None)

    def check_cost(self, what: str, cost) -> None:
        self.backend.check_cost(what, cost)

    @contextmanager
    def standing(self, session, writes):
        stack = _stack()
        mine = list(writes)
        stack.append(mine)
        try:
            with thread_scoped():
                yield
        finally:
            stack.remove(mine)


def _stack() -> list:
    if not hasattr(_STANDING, "stack"):
        _STANDING.stack = []
    return _STANDING.stack


def standing_writes() -> list:
    """This thread's standing writes, outermost first (none inside guards.clean())."""
    if suspended():
        return []
    return [w for ws in _stack() for w in ws]


def envoy_path(path: str) -> str:
    """A torch module path as nnsight's envoy tree spells it: a submodule named like a value nnsight
    serves on every module (BERT's `output`) is mounted as `E_output`."""
    import inspect

    from nnsight.intervention.envoy import Envoy

    parts = []
    for part in path.split(".") if path else []:
        if not part.startswith("_") and inspect.isdatadescriptor(getattr(Envoy, part, None)):
            part = Envoy.OVERLOAD_PREFIX + part
        parts.append(part)
    return ".".join(parts)


def _base_path(session) -> str:
    model = session.model
    base = getattr(model, "base_model", model)
    if base is model:
        return ""
    for name, mod in model.named_modules():
        if mod is base:
            return envoy_path(name)
    return ""
