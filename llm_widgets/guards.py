"""What keeps numbers right when several things use one model: the model lock (background work
and the kernel take turns), the model's state for the trace cache (hooks installed, weights
edited), and whether returned attention weights are the ones the model computed with."""
from __future__ import annotations

import threading
import weakref
from contextlib import contextmanager

import torch


_LOCKS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
# Attributes that mark the library's own hooks which read nothing and change nothing (the trace
# cache ignores them, `model_state`): the model lock's, and the nnsight backend's guard that
# refuses direct forward passes (llm_widgets.backends.nnsight_backend).
LOCK_MARK = "__lw_lock__"
GUARD_MARK = "__lw_guard__"


def model_lock(model) -> threading.RLock:
    """The lock that serialises use of `model` across threads (views compute in the background).

    Every forward pass of the model holds it (a pre-hook takes it, an always-called hook gives it
    back, exceptions included), and library code that registers hooks holds it from registration to
    removal (`with model_lock(model): ...`), so a forward in one thread never runs through hooks that
    another thread put on the model. It is never held across user code, which may wait on a view's
    worker that needs it: hooks around user code (`ablate`) take it only to install and to remove
    themselves, and act on their own thread's forwards only (`thread_scoped`). Re-entrant. Kept
    outside the model, so copies of it stay copyable."""
    lock = _LOCKS.get(model)
    if lock is None:
        lock = _LOCKS[model] = threading.RLock()
        entries = [model]  # and the submodules that views run on their own:
        base = getattr(model, "base_model", None)  # probing runs the base model without the head
        encoder = model.get_encoder() if hasattr(model, "get_encoder") else None  # enc-dec probing
        for sub in (base, encoder):
            if isinstance(sub, torch.nn.Module) and all(sub is not e for e in entries):
                entries.append(sub)
        for m in entries:
            take = lambda module, args: lock.acquire() and None  # noqa: E731
            give = lambda module, args, out: lock.release()  # noqa: E731
            setattr(take, LOCK_MARK, True)
            setattr(give, LOCK_MARK, True)
            m.register_forward_pre_hook(take)
            m.register_forward_hook(give, always_call=True)
    return lock


_HERE = threading.local()  # this thread's open thread-scoped intervention blocks, and suspensions


@contextmanager
def thread_scoped():
    """Marks this thread as inside an intervention block (`ablate`) whose hooks act on this thread's
    forwards only; views started inside it compute in this thread (`intervening`)."""
    _HERE.blocks = getattr(_HERE, "blocks", 0) + 1
    try:
        yield
    finally:
        _HERE.blocks -= 1


def intervening() -> bool:
    """True inside an intervention block (`ablate`) of this thread: work started here must run here
    (a background worker would not see the block's hooks, and would outlive them)."""
    return getattr(_HERE, "blocks", 0) > 0


@contextmanager
def clean():
    """This thread's forwards run without its thread-scoped interventions (a resample donor is
    computed on the clean model, also inside another ablation)."""
    _HERE.suspended = getattr(_HERE, "suspended", 0) + 1
    try:
        yield
    finally:
        _HERE.suspended -= 1


def suspended() -> bool:
    """True inside `clean()` on this thread: its standing interventions do not act."""
    return getattr(_HERE, "suspended", 0) > 0


def acts_here(owner: int) -> bool:
    """Whether a thread-scoped hook installed by thread `owner` acts on the current forward."""
    return threading.get_ident() == owner and not getattr(_HERE, "suspended", 0)


_CHECKSUM_UP_TO = 100_000_000  # parameters; above this only in-place edits (version counters) are seen


def model_state(model) -> tuple | None:
    """What a cached trace depends on besides the text: None while any forward hook other than the
    model lock's, the nnsight backend's guard (`_inert_hook`) and transformers' own output recorders
    is installed (an ablation, a patch, a user's hook: such a forward is never cached),
    else the parameters' version counters (bumped by in-place edits) and, for models up to
    100M parameters, a checksum of every weight (also catches `p.data[...] = ...`)."""
    params = list(model.parameters())
    for m in model.modules():
        for fn in list(m._forward_hooks.values()) + list(m._forward_pre_hooks.values()):
            if not (_inert_hook(fn) or _library_hook(fn)):
                return None
    versions = tuple(p._version for p in params)
    ptrs = tuple(p.data_ptr() for p in params)
    checksum = None
    if sum(p.numel() for p in params) <= _CHECKSUM_UP_TO:
        sums: dict = {}  # per device (a dispatched model spans several); offloaded weights (meta) skipped
        with torch.no_grad():
            for p in params:
                if p.device.type != "meta":
                    sums.setdefault(p.device, []).append(p.detach().float().sum())
            checksum = sum(float(torch.stack(v).double().sum()) for v in sums.values())
    return hash((versions, ptrs, checksum))


def _inert_hook(fn) -> bool:
    """One of the library's own hooks that read nothing and change nothing (LOCK_MARK, GUARD_MARK)."""
    return any(getattr(fn, mark, False) for mark in (LOCK_MARK, GUARD_MARK))


def _library_hook(fn) -> bool:
    """Hooks transformers installs to record outputs (and accelerate's device hooks) read, never edit."""
    return (getattr(fn, "__module__", "") or "").split(".")[0] in ("transformers", "accelerate")


def non_eager_attention(model) -> str:
    """Why the attention weights the model returns are not the ones it computes with, where it runs
    attention other than eagerly ('' where it runs it eagerly)."""
    impls = {getattr(m.config, "_attn_implementation", None) for m in model.modules()
             if hasattr(m, "config") and getattr(m.config, "_attn_implementation", None)}
    bad = sorted(i for i in impls if i != "eager")
    if bad:
        return (f"This model runs attention with {bad[0]!r}, so the attention weights it returns are not "
                f"the ones it computes with (its eager path could not be switched on). Load it with "
                f"attn_implementation='eager' (llm_widgets.load(name) does; for your own model: "
                f"from_pretrained(..., attn_implementation='eager')).")
    return ""


def untrusted_attention(model, attn, causal: bool) -> str:
    """Why the attention weights the model returned are not the ones it used ('' if they are).
    (Encoder-decoder models; one stack of blocks is checked block by block:
    attention_source.attention_by_block.)"""
    if attn is None or len(attn) == 0 or any(a is None for a in attn):
        return ""
    bad = non_eager_attention(model)
    if bad:
        return bad
    a = attn[0][0].float()
    rows = a.sum(-1)
    if not torch.allclose(rows, torch.ones_like(rows), atol=1e-2):
        return "The model's attention weights do not sum to 1 over keys: they are not softmax weights."
    if causal and a.shape[-1] == a.shape[-2] and float(torch.triu(a, 1).abs().max()) > 1e-6:
        return ("The model is causal but its returned attention weights attend to later tokens: they "
                "are not the weights it computes with. Load it with attn_implementation='eager'.")
    return ""
