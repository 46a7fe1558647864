"""Forward hooks on the raw Hugging Face model: read or overwrite activations at sites (see
llm_widgets.execution.program), always removed after. The native executor's machinery, and a
tool for checking any view against a hand-written hook:

    got = capture(session.model, [("resid", 2)], lambda: session.forward(**enc))  # block 2's output
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Iterable

import torch

from ..adapter import CallHook, adapter_of
from ..guards import acts_here, model_lock, thread_scoped
from ..layers import EMBEDDINGS
from .program import is_input_site

def check_layer(model, layer: int) -> int:
    return adapter_of(model).check_layer(layer)


Edit = Callable[[torch.Tensor], "torch.Tensor | None"]


@contextmanager
def hooks(model, edits: Iterable[tuple[str, int, Edit]], *, thread: bool = False):
    """Install forward hooks: each (site, layer, fn) calls fn(activation) on every forward; fn may
    return a replacement tensor (or edit in place and return None). Removed on exit, also on error.
    fn always sees [batch, tokens, features], also where a model flattens tokens into the batch
    inside its blocks (OPT's MLP works on [batch * tokens, features]). A replacement is moved to the
    device of the activation it replaces (blocks of a dispatched model live on several devices).

    thread=False (library code running its own forwards inside): the model lock is held from
    installation to removal, so no other thread's forward runs while they are on. thread=True (user
    code runs inside, which may wait on a view's worker: `ablate`): the lock is taken only to install
    and to remove them, and they act on this thread's forwards only (not inside guards.clean());
    other threads' forwards pass through them unchanged."""
    ad = adapter_of(model)
    seq = [0]
    owner = threading.get_ident() if thread else None

    def length(module, args, kwargs):  # tokens of the current forward, from the first block's input
        x = args[0] if args else kwargs.get("hidden_states")
        seq[0] = x.shape[1] if isinstance(x, torch.Tensor) and x.dim() == 3 else 0

    def shaped(fn):
        def run(x):
            if owner is not None and not acts_here(owner):
                return None
            if x.dim() != 2 or not seq[0]:
                return _on(fn(x), x)
            new = _on(fn(x.view(-1, seq[0], x.shape[-1])), x)
            return None if new is None else new.reshape(-1, new.shape[-1])
        return run

    lock = model_lock(model)
    with lock:  # no other thread's forward runs through these hooks (thread=True: while installing them)
        handles = _install(model, ad, edits, shaped, length)
        if not thread:
            try:
                yield
            finally:
                _remove(handles)
            return
    try:
        with thread_scoped():
            yield
    finally:
        with lock:
            _remove(handles)


def _install(model, ad, edits, shaped, length) -> list:
    """The hooks of `hooks`, installed (all removed again if one cannot be)."""
    # on a block, not on the model: another thread waiting at the model's lock would still call a
    # hook registered on the model after it was removed
    handles = [ad.blocks[0].module.register_forward_pre_hook(length, with_kwargs=True)]
    try:
        for site, layer, fn in edits:
            fn = shaped(fn)
            if layer == EMBEDDINGS:  # the embedding output: the first block's hidden-states input
                if site != "resid":
                    raise ValueError(f"site {site!r} has no layer {EMBEDDINGS!r} (only 'resid' does)")

                def first_in(module, args, kwargs, fn=fn):
                    x = args[0] if args else kwargs["hidden_states"]
                    new = fn(x)
                    if new is None:
                        return None
                    if args:
                        return (new,) + tuple(args[1:]), kwargs
                    return args, {**kwargs, "hidden_states": new}
                handles.append(CallHook(model, ad.blocks[0], first_in, pre=True, with_kwargs=True))
                continue
            ref = ad.site(site, layer)
            if is_input_site(site):
                def pre(module, args, fn=fn):
                    new = fn(args[0])
                    return None if new is None else (new,) + tuple(args[1:])
                handles.append(CallHook(model, ref, pre, pre=True))
            else:
                def post(module, args, output, fn=fn):
                    first = output[0] if isinstance(output, tuple) else output
                    new = fn(first)
                    if new is None:
                        return None
                    return (new,) + tuple(output[1:]) if isinstance(output, tuple) else new
                handles.append(CallHook(model, ref, post, pre=False))
    except BaseException:
        _remove(handles)
        raise
    return handles


def _remove(handles) -> None:
    for hd in handles:
        hd.remove()


def _on(new, x: torch.Tensor):
    """A replacement activation on the device of the one it replaces (a model dispatched over
    devices: a patch captured on one GPU, or built on the input device, lands where the layer runs)."""
    return new.to(x.device) if isinstance(new, torch.Tensor) and new.device != x.device else new


def num_hooks(model) -> int:
    """How many llm-widgets hooks are installed anywhere in the model (0 outside a `hooks` block)."""
    return sum(getattr(fn, "__lw_hook__", False) for m in model.modules()
               for fn in list(m._forward_hooks.values()) + list(m._forward_pre_hooks.values()))


def capture(model, sites: Iterable[tuple[str, int]], run: Callable[[], object]) -> dict:
    """Run `run()` with read-only hooks; returns {(site, layer): activation tensor (detached)}."""
    got: dict = {}

    def saver(key):
        def fn(x):
            got[key] = x.detach().clone()
        return fn

    with hooks(model, [(s, l, saver((s, l))) for s, l in sites]):
        run()
    return got
