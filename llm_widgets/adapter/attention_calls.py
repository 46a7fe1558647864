"""Which modules compute softmax attention, observed: the modules that call transformers' attention
function (eager, sdpa, flex, ...) during a forward, and what they pass it (learned sinks).

Transformers' attention modules pick their attention function with
`ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)` and call it with
themselves first: `attention_interface(self, query, key, value, attention_mask, ..., s_aux=sinks)`.
While `observe_attention()` is active on a thread, every such call on that thread is recorded; on
other threads (and outside) the wrapper only calls through. This is how discovery finds attention
that is not named like attention (RecurrentGemma's 'temporal_block', Nemotron-H's 'mixer') and
which blocks' attention holds learned sinks (gpt-oss), from what the model does, not from names.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass

import torch

_local = threading.local()
_lock = threading.Lock()
SINK_ARGUMENTS = ("s_aux", "sinks")  # how transformers' attention functions receive learned sinks


@dataclass
class AttentionCall:
    """One call of an attention function: the module that made it, the query and key shapes
    ([B, heads, T, head_dim] / [B, kv heads, S, head_dim]) and whether it passed learned sinks."""

    module: torch.nn.Module
    query_shape: tuple
    key_shape: tuple
    sinks: bool


def _install() -> None:
    """Wrap `AttentionInterface.get_interface` once, so that the functions it hands out record
    their calls on an observing thread."""
    from transformers.modeling_utils import AttentionInterface

    with _lock:
        if getattr(AttentionInterface.get_interface, "_lw_observed", False):
            return
        original = AttentionInterface.get_interface

        def get_interface(self, attn_implementation, default):
            fn = original(self, attn_implementation, default)
            return _observed(fn) if callable(fn) else fn

        get_interface._lw_observed = True
        AttentionInterface.get_interface = get_interface


def _observed(fn):
    if getattr(fn, "_lw_observed", False):
        return fn

    def wrapped(module, query, key, *args, **kwargs):
        calls = getattr(_local, "calls", None)
        if calls is not None and isinstance(module, torch.nn.Module) and isinstance(query, torch.Tensor):
            sink = next((kwargs[k] for k in SINK_ARGUMENTS if isinstance(kwargs.get(k), torch.Tensor)), None)
            calls.append(AttentionCall(module, tuple(query.shape), tuple(getattr(key, "shape", ())),
                                       sink is not None))
        return fn(module, query, key, *args, **kwargs)

    wrapped._lw_observed = True
    return wrapped


@contextmanager
def observe_attention():
    """While inside, the attention-function calls of this thread's forwards are appended to the
    yielded list (AttentionCall, in call order)."""
    _install()
    outer = getattr(_local, "calls", None)
    calls: list[AttentionCall] = []
    _local.calls = calls
    try:
        yield calls
    finally:
        _local.calls = outer
