"""The execution layer: compute functions describe a run once (a Program: what to read, what to
write, which outputs), an executor runs it. The native executor uses torch hooks here; a session
loaded with backend='nnsight' runs the same Programs as nnsight traces (here or on a server).

    from llm_widgets.execution import Program, Read, Write, run, intervene, ops
    res = run(s, Program(enc, reads=[Read("resid", 2)]))          # block 2's output
    with intervene(s, [Write("resid", 1, ops.Add(v, scale=4.0))]):   # every forward of this thread
        ...
"""
from __future__ import annotations

from contextlib import contextmanager

from . import ops  # noqa: F401
from .base import CAPABILITIES, Executor  # noqa: F401
from .native import Native
from .program import SITES, Program, Read, Result, Write, is_input_site  # noqa: F401

NATIVE = Native()


def executor_of(session) -> Executor:
    """The executor that runs the session's Programs: its backend's (nnsight), else native hooks."""
    backend = getattr(session, "backend", None)
    return NATIVE if backend is None else backend.executor


def run(session, program: Program, report=None) -> Result:
    """Run `program` on the session's model with its executor."""
    return executor_of(session).run(session, program, report=report)


@contextmanager
def intervene(session, writes):
    """`writes` act on every forward this thread runs while inside (views started inside compute in
    this thread, on the edited model; background views keep the unedited one); nested blocks
    compose. The contexts ablate(), steer() and edit_features() are this with their writes."""
    session.adapter.require("interventions")
    with executor_of(session).standing(session, list(writes)):
        yield
