"""What keeps numbers right when several things use one model: the model lock (background work
and the kernel take turns), the model's state for the trace cache (hooks installed, weights
edited), and whether returned attention weights are the ones the model computed with."""
from __future__ import annotations

import threading
import weakref

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
    back, exceptions included), and code that registers hooks holds it from registration to removal
    (`with model_lock(model): ...`), so a forward in one thread never runs through hooks that another
    thread put on the model. Re-entrant. Kept outside the model, so copies of it stay copyable."""
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


def untrusted_attention(model, attn, causal: bool) -> str:
    """Why the attention weights the model returned are not the ones it used ('' if they are)."""
    if attn is None or len(attn) == 0 or any(a is None for a in attn):
        return ""
    impls = {getattr(m.config, "_attn_implementation", None) for m in model.modules()
             if hasattr(m, "config") and getattr(m.config, "_attn_implementation", None)}
    bad = sorted(i for i in impls if i != "eager")
    if bad:
        return (f"This model runs attention with {bad[0]!r}, so the attention weights it returns are not "
                f"the ones it computes with (its eager path could not be switched on). Load it with "
                f"attn_implementation='eager' (llm_widgets.load(name) does; for your own model: "
                f"from_pretrained(..., attn_implementation='eager')).")
    a = attn[0][0].float()
    rows = a.sum(-1)
    if not torch.allclose(rows, torch.ones_like(rows), atol=1e-2):
        return "The model's attention weights do not sum to 1 over keys: they are not softmax weights."
    if causal and a.shape[-1] == a.shape[-2] and float(torch.triu(a, 1).abs().max()) > 1e-6:
        return ("The model is causal but its returned attention weights attend to later tokens: they "
                "are not the weights it computes with. Load it with attn_implementation='eager'.")
    return ""
